"""The supervisor: the one process that claims tasks and talks to workers."""
