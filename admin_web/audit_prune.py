"""Pruning the audit log past ``retention_audit_days``, keeping the rest verifiable.

The audit log belongs to the admin web, so its pruning runs here: once a day inside
`callqa admin serve`, and by hand with ``callqa admin prune-audit [--dry-run]``. Entries
younger than ``retention_audit_days`` are never pruned, and that setting cannot be set below
`core.config.AUDIT_LAW_MIN_DAYS` (0 keeps the log for ever).

One transaction: an anchor (the first entry kept and the hash it follows) is added to
``audit_anchors``, the entries before it are deleted (the table's trigger lets through only
those), and the pruning itself is appended to the log. `admin_web.audit.verify` then walks
the chain from the anchor.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from admin_web import audit
from admin_web.site_db import connect, write
from core import clock
from core.config import AUDIT_LAW_MIN_DAYS

logger = logging.getLogger(__name__)

DAY_S = 86400.0


@dataclass(frozen=True)
class AuditPrune:
    entries: int
    """Entries pruned (or, dry, that would be)."""
    older_than: str | None
    first_kept_id: int | None
    dry_run: bool

    def summary(self) -> str:
        if self.older_than is None:
            return "the audit log is kept for ever (retention_audit_days = 0)"
        verb = "would prune" if self.dry_run else "pruned"
        return f"audit log: {verb} {self.entries} entries older than {self.older_than}"


def _cut(conn: sqlite3.Connection, older_than: str) -> tuple[int, int, str]:
    """(entries before the cut, first entry kept, the hash it follows). Entries are cut at
    the first one not older than `older_than`: a clock that went back keeps more, never less."""
    first_kept, prev = audit.latest_anchor(conn)[:2]
    row = conn.execute("SELECT id, prev_hash FROM audit_log WHERE id >= ? AND at >= ?"
                       " ORDER BY id LIMIT 1", [first_kept, older_than]).fetchone()
    if row is None:  # every entry is older: cut after the last one
        last = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
        if last is None:
            return 0, first_kept, prev
        row = (int(last[0]) + 1, last[1])
    count = conn.execute("SELECT count(*) FROM audit_log WHERE id < ?", [row[0]]).fetchone()[0]
    return int(count), int(row[0]), str(row[1])


def prune(conn: sqlite3.Connection, keep_days: int, *, dry_run: bool = False) -> AuditPrune:
    """Prune entries older than `keep_days` (0: none, kept for ever)."""
    if keep_days == 0:
        return AuditPrune(0, None, None, dry_run)
    if keep_days < AUDIT_LAW_MIN_DAYS:
        raise ValueError(f"the audit log must be kept at least {AUDIT_LAW_MIN_DAYS} days, "
                         f"not {keep_days}")
    older_than = (clock.now() - dt.timedelta(days=keep_days)).astimezone(dt.UTC).isoformat(
        timespec="seconds")
    if dry_run:
        count, first_kept, _prev = _cut(conn, older_than)
        return AuditPrune(count, older_than, first_kept, True)
    with write(conn):
        count, first_kept, prev = _cut(conn, older_than)
        if count:
            conn.execute("INSERT INTO audit_anchors (first_kept_id, prev_hash, pruned,"
                         " older_than, at) VALUES (?, ?, ?, ?, ?)",
                         [first_kept, prev, count, older_than, clock.utc_now_iso()])
            conn.execute("DELETE FROM audit_log WHERE id < ?", [first_kept])
            audit.record(conn, "retention", "audit_pruned", detail={
                "entries": count, "older_than": older_than, "first_kept_id": first_kept})
    return AuditPrune(count, older_than, first_kept, False)


def start_daily(data_dir: Path, keep_days: int) -> threading.Event:
    """Prune now and then once a day on a thread of its own; set the event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            conn = connect(data_dir)
            try:
                logger.info("%s", prune(conn, keep_days).summary())
            except Exception:
                logger.exception("pruning the audit log failed; tried again tomorrow")
            finally:
                conn.close()
            if stop.wait(DAY_S):
                return

    threading.Thread(target=loop, name="callqa-audit-prune", daemon=True).start()
    return stop
