"""Transcript search: filters, the count and the page are applied together, in SQL.

Before, `search_utterances` took the newest N hits and the gRPC API filtered those by agent
and speaker afterwards: an agent whose hits all came after N hits of other agents got none.
Here agent A99 has one recent call with more hits than the API's cap (1000) and agent A01
older calls with 30 hits; A01's search must find all 30, in pages, with the right total.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from core.api.service import MAX_LIST
from core.calls import CallResult, Finding, Speaker, Utterance
from core.storage import repository as repo
from core.storage import search
from core.storage.db import open_db
from proto import callqa_pb2 as pb
from tests.core.serve_harness import Daemon

NOISY_HITS = MAX_LIST + 20
QUIET_CALLS = 10
QUIET_HITS_PER_CALL = 3


def _store(db, call_id: str, started: str, agent: str, team: str, texts: list[str],
           items: tuple[str, ...] = ()) -> None:
    speakers: tuple[Speaker, ...] = ("agent", "customer")
    transcript = [Utterance(speaker=speakers[i % 2], start=2.0 * i, end=2.0 * i + 1.5, text=t)
                  for i, t in enumerate(texts)]
    findings = [Finding(item_id=item, kind="phrase", speaker="agent", start=0.0, end=1.0,
                        evidence="x", severity="B", deduct=5.0) for item in items]
    result = CallResult(rubric_id="default-zh", rubric_version=1, score=90.0, passed=True,
                        fatal=False, findings=findings, transcript=transcript, metrics={})
    record = repo.CallRecord(id=call_id, source="file", recording_path=f"/r/{call_id}.wav",
                             duration_s=2.0 * len(texts), started_at=started, agent_id=agent,
                             team_id=team, language="zh")
    repo.save_scored_call(db, record, result)


def _fill(data_dir: Path) -> None:
    db = open_db(data_dir / "callqa.db")
    try:
        repo.record_rubric_version(db, "default-zh", "id: default-zh\n")
        # The newest call: agent A99 of team T9, more hits than the API's cap.
        _store(db, "noisy", "2025-09-10T10:00:00+08:00", "A99", "T9",
               ["客户说要投诉"] * NOISY_HITS)
        # Older calls of agent A01 (team T1): 3 hits each, every other one on a customer line,
        # half of the calls with the 'greeting' item fired; the earliest stored in UTC.
        for i in range(QUIET_CALLS):
            started = (f"2025-09-0{1 + i % 9}T0{i % 10}:00:00+08:00" if i < 9
                       else "2025-08-31T15:30:00+00:00")
            _store(db, f"quiet{i}", started, "A01", "T1",
                   ["我要投诉", "投诉电话是多少", "请问 thank you for calling", "好的",
                    "还是要投诉"],
                   items=("greeting",) if i % 2 == 0 else ())
    finally:
        db.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    _fill(tmp_path)
    return tmp_path


def _conn(data_dir: Path):  # type: ignore[no-untyped-def]
    return open_db(data_dir / "callqa.db").conn


def test_filters_apply_before_the_limit(data_dir: Path) -> None:
    conn = _conn(data_dir)
    quiet = search.SearchFilters(agent_id="A01")
    found = search.search(conn, "投诉", quiet, limit=50)
    assert found.total == QUIET_CALLS * QUIET_HITS_PER_CALL
    assert len(found.hits) == found.total
    assert {h["agent_id"] for h in found.hits} == {"A01"}
    # The old entry point with a filter: never short of hits that exist.
    assert len(search.search_utterances(sqlite_db(data_dir), "投诉", limit=50,
                                        filters=quiet)) == 30
    everyone = search.search(conn, "投诉", limit=10)
    assert everyone.total == NOISY_HITS + 30 and len(everyone.hits) == 10


def sqlite_db(data_dir: Path):  # type: ignore[no-untyped-def]
    return open_db(data_dir / "callqa.db")


def test_pages_cover_every_hit_once(data_dir: Path) -> None:
    conn = _conn(data_dir)
    quiet = search.SearchFilters(team_id="T1")
    seen: list[tuple[str, int]] = []
    for offset in range(0, 40, 7):
        page = search.search(conn, "投诉", quiet, limit=7, offset=offset)
        assert page.total == 30
        seen += [(h["call_id"], h["seq"]) for h in page.hits]
    assert len(seen) == 30 and len(set(seen)) == 30
    # newest call first, in time order within a call
    assert seen[0][0] == "quiet8" and seen[-1][0] == "quiet9"


def test_speaker_item_and_time_filters(data_dir: Path) -> None:
    conn = _conn(data_dir)
    customer = search.search(conn, "投诉", search.SearchFilters(agent_id="A01",
                                                              speaker="customer"))
    assert customer.total == QUIET_CALLS
    assert {h["speaker"] for h in customer.hits} == {"customer"}
    agent = search.search(conn, "投诉", search.SearchFilters(agent_id="A01", speaker="agent"))
    assert agent.total == 2 * QUIET_CALLS
    greeting = search.search(conn, "投诉", search.SearchFilters(item_id="greeting"))
    assert greeting.total == 5 * QUIET_HITS_PER_CALL
    assert {h["call_id"] for h in greeting.hits} == {f"quiet{i}" for i in range(0, 10, 2)}
    # quiet9 started 2025-08-31 15:30 UTC = 23:30 in UTC+8: compared as an instant.
    day = search.search(conn, "投诉", search.SearchFilters(
        since="2025-08-31T16:00:00+00:00", until="2025-09-02T00:00:00+08:00"))
    assert {h["call_id"] for h in day.hits} == {"quiet0"}
    before = search.search(conn, "投诉", search.SearchFilters(until="2025-09-01T00:00:00+08:00"))
    assert {h["call_id"] for h in before.hits} == {"quiet9"}


def test_quoted_phrase_and_english(data_dir: Path) -> None:
    conn = _conn(data_dir)
    assert search.search(conn, '"thank you for calling"').total == QUIET_CALLS
    assert search.search(conn, '"calling for you"').total == 0
    assert search.search(conn, "calling for you").total == QUIET_CALLS  # words in any order
    assert search.search(conn, "“请问 thank”").total == QUIET_CALLS
    assert search.search(conn, '"请问 you"').total == 0
    hit = search.search(conn, '"thank you"', limit=1).hits[0]
    assert hit["snippet"] == "请问 [thank you] for calling"
    assert search.highlight_parts(hit["text"], '"thank you"') == [
        ("请问 ", False), ("thank you", True), (" for calling", False)]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory,
           base_model_dir: Path) -> Iterator[Daemon]:
    data = tmp_path_factory.mktemp("search-serve")
    _fill(data)
    d = Daemon(data, base_model_dir).start()
    yield d
    d.stop()


def _ts(text: str) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(dt.datetime.fromisoformat(text).astimezone(dt.UTC))
    return out


@pytest.mark.model
def test_grpc_search_filters_counts_and_pages(daemon: Daemon) -> None:
    stub = daemon.stub()
    first = stub.SearchTranscripts(pb.SearchRequest(query="投诉", agent_id="A01", limit=20),
                                   timeout=30)
    assert len(first.hits) == 20  # before the fix: 0, A99's hits filled the cap
    assert first.total == 30
    assert {h.agent_id for h in first.hits} == {"A01"}
    rest = stub.SearchTranscripts(pb.SearchRequest(query="投诉", agent_id="A01", limit=20,
                                                   offset=20), timeout=30)
    assert rest.total == 30 and len(rest.hits) == 10
    keys = {(h.call_id, h.start_s) for h in [*first.hits, *rest.hits]}
    assert len(keys) == 30
    agent_lines = stub.SearchTranscripts(pb.SearchRequest(
        query="投诉", team_id="T1", speaker=pb.SPEAKER_AGENT, item_id="greeting"), timeout=30)
    assert agent_lines.total == 5 * 2
    window = stub.SearchTranscripts(pb.SearchRequest(
        query="投诉", since=_ts("2025-08-31T16:00:00+00:00"),
        until=_ts("2025-09-02T00:00:00+08:00")), timeout=30)
    assert {h.call_id for h in window.hits} == {"quiet0"}
    everyone = stub.SearchTranscripts(pb.SearchRequest(query="投诉", limit=5000), timeout=30)
    assert everyone.total == NOISY_HITS + 30 and len(everyone.hits) == MAX_LIST
