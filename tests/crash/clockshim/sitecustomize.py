"""A wall clock that can be stepped, for F14 (tests/crash/test_long_tier.py): on the PYTHONPATH of every
process of the test, ``time.time`` / ``time.time_ns`` return the real clock plus the offset (seconds) written
in the file named by ``TASKMILL_TEST_CLOCK_OFFSET``, re-read every 10 ms. The monotonic clock is untouched,
as a real ``date -s`` leaves it (stepping the machine's clock would disturb everyone else on it)."""

import os
import threading
import time

_path = os.environ.get("TASKMILL_TEST_CLOCK_OFFSET")
if _path:
    _real, _real_ns = time.time, time.time_ns
    _offset = [0.0]

    def _poll() -> None:
        while True:
            try:
                with open(_path) as f:
                    _offset[0] = float(f.read().strip() or 0)
            except (OSError, ValueError):
                pass
            _real_sleep(0.01)

    _real_sleep = time.sleep
    time.time = lambda: _real() + _offset[0]
    time.time_ns = lambda: _real_ns() + int(_offset[0] * 1e9)
    threading.Thread(target=_poll, name="test-clock", daemon=True).start()
