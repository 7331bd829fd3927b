"""``python -m benchmarks {run,sweep,compare} ...``: the benchmark suite's one entry command.

    python -m benchmarks run [WORKLOAD ...]   workloads of the original's benchmark set + DESIGN.md §4 targets
    python -m benchmarks sweep               throughput over workers / prefetch / durability / concurrency
    python -m benchmarks compare             peer protocol W1-W5 against installed peers (Huey), with ratios

``python -m benchmarks SUBCOMMAND --help`` lists each one's options; see docs/benchmarks.md.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from . import compare, run, sweep

COMMANDS: dict[str, Callable[[list[str] | None], int]] = {"run": run.main, "sweep": sweep.main, "compare": compare.main}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        print(__doc__.strip())
        if args and args[0] not in ("-h", "--help"):
            print(f"\nunknown subcommand {args[0]!r}", file=sys.stderr)
            return 2
        return 0
    return COMMANDS[args[0]](args[1:])


if __name__ == "__main__":
    sys.exit(main())
