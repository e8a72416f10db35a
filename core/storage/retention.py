"""Retention: what is deleted of old calls, in small batches that never leave a half state.

Three kinds, each with its age in days (0: kept for ever), counted from when the call started:

* ``calls`` (``retention_scores_days``): the whole call goes, its score, findings, legs,
  timelines, decision record and transcript (the search index follows by its triggers),
  and its recording;
* ``recordings`` (``retention_recordings_days``): the recording file; the row stays, with
  ``recording_path`` empty and ``recording_deleted_at`` set;
* ``transcripts`` (``retention_transcripts_days``): the utterances' text, search text (so
  full-text search no longer finds it), phrase checks and decoded text, and the words the
  findings quote (``evidence``, ``utterance_text``); times, levels, findings and the score
  stay, and ``transcript_deleted_at`` says when.

A call under review or appeal (`core.storage.holds`) is never touched; the holds are read
again before every batch. Calls still being recorded or scored are left alone too.

Each batch of at most ``batch_calls`` calls is one transaction. A recording is removed from
disk only after the transaction that let go of it committed, and that transaction also
wrote the file into ``retention_files``: a crash before the unlink leaves the row and the
file apart but recorded, and the next pass (or `finish_files`) removes the file. No row ever
names a file that retention removed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from core.clock import now as clock_now
from core.config import Settings
from core.storage.holds import Holds
from core.storage.repository import write_transaction

logger = logging.getLogger(__name__)

KINDS = ("calls", "recordings", "transcripts")
BUSY_STATUSES = ("live", "recorded", "scoring", "ending")
"""Calls in these states are still being recorded or scored; retention waits for them."""
BATCH_CALLS = 100

_WHERE = {
    "calls": "",
    "recordings": " AND recording_path IS NOT NULL",
    "transcripts": " AND transcript_deleted_at IS NULL",
}


@dataclass(frozen=True)
class Policy:
    """Days after a call's start at which each kind is deleted; 0 keeps it for ever."""

    recordings_days: int = 0
    transcripts_days: int = 0
    scores_days: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(settings.retention_recordings_days, settings.retention_transcripts_days,
                   settings.retention_scores_days)  # fmt: skip

    def days(self, kind: str) -> int:
        return {"calls": self.scores_days, "recordings": self.recordings_days,
                "transcripts": self.transcripts_days}[kind]  # fmt: skip


@dataclass
class Report:
    """What one pass deleted (or, dry, would delete)."""

    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    files_removed: int = 0
    files_missing: int = 0
    held: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)
    """Dry: the calls that would be deleted whole."""
    first_call_id: str | None = None
    last_call_id: str | None = None
    elapsed_s: float = 0.0

    def touched(self, call_ids: list[str]) -> None:
        low, high = min(call_ids), max(call_ids)
        self.first_call_id = low if self.first_call_id is None else min(self.first_call_id, low)
        self.last_call_id = high if self.last_call_id is None else max(self.last_call_id, high)

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        c = self.counts
        text = (f"retention {verb} {c['calls']} calls, {c['recordings']} recordings, "
                f"{c['transcripts']} transcripts")
        if self.first_call_id is not None:
            text += f" (call ids {self.first_call_id} .. {self.last_call_id})"
        if not self.dry_run:
            text += f"; {self.files_removed} files removed"
            if self.files_missing:
                text += f", {self.files_missing} already gone"
        return text + f"; {len(self.held)} calls kept for review or appeal"


Checkpoint = Callable[[str], None]
"""Called at "committed" (a batch's rows are written, its files not yet removed) and at
"batch" (a batch is done); a test raises there to stop a pass as a crash would."""


def _cutoff(now: dt.datetime, days: int) -> tuple[str, str]:
    """The cutoff as ISO text, and a bound one day later for the index on ``started_at``
    (start times carry their own UTC offset, so text order is exact only to within it)."""
    cut = (now - dt.timedelta(days=days)).astimezone(dt.UTC)
    return cut.isoformat(), (cut + dt.timedelta(days=1)).isoformat()


def _candidates(db: Database, kind: str, cutoff: tuple[str, str], after: tuple[str, str],
                limit: int) -> list[tuple[str, str, str | None]]:
    """The next calls of `kind` due, in start order after the key `after`: (started, id, path)."""
    busy = ", ".join("?" * len(BUSY_STATUSES))
    sql = (f"SELECT started_at, id, recording_path FROM calls WHERE started_at < ?"
           f" AND julianday(started_at) < julianday(?) AND status NOT IN ({busy})"
           f" AND (started_at, id) > (?, ?){_WHERE[kind]} ORDER BY started_at, id LIMIT ?")
    params = [cutoff[1], cutoff[0], *BUSY_STATUSES, *after, limit]
    return [(r[0], r[1], r[2]) for r in db.execute(sql, params).fetchall()]


def _removable(data_dir: Path, path: str) -> bool:
    """Only recordings filed under the data folder are removed from disk."""
    try:
        return Path(path).resolve().is_relative_to((data_dir / "recordings").resolve())
    except (OSError, ValueError):
        return False


def _queue_files(db: Database, data_dir: Path, rows: list[tuple[str, str, str | None]],
                 at: str) -> list[str]:
    paths = [p for _s, _id, p in rows if p and _removable(data_dir, p)]
    for _s, call_id, p in rows:
        if p and p in paths:
            db.execute("INSERT OR REPLACE INTO retention_files (path, call_id, queued_at)"
                       " VALUES (?, ?, ?)", [p, call_id, at])
        elif p:
            logger.warning("call %s: its recording %s lies outside the data folder's "
                           "recordings and is left on disk", call_id, p)
    return paths


def _apply_batch(db: Database, data_dir: Path, kind: str,
                 rows: list[tuple[str, str, str | None]], at: str) -> list[str]:
    """Delete `kind` of the calls in `rows` in one transaction; returns the files to remove."""
    ids = [r[1] for r in rows]
    marks = ", ".join("?" * len(ids))
    with write_transaction(db):
        if kind == "transcripts":
            db.execute("UPDATE utterances SET text = '', search_text = '', checks = '[]',"
                       f" decoded_text = NULL WHERE call_id IN ({marks})", ids)
            db.execute("UPDATE findings SET evidence = '', detail = json_remove(detail,"
                       f" '$.utterance_text', '$.edits') WHERE call_id IN ({marks})", ids)
            db.execute("UPDATE calls SET transcript_deleted_at = ?, updated_at = ?"
                       f" WHERE id IN ({marks})", [at, at, *ids])
            return []
        paths = _queue_files(db, data_dir, rows, at)
        if kind == "recordings":
            db.execute("UPDATE calls SET recording_path = NULL, recording_deleted_at = ?,"
                       f" updated_at = ? WHERE id IN ({marks})", [at, at, *ids])
        else:
            db.execute(f"DELETE FROM calls WHERE id IN ({marks})", ids)
    return paths


def finish_files(db: Database, paths: list[str] | None = None) -> tuple[int, int]:
    """Remove recordings queued in ``retention_files`` (`paths`, or all of them) and their
    records; returns (removed, already gone)."""
    if paths is None:
        paths = [r[0] for r in db.execute("SELECT path FROM retention_files").fetchall()]
    removed = missing = 0
    for p in paths:
        try:
            Path(p).unlink()
            removed += 1
        except FileNotFoundError:
            missing += 1
    for start in range(0, len(paths), 500):
        chunk = paths[start:start + 500]
        with write_transaction(db):
            db.execute(f"DELETE FROM retention_files WHERE path IN ({', '.join('?' * len(chunk))})",
                       chunk)
    return removed, missing


@dataclass
class Pass:
    """One retention pass over the calls database `db`; `run` it once."""

    db: Database
    data_dir: Path
    policy: Policy
    holds: Holds
    dry_run: bool = False
    batch_calls: int = BATCH_CALLS
    pause_s: float = 0.0
    """Sleep between batches, so that the live writer gets the database in between."""
    checkpoint: Checkpoint | None = None

    def run(self, now: dt.datetime | None = None) -> Report:
        when = now or clock_now()
        started = time.monotonic()
        report = Report(self.dry_run)
        run_id = None if self.dry_run else self._start_record(when)
        try:
            if not self.dry_run:
                report.files_removed, report.files_missing = finish_files(self.db)
            for kind in KINDS:
                days = self.policy.days(kind)
                if days > 0:
                    self._kind(kind, _cutoff(when, days), when.isoformat(), report)
        except BaseException as exc:
            if run_id is not None:
                self._end_record(run_id, report, f"{type(exc).__name__}: {exc}")
            raise
        report.elapsed_s = time.monotonic() - started
        if run_id is not None:
            self._end_record(run_id, report, None)
        return report

    def _kind(self, kind: str, cutoff: tuple[str, str], at: str, report: Report) -> None:
        after = ("", "")
        while True:
            held = self.holds.held()
            rows = _candidates(self.db, kind, cutoff, after, self.batch_calls)
            if not rows:
                return
            after = (rows[-1][0], rows[-1][1])
            report.held.update(r[1] for r in rows if r[1] in held)
            rows = [r for r in rows if r[1] not in held and r[1] not in report.gone]
            if not rows:
                continue
            report.counts[kind] += len(rows)
            report.touched([r[1] for r in rows])
            if self.dry_run and kind == "calls":
                report.gone.update(r[1] for r in rows)  # not counted again as parts
            if not self.dry_run:
                paths = _apply_batch(self.db, self.data_dir, kind, rows, at)
                self._check("committed")
                removed, missing = finish_files(self.db, paths)
                report.files_removed += removed
                report.files_missing += missing
            self._check("batch")
            if self.pause_s:
                time.sleep(self.pause_s)

    def _check(self, stage: str) -> None:
        if self.checkpoint is not None:
            self.checkpoint(stage)

    def _start_record(self, when: dt.datetime) -> int:
        with write_transaction(self.db):
            cur = self.db.execute("INSERT INTO retention_runs (started_at) VALUES (?)",
                                  [when.isoformat(timespec="seconds")])
        return int(cur.lastrowid or 0)

    def _end_record(self, run_id: int, report: Report, error: str | None) -> None:
        c = report.counts
        with write_transaction(self.db):
            self.db.execute(
                "UPDATE retention_runs SET finished_at = ?, recordings = ?, transcripts = ?,"
                " calls = ?, files = ?, held = ?, first_call_id = ?, last_call_id = ?,"
                " error = ? WHERE id = ?",
                [clock_now().isoformat(timespec="seconds"), c["recordings"], c["transcripts"],
                 c["calls"], report.files_removed, len(report.held), report.first_call_id,
                 report.last_call_id, error, run_id],
            )  # fmt: skip


def last_runs(db: Database, limit: int = 5) -> list[dict[str, Any]]:
    """The latest passes, newest first (``finished_at`` empty: stopped before its end)."""
    cur = db.execute("SELECT * FROM retention_runs ORDER BY id DESC LIMIT ?", [limit])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
