"""Voice timelines the site derived from recordings, for calls stored without them.

Calls scored before the daemon kept timelines (`core.storage.timelines`) have none in
``callqa.db``; a dry run derives them once from the recording (`core.scoring.rescore`) and
keeps them here, in ``DATA_DIR/admin_cache/timelines.db`` (same columns as the daemon's
``leg_timelines``), since the site never writes the calls database. A cache: deleting the
file only costs deriving again. Each dry-run thread opens its own `TimelineCache`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from core.calls import CallEvidence
from core.storage import timelines
from core.storage.timelines import CallTimelines

CACHE_DIR = "admin_cache"
CACHE_FILE = "timelines.db"
BUSY_TIMEOUT_S = 10.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS leg_timelines (
    call_id TEXT NOT NULL,
    speaker TEXT NOT NULL,
    duration_s REAL NOT NULL,
    call_duration_s REAL NOT NULL,
    language TEXT NOT NULL,
    voiced BLOB NOT NULL,
    frame_s REAL,
    levels BLOB,
    pitch BLOB,
    PRIMARY KEY (call_id, speaker)
)
"""


def cache_path(data_dir: Path) -> Path:
    return Path(data_dir) / CACHE_DIR / CACHE_FILE


class TimelineCache:
    """The cache file, opened for one thread."""

    def __init__(self, data_dir: Path) -> None:
        path = cache_path(data_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self.conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute(SCHEMA)

    def get_many(self, call_ids: Sequence[str]) -> dict[str, CallTimelines]:
        return timelines.load(self.conn, call_ids)

    def put(self, call_id: str, tl: CallTimelines) -> None:
        evidence = CallEvidence(duration_s=tl.duration_s, language=tl.language, utterances=[],
                                activity=tl.activity)
        rows = timelines.timeline_rows(call_id, evidence)
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute("DELETE FROM leg_timelines WHERE call_id = ?", [call_id])
            timelines.write_rows(self.conn, rows)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> TimelineCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
