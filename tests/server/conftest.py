"""Fixtures for the daemon tests: one shared live daemon per module, and per-test daemons that are always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .daemon import Daemon


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A running daemon (2 workers, HTTP on) shared by the read-only tests of a module."""
    d = Daemon(tmp_path_factory.mktemp("live"))
    d.start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    made: list[Daemon] = []

    def make(sub: str = "d", **options: Any) -> Daemon:
        root = tmp_path / sub
        root.mkdir()
        d = Daemon(root, **options)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()
