"""Names a package exports but loads on first use (PEP 562), so that importing the package stays cheap.

Worker processes import ``taskmill`` and ``taskmill.store`` for plain records and the task API; the scheduler
side and the SQL layer would otherwise be most of their start-up time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, namespace: dict[str, Any], table: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` resolving ``name`` from the submodule ``table[name]`` of ``package``, once."""

    def __getattr__(name: str) -> object:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        namespace[name] = value
        return value

    return __getattr__
