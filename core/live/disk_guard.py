"""New calls are refused while the data disk is nearly full, and taken again when space
returns.

The one free-space check of the box is `telephony.health.DiskSpace` against the setting
``disk_min_free_mb``: the SIP server answers 503 by it, and the live engine refuses the
calls of every other ingest (gRPC streams, mirrored calls) by it, so that no call starts
whose recording cannot be written. Each change between low and enough is logged once.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from telephony.health import DiskSpace

logger = logging.getLogger(__name__)


class DiskLow(RuntimeError):
    """A new call was refused: the data disk is nearly full (the message says how full)."""


class DiskGuard:
    """Free space under ``data_dir`` against ``min_free_mb`` (0: never refuse)."""

    def __init__(self, data_dir: Path, min_free_mb: float) -> None:
        self.space = DiskSpace(data_dir)
        self.min_free_mb = min_free_mb
        self.low = False
        self.refused = 0
        self._lock = threading.Lock()

    def check(self) -> str | None:
        """None while there is room; else why new calls are refused. Logs each change."""
        if self.min_free_mb <= 0:
            return None
        free = self.space.free_mb()
        low = free < self.min_free_mb
        with self._lock:
            changed, self.low = low != self.low, low
        if changed and low:
            logger.error(
                "the data disk is nearly full (%.0f MB free, %.0f MB needed): new calls are "
                "refused until space returns", free, self.min_free_mb,
            )  # fmt: skip
        elif changed:
            logger.warning("the data disk has room again (%.0f MB free): new calls are taken",
                           free)  # fmt: skip
        if not low:
            return None
        return f"disk nearly full: {free:.0f} MB free, {self.min_free_mb:.0f} MB needed"

    def admit(self) -> None:
        """Raise :class:`DiskLow` when a new call must be refused."""
        why = self.check()
        if why is not None:
            with self._lock:
                self.refused += 1
            raise DiskLow(why)
