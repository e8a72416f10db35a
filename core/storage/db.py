"""Opening the callqa database: one SQLite file in WAL mode, schema kept current.

`open_db` is the only way the rest of the product gets a connection. Every connection it
hands out has foreign keys enforced, a busy timeout (so that a reader or a second writer
waits for a lock instead of failing at once), WAL journaling (readers never block the
writer and the writer never blocks readers), and the schema migrated to the version this
code knows (see `core.storage.migrations`).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlite_utils import Database

from core.storage.migrations import migrate

BUSY_TIMEOUT_S = 10.0


def connect(path: Path | str, *, busy_timeout_s: float = BUSY_TIMEOUT_S,
            check_same_thread: bool = True) -> Database:
    """A configured connection to the database at `path`, without running migrations."""
    target = Path(path)
    if str(path) != ":memory:":
        target.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        str(target) if str(path) != ":memory:" else ":memory:",
        timeout=busy_timeout_s,
        check_same_thread=check_same_thread,
    )
    db = Database(conn)
    db.execute("PRAGMA foreign_keys = ON")
    db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    if str(path) != ":memory:":
        _enable_wal(db, busy_timeout_s)
    # WAL makes NORMAL durable against application crashes; only a power loss can drop
    # the last transactions, never corrupt the file.
    db.execute("PRAGMA synchronous = NORMAL")
    return db


def _enable_wal(db: Database, busy_timeout_s: float) -> None:
    """Switch to WAL, retrying while another connection holds the lock.

    Changing the journal mode needs an exclusive lock, and SQLite reports a conflict there
    at once instead of calling the busy handler, so several processes opening a new file at
    the same moment would otherwise fail with "database is locked".
    """
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            if db.journal_mode != "wal":
                db.enable_wal()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def open_db(path: Path | str, *, busy_timeout_s: float = BUSY_TIMEOUT_S,
            check_same_thread: bool = True) -> Database:
    """Open (creating it and its folder when missing) the database at `path`.

    Applies whatever migrations the file lacks; refuses, with
    `core.storage.migrations.SchemaTooNewError`, a file written by a newer callqa.
    """
    db = connect(path, busy_timeout_s=busy_timeout_s, check_same_thread=check_same_thread)
    try:
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db
