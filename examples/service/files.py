"""The file-processing part of the example service: one task per file dropped into an inbox directory.

The daemon loads this module because ``examples/taskmill.toml`` lists ``"service.files:files"`` in ``domains``;
``watch.py`` imports it to submit. Each task reads one text file, writes a JSON summary of it to the outbox,
then moves the file to the done directory.

An executor may run more than once for the same file (after a crash, taskmill runs the task again), so each
step is safe to repeat: the summary is written to a temporary name and renamed into place, and a file that is
already gone from the inbox, with its summary written, counts as done.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import ClassVar

import taskmill as tm

files = tm.Domain("files", max_concurrency=2)


class ProcessFile(tm.Task, frozen=True):
    task_type: ClassVar[str] = "process_file"
    src: str  # a file in the inbox
    outbox: str  # where the summary goes
    done: str  # where the file goes once summarised

    def key(self) -> str:
        return self.src  # a file waiting to be processed is queued once, however often the inbox is scanned


@files.executor(ProcessFile)
def process_file(task: ProcessFile, ctx: tm.TaskContext) -> None:
    src = Path(task.src)
    summary = Path(task.outbox) / f"{src.name}.json"
    if not src.exists() and summary.exists():
        return  # a previous attempt finished the work, then died before reporting it
    data = src.read_bytes()
    ctx.record_read_bytes(len(data))
    text = data.decode("utf-8", errors="replace")
    result = {"file": src.name, "bytes": len(data), "lines": len(text.splitlines()), "words": len(text.split()),
              "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
    tmp = summary.with_name(f".{summary.name}.tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, summary)  # readers never see a half-written summary
    ctx.record_write_bytes(summary.stat().st_size)
    os.replace(src, Path(task.done) / src.name)
