"""The one source of "now" for code that stamps or compares wall-clock times.

Tests that need to move time (lock-outs, session timeouts, retention) call `set_now` with a
function of their own, and `reset` afterwards.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Literal


def _system_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_now: Callable[[], dt.datetime] = _system_now


def now() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return _now()


def utc_now_iso(timespec: Literal["seconds", "milliseconds"] = "seconds") -> str:
    """The current UTC time as ISO 8601 to the second (``2026-12-05T21:40:00+00:00``), or to
    the millisecond (``2026-12-05T21:40:00.123+00:00``: when a call started or ended)."""
    return now().isoformat(timespec=timespec)


def set_now(func: Callable[[], dt.datetime]) -> None:
    """Replace the clock (tests only)."""
    global _now
    _now = func


def reset() -> None:
    """Back to the system clock."""
    global _now
    _now = _system_now
