"""Tests of the thumbs library, as it would ship them (pytest style; also runnable as a script)."""

import tempfile
from pathlib import Path

import msgspec
import thumbs

import taskmill as tm


class ResizeV1(msgspec.Struct, frozen=True):
    """The 1.x payload of thumbs::resize, frozen here: what queues may still hold after an upgrade."""

    path: str
    width: int


def test_old_payloads_still_decode() -> None:
    old = msgspec.msgpack.encode(ResizeV1(path="/a.jpg", width=64))
    task = msgspec.msgpack.decode(old, type=thumbs.Resize)  # what a worker does with a queued payload
    assert task == thumbs.Resize(path="/a.jpg", width=64, quality=None)


def test_task_names_are_stable() -> None:
    assert sorted(thumbs.domain.executors) == ["thumbs::resize", "thumbs::thumbnail"]


def test_the_work_without_taskmill(tmp_path: Path) -> None:
    src = tmp_path / "a.jpg"
    src.write_bytes(bytes(1000))
    assert thumbs.make_thumbnail(src, width=10, quality=50, suffix=".t").stat().st_size == 50


def test_tasks_run_in_a_real_scheduler(tmp_path: Path) -> None:
    src = tmp_path / "a.jpg"
    src.write_bytes(bytes(1000))
    with tm.Scheduler(tmp_path / "tasks.db", domains=[thumbs.domain], workers=1) as scheduler:
        h = scheduler.domain(thumbs.domain)
        h.submit(thumbs.Resize(path=str(src), width=10))
        h.submit(thumbs.Thumbnail(path=str(src), size=20))  # a 1.x task type still runs
        assert scheduler.wait_until_idle(timeout=30)
        assert [r.status for r in scheduler.history()] == ["completed", "completed"]
    assert (tmp_path / "a.thumb.jpg").stat().st_size == 170  # the last run: width 20 at the default quality


if __name__ == "__main__":
    test_old_payloads_still_decode()
    test_task_names_are_stable()
    with tempfile.TemporaryDirectory() as d:
        test_the_work_without_taskmill(Path(d))
    with tempfile.TemporaryDirectory() as d:
        test_tasks_run_in_a_real_scheduler(Path(d))
    print("ok")
