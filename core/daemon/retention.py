"""The daemon's daily retention pass (`core.storage.retention`), and its figures.

`RetentionJob` runs one pass a day at ``retention_run_hour`` (local time) on a thread of its
own, with its own connection to the database: batches of `core.storage.retention.BATCH_CALLS`
calls, each its own short transaction with a pause after it, so the live writer is never
kept waiting for more than one batch. Every pass is logged with what it deleted and kept
for review, and recorded in ``retention_runs``; the totals since start are what the
metrics endpoint reports. A pass that fails (the reviews database unreadable, say) deletes
nothing more, is logged as an error and counted, and the next day's pass tries again.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import Counter

from core.clock import now as clock_now
from core.config import Settings
from core.stage_cpu import name_thread
from core.storage.db import open_db
from core.storage.holds import Holds
from core.storage.retention import Pass, Policy, Report

logger = logging.getLogger(__name__)

PAUSE_S = 0.05
"""Between two batches: the live writer's chance at the database."""


def next_run(after: dt.datetime, hour: int) -> dt.datetime:
    """The first time strictly after `after` (aware) at `hour`:00 in local time."""
    local = after.astimezone()
    at = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if at <= local:
        at = (at + dt.timedelta(days=1)).replace(hour=hour)
    return at


class Stopped(Exception):
    """The daemon stops: the pass ends after the batch it was doing."""


class RetentionJob:
    """Daily retention inside `callqa serve`; `run_once` is also what a test calls."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policy = Policy.from_settings(settings)
        self.deleted: Counter[str] = Counter()
        self.failures = 0
        self.last: Report | None = None
        self.last_run_at: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not any(self.policy.days(kind) for kind in ("calls", "recordings", "transcripts")):
            logger.info("retention: every call is kept (no retention_*_days set)")
            return
        self._thread = threading.Thread(target=self._loop, name="callqa-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _interrupt(self, stage: str) -> None:
        if stage == "batch" and self._stop.is_set():
            raise Stopped

    def _loop(self) -> None:
        name_thread("retention")
        while True:
            when = next_run(clock_now(), self.settings.retention_run_hour)
            logger.info("retention: next pass at %s", when.isoformat(timespec="minutes"))
            if self._stop.wait(max(0.0, (when - clock_now()).total_seconds())):
                return
            try:
                self.run_once()
            except Stopped:
                return
            except Exception:
                pass  # logged and counted by run_once; tried again tomorrow

    def run_once(self, *, pause_s: float = PAUSE_S) -> Report:
        """One pass now; logs and counts what it did, and raises what stopped it."""
        with self._lock:
            db = open_db(self.settings.db_path, check_same_thread=False)
            holds = Holds(self.settings.data_dir)
            try:
                report = Pass(db, self.settings.data_dir, self.policy, holds,
                              pause_s=pause_s, checkpoint=self._interrupt).run()  # fmt: skip
            except Stopped:
                logger.info("retention pass stopped for shutdown; the next pass goes on")
                raise
            except Exception:
                self.failures += 1
                logger.exception("retention pass failed; what it had done so far stands")
                raise
            finally:
                holds.close()
                db.close()
            self.deleted.update(report.counts)
            self.deleted["files"] += report.files_removed
            self.last, self.last_run_at = report, time.time()
            logger.info("%s in %.1f s", report.summary(), report.elapsed_s)
            return report
