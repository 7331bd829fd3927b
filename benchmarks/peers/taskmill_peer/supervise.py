"""The taskmill "worker CLI" of the peer benchmark: one supervisor process with a pool of N workers.

    python -m benchmarks.peers.taskmill_peer.supervise --db PATH --workers N --durability normal|full

``Scheduler.run()`` in the main thread installs SIGINT/SIGTERM handlers, so the harness's SIGTERM to this
process group stops dispatch, stops the workers (each in its own session, so only the supervisor can stop
them) and exits once they are gone. Like ``taskmill-supervisor``, it execs workers before importing the
scheduler (``taskmill.supervisor.prespawn``: as many as leave a core to those imports), so their start-up
overlaps its own (set ``TM_NO_PRESPAWN=1`` to measure without).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers.taskmill_peer.supervise")
    p.add_argument("--db", required=True)
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--durability", choices=("normal", "full"), default="full")
    args = p.parse_args(argv)
    from taskmill.supervisor import prespawn

    if not os.environ.get("TM_NO_PRESPAWN"):
        prespawn.start(args.workers)
    import taskmill as tm

    from .tasks import peer

    logging.basicConfig(level=logging.WARNING)  # protocol §2.3: no per-task logging
    scheduler = tm.Scheduler(args.db, [peer], workers=args.workers, durability=args.durability)
    try:
        scheduler.run()
    finally:
        scheduler.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
