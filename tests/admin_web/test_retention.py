"""Retention and the admin web: reviews hold their calls, the audit log is pruned past its
floor and still verifies."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from admin_web import audit, audit_prune, site_db
from core import clock
from core.cli import main
from core.storage.db import open_db
from core.storage.holds import Holds
from core.storage.retention import Pass, Policy
from tests.admin_web.conftest import StoredCall
from tests.admin_web.review_util import Panel, db_rows, state

ClientAs = Callable[[str], FlaskClient]
START = dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def moving_clock() -> Iterator[list[dt.datetime]]:
    """The clock reads the list's one element; a test moves it."""
    now = [START]
    clock.set_now(lambda: now[0])
    yield now
    clock.reset()


def _held(data_dir: Path) -> dict[str, str]:
    holds = Holds(data_dir)
    try:
        return holds.held()
    finally:
        holds.close()


def test_review_and_appeal_hold_a_call_until_final_and_retention_honours_it(
        client_as: ClientAs, data_dir: Path, calls: list[StoredCall]) -> None:
    fatal, failed, _flagged, _clean = calls
    assert _held(data_dir) == {}
    inspector = Panel(client_as("inspector"), fatal.id)
    seq = db_rows(data_dir, "SELECT seq FROM cq.findings WHERE call_id = ?", [fatal.id])[0]
    assert inspector.verdict(seq["seq"], "confirmed").status_code == 302
    assert _held(data_dir) == {fatal.id: "in_review"}
    assert inspector.submit().status_code == 302
    assert _held(data_dir) == {fatal.id: "reviewed"}
    assert Panel(client_as("supervisor"), fatal.id).appeal("不同意").status_code == 302
    assert _held(data_dir) == {fatal.id: "appealed"}
    # a second call only starts its review
    assert Panel(client_as("inspector2"), failed.id).comment("看一下").status_code == 302
    assert _held(data_dir) == {fatal.id: "appealed", failed.id: "in_review"}

    # two years on, every call is due: the held ones stay, the others go
    policy = Policy(recordings_days=30, transcripts_days=30, scores_days=365)
    later = dt.datetime(2027, 10, 1, tzinfo=dt.UTC)
    db = open_db(data_dir / "callqa.db")
    holds = Holds(data_dir)
    try:
        report = Pass(db, data_dir, policy, holds).run(later)
        assert report.held == {fatal.id, failed.id} and report.counts["calls"] == 2
        kept = {r[0] for r in db.execute("SELECT id FROM calls").fetchall()}
        assert kept == {fatal.id, failed.id}
        # the appeal is decided: the call is final and no longer held
        assert Panel(client_as("inspector2"), fatal.id).decide("upheld").status_code == 302
        assert state(data_dir, fatal.id) == "final"
        assert _held(data_dir) == {failed.id: "in_review"}
        report = Pass(db, data_dir, policy, holds).run(later)
        assert report.counts["calls"] == 1 and report.held == {failed.id}
        assert {r[0] for r in db.execute("SELECT id FROM calls").fetchall()} == {failed.id}
    finally:
        holds.close()
        db.close()


def _entries_over(conn: sqlite3.Connection, now: list[dt.datetime]) -> None:
    """One entry a month for a year (ids 1..12), from START."""
    for month in range(12):
        now[0] = START + dt.timedelta(days=30 * month)
        audit.record(conn, "alice", "play", f"c{month}")


def test_audit_pruning_keeps_the_floor_and_the_chain(tmp_path: Path,
                                                    moving_clock: list[dt.datetime]) -> None:
    site_db.prepare(tmp_path)
    conn = site_db.connect(tmp_path)
    _entries_over(conn, moving_clock)  # the last at START + 330 days
    moving_clock[0] = START + dt.timedelta(days=400)
    with pytest.raises(ValueError, match="at least 180 days"):
        audit_prune.prune(conn, 90)
    dry = audit_prune.prune(conn, 180, dry_run=True)
    assert dry.entries == 8 and audit.verify(conn).entries == 12  # older than day 220
    done = audit_prune.prune(conn, 180)
    assert (done.entries, done.first_kept_id) == (8, 9)
    ids = [r[0] for r in conn.execute("SELECT id FROM audit_log ORDER BY id")]
    assert ids == [9, 10, 11, 12, 13]  # 13: the pruning itself
    ages = [START + dt.timedelta(days=400) - dt.datetime.fromisoformat(r[0])
            for r in conn.execute("SELECT at FROM audit_log WHERE id < 13")]
    assert min(ages) > dt.timedelta(0) and max(ages) < dt.timedelta(days=180)
    check = audit.verify(conn)
    assert check.valid and (check.entries, check.first_kept_id) == (5, 9)
    # the kept entries are still append-only; only what lies behind the anchor could go
    with pytest.raises(sqlite3.DatabaseError, match="append-only"), site_db.write(conn):
        conn.execute("DELETE FROM audit_log WHERE id = 9")
    # the chain goes on, and a later prune of everything still leaves it verifiable
    audit.record(conn, "alice", "login")
    moving_clock[0] = START + dt.timedelta(days=1000)
    assert audit_prune.prune(conn, 180).entries == 6
    audit.record(conn, "alice", "logout")
    check = audit.verify(conn)
    assert check.valid and check.entries == 2 and check.first_kept_id == 15
    # an entry altered behind the guard is still caught
    attacker = sqlite3.connect(tmp_path / "admin.db", isolation_level=None)
    attacker.execute("DROP TRIGGER audit_log_no_update")
    attacker.execute("UPDATE audit_log SET username = 'mallory' WHERE id = 16")
    attacker.close()
    assert audit.verify(conn).broken_at == 16
    conn.close()


def test_the_audit_page_says_where_the_log_was_pruned(
        client_as: ClientAs, data_dir: Path, moving_clock: list[dt.datetime]) -> None:
    conn = site_db.connect(data_dir)
    _entries_over(conn, moving_clock)
    moving_clock[0] = START + dt.timedelta(days=400)
    first_kept = audit_prune.prune(conn, 180).first_kept_id
    conn.close()
    page = client_as("admin").get("/audit").get_data(as_text=True)
    assert 'id="audit-pruned"' in page and f'data-first-kept="{first_kept}"' in page
    assert 'data-valid="1"' in page


def test_the_commands_dry_run_and_refuse_a_short_audit_floor(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "callqa.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nretention_recordings_days = 30\n'
                      "retention_audit_days = 365\n")
    assert main(["--config", str(config), "retention", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "retention_recordings_days = 30" in out and "would delete 0 calls" in out
    assert main(["--config", str(config), "admin", "prune-audit", "--dry-run"]) == 0
    assert "would prune 0 entries" in capsys.readouterr().out
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nretention_audit_days = 90\n')
    assert main(["--config", str(config), "retention", "--dry-run"]) == 2
    assert "at least 180 days" in capsys.readouterr().err


def test_the_call_page_says_what_retention_deleted(
        client_as: ClientAs, data_dir: Path, calls: list[StoredCall]) -> None:
    call = calls[0]
    client = client_as("admin")
    page = client.get(f"/calls/{call.id}").get_data(as_text=True)
    words = db_rows(data_dir, "SELECT text FROM cq.utterances WHERE call_id = ? AND text <> ''",
                    [call.id])[0]["text"]
    assert words in page and 'id="transcript-deleted"' not in page
    db = open_db(data_dir / "callqa.db")
    holds = Holds(data_dir)
    try:
        Pass(db, data_dir, Policy(recordings_days=30, transcripts_days=30), holds).run(
            dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    finally:
        holds.close()
        db.close()
    page = client.get(f"/calls/{call.id}").get_data(as_text=True)
    assert 'data-retention="recording"' in page and "2026-03-01" in page
    assert 'id="transcript-deleted"' in page and words not in page
