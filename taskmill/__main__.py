"""``python -m taskmill``: the operator CLI, for hosts where the console scripts are not on PATH."""

from .cli import app

app(prog_name="taskmill")
