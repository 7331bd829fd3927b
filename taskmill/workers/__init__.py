"""Worker processes: ``python -m taskmill.workers --fd N``. Started by the supervisor, never by hand."""
