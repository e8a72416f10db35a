"""Transcript search in the admin web: words, phrases, filters, paging, scope, hit links.

Every stock call (conftest) has the customer line "我的快递太慢了，我要投诉。" at 2.2 s; the
tests add calls with transcripts of their own (no recording: the page does not play them).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient
from markupsafe import escape

from admin_web import search as search_page
from core.calls import CallResult, Speaker, Utterance
from core.storage import repository
from core.storage.db import open_db
from tests.admin_web.conftest import StoredCall

ClientAs = Callable[[str], FlaskClient]
HIT = re.compile(r'<li class="hit card" data-call-id="([^"]+)" data-start="([^"]+)">')


def store_transcript(data_dir: Path, lines: list[tuple[Speaker, str]], *, agent: str = "A09",
                     team: str = "T3", started: str = "2025-09-10T10:00:00+08:00",
                     call_id: str | None = None) -> str:
    """A scored call with these lines (2 s each), no findings, no recording."""
    db = open_db(data_dir / "callqa.db")
    try:
        call_id = call_id or repository.new_call_id()
        transcript = [Utterance(speaker=sp, start=2.0 * i + 0.5, end=2.0 * i + 2.0, text=t)
                      for i, (sp, t) in enumerate(lines)]
        result = CallResult(rubric_id="default-zh", rubric_version=None, score=100.0,
                            passed=True, fatal=False, findings=[], transcript=transcript,
                            metrics={})
        record = repository.CallRecord(id=call_id, source="file", recording_path=None,
                                       duration_s=2.0 * len(lines), started_at=started,
                                       agent_id=agent, team_id=team, language="zh")
        repository.save_scored_call(db, record, result)
    finally:
        db.close()
    return call_id


def hits(page: str) -> list[tuple[str, float]]:
    return [(c, float(s)) for c, s in HIT.findall(page)]


def count(page: str) -> int:
    match = re.search(r'id="search-count" data-total="(\d+)"', page)
    assert match, "no count on the page"
    return int(match.group(1))


def test_two_character_chinese_word(client_as: ClientAs, calls: list[StoredCall]) -> None:
    page = client_as("inspector").get("/search?q=投诉").get_data(as_text=True)
    assert count(page) == 4
    found = hits(page)
    assert sorted(c for c, _ in found) == sorted(c.id for c in calls)
    assert all(start == 2.2 for _, start in found)
    # the hit is marked in its line, with the lines before and after as context
    assert "我的快递太慢了，我要<mark>投诉</mark>。" in page
    assert "您好，很高兴为您服务。" in page and "这个我也不知道。" in page
    # the link opens the call at that moment
    for call in calls:
        assert f'href="/calls/{call.id}?t=2.2"' in page


def test_english_words_and_quoted_phrase(client_as: ClientAs, data_dir: Path,
                                         calls: list[StoredCall]) -> None:
    first = store_transcript(data_dir, [("agent", "Thank you for calling, how can I help?"),
                                        ("customer", "I want a refund")])
    second = store_transcript(data_dir, [("agent", "Calling you back, thank you"),
                                         ("customer", "refunds take long")],
                              started="2025-09-11T10:00:00+08:00")
    client = client_as("admin")
    words = client.get("/search?q=thank+calling").get_data(as_text=True)
    assert count(words) == 2 and {c for c, _ in hits(words)} == {first, second}
    phrase = client.get('/search?q="thank you for calling"').get_data(as_text=True)
    assert count(phrase) == 1 and hits(phrase) == [(first, 0.5)]
    assert "<mark>Thank you for calling</mark>, how can I help?" in phrase
    chinese_quotes = client.get("/search?q=“thank you for”").get_data(as_text=True)
    assert count(chinese_quotes) == 1
    refund = client.get("/search?q=refund").get_data(as_text=True)
    assert hits(refund) == [(first, 2.5)]  # a whole word: "refunds" is another word
    assert count(client.get("/search?q=refund*").get_data(as_text=True)) == 2


def test_count_is_right_across_pages(client_as: ClientAs, data_dir: Path,
                                     calls: list[StoredCall]) -> None:
    # 3 hits in each of 15 calls of one agent, newer than the stock calls
    for i in range(15):
        store_transcript(data_dir, [("customer", "我要投诉"), ("agent", "好的"),
                                    ("customer", "投诉电话"), ("customer", "再投诉一次")],
                         agent="A07", team="T1", started=f"2025-09-{10 + i:02d}T10:00:00+08:00")
    client = client_as("inspector")
    expected = 45 + 4
    pages = -(-expected // search_page.PAGE_SIZE)
    seen: list[tuple[str, float]] = []
    for n in range(1, pages + 1):
        page = client.get(f"/search?q=投诉&page={n}").get_data(as_text=True)
        assert count(page) == expected
        assert f"Page {n} of {pages}" in page
        seen += hits(page)
    assert len(seen) == expected and len(set(seen)) == expected
    # one agent's hits, after a full page of another's: none is lost
    a01 = client.get("/search?q=投诉&agent=A01").get_data(as_text=True)
    assert count(a01) == 1 and hits(a01) == [(calls[0].id, 2.2)]
    a07 = client.get("/search?q=投诉&agent=A07&page=3").get_data(as_text=True)
    assert count(a07) == 45 and len(hits(a07)) == 45 - 2 * search_page.PAGE_SIZE


def test_filters(client_as: ClientAs, data_dir: Path, calls: list[StoredCall]) -> None:
    client = client_as("admin")

    def total(query: str) -> int:
        return count(client.get(f"/search?q=投诉&{query}").get_data(as_text=True))

    assert total("speaker=customer") == 4 and total("speaker=agent") == 0
    assert total("team=T2") == 2 and total("agent=A05") == 1
    assert total("item=insult") == 1 and total("item=forbidden_words") == 2
    assert total("since=2025-09-04&until=2025-09-05") == 2
    assert total("since=2025-09-06") == 1 and total("until=2025-09-03") == 1
    only = client.get("/search?q=投诉&item=insult").get_data(as_text=True)
    assert hits(only) == [(calls[0].id, 2.2)]


def test_supervisor_searches_own_team_only(client_as: ClientAs,
                                           calls: list[StoredCall]) -> None:
    sam = client_as("supervisor")  # team T1: A01 and A02
    page = sam.get("/search?q=投诉").get_data(as_text=True)
    assert count(page) == 2
    assert {c for c, _ in hits(page)} == {calls[0].id, calls[1].id}
    assert count(sam.get("/search?q=投诉&team=T2").get_data(as_text=True)) == 0
    assert count(sam.get("/search?q=投诉&agent=A05").get_data(as_text=True)) == 0
    assert 'name="team"' not in page and ">A05<" not in page


def test_text_is_escaped(client_as: ClientAs, data_dir: Path, calls: list[StoredCall]) -> None:
    call_id = store_transcript(data_dir, [("customer", '<script>alert("x")</script> 投诉 <b>')])
    page = client_as("admin").get("/search?q=投诉").get_data(as_text=True)
    assert "<script>alert" not in page and "<b>" not in page
    expected = str(escape('<script>alert("x")</script> '))
    assert expected + "<mark>投诉</mark>" + str(escape(" <b>")) in page
    assert (call_id, 0.5) in hits(page)


def test_empty_and_syntax_queries(client_as: ClientAs, calls: list[StoredCall]) -> None:
    client = client_as("viewer")
    page = client.get("/search").get_data(as_text=True)
    assert 'id="search-form"' in page and 'id="search-count"' not in page
    assert 'id="search-count"' not in client.get("/search?q=，。").get_data(as_text=True)
    odd = client.get('/search?q=AND "OR NEAR(').get_data(as_text=True)
    assert count(odd) == 0
    assert 'id="nav-search"' in page
