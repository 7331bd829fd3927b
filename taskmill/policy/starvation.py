"""Is the dispatch loop starved by other threads of its own process?

An embedded supervisor (``Scheduler.start()``) is a thread of the application and shares its GIL. While another
thread runs Python without pause, the loop gets the GIL back only at the interpreter's forced switches (5 ms by
default), and a dispatch turn gives it up and waits for it again around every SQLite call and socket operation:
turns that need a millisecond of CPU take tens of milliseconds, and work queues up. A slow disk or a machine
short of CPU also makes turns wait, but then no other thread of this process is busy; this tells them apart.
"""

from __future__ import annotations

INTERVAL_S = 5.0  # how often the loop's turns and the other threads' CPU are compared
MIN_WAIT_SHARE = 0.75  # turns spent at least this share of their wall time not running...
MIN_WAIT_OF_INTERVAL = 0.05  # ...and waited at least this share of the interval in all
MIN_OTHER_CPUS = 0.5  # while other threads of the process ran at least half a CPU
QUIET_S = 600.0  # a warning at most this often


def starved(turn_wall_s: float, turn_cpu_s: float, other_cpu_s: float, interval_s: float) -> bool:
    """Over ``interval_s`` seconds, the loop's turns took ``turn_wall_s`` of wall time for ``turn_cpu_s`` of its
    own CPU, and the process's other threads used ``other_cpu_s`` of CPU."""
    if interval_s <= 0:
        return False
    waited = turn_wall_s - turn_cpu_s
    return (
        waited >= MIN_WAIT_OF_INTERVAL * interval_s
        and waited >= MIN_WAIT_SHARE * turn_wall_s
        and other_cpu_s >= MIN_OTHER_CPUS * interval_s
    )
