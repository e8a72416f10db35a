"""The review pages: the queue and its order, appeals, agreement figures, the audit log."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from admin_web import agreement, site_db
from core import clock
from tests.admin_web.conftest import StoredCall, store_call
from tests.admin_web.review_util import Panel, db_rows, seq_of

ClientAs = Callable[[str], FlaskClient]

ROW_RE = re.compile(r'<tr data-call-id="([^"]+)"')


def queue_ids(client: FlaskClient, query: str = "") -> list[str]:
    response = client.get("/review/queue" + query)
    assert response.status_code == 200
    return ROW_RE.findall(response.get_data(as_text=True))


# ------------------------------------------------------------------ the queue


def test_queue_access(client_as: ClientAs) -> None:
    for role in ("admin", "inspector"):
        assert client_as(role).get("/review/queue").status_code == 200
    for role in ("supervisor", "viewer"):
        assert client_as(role).get("/review/queue").status_code == 403


def test_queue_order_fatal_then_score_then_alerts_then_asr_confidence(
        client_as: ClientAs, data_dir: Path, calls: list[StoredCall]) -> None:
    fatal3, failed75, passed_pace, clean = calls
    day = "2025-09-07T09:00:00+08:00"
    # Findings chosen to overlap the agent's lines only (4.2-5.8 s), except complaint_risk.
    tail = [("closing", "agent", 6.0, 12.0, "missing: 再见"),
            ("dead_air", "any", 6.0, 9.5, "silence 3.5 s"),
            ("pace", "agent", 4.2, 5.8, "fast")]
    fatal1 = store_call(data_dir, agent="B1", team="T3", started=day,
                        findings=[("insult", "agent", 5.0, 5.5, "白痴")])
    failed70 = store_call(data_dir, agent="B2", team="T3", started=day, findings=[
        ("forbidden_words", "agent", 4.4, 5.0, "不知道"),
        ("forbidden_words", "agent", 5.1, 5.5, "不清楚"),
        ("greeting", "agent", 0.0, 15.0, "missing"), ("closing", "agent", 6.0, 12.0, "x")])
    two_alerts = store_call(data_dir, agent="B3", team="T3", started=day, findings=[
        ("forbidden_words", "agent", 4.4, 5.0, "不知道"),
        ("complaint_risk", "customer", 3.0, 3.6, "投诉"), *tail])
    unsure = store_call(data_dir, agent="B4", team="T3", started=day, logprob=-0.9,
                        findings=[("forbidden_words", "agent", 4.4, 5.0, "不知道"), *tail])
    sure = store_call(data_dir, agent="B5", team="T3", started=day, logprob=-0.05,
                      findings=[("forbidden_words", "agent", 4.4, 5.0, "不知道"), *tail])
    assert (fatal1.score, failed70.score, two_alerts.score, unsure.score, sure.score) == (
        0, 70, 77, 77, 77)
    assert failed75.score == 75

    client = client_as("inspector")
    expected = [fatal3.id, fatal1.id, failed70.id, failed75.id, two_alerts.id, unsure.id,
                sure.id]
    assert queue_ids(client) == expected
    # The calls the machine passed without an alert are not in the queue...
    assert passed_pace.id not in queue_ids(client) and clean.id not in queue_ids(client)

    # ... unless a sampling plan put them there.
    conn = site_db.connect(data_dir)
    with site_db.write(conn):
        conn.execute("INSERT INTO sampling_plans (id, name, created_by, created_at, mode,"
                     " amount, passed_share) VALUES (1, 'weekly', 'alice', ?, 'count', 1, 0.1)",
                     [clock.utc_now_iso()])
        conn.execute("INSERT INTO review_queue (call_id, plan_id, reason, assigned_to,"
                     " added_at) VALUES (?, 1, 'random_passed', 'iris', ?)",
                     [clean.id, clock.utc_now_iso()])
    conn.close()
    assert queue_ids(client) == [*expected, clean.id]
    page = client.get("/review/queue").get_data(as_text=True)
    assert "Fatal item" in page and "Sampling plan “weekly”: random sample of passed calls" in page
    assert re.search(rf'data-call-id="{clean.id}".*?<td>iris</td>', page, re.S)
    # ASR confidence shown for the unsure call: exp(-0.9) = 41%.
    assert re.search(rf'data-call-id="{unsure.id}".*?41%', page, re.S)

    # Mine: assigned to me, or in review by me.
    iris = client_as("inspector2")
    assert queue_ids(iris, "?mine=1") == [clean.id]
    Panel(iris, sure.id).comment("looking")
    assert queue_ids(iris, "?mine=1") == [sure.id, clean.id]
    assert queue_ids(client, "?mine=1") == []

    # A reviewed call leaves the queue.
    Panel(client, fatal3.id).submit()
    assert fatal3.id not in queue_ids(client)


# ------------------------------------------------------------------ appeals page


def test_appeals_page_scope(client_as: ClientAs, data_dir: Path,
                            calls: list[StoredCall]) -> None:
    t1, t2 = calls[1], calls[2]
    for call in (t1, t2):
        Panel(client_as("inspector"), call.id).submit()
    Panel(client_as("supervisor"), t1.id).appeal("T1 appeal reason")
    # A T2 appeal made by someone allowed to (written directly: no T2 supervisor exists).
    conn = site_db.connect(data_dir)
    with site_db.write(conn):
        conn.execute("UPDATE call_reviews SET state = 'appealed' WHERE call_id = ?", [t2.id])
        conn.execute("INSERT INTO appeals (call_id, round, appealed_by, reason, appealed_at)"
                     " VALUES (?, 2, 'tom', 'T2 appeal reason', ?)", [t2.id, clock.utc_now_iso()])
    conn.close()

    sam = client_as("supervisor").get("/appeals").get_data(as_text=True)
    assert "T1 appeal reason" in sam and "T2 appeal reason" not in sam
    assert t2.id not in sam
    iris = client_as("inspector2").get("/appeals").get_data(as_text=True)
    assert "T1 appeal reason" in iris and "T2 appeal reason" in iris
    ivan = client_as("inspector").get("/appeals").get_data(as_text=True)
    assert "your review" in ivan
    assert client_as("viewer").get("/appeals").status_code == 403

    Panel(client_as("inspector2"), t1.id).decide("upheld", "ok")
    sam = client_as("supervisor").get("/appeals").get_data(as_text=True)
    decided = sam.split('id="decided-appeals"')[1]
    assert "T1 appeal reason" in decided and "Upheld" in decided


# ------------------------------------------------------------------ agreement


def review_for_agreement(client_as: ClientAs, data_dir: Path, calls: list[StoredCall]) -> None:
    c0, c1, c2, c3 = calls
    ivan = Panel(client_as("inspector"), c0.id)
    ivan.verdict(seq_of(data_dir, c0.id, "insult"), "rejected")
    ivan.verdict(seq_of(data_dir, c0.id, "forbidden_words"), "confirmed")
    ivan.add("closing", "6", "12")
    ivan.submit()  # complaint_risk confirmed on submit
    iris = Panel(client_as("inspector2"), c1.id)
    iris.verdict(seq_of(data_dir, c1.id, "forbidden_words"), "rejected")
    iris.add("forbidden_words", "1", "1.5")
    iris.submit()  # greeting, closing, dead_air confirmed
    ivan2 = Panel(client_as("inspector"), c2.id)
    ivan2.verdict(seq_of(data_dir, c2.id, "pace"), "rejected")
    ivan2.submit()
    # In review only: not counted.
    Panel(client_as("inspector2"), c3.id).add("greeting", "0", "2")


def test_item_agreement_figures(client_as: ClientAs, data_dir: Path,
                                calls: list[StoredCall]) -> None:
    review_for_agreement(client_as, data_dir, calls)
    conn = site_db.connect(data_dir)
    try:
        figures = agreement.item_agreement(conn)
        t1 = agreement.item_agreement(conn, team="T1")
        late = agreement.item_agreement(conn, since="2025-09-05")
        none = agreement.item_agreement(conn, until="2025-09-01")
    finally:
        conn.close()
    assert figures["calls"] == 3
    items = {i["item_id"]: i for i in figures["items"]}
    got = {k: (v["confirmed"], v["rejected"], v["added"], v["precision"], v["recall_estimate"])
           for k, v in items.items()}
    assert got == {
        "insult": (0, 1, 0, 0.0, None),
        "forbidden_words": (1, 1, 1, 0.5, 0.5),
        "complaint_risk": (1, 0, 0, 1.0, 1.0),
        "closing": (1, 0, 1, 1.0, 0.5),
        "greeting": (1, 0, 0, 1.0, 1.0),
        "dead_air": (1, 0, 0, 1.0, 1.0),
        "pace": (0, 1, 0, 0.0, None),
    }
    assert items["insult"]["name"] == "侮辱攻击讽刺语言"
    assert figures["totals"] == {"confirmed": 5, "rejected": 3, "added": 2,
                                 "precision": 5 / 8, "recall_estimate": 5 / 7}
    assert t1["calls"] == 2 and "pace" not in {i["item_id"] for i in t1["items"]}
    assert late["calls"] == 1 and [i["item_id"] for i in late["items"]] == ["pace"]
    assert none == {"calls": 0, "items": [], "totals": {
        "confirmed": 0, "rejected": 0, "added": 0, "precision": None, "recall_estimate": None}}


def test_agreement_page(client_as: ClientAs, data_dir: Path, calls: list[StoredCall]) -> None:
    review_for_agreement(client_as, data_dir, calls)
    page = client_as("inspector").get("/agreement").get_data(as_text=True)
    assert "Reviewed calls: 3" in page
    row = re.search(r'<tr data-item-id="forbidden_words">(.*?)</tr>', page, re.S)
    assert row is not None
    assert re.search(r'data-key="precision">50\.0%<', row.group(1))
    assert re.search(r'data-key="added">1<', row.group(1))
    filtered = client_as("admin").get("/agreement?team=T2").get_data(as_text=True)
    assert 'data-item-id="pace"' in filtered and 'data-item-id="insult"' not in filtered
    for role in ("supervisor", "viewer"):
        assert client_as(role).get("/agreement").status_code == 403


# ------------------------------------------------------------------ audit log


def test_audit_page_filters_pages_and_access(client_as: ClientAs, data_dir: Path,
                                             calls: list[StoredCall]) -> None:
    ivan = Panel(client_as("inspector"), calls[0].id)
    ivan.comment("one")
    ivan.comment("two")
    admin = client_as("admin")
    page = admin.get("/audit").get_data(as_text=True)
    assert 'id="audit-chain" data-valid="1"' in page
    ids = [int(i) for i in re.findall(r'data-entry-id="(\d+)"', page)]
    assert ids == sorted(ids, reverse=True) and len(ids) >= 4
    only = admin.get("/audit?action=review_comment").get_data(as_text=True)
    assert len(re.findall(r"data-entry-id=", only)) == 2
    assert "comment</span>=<span>two" in only
    by_user = admin.get("/audit?user=ivan").get_data(as_text=True)
    assert "<td>alice</td>" not in by_user and "<td>ivan</td>" in by_user
    by_call = admin.get(f"/audit?call={calls[0].id}").get_data(as_text=True)
    assert len(re.findall(r"data-entry-id=", by_call)) == 2
    for role in ("inspector", "supervisor", "viewer"):
        assert client_as(role).get("/audit").status_code == 403
    # No route clears it.
    assert admin.post("/audit").status_code in (400, 405)


def test_audit_page_pages(client_as: ClientAs, data_dir: Path) -> None:
    conn = site_db.connect(data_dir)
    from admin_web import audit

    for i in range(60):
        audit.record(conn, "robot", "test_entry", None, {"i": i})
    conn.close()
    admin = client_as("admin")
    first = admin.get("/audit?action=test_entry").get_data(as_text=True)
    assert len(re.findall(r"data-entry-id=", first)) == 50 and 'rel="next"' in first
    second = admin.get("/audit?action=test_entry&page=2").get_data(as_text=True)
    assert len(re.findall(r"data-entry-id=", second)) == 10 and 'rel="next"' not in second


def test_audit_page_shows_a_tampered_chain(client_as: ClientAs, data_dir: Path,
                                           calls: list[StoredCall]) -> None:
    Panel(client_as("inspector"), calls[0].id).comment("honest")
    target = db_rows(data_dir, "SELECT id FROM audit_log WHERE action = 'review_comment'")[0]
    # An attacker with the file: drop the triggers, then edit an entry.
    raw = sqlite3.connect(str(site_db.site_db_path(data_dir)))
    with pytest.raises(sqlite3.DatabaseError):
        raw.execute("UPDATE audit_log SET detail = '{}' WHERE id = ?", [target["id"]])
    raw.execute("DROP TRIGGER audit_log_no_update")
    raw.execute("DROP TRIGGER audit_log_no_delete")
    raw.execute("UPDATE audit_log SET username = 'nobody' WHERE id = ?", [target["id"]])
    raw.commit()
    raw.close()
    page = client_as("admin").get("/audit").get_data(as_text=True)
    assert f'data-valid="0" data-broken-at="{target["id"]}"' in page
    assert f"The chain is broken at entry {target['id']}" in page
    assert "was altered" in page
    assert f'<tr data-entry-id="{target["id"]}" class="tampered">' in page
