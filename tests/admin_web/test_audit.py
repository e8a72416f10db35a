"""The audit log: append-only, hash-chained, tampering detected."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from admin_web import audit, site_db


@pytest.fixture
def conn(tmp_path: Path):
    site_db.prepare(tmp_path)
    c = site_db.connect(tmp_path)
    yield c
    c.close()


def _fill(conn: sqlite3.Connection) -> None:
    audit.record(conn, "alice", "login")
    audit.record(conn, "alice", "play", "20251201T000000-000001")
    audit.record(conn, "ivan", "review_verdict", "20251201T000000-000001",
                 {"seq": 2, "verdict": "rejected"})
    audit.record(conn, "alice", "export_calls_csv", detail={"rows": 12})


def _attacker(path: Path) -> sqlite3.Connection:
    """Someone with the file in hand: drops the guard triggers and edits rows."""
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("DROP TRIGGER audit_log_no_update")
    c.execute("DROP TRIGGER audit_log_no_delete")
    return c


def test_chain_is_valid(conn: sqlite3.Connection) -> None:
    _fill(conn)
    check = audit.verify(conn)
    assert check.valid and check.entries == 4


def test_updates_and_deletes_are_refused(conn: sqlite3.Connection) -> None:
    _fill(conn)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_log SET username = 'mallory' WHERE id = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_log")


@pytest.mark.parametrize("tamper, broken_at", [
    ("UPDATE audit_log SET username = 'mallory' WHERE id = 2", 2),
    ("UPDATE audit_log SET detail = '{\"rows\": 1}' WHERE id = 4", 4),
    ("DELETE FROM audit_log WHERE id = 3", 3),
    ("DELETE FROM audit_log WHERE id = 4", 4),
])
def test_tampering_is_detected(conn: sqlite3.Connection, tmp_path: Path, tamper: str,
                               broken_at: int) -> None:
    _fill(conn)
    evil = _attacker(site_db.site_db_path(tmp_path))
    evil.execute(tamper)
    evil.close()
    check = audit.verify(conn)
    assert not check.valid
    assert check.broken_at == broken_at
    assert check.reason


def test_rehashed_edit_breaks_the_next_link(conn: sqlite3.Connection, tmp_path: Path) -> None:
    _fill(conn)
    evil = _attacker(site_db.site_db_path(tmp_path))
    row = evil.execute("SELECT id, at, action, call_id, detail, prev_hash FROM audit_log"
                       " WHERE id = 2").fetchone()
    forged = audit.entry_hash(row[5], row[0], row[1], "mallory", row[2], row[3], row[4])
    evil.execute("UPDATE audit_log SET username = 'mallory', hash = ? WHERE id = 2", [forged])
    evil.close()
    check = audit.verify(conn)
    assert not check.valid and check.broken_at == 3
