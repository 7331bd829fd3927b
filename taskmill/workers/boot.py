"""Loading user code in a worker: domain modules, the user's ``__main__`` script, and application state."""

from __future__ import annotations

import importlib
import os
import runpy
import sys
import types
from typing import Any

import msgspec

from ..domain import DOMAINS, ExecutorSpec, StateBag
from ..protocol import Boot, StateRef

MIN_HEADROOM = 32 << 20  # bytes past start-up a worker needs to run anything (thread stacks, frames, results)


def _load_main_script(path: str) -> None:
    """Run the user's script as ``__mp_main__`` (as multiprocessing's spawn does) and alias it to ``__main__``.

    Its ``if __name__ == "__main__":`` block does not run, but everything defined at module level exists.
    """
    module = types.ModuleType("__mp_main__")
    module.__file__ = path
    sys.modules["__mp_main__"] = module
    namespace = runpy.run_path(path, run_name="__mp_main__")
    module.__dict__.update(namespace)
    sys.modules["__main__"] = sys.modules["__mp_main__"] = module


def resolve_ref(ref: str) -> Any:
    """``package.module:Qual.Name`` → the object."""
    module_name, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module_name) if module_name != "__main__" else sys.modules["__main__"]
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def load_app_state(refs: list[StateRef]) -> StateBag:
    items: list[Any] = []
    for ref in refs:
        target = resolve_ref(ref.ref)
        items.append(target if ref.encoded is None else msgspec.msgpack.decode(ref.encoded, type=target))
    return StateBag(items)


def _mapped_bytes() -> int | None:
    """This process's address space (what RLIMIT_AS counts), where /proc tells."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def limit_address_space(limit: int) -> str | None:
    """``worker_memory_limit``: RLIMIT_AS for this worker and whatever its tasks start, so an allocation past
    ``limit`` bytes fails (Python raises MemoryError inside the task) before the machine runs short and the OOM
    killer picks a victim. Set after start-up (the imports are paid for) and as both soft and hard limit, so
    task code cannot lift it. Returns why it cannot be applied, or None."""
    import resource

    used = _mapped_bytes()
    if used is not None and used + MIN_HEADROOM > limit:
        return (f"worker_memory_limit is {limit} bytes, but a worker already maps {used} bytes once started "
                f"(RLIMIT_AS counts address space, not RSS); allow at least {used + MIN_HEADROOM}")  # fmt: skip
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (ValueError, OSError) as exc:
        return f"could not apply worker_memory_limit ({limit} bytes): {exc}"
    return None


def boot(msg: Boot) -> tuple[dict[str, ExecutorSpec], StateBag, dict[str, StateBag]]:
    """Import every origin; return executors by qualified type, app state, and domain state by name."""
    for entry in reversed(msg.sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    for origin in msg.origins:
        kind, _, target = origin.partition(":")
        if kind == "path":
            if "__mp_main__" not in sys.modules or getattr(sys.modules["__mp_main__"], "__file__", None) != target:
                _load_main_script(target)
        else:
            importlib.import_module(target)
    executors: dict[str, ExecutorSpec] = {}
    domain_state: dict[str, StateBag] = {}
    hosted = set(msg.domains)
    for name, domain in DOMAINS.items():
        if not hosted or name in hosted:  # other domains' tasks never come here (nor make this worker run a loop)
            executors.update(domain.executors)
        domain_state[name] = StateBag(domain.state_items)
    return executors, load_app_state(msg.app_state), domain_state
