"""``python -m taskmill.supervisor --config taskmill.toml``: the daemon, without the console script."""

from .entry import main

main()
