"""A shorter GIL switch interval while a supervisor runs, so the application's busy threads cannot starve it.

An embedded supervisor shares the GIL with the application. Each SQLite call and each socket operation of a
dispatch turn releases it, and a CPU-bound application thread then keeps it until the interpreter forces a
switch, every ``sys.getswitchinterval()`` (5 ms by default). A turn makes about ten such calls, so beside a
busy thread it took tens of milliseconds and the loop could fall behind for good: submit → start p50 of
20 to 280 ms and p99 near a second, against ~4 ms p50 and ~10 ms p99 at 0.5 ms. The busy thread lost nothing
measurable: it only yields when another thread is waiting for the GIL, which an idle supervisor is not.

The setting is process-wide. The first supervisor to start lowers it (never raising a lower value the
application chose); the last one to stop puts the old value back, unless something else changed it meanwhile.
Workers get the same interval in their ``Boot`` message: there the thread that reads stop messages waits for
a CPU-bound executor's thread in the same way (a REALTIME preemption stopped one in 12.6 instead of 17.2 ms).
"""

from __future__ import annotations

import sys
import threading

DEFAULT_S = 0.0005

_lock = threading.Lock()
_holders = 0
_saved = 0.0  # the interval before the first holder
_ours: float | None = None  # the interval we set, as the interpreter reports it; None: we set nothing


def hold(interval: float | None) -> bool:
    """Lower the switch interval to ``interval`` (seconds) until :func:`release`. ``None`` holds nothing
    (returns False), leaving the interval to the application."""
    global _holders, _saved, _ours
    if interval is None:
        return False
    with _lock:
        current = sys.getswitchinterval()
        if _holders == 0:
            _saved, _ours = current, None
        if interval < current:
            sys.setswitchinterval(interval)
            _ours = sys.getswitchinterval()  # rounded to the interpreter's resolution
        _holders += 1
    return True


def release() -> None:
    """One holder fewer; the last puts back the interval it found, if the interval is still the one we set."""
    global _holders, _ours
    with _lock:
        _holders -= 1
        if _holders == 0:
            if _ours is not None and sys.getswitchinterval() == _ours:
                sys.setswitchinterval(_saved)
            _ours = None
