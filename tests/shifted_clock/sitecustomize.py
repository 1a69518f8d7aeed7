"""A wrong system clock for one process a test starts (PYTHONPATH=tests/shifted_clock,
KIEMKE_TEST_CLOCK_SHIFT=<seconds>): datetime.now()/utcnow() and time.time() run that many
seconds ahead (negative: behind), as on a machine whose clock is set wrong. Loaded at
interpreter start-up, before any module took `from datetime import datetime`.
"""

from __future__ import annotations

import datetime as _datetime
import os
import time as _time

_SHIFT = float(os.environ.get("KIEMKE_TEST_CLOCK_SHIFT", "0") or 0)

if _SHIFT:
    _delta = _datetime.timedelta(seconds=_SHIFT)
    _real_time = _time.time

    class _ShiftedDatetime(_datetime.datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
            return super().now(tz) + _delta

        @classmethod
        def utcnow(cls):  # type: ignore[no-untyped-def, override]
            return super().utcnow() + _delta

    _datetime.datetime = _ShiftedDatetime  # type: ignore[misc]
    _time.time = lambda: _real_time() + _SHIFT
