"""Storage: migrations, calls round trip, atomic writes, rubric versions, search, writer."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from core.calls import CallResult, Finding, Speaker, Utterance
from core.storage import repository as repo
from core.storage import search
from core.storage.db import open_db
from core.storage.migrations import (
    MIGRATIONS,
    Migration,
    SchemaTooNewError,
    applied_versions,
    latest_version,
    migrate,
)
from core.storage.writer import StorageWriter

TABLES = {"calls", "legs", "utterances", "findings", "scores", "rubric_versions", "agents",
          "teams", "schema_migrations"}


def make_result(rubric_version: int | None = 1, *, texts: tuple[str, ...] = (),
                detail: dict | None = None) -> CallResult:
    texts = texts or ("您好，这里是客服中心", "我要投诉你们的服务", "Please hold for my MANAGER")
    speakers: tuple[Speaker, ...] = ("agent", "customer", "agent")
    transcript = [
        Utterance(speaker=speakers[i % 3], start=2.0 * i + 0.5, end=2.0 * i + 2.0, text=t,
                  level_db=-20.0 - i, voiced_s=1.2, pitch_hz=180.0)
        for i, t in enumerate(texts)
    ]
    findings = [
        Finding(item_id="no_greeting", kind="phrase", speaker="agent", start=4.5, end=6.0,
                evidence="Please hold", severity="B", deduct=5.0, name="Greeting",
                category="service", detail=detail or {}),
        Finding(item_id="silence", kind="silence", speaker="any", start=0.5, end=2.0,
                evidence="4.1 s silence", severity="C", deduct=2.0, alert=True),
    ]
    return CallResult(
        rubric_id="default-zh", rubric_version=rubric_version, score=93.0, passed=True,
        fatal=False, findings=findings, transcript=transcript,
        metrics={"rate_unit": "chars", "talk_time_s": {"agent": 3.0, "customer": 1.5},
                 "median_level_db": {"agent": None, "customer": None}},
        category_scores={"service": 45.0}, scoring={"deducted": 7.0},
    )


def make_record(call_id: str, started: str = "2026-11-22T10:00:00+00:00", *,
                agent: str | None = "A01", team: str | None = "T1", **kw) -> repo.CallRecord:
    return repo.CallRecord(
        id=call_id, source="file", recording_path=f"/data/{call_id}.wav", duration_s=12.5,
        started_at=started, agent_id=agent, team_id=team, language="zh",
        meta={"original_file": "x.wav", "channels": 2}, **kw,
    )


@pytest.fixture
def db(tmp_path: Path):
    d = open_db(tmp_path / "sub" / "callqa.db")
    repo.record_rubric_version(d, "default-zh", "id: default-zh\n")
    yield d
    d.close()


def must(row: dict[str, Any] | None) -> dict[str, Any]:
    assert row is not None
    return row


def counts(d) -> dict[str, int]:
    return {t: d.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("calls", "legs", "utterances", "findings", "scores", "agents", "teams",
                      "utterances_fts")}


# ---------------------------------------------------------------- database, migrations


def test_migrations_from_empty_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "callqa.db"
    d = open_db(path)
    assert path.is_file()
    assert set(d.table_names()) >= TABLES
    assert applied_versions(d) == {m.version for m in MIGRATIONS}
    assert d.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert d.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert d.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    d.close()


def test_reopen_is_idempotent_and_applies_only_missing(tmp_path: Path) -> None:
    path = tmp_path / "callqa.db"
    d = open_db(path)
    repo.record_rubric_version(d, "r", "a")
    d.close()
    d = open_db(path)
    assert d.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    assert must(repo.get_rubric_version(d, "r"))["yaml"] == "a"
    assert migrate(d) == []

    def add_column(db) -> None:
        db.execute("ALTER TABLE teams ADD COLUMN note TEXT")

    extra = Migration(latest_version() + 1, "extra column", add_column)
    assert migrate(d, (*MIGRATIONS, extra)) == [extra.version]
    assert migrate(d, (*MIGRATIONS, extra)) == []
    assert "note" in d["teams"].columns_dict
    d.close()


def test_concurrent_first_opens(tmp_path: Path) -> None:
    path = tmp_path / "callqa.db"
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def opener() -> None:
        start.wait()
        try:
            open_db(path).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    d = open_db(path)
    assert d.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    d.close()


def test_failed_migration_leaves_nothing(tmp_path: Path) -> None:
    d = open_db(tmp_path / "callqa.db")

    def broken(db) -> None:
        db.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        migrate(d, (*MIGRATIONS, Migration(latest_version() + 1, "broken", broken)))
    assert "half_done" not in d.table_names()
    assert applied_versions(d) == {m.version for m in MIGRATIONS}
    d.close()


def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "callqa.db"
    d = open_db(path)
    d.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
              [latest_version() + 5, "from the future", "2030-01-01"])
    d.close()
    with pytest.raises(SchemaTooNewError, match="newer"):
        open_db(path)


# ---------------------------------------------------------------- ids and paths


def test_call_ids_are_unique_and_sorted() -> None:
    ids = [repo.new_call_id() for _ in range(500)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert len(ids[0]) == len("20261122T195501-3f9a1c")


def test_recording_path(tmp_path: Path) -> None:
    p = repo.recording_path(tmp_path, "20261122T195501-3f9a1c", "2026-11-02T23:55:01+08:00")
    assert p == tmp_path / "recordings" / "2026" / "11" / "02" / "20261122T195501-3f9a1c.wav"
    with pytest.raises(ValueError):
        repo.recording_path(tmp_path, "x", "yesterday")
    with pytest.raises(ValueError):
        repo.recording_path(tmp_path, "../x", "2026-11-02")


# ---------------------------------------------------------------- calls


def test_save_get_list_round_trip(db) -> None:
    repo.save_scored_call(db, make_record("c1", "2026-11-22T10:00:00+00:00"), make_result())
    failed = make_result()
    failed.passed, failed.score = False, 40.0
    repo.save_scored_call(db, make_record("c2", "2026-11-22T11:00:00+00:00", agent="A02",
                                          team="T2", caller="1001", callee="2002"), failed)

    call = repo.get_call(db, "c1")
    assert call is not None
    assert call["agent_id"] == "A01" and call["team_id"] == "T1"
    assert call["score"] == 93.0 and call["passed"] is True and call["fatal"] is False
    assert call["rubric_id"] == "default-zh" and call["rubric_version"] == 1
    assert call["recording_path"] == "/data/c1.wav" and call["status"] == "scored"
    assert call["meta"] == {"original_file": "x.wav", "channels": 2}
    assert call["scoring"] == {"deducted": 7.0} and call["category_scores"] == {"service": 45.0}
    assert [u["text"] for u in call["utterances"]][1] == "我要投诉你们的服务"
    first = call["utterances"][0]
    assert first["speaker"] == "agent" and first["start_s"] == 0.5 and first["end_s"] == 2.0
    assert first["level_db"] == -20.0 and first["pitch_hz"] == 180.0
    assert first["rate_per_min"] == pytest.approx(9 * 60 / 1.2)  # 9 Chinese characters
    # findings come back in time order, whatever order they were found in
    assert [f["item_id"] for f in call["findings"]] == ["silence", "no_greeting"]
    silence, greeting = call["findings"]
    assert silence["alert"] is True and silence["severity"] == "C" and silence["deduct"] == 2
    assert greeting["category"] == "service" and greeting["evidence"] == "Please hold"
    assert greeting["start_s"] == 4.5 and greeting["end_s"] == 6.0
    assert {leg["speaker"]: leg["talk_time_s"] for leg in call["legs"]} == {
        "agent": 3.0, "customer": 1.5}
    assert repo.get_call(db, "nope") is None

    c2 = repo.get_call(db, "c2")
    assert c2 is not None and c2["caller"] == "1001" and c2["callee"] == "2002"

    rows = repo.list_calls(db)
    assert [r["id"] for r in rows] == ["c2", "c1"]  # newest first
    assert rows[0]["passed"] is False and rows[1]["score"] == 93.0
    assert {"id", "started_at", "agent_id", "team_id", "duration_s", "score", "passed",
            "rubric_id", "status"} <= set(rows[0])
    assert [r["id"] for r in repo.list_calls(db, agent="A01")] == ["c1"]
    assert [r["id"] for r in repo.list_calls(db, team="T2")] == ["c2"]
    assert [r["id"] for r in repo.list_calls(db, passed=True)] == ["c1"]
    assert [r["id"] for r in repo.list_calls(db, passed=False)] == ["c2"]
    assert len(repo.list_calls(db, limit=1)) == 1
    assert db.execute("SELECT count(*) FROM agents").fetchone()[0] == 2


def test_live_call_created_then_scored(db) -> None:
    record = make_record("live1", status="live", agent="A09", team=None)
    repo.create_call(db, record)
    assert must(repo.get_call(db, "live1"))["status"] == "live"
    assert repo.list_calls(db)[0]["score"] is None
    with pytest.raises(ValueError):
        repo.create_call(db, record)
    repo.mark_status(db, "live1", "scoring")
    assert must(repo.get_call(db, "live1"))["status"] == "scoring"
    with pytest.raises(ValueError):
        repo.mark_status(db, "missing", "scored")
    record.status = "scored"
    repo.save_scored_call(db, record, make_result())
    repo.save_scored_call(db, record, make_result())  # scoring again replaces, not adds
    call = must(repo.get_call(db, "live1"))
    assert call["status"] == "scored" and call["score"] == 93.0
    assert len(call["utterances"]) == 3 and len(call["findings"]) == 2
    assert len(search.search_utterances(db, "投诉")) == 1


def test_failure_midway_stores_nothing(db) -> None:
    before = counts(db)
    # The findings cannot be stored (their detail is not JSON) after the agent, the call,
    # its legs and utterances were written: all of it must be rolled back.
    bad = make_result(detail={"x": object()})
    with pytest.raises(TypeError):
        repo.save_scored_call(db, make_record("bad1"), bad)
    # A rubric version that was never recorded fails at the very last row.
    with pytest.raises(sqlite3.IntegrityError):
        repo.save_scored_call(db, make_record("bad2"), make_result(rubric_version=99))
    assert counts(db) == before
    assert repo.get_call(db, "bad1") is None and search.search_utterances(db, "投诉") == []
    # and the connection is still usable
    repo.save_scored_call(db, make_record("good"), make_result())
    assert repo.get_call(db, "good") is not None


def test_unknown_source_is_refused(db) -> None:
    record = make_record("s1")
    record.source = "fax"
    with pytest.raises(ValueError, match="source"):
        repo.save_scored_call(db, record, make_result())


# ---------------------------------------------------------------- rubric versions


def test_rubric_versioning_and_activation(db) -> None:
    assert repo.record_rubric_version(db, "qa", "v: 1\n") == 1
    assert repo.record_rubric_version(db, "qa", "v: 1\n") == 1  # same text, same version
    assert repo.record_rubric_version(db, "qa", "v: 2\n") == 2
    assert repo.record_rubric_version(db, "qa", "v: 1\n") == 3  # differs from the latest
    assert must(repo.get_rubric_version(db, "qa"))["version"] == 3  # nothing active: latest
    row = repo.get_rubric_version(db, "qa", 2)
    assert row is not None
    assert {"rubric_id", "version", "yaml", "active", "created_at"} <= set(row)
    assert row["yaml"] == "v: 2\n" and row["active"] is False
    assert repo.get_rubric_version(db, "qa", 7) is None
    assert repo.get_rubric_version(db, "other") is None

    repo.set_active(db, "qa", 2)
    assert must(repo.get_rubric_version(db, "qa"))["version"] == 2
    repo.set_active(db, "qa", 1)
    active = db.execute(
        "SELECT version FROM rubric_versions WHERE rubric_id = 'qa' AND active = 1").fetchall()
    assert active == [(1,)]
    with pytest.raises(ValueError):
        repo.set_active(db, "qa", 9)
    with pytest.raises(ValueError):
        repo.set_active(db, "nope", 1)
    assert must(repo.get_rubric_version(db, "qa"))["version"] == 1

    listed = {r["rubric_id"]: r for r in repo.list_rubrics(db)}
    assert set(listed) == {"qa", "default-zh"}
    assert listed["qa"]["version"] == 1 and listed["qa"]["active"] is True
    assert listed["qa"]["versions"] == 3 and listed["qa"]["created_at"]
    assert listed["default-zh"]["active"] is False and listed["default-zh"]["versions"] == 1


# ---------------------------------------------------------------- search


def test_search_chinese_two_characters_and_english(db) -> None:
    repo.save_scored_call(db, make_record("z1"), make_result(texts=(
        "您好，这里是客服中心", "我要投诉你们的服务", "Please hold for my MANAGER")))
    repo.save_scored_call(db, make_record("z2", "2026-11-23T09:00:00+00:00"), make_result(
        texts=("投资诉讼的问题", "I will file a complaint today", "退款已经处理")))

    hits = search.search_utterances(db, "投诉")
    assert [(h["call_id"], h["text"]) for h in hits] == [("z1", "我要投诉你们的服务")]
    hit = hits[0]
    assert hit["speaker"] == "customer" and hit["start_s"] == 2.5
    assert hit["snippet"] == "我要[投诉]你们的服务"

    assert [h["text"] for h in search.search_utterances(db, "投訴")] == ["我要投诉你们的服务"]
    assert [h["text"] for h in search.search_utterances(db, "投诉你们")] == ["我要投诉你们的服务"]
    assert [h["text"] for h in search.search_utterances(db, "务")] == ["我要投诉你们的服务"]
    assert [h["text"] for h in search.search_utterances(db, "投")] == [
        "投资诉讼的问题", "我要投诉你们的服务"]  # newest call first

    eng = search.search_utterances(db, "manager")
    assert [h["call_id"] for h in eng] == ["z1"]
    assert eng[0]["snippet"] == "Please hold for my [MANAGER]"
    assert [h["call_id"] for h in search.search_utterances(db, "COMPLAINT")] == ["z2"]
    assert [h["call_id"] for h in search.search_utterances(db, "complain*")] == ["z2"]

    # words are ANDed
    assert len(search.search_utterances(db, "投诉 服务")) == 1
    assert search.search_utterances(db, "投诉 退款") == []
    assert len(search.search_utterances(db, "hold manager")) == 1


def test_search_has_no_false_hits(db) -> None:
    repo.save_scored_call(db, make_record("n1"), make_result(texts=(
        "投资诉讼的问题", "诉投", "complaints about managers", "我要投 诉")))
    assert search.search_utterances(db, "投诉") == []  # characters apart or reversed
    assert search.search_utterances(db, "complaint") == []  # whole words only
    assert search.search_utterances(db, "manage") == []
    assert search.search_utterances(db, "") == []
    assert search.search_utterances(db, "  ，。 ") == []
    # query syntax is taken literally
    assert search.search_utterances(db, 'AND "OR NEAR(') == []


def test_deleting_a_call_unindexes_it(db) -> None:
    repo.save_scored_call(db, make_record("d1"), make_result())
    assert search.search_utterances(db, "投诉")
    db.execute("DELETE FROM calls WHERE id = 'd1'")
    assert search.search_utterances(db, "投诉") == []
    assert counts(db)["utterances"] == 0


def test_snippet_cuts_long_text() -> None:
    text = "好" * 300 + "投诉" + "好" * 300
    snippet = search.highlight(text, "投诉", max_chars=40)
    assert "[投诉]" in snippet and snippet.startswith("…") and snippet.endswith("…")
    assert len(snippet) < 50


# ---------------------------------------------------------------- writer thread


def test_writer_thread(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    callers: set[int] = set()

    def save(db, call_id: str) -> str:
        callers.add(threading.get_ident())
        if call_id == "boom":
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO teams (id, created_at) VALUES ('half', 'now')")
            raise RuntimeError("failed job")
        repo.save_scored_call(db, make_record(call_id), make_result(rubric_version=None))
        return call_id

    writer = StorageWriter(path)
    futures = [writer.submit(save, f"w{i}") for i in range(20)]
    bad = writer.submit(save, "boom")
    futures.append(writer.submit(save, "after"))
    writer.close()
    assert [f.result() for f in futures] == [f"w{i}" for i in range(20)] + ["after"]
    with pytest.raises(RuntimeError, match="failed job"):
        bad.result()
    assert len(callers) == 1 and threading.get_ident() not in callers
    with pytest.raises(RuntimeError):
        writer.submit(save, "late")

    d = open_db(path)
    assert len(repo.list_calls(d, limit=100)) == 21
    assert d.execute("SELECT count(*) FROM teams WHERE id = 'half'").fetchone()[0] == 0
    d.close()


def test_writer_reports_unopenable_database(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        StorageWriter(blocker / "sub" / "w.db")
