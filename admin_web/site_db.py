"""The admin web's own database, with the calls database attached read-only.

The site keeps what people do (users, reviews, appeals, sampling plans, the audit log) in
its own SQLite file, `admin.db` beside `callqa.db`. The daemon and `callqa score` are the
only writers of `callqa.db`; the site opens it read-only and attaches it to its own
connection as schema ``cq``, so one query can join a call with its review. Two processes
therefore never write the same file, and neither can make the other fail with
"database is locked".

One connection per request (`flask.g`); writes go through `write()`, a ``BEGIN IMMEDIATE``
transaction, so that two requests of the site never interleave their writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from core.storage.db import open_db
from core.storage.holds import HOLDS, REVIEWS_DB
from core.storage.migrations import Migration, migrate

BUSY_TIMEOUT_S = 10.0
CALLS_SCHEMA = "cq"

SITE_V1 = (
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'inspector', 'supervisor', 'viewer')),
        team_id TEXT,
        language TEXT NOT NULL DEFAULT 'zh',
        recording_perms TEXT NOT NULL DEFAULT '',
        disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until TEXT,
        session_epoch INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
    # The review state of a call; a call without a row is 'scored' (not reviewed yet).
    """
    CREATE TABLE call_reviews (
        call_id TEXT PRIMARY KEY,
        state TEXT NOT NULL
            CHECK (state IN ('scored', 'in_review', 'reviewed', 'appealed', 'final')),
        reviewer TEXT,
        round INTEGER NOT NULL DEFAULT 0,
        machine_score REAL,
        reviewed_score REAL,
        reviewed_passed INTEGER,
        comment TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX call_reviews_state ON call_reviews (state)",
    # The reviewer's verdict on each machine finding (by its position in the call).
    """
    CREATE TABLE finding_verdicts (
        call_id TEXT NOT NULL,
        finding_seq INTEGER NOT NULL,
        item_id TEXT NOT NULL,
        verdict TEXT NOT NULL CHECK (verdict IN ('confirmed', 'rejected')),
        comment TEXT NOT NULL DEFAULT '',
        username TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (call_id, finding_seq)
    )
    """,
    "CREATE INDEX finding_verdicts_item ON finding_verdicts (item_id, verdict)",
    # Findings the machine missed, added by a reviewer.
    """
    CREATE TABLE added_findings (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL,
        item_id TEXT NOT NULL,
        start_s REAL NOT NULL,
        end_s REAL NOT NULL,
        comment TEXT NOT NULL DEFAULT '',
        username TEXT NOT NULL,
        at TEXT NOT NULL,
        removed INTEGER NOT NULL DEFAULT 0 CHECK (removed IN (0, 1))
    )
    """,
    "CREATE INDEX added_findings_call ON added_findings (call_id)",
    "CREATE INDEX added_findings_item ON added_findings (item_id)",
    # Every change of a review, appeal or decision: who, when, the score before and after.
    """
    CREATE TABLE review_history (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL,
        round INTEGER NOT NULL,
        action TEXT NOT NULL,
        username TEXT NOT NULL,
        at TEXT NOT NULL,
        state_before TEXT,
        state_after TEXT,
        score_before REAL,
        score_after REAL,
        detail TEXT NOT NULL DEFAULT '{}'
    )
    """,
    "CREATE INDEX review_history_call ON review_history (call_id, id)",
    """
    CREATE TABLE appeals (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL,
        round INTEGER NOT NULL,
        appealed_by TEXT NOT NULL,
        reason TEXT NOT NULL,
        appealed_at TEXT NOT NULL,
        decided_by TEXT,
        decision TEXT CHECK (decision IN ('upheld', 'changed')),
        decision_comment TEXT NOT NULL DEFAULT '',
        decided_at TEXT,
        score_before REAL,
        score_after REAL
    )
    """,
    "CREATE INDEX appeals_call ON appeals (call_id)",
    """
    CREATE TABLE sampling_plans (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        filter TEXT NOT NULL DEFAULT '{}',
        mode TEXT NOT NULL CHECK (mode IN ('percent', 'count')),
        amount REAL NOT NULL,
        passed_share REAL NOT NULL,
        quota_per_inspector INTEGER,
        summary TEXT NOT NULL DEFAULT '{}'
    )
    """,
    # Calls put in front of inspectors by a sampling plan (machine-flagged calls are
    # in the queue by their own state and need no row here).
    """
    CREATE TABLE review_queue (
        call_id TEXT PRIMARY KEY,
        plan_id INTEGER REFERENCES sampling_plans(id),
        reason TEXT NOT NULL,
        assigned_to TEXT,
        added_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX review_queue_assigned ON review_queue (assigned_to)",
    # Append-only: each entry carries the hash of the one before it (admin_web.audit).
    """
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        username TEXT NOT NULL,
        action TEXT NOT NULL,
        call_id TEXT,
        detail TEXT NOT NULL DEFAULT '{}',
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )
    """,
    "CREATE INDEX audit_log_call ON audit_log (call_id)",
    """
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN
        SELECT RAISE(ABORT, 'the audit log is append-only');
    END
    """,
    """
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN
        SELECT RAISE(ABORT, 'the audit log is append-only');
    END
    """,
)


# Version 2: dry runs (试运行) of a draft rubric over stored calls (`admin_web.dryrun_engine`):
# the run with its progress (the page polls it) and, per call, the score before and after
# and the findings the draft adds or removes.
SITE_V2_DRY_RUNS = (
    """
    CREATE TABLE dry_runs (
        id INTEGER PRIMARY KEY,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        rubric_id TEXT NOT NULL,
        rubric_version INTEGER,
        rubric_yaml TEXT NOT NULL,
        selection TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL
            CHECK (state IN ('queued', 'running', 'done', 'cancelled', 'failed')),
        total INTEGER NOT NULL DEFAULT 0,
        done INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
        heartbeat_at TEXT,
        finished_at TEXT,
        elapsed_s REAL,
        error TEXT,
        summary TEXT NOT NULL DEFAULT '{}'
    )
    """,
    """
    CREATE TABLE dry_run_calls (
        run_id INTEGER NOT NULL REFERENCES dry_runs(id) ON DELETE CASCADE,
        call_id TEXT NOT NULL,
        team_id TEXT,
        agent_id TEXT,
        started_at TEXT,
        score_before REAL,
        score_after REAL,
        passed_before INTEGER,
        passed_after INTEGER,
        fatal_before INTEGER,
        fatal_after INTEGER,
        changed INTEGER NOT NULL DEFAULT 0 CHECK (changed IN (0, 1)),
        added TEXT NOT NULL DEFAULT '[]',
        removed TEXT NOT NULL DEFAULT '[]',
        timeline TEXT NOT NULL DEFAULT 'stored',
        error TEXT,
        PRIMARY KEY (run_id, call_id)
    )
    """,
    "CREATE INDEX dry_run_calls_changed ON dry_run_calls (run_id, changed)",
)


# Version 3: retention. ``retention_holds`` is what the daemon's retention reads
# (`core.storage.holds`): every call whose review has started and is not final, as a view of
# the review states, so that a hold begins and ends in the very transaction that moves the
# review, whichever code path moves it. ``audit_anchors``: where the audit log was pruned
# (`admin_web.audit_prune`): the first entry kept and the hash it follows, so the chain stays
# verifiable. Anchors only move forward and are never changed; the audit log's delete
# trigger now lets through only entries before the latest anchor.
SITE_V3_RETENTION = (
    f"""
    CREATE VIEW {HOLDS} (call_id, reason) AS
        SELECT call_id, state FROM call_reviews
        WHERE state IN ('in_review', 'reviewed', 'appealed')
    """,
    """
    CREATE TABLE audit_anchors (
        id INTEGER PRIMARY KEY,
        first_kept_id INTEGER NOT NULL,
        prev_hash TEXT NOT NULL,
        pruned INTEGER NOT NULL,
        older_than TEXT NOT NULL,
        at TEXT NOT NULL
    )
    """,
    """
    CREATE TRIGGER audit_anchors_forward BEFORE INSERT ON audit_anchors
    WHEN new.first_kept_id <= COALESCE((SELECT MAX(first_kept_id) FROM audit_anchors), 0)
    BEGIN
        SELECT RAISE(ABORT, 'an audit anchor only moves forward');
    END
    """,
    """
    CREATE TRIGGER audit_anchors_no_update BEFORE UPDATE ON audit_anchors BEGIN
        SELECT RAISE(ABORT, 'audit anchors are append-only');
    END
    """,
    """
    CREATE TRIGGER audit_anchors_no_delete BEFORE DELETE ON audit_anchors BEGIN
        SELECT RAISE(ABORT, 'audit anchors are append-only');
    END
    """,
    "DROP TRIGGER audit_log_no_delete",
    """
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    WHEN old.id >= COALESCE((SELECT MAX(first_kept_id) FROM audit_anchors), 0)
    BEGIN
        SELECT RAISE(ABORT, 'the audit log is append-only');
    END
    """,
)


def _run(statements: tuple[str, ...]) -> Any:
    def apply(db: Database) -> None:
        for sql in statements:
            db.execute(sql)

    return apply


SITE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "users, reviews, appeals, sampling plans, review queue, audit log",
              _run(SITE_V1)),
    Migration(2, "dry runs of draft rubrics on stored calls", _run(SITE_V2_DRY_RUNS)),
    Migration(3, "retention: holds of calls under review, audit log anchors",
              _run(SITE_V3_RETENTION)),
)


def site_db_path(data_dir: Path) -> Path:
    return Path(data_dir) / REVIEWS_DB


def prepare(data_dir: Path) -> None:
    """Create or migrate both databases once, before the site serves requests.

    The calls database is opened read-write only here, to create or migrate it when the
    site starts before the daemon ever ran; afterwards the site only reads it.
    """
    open_db(Path(data_dir) / "callqa.db").close()
    db = Database(_connect_site(site_db_path(data_dir)))
    try:
        migrate(db, SITE_MIGRATIONS)
    finally:
        db.close()


def _connect_site(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, check_same_thread=False,
                           isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def connect(data_dir: Path) -> sqlite3.Connection:
    """The site database, read-write, with the calls database attached read-only as ``cq``.

    Rows come back as `sqlite3.Row`.
    """
    conn = _connect_site(site_db_path(data_dir))
    calls_uri = (Path(data_dir) / "callqa.db").resolve().as_uri() + "?mode=ro"
    conn.execute(f"ATTACH DATABASE ? AS {CALLS_SCHEMA}", [calls_uri])
    conn.row_factory = sqlite3.Row
    return conn


@contextmanager
def write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction on the site database (``BEGIN IMMEDIATE``), rolled back on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def rows(conn: sqlite3.Connection, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    """A query's rows as plain dicts."""
    return [dict(r) for r in conn.execute(sql, params)]


def one(conn: sqlite3.Connection, sql: str, params: Any = ()) -> dict[str, Any] | None:
    row = conn.execute(sql, params).fetchone()
    return None if row is None else dict(row)
