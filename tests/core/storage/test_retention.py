"""Retention on a real database and real files, with the clock set by the test."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from core import clock
from core.storage import search
from core.storage.db import open_db
from core.storage.holds import Holds, HoldsUnreadable
from core.storage.retention import Pass, Policy
from tests.core.storage.old_calls import NOW, make_holds, store_old_call

POLICY = Policy(recordings_days=30, transcripts_days=90, scores_days=365)
# id -> (age in days, word said in it)
CALLS = {"c-new": (10, "橙子"), "c-month": (40, "香蕉"), "c-quarter": (100, "苹果"),
         "c-old": (400, "西瓜"), "c-held": (400, "葡萄"), "c-live": (400, "菠萝")}


class Crash(Exception):
    pass


@pytest.fixture
def fixed_clock() -> Iterator[None]:
    clock.set_now(lambda: NOW)
    yield
    clock.reset()


@pytest.fixture
def box(tmp_path: Path, fixed_clock: None) -> Iterator[tuple[Database, Path, dict[str, Path]]]:
    db = open_db(tmp_path / "callqa.db")
    files = {}
    for call_id, (age, word) in CALLS.items():
        files[call_id] = store_old_call(db, tmp_path, call_id, age, word,
                                        status="live" if call_id == "c-live" else "scored")
    make_holds(tmp_path, {"c-held": "appealed"})
    yield db, tmp_path, files
    db.close()


def _call(db: Database, call_id: str) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM calls WHERE id = ?", [call_id]))
    return rows[0] if rows else None


def _found(db: Database, word: str) -> set[str]:
    return {h["call_id"] for h in search.search(db.conn, word, limit=50).hits}


def _consistent(db: Database) -> None:
    """No row names a missing file; the database is whole."""
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    for call_id, path in db.execute("SELECT id, recording_path FROM calls").fetchall():
        assert path is None or Path(path).exists(), call_id


def _run(db: Database, data_dir: Path, **kw: Any) -> Any:
    holds = Holds(data_dir)
    try:
        return Pass(db, data_dir, POLICY, holds, **kw).run()
    finally:
        holds.close()


def test_each_kind_goes_at_its_age_and_held_or_live_calls_stay(box) -> None:  # type: ignore[no-untyped-def]
    db, data_dir, files = box
    for word in ("橙子", "香蕉", "苹果", "西瓜"):
        assert _found(db, word)
    report = _run(db, data_dir)

    assert report.counts == {"calls": 1, "recordings": 2, "transcripts": 1}
    assert report.held == {"c-held"}
    assert (report.first_call_id, report.last_call_id) == ("c-month", "c-quarter")
    assert report.files_removed == 3
    # over a year: the whole call and its file
    assert _call(db, "c-old") is None and not files["c-old"].exists()
    assert db.execute("SELECT count(*) FROM utterances WHERE call_id = 'c-old'").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM scores WHERE call_id = 'c-old'").fetchone()[0] == 0
    # over 90 days: recording and words, the score and the finding stay
    quarter = _call(db, "c-quarter")
    assert quarter and quarter["recording_path"] is None and quarter["recording_deleted_at"]
    assert quarter["transcript_deleted_at"] and not files["c-quarter"].exists()
    texts = db.execute("SELECT text, search_text, checks, decoded_text FROM utterances"
                       " WHERE call_id = 'c-quarter'").fetchall()
    assert len(texts) == 3 and set(texts) == {("", "", "[]", None)}
    evidence, detail = db.execute(
        "SELECT evidence, detail FROM findings WHERE call_id = 'c-quarter'").fetchone()
    assert evidence == "" and "苹果" not in detail and '"phrase"' in detail
    assert db.execute("SELECT score FROM scores WHERE call_id = 'c-quarter'").fetchone()[0] == 95
    # over 30 days: the recording only
    month = _call(db, "c-month")
    assert month and month["recording_path"] is None and not files["c-month"].exists()
    assert month["transcript_deleted_at"] is None
    # full-text search no longer finds deleted words, still finds kept ones
    assert _found(db, "苹果") == set() and _found(db, "西瓜") == set()
    assert _found(db, "香蕉") == {"c-month"} and _found(db, "橙子") == {"c-new"}
    # under review or appeal, or still live: untouched
    for kept in ("c-new", "c-held", "c-live"):
        row = _call(db, kept)
        assert row and row["recording_path"] and files[kept].exists()
        assert row["transcript_deleted_at"] is None
    assert _found(db, "葡萄") == {"c-held"}
    _consistent(db)
    run = db.execute("SELECT calls, recordings, transcripts, files, held, finished_at, error"
                     " FROM retention_runs").fetchall()
    assert len(run) == 1 and run[0][:5] == (1, 2, 1, 3, 1) and run[0][5] and run[0][6] is None


def test_the_clock_moving_on_brings_more_calls_due(box) -> None:  # type: ignore[no-untyped-def]
    db, data_dir, files = box
    _run(db, data_dir)
    assert files["c-new"].exists()
    clock.set_now(lambda: NOW + dt.timedelta(days=25))  # c-new is now 35 days old
    report = _run(db, data_dir)
    assert report.counts == {"calls": 0, "recordings": 1, "transcripts": 0}
    assert not files["c-new"].exists() and _found(db, "橙子") == {"c-new"}


def test_a_dry_run_deletes_nothing_and_counts_what_a_pass_deletes(box) -> None:  # type: ignore[no-untyped-def]
    db, data_dir, files = box
    before = db.execute("SELECT * FROM calls ORDER BY id").fetchall()
    utterances = db.execute("SELECT * FROM utterances ORDER BY id").fetchall()
    dry = _run(db, data_dir, dry_run=True)
    assert db.execute("SELECT * FROM calls ORDER BY id").fetchall() == before
    assert db.execute("SELECT * FROM utterances ORDER BY id").fetchall() == utterances
    assert all(p.exists() for p in files.values())
    assert db.execute("SELECT count(*) FROM retention_runs").fetchone()[0] == 0
    assert _run(db, data_dir).counts == dry.counts == {"calls": 1, "recordings": 2,
                                                       "transcripts": 1}


def test_a_crash_between_batches_leaves_a_consistent_database(box) -> None:  # type: ignore[no-untyped-def]
    db, data_dir, files = box
    batches = []

    def crash_on_second(stage: str) -> None:
        if stage == "batch":
            batches.append(stage)
            if len(batches) == 2:
                raise Crash

    with pytest.raises(Crash):
        _run(db, data_dir, batch_calls=1, checkpoint=crash_on_second)
    _consistent(db)
    assert db.execute("SELECT count(*) FROM retention_files").fetchone()[0] == 0
    assert "Crash" in db.execute("SELECT error FROM retention_runs").fetchone()[0]
    # the next pass finishes the work; the total is what one pass would have done
    _run(db, data_dir)
    _consistent(db)
    assert sorted(p.name for p in files.values() if p.exists()) == [
        "c-held.wav", "c-live.wav", "c-new.wav"]


def test_a_crash_after_a_commit_before_the_unlink_is_finished_next_time(box) -> None:  # type: ignore[no-untyped-def]
    db, data_dir, files = box

    def crash(stage: str) -> None:
        if stage == "committed":
            raise Crash

    with pytest.raises(Crash):
        _run(db, data_dir, checkpoint=crash)
    # the whole old call was deleted; its file is still on disk, recorded as to be removed
    assert _call(db, "c-old") is None and files["c-old"].exists()
    assert db.execute("SELECT path FROM retention_files").fetchall() == [(str(files["c-old"]),)]
    _consistent(db)
    report = _run(db, data_dir)
    assert not files["c-old"].exists()
    assert db.execute("SELECT count(*) FROM retention_files").fetchone()[0] == 0
    assert report.files_removed == 3  # c-old's, then c-month's and c-quarter's


def test_unreadable_holds_stop_the_pass_before_it_deletes(tmp_path: Path,
                                                         fixed_clock: None) -> None:
    db = open_db(tmp_path / "callqa.db")
    path = store_old_call(db, tmp_path, "c-old", 400, "西瓜")
    (tmp_path / "admin.db").write_bytes(b"")  # a reviews database without holds
    with pytest.raises(HoldsUnreadable, match="retention_holds"):
        _run(db, tmp_path)
    assert _call(db, "c-old") is not None and path.exists()
    db.close()


KILLED_PASS = """
import os, signal, sys
from pathlib import Path
from core import clock
from core.storage.db import open_db
from core.storage.holds import Holds
from core.storage.retention import Pass, Policy
from tests.core.storage.old_calls import NOW
clock.set_now(lambda: NOW)
data_dir = Path(sys.argv[1])
seen = []
def kill(stage):
    seen.append(stage)
    if seen.count("committed") == 2:  # the second batch's rows are written, its file is not gone
        os.kill(os.getpid(), signal.SIGKILL)
Pass(open_db(data_dir / "callqa.db"), data_dir, Policy(30, 90, 365), Holds(data_dir),
     batch_calls=1, checkpoint=kill).run()
"""


def test_a_pass_killed_mid_way_is_consistent_and_finished_by_the_next(box) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    db, data_dir, files = box
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", KILLED_PASS, str(data_dir)], cwd=root,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == -9, done.stderr
    _consistent(db)
    # the first batch (the whole old call) is done; the second (the oldest recording due,
    # c-quarter's) is committed with its file recorded as to be removed; c-month untouched
    assert _call(db, "c-old") is None and not files["c-old"].exists()
    quarter = _call(db, "c-quarter")
    assert quarter and quarter["recording_path"] is None and files["c-quarter"].exists()
    assert db.execute("SELECT path FROM retention_files").fetchall() == [
        (str(files["c-quarter"]),)]
    assert files["c-month"].exists()
    assert db.execute("SELECT finished_at FROM retention_runs").fetchall() == [(None,)]
    report = _run(db, data_dir)
    assert report.counts == {"calls": 0, "recordings": 1, "transcripts": 1}
    assert not files["c-month"].exists() and not files["c-quarter"].exists()
    assert db.execute("SELECT count(*) FROM retention_files").fetchone()[0] == 0
    _consistent(db)
