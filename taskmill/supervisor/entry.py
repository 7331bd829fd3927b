"""The ``taskmill-supervisor`` console script: workers first, then everything else.

The daemon spends ~0.3 s importing typer, its configuration, the store and the domain modules before the pool
starts; workers exec'd first (:mod:`.prespawn`, as many as leave a core to those imports) spend that time
importing their own side instead.
"""

from __future__ import annotations

import os
import sys


def _option(argv: list[str], *names: str) -> str | None:
    """The value of the last ``--name value`` / ``--name=value`` in ``argv``, without a parser."""
    found = None
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                found = argv[i + 1]
            elif arg.startswith(name + "="):
                found = arg[len(name) + 1 :]
    return found


def early_worker_count(argv: list[str]) -> int | None:
    """How many workers the daemon this command line starts will run, from ``--workers`` or the config file's
    ``workers`` (the scheduler's default otherwise); None when it will not start one or cannot tell. A wrong
    guess costs nothing: the pool discards what it does not adopt and the typer command reports bad input."""
    if any(a in ("--check", "--help") for a in argv):
        return None
    config = _option(argv, "--config", "-c")
    if not config:
        return None
    given = _option(argv, "--workers")
    try:
        if given is not None:
            n = int(given)
        else:
            import tomllib

            with open(config, "rb") as f:
                n = tomllib.load(f).get("workers") or os.cpu_count() or 2
    except (OSError, ValueError):
        return None
    return n if isinstance(n, int) and 0 < n <= 256 else None


def main() -> None:
    """``taskmill-supervisor``: exec the workers, then import and run the daemon's command."""
    n = early_worker_count(sys.argv[1:])
    if n is not None:
        from . import prespawn

        prespawn.start(n)
    from ..cli_daemon import supervisor_app

    supervisor_app(prog_name="taskmill-supervisor")
