"""The ``taskmill-supervisor`` console script: workers first, then everything else.

The daemon spends ~0.3 s importing typer, its configuration, the store and the domain modules before the pool
starts; workers exec'd first (:mod:`.prespawn`, as many as leave a core to those imports) spend that time
importing their own side instead.
"""

from __future__ import annotations

import os
import sys

# The options of ``cli_daemon.serve`` that start the daemon, with the override each one sets (None: not an override).
_VALUED = {"--config": None, "-c": None, "--workers": "workers", "--max-concurrency": "max_concurrency",
           "--db": "store", "--durability": "durability", "--log-level": "logging.level",
           "--log-format": "logging.format"}  # fmt: skip
_INTS = ("workers", "max_concurrency")


class Plain:
    """A command line that starts the daemon, as ``cli_daemon.serve`` would read it."""

    __slots__ = ("allow_root", "config", "overrides")

    def __init__(self, config: str, overrides: dict[str, object], allow_root: bool) -> None:
        self.config, self.overrides, self.allow_root = config, overrides, allow_root


def plain_command(argv: list[str]) -> Plain | None:
    """``argv`` read without typer (~45 ms of imports on the path to the first task) when it only starts the
    daemon with well-formed options; None for anything else (``--help``, ``--check``, a bad value, an unknown
    option), which typer then parses and reports exactly as before. The last of a repeated option wins, as in
    typer."""
    config: str | None = None
    overrides: dict[str, object] = dict.fromkeys(o for o in _VALUED.values() if o is not None)
    allow_root = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--allow-root":
            allow_root = True
            i += 1
            continue
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name not in _VALUED:
            return None
        if not eq:
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                return None
            value = argv[i + 1]
            i += 1
        i += 1
        key = _VALUED[name]
        if key is None:
            config = value
        elif key in _INTS:
            try:
                overrides[key] = int(value)
            except ValueError:
                return None
        else:
            overrides[key] = value
    return None if not config else Plain(config, overrides, allow_root)


def early_worker_count(plain: Plain) -> int | None:
    """How many workers the daemon will run, from ``--workers`` or the config file's ``workers`` (the
    scheduler's default otherwise); None when it cannot tell. A wrong guess costs nothing: the pool discards
    what it does not adopt, and the daemon reports a bad config."""
    given = plain.overrides["workers"]
    try:
        if given is not None:
            n = given
        else:
            import tomllib

            with open(plain.config, "rb") as f:
                n = tomllib.load(f).get("workers") or os.cpu_count() or 2
    except (OSError, ValueError):
        return None
    return n if isinstance(n, int) and 0 < n <= 256 else None


def main() -> None:
    """``taskmill-supervisor``: exec the workers, then import and run the daemon's command. Only a command line
    that starts the daemon (see :func:`plain_command`) execs workers early; help, ``--check`` and bad input go
    to typer."""
    plain = plain_command(sys.argv[1:])
    if plain is not None:
        n = early_worker_count(plain)
        if n is not None:
            from . import prespawn

            prespawn.start(n)
        from . import daemon

        sys.exit(daemon.main(plain.config, plain.overrides, allow_root=plain.allow_root))
    from ..cli_daemon import supervisor_app

    supervisor_app(prog_name="taskmill-supervisor")
