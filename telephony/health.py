"""Whether the recording server takes new calls now, and why not.

A dispatcher in front of several recorders (Kamailio's dispatcher module, an SBC's recorder
group) probes each one with OPTIONS and sends new calls only to those that answer 200. The
server consults one `Availability` for every out-of-dialog OPTIONS and every new INVITE; it
refuses (503 with Retry-After) while:

* it is draining: told to stop, it finishes the calls in progress and takes no new ones;
* it records `max_sessions` calls already;
* the disk under the recordings holds less than `min_free_mb` free.

Requests inside a call (re-INVITE, UPDATE, BYE, in-dialog OPTIONS) are never refused for
these reasons: a call that was taken is recorded to its end.

Free space is read with one ``statvfs`` call at most every `DISK_CHECK_INTERVAL_S`; in
between, the last reading answers, so probes and INVITE bursts cost no disk access.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DISK_CHECK_INTERVAL_S = 2.0
MIB = 1024 * 1024


@dataclass(frozen=True)
class Refusal:
    """Why new calls are refused: the server counter to bump and the reason for the log
    and the response's Warning header."""

    counter: str
    why: str


class DiskSpace:
    """Free space on the file system holding `path`, read at most every `interval_s`."""

    def __init__(
        self, path: Path, interval_s: float = DISK_CHECK_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.path = Path(path)
        self.interval_s = interval_s
        self.clock = clock
        self._free_mb = 0.0
        self._read_at: float | None = None
        self.reads = 0
        """How many times the file system was asked (the rest came from the last reading)."""

    def free_mb(self) -> float:
        now = self.clock()
        if self._read_at is None or now - self._read_at >= self.interval_s:
            self._free_mb = self._measure()
            self._read_at = now
        return self._free_mb

    def _measure(self) -> float:
        self.reads += 1
        path = self.path
        while not path.exists() and path != path.parent:  # not made yet: the folder above
            path = path.parent
        stat = os.statvfs(path)
        return stat.f_bavail * stat.f_frsize / MIB


class Availability:
    """The server's answer to "may a new call come in?"; see the module notes."""

    def __init__(self, max_sessions: int, disk: DiskSpace, min_free_mb: float = 0.0) -> None:
        self.max_sessions = max_sessions
        self.disk = disk
        self.min_free_mb = min_free_mb
        self.draining = False

    def refusal(self, active_calls: int) -> Refusal | None:
        """None when a new call is welcome; else why not."""
        if self.draining:
            return Refusal("refused_draining", "shutting down: calls in progress are finishing")
        if active_calls >= self.max_sessions:
            return Refusal("limit_sessions", "session limit reached")
        if self.min_free_mb > 0:
            free = self.disk.free_mb()
            if free < self.min_free_mb:
                return Refusal(
                    "limit_disk",
                    f"disk nearly full: {free:.0f} MB free, {self.min_free_mb:.0f} MB needed",
                )
        return None
