"""Watch an inbox directory and submit one task per file to the running daemon.

    cd examples && taskmill-supervisor --config taskmill.toml &    # add --allow-root if you are root
    mkdir -p inbox && echo "hello world" > inbox/a.txt
    python service/watch.py inbox                # runs until Ctrl-C, scanning every second
    python service/watch.py inbox --once         # scan once, wait for the results, print them, exit

Summaries appear in ``outbox/`` and processed files move to ``done/`` (both beside the inbox unless given).
Write files into the inbox under a name starting with "." and rename them when complete: names starting with
"." are skipped, so a half-written file is never processed.

This process only submits: the daemon's workers do the work. A file is submitted with its path as the dedup
key, so scanning again while it waits does not queue it twice.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # make `service` importable

import taskmill as tm
from service.files import ProcessFile, files


def scan(handle: tm.DomainHandle, inbox: Path, outbox: Path, done: Path) -> list[int]:
    """Submit every complete file of the inbox; returns the ids of tasks created by this scan."""
    new = []
    for path in sorted(inbox.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        out = handle.submit(ProcessFile(src=str(path.resolve()), outbox=str(outbox), done=str(done)))
        if out.kind == "inserted":
            print(f"queued {path.name} as task {out.id}", flush=True)
            new.append(out.id)
    return new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inbox", type=Path)
    parser.add_argument("--db", default="tasks.db", help="the daemon's database (its `store`)")
    parser.add_argument("--outbox", type=Path, help="default: outbox/ beside the inbox")
    parser.add_argument("--done", type=Path, help="default: done/ beside the inbox")
    parser.add_argument("--once", action="store_true", help="scan once, wait for the results, print them, exit")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between scans")
    args = parser.parse_args(argv)
    inbox = args.inbox.resolve()
    outbox = (args.outbox or inbox.parent / "outbox").resolve()
    done = (args.done or inbox.parent / "done").resolve()
    for d in (inbox, outbox, done):
        d.mkdir(parents=True, exist_ok=True)

    with tm.connect(args.db) as client:
        handle = client.domain(files)
        if not args.once:
            while True:  # Ctrl-C to stop; queued tasks stay in the database and run anyway
                scan(handle, inbox, outbox, done)
                time.sleep(args.interval)
        ids = scan(handle, inbox, outbox, done)
        deadline = time.monotonic() + 60
        while any(client.task(i) is not None for i in ids):  # still queued or running
            if time.monotonic() > deadline:
                print("timed out waiting for the daemon", file=sys.stderr)
                return 1
            time.sleep(0.05)
        failed = 0
        for task_id in ids:
            record = client.history_of(task_id)[0]
            if record.status != "completed":
                failed += 1
                print(f"task {task_id}: {record.status}: {record.last_error}")
                continue
            name = Path(record.label).name
            summary = json.loads((outbox / f"{name}.json").read_text())
            print(f"{name}: {summary['lines']} lines, {summary['words']} words, {summary['bytes']} bytes")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
