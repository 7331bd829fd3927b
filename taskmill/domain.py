"""Domains: named bundles of task types, their executors, defaults and state.

A domain remembers the modules it (and its executors) were defined in, so worker processes can import
exactly those modules — including the user's ``__main__`` script — and find the same executors there.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import msgspec

from .errors import ConfigError, SubmitError
from .policy.retry import RetryPolicy
from .priority import as_priority
from .task import Task, TaskTypeConfig

T = TypeVar("T", bound=type[Task])

#: Every Domain constructed in this process, by name. Workers look domains up here after importing.
DOMAINS: dict[str, Domain] = {}


def _origin_of(frame_depth: int) -> str | None:
    """Where the caller lives: ``module:NAME`` or ``path:/abs/script.py`` for a ``__main__`` script."""
    frame = sys._getframe(frame_depth + 1)
    name = frame.f_globals.get("__name__")
    if name in ("__main__", "__mp_main__"):
        spec = frame.f_globals.get("__spec__")
        if spec is not None and getattr(spec, "name", "__main__") not in ("__main__", "__mp_main__"):
            return f"module:{spec.name}"  # run as `python -m package.module`: import it by name
        path = frame.f_globals.get("__file__")
        return f"path:{os.path.abspath(path)}" if path else None
    return f"module:{name}" if name else None


class ExecutorSpec:
    """A registered executor: what to call, whether it is async, and the payload decoder."""

    __slots__ = (
        "_instance",
        "decoder",
        "domain",
        "factory",
        "has_finalize",
        "has_on_cancel",
        "is_async",
        "is_class",
        "qualified_type",
        "task_cls",
        "type_config",
    )  # fmt: skip

    def __init__(self, domain: Domain, task_cls: type[Task], target: Any) -> None:
        self.domain = domain
        self.task_cls = task_cls
        self.qualified_type = f"{domain.name}::{task_cls.task_type}"
        self.type_config: TaskTypeConfig = task_cls.config()
        self.decoder = msgspec.msgpack.Decoder(task_cls)
        self.is_class = inspect.isclass(target)
        self.factory = target
        self._instance: Any = None
        if self.is_class:
            execute = getattr(target, "execute", None)
            if execute is None:
                raise ConfigError(f"executor class {target.__qualname__} has no execute(task, ctx) method")
            self.is_async = inspect.iscoroutinefunction(execute)
            self.has_finalize = hasattr(target, "finalize")
            self.has_on_cancel = hasattr(target, "on_cancel")
        elif callable(target):
            self.is_async = inspect.iscoroutinefunction(target)
            self.has_finalize = self.has_on_cancel = False
        else:
            raise ConfigError(f"executor for {self.qualified_type} must be a function or a class")

    def execute_callable(self) -> Callable[..., Any]:
        """The bound ``execute``; class executors are instantiated once per process, on first use."""
        if not self.is_class:
            return self.factory  # type: ignore[no-any-return]
        if self._instance is None:
            self._instance = self.factory()
        return self._instance.execute  # type: ignore[no-any-return]

    def instance(self) -> Any:
        self.execute_callable()
        return self._instance


def _checked_tags(name: str, tags: dict[str, str] | None) -> dict[str, str]:
    if not tags:
        return {}
    from .submission import check_tags  # submission imports this module

    try:
        return check_tags(tags)
    except SubmitError as exc:
        raise ConfigError(f"domain {name!r} default_tags: {exc}") from None


class Domain:
    """A named set of task types with shared defaults, a concurrency cap and per-process state."""

    def __init__(
        self,
        name: str,
        *,
        default_priority: int | None = None,
        default_ttl: float | None = None,
        default_group: str | None = None,
        default_retry: RetryPolicy | None = None,
        default_tags: dict[str, str] | None = None,
        max_concurrency: int = 0,
        state: Iterable[Any] = (),
        timeout: float | None = None,
    ) -> None:
        if not isinstance(name, str) or not name or "::" in name or name != name.strip():
            raise ConfigError(f"domain name must be a non-empty string without '::' or edge spaces, got {name!r}")
        if max_concurrency < 0:
            raise ConfigError("max_concurrency must be >= 0 (0 = no domain cap)")
        self.name = name
        self.default_priority = None if default_priority is None else as_priority(default_priority)
        self.default_ttl = default_ttl
        self.default_group = default_group
        self.default_retry = default_retry
        self.default_tags = _checked_tags(name, default_tags)
        if timeout is not None and timeout <= 0:
            raise ConfigError("timeout must be > 0 seconds (None = no limit)")
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.state_items = list(state)
        self.executors: dict[str, ExecutorSpec] = {}
        self.origins: list[str] = []
        self._add_origin(_origin_of(1))
        DOMAINS[name] = self

    def _add_origin(self, origin: str | None) -> None:
        if origin and origin not in self.origins:
            self.origins.append(origin)

    def executor(self, task_cls: type[Task]) -> Callable[[Any], Any]:
        """Register the decorated function (sync or async) or class as the executor of ``task_cls``."""
        if not (isinstance(task_cls, type) and issubclass(task_cls, Task)):
            raise ConfigError(f"@{self.name}.executor() takes a taskmill.Task subclass, got {task_cls!r}")
        if not task_cls.task_type or "::" in task_cls.task_type:
            raise ConfigError(f"{task_cls.__qualname__}.task_type must be a non-empty name without '::'")
        owner = task_cls.__dict__.get("__taskmill_domain__")
        if owner is not None and owner.name != self.name:
            raise ConfigError(f"{task_cls.__qualname__} already belongs to domain {owner.name!r}")
        origin = _origin_of(1)

        def register(target: Any) -> Any:
            spec = ExecutorSpec(self, task_cls, target)
            self.executors[spec.qualified_type] = spec
            type.__setattr__(task_cls, "__taskmill_domain__", self)
            self._add_origin(origin)
            return target

        return register

    def spec_for(self, task_cls: type[Task]) -> ExecutorSpec:
        spec = self.executors.get(f"{self.name}::{task_cls.task_type}")
        if spec is None or spec.task_cls is not task_cls:
            raise ConfigError(f"{task_cls.__qualname__} has no executor in domain {self.name!r}")
        return spec

    def __repr__(self) -> str:
        return f"Domain({self.name!r}, types={sorted(self.executors)})"


def is_factory(item: Any) -> bool:
    """Classes, functions and partials build state; anything else is the state object itself."""
    return inspect.isclass(item) or inspect.isfunction(item) or isinstance(item, functools.partial)


class StateBag:
    """Per-process state: objects as given, classes and factories built once on first lookup."""

    def __init__(self, items: Iterable[Any]) -> None:
        self._items = list(items)
        self._built: list[Any] | None = None

    def _all(self) -> list[Any]:
        if self._built is None:
            self._built = [item() if is_factory(item) else item for item in self._items]
        return self._built

    def find(self, kind: type[Any]) -> Any | None:
        for obj in self._all():
            if isinstance(obj, kind):
                return obj
        return None
