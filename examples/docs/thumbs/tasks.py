"""The thumbs domain: its task types and executors, at module level so that worker processes find them."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import msgspec

import taskmill as tm

# The domain's name is the first half of every task type stored in the database ("thumbs::resize"):
# choose it once, like a package name, and never change it.
domain = tm.Domain("thumbs", default_priority=tm.Priority.BACKGROUND, max_concurrency=2)


class Settings(msgspec.Struct, frozen=True):
    """What an application may configure: passed as Scheduler(app_state=[thumbs.Settings(...)])."""

    quality: int = 85
    suffix: str = ".thumb"


class Resize(tm.Task, frozen=True):
    """Version 2 of the payload. Version 1 had no `quality`: a default keeps version 1 payloads valid."""

    task_type: ClassVar[str] = "resize"  # stored as "thumbs::resize": never rename it
    path: str
    width: int
    quality: int | None = None  # added in 2.0; None: the application's Settings.quality

    def key(self) -> str:
        return f"{self.path}@{self.width}"  # an explicit key: adding a field does not change it

    @classmethod
    def config(cls) -> tm.TaskTypeConfig:
        return tm.TaskTypeConfig(retry=tm.RetryPolicy.exponential(3, base=1.0, max=30.0), timeout=300)


class Thumbnail(tm.Task, frozen=True):
    """The 1.x task type, replaced by Resize. Kept so that tasks queued by 1.x still run after an upgrade."""

    task_type: ClassVar[str] = "thumbnail"
    path: str
    size: int


def make_thumbnail(src: Path, width: int, quality: int, suffix: str) -> Path:
    """The work itself, free of taskmill, so it can be tested on its own."""
    dest = src.with_name(src.stem + suffix + src.suffix)
    data = src.read_bytes()
    dest.write_bytes(data[: width * quality // 10])  # stands in for decoding, resizing and encoding
    return dest


def settings(ctx: tm.TaskContext) -> Settings:
    try:
        return ctx.state(Settings)
    except LookupError:  # the application configured nothing: the defaults
        return Settings()


@domain.executor(Resize)
def resize(task: Resize, ctx: tm.TaskContext) -> None:
    s = settings(ctx)
    make_thumbnail(Path(task.path), task.width, task.quality or s.quality, s.suffix)


@domain.executor(Thumbnail)
def thumbnail(task: Thumbnail, ctx: tm.TaskContext) -> None:
    resize(Resize(path=task.path, width=task.size), ctx)  # a 1.x task, done the 2.x way
