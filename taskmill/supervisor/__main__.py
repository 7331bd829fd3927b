"""``python -m taskmill.supervisor --config taskmill.toml``: the daemon, without the console script."""

from ..cli import supervisor_app

supervisor_app(prog_name="taskmill-supervisor")
