"""Human review of a call: who may do what, the states, the reviewed score, the history,
the audit entries, and the review panel."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin_web import site_db, users
from admin_web.review_score import machine_score, parse_time, reviewed_findings, rubric_of
from core.rubric.scoring import score_findings
from tests.admin_web.conftest import StoredCall
from tests.admin_web.review_util import (
    Panel,
    audit_actions,
    db_rows,
    render_panel,
    review_row,
    seq_of,
    snapshot,
    state,
)

ClientAs = Callable[[str], FlaskClient]


@pytest.fixture
def fatal_call(calls: list[StoredCall]) -> StoredCall:
    """T1/A01: forbidden_words (alert), complaint_risk (alert, no deduction), insult (fatal)."""
    assert calls[0].score == 0
    return calls[0]


def reviewed(client_as: ClientAs, data_dir: Path, call_id: str, role: str = "inspector"
             ) -> Panel:
    """The call reviewed (one finding confirmed if it has any, submitted) by `role`."""
    panel = Panel(client_as(role), call_id)
    found = db_rows(data_dir, "SELECT seq FROM cq.findings WHERE call_id = ?", [call_id])
    if found:
        assert panel.verdict(found[0]["seq"], "confirmed").status_code == 302
    assert panel.submit().status_code == 302
    assert state(data_dir, call_id) == "reviewed"
    return panel


# ------------------------------------------------------------------ who may do what


def test_viewer_and_supervisor_cannot_review(client_as: ClientAs, data_dir: Path,
                                             fatal_call: StoredCall) -> None:
    seq = seq_of(data_dir, fatal_call.id, "insult")
    for role in ("viewer", "supervisor"):
        panel = Panel(client_as(role), fatal_call.id)
        assert panel.verdict(seq, "confirmed").status_code == 403
        assert panel.add("closing", "1:00").status_code == 403
        assert panel.comment("x").status_code == 403
        assert panel.submit().status_code == 403
        assert panel.finalize().status_code == 403
    assert review_row(data_dir, fatal_call.id) is None


def test_inspector_and_admin_cannot_appeal(client_as: ClientAs, data_dir: Path,
                                           fatal_call: StoredCall) -> None:
    reviewed(client_as, data_dir, fatal_call.id)
    for role in ("inspector", "inspector2", "admin", "viewer"):
        assert Panel(client_as(role), fatal_call.id).appeal("no").status_code == 403
    assert state(data_dir, fatal_call.id) == "reviewed"


def test_the_reviewer_cannot_decide_but_another_inspector_can(
        client_as: ClientAs, data_dir: Path, fatal_call: StoredCall) -> None:
    reviewed(client_as, data_dir, fatal_call.id, "inspector")
    assert Panel(client_as("supervisor"), fatal_call.id).appeal("wrong").status_code == 302
    before = snapshot(data_dir)
    assert Panel(client_as("inspector"), fatal_call.id).decide("upheld").status_code == 403
    assert Panel(client_as("supervisor"), fatal_call.id).decide("upheld").status_code == 403
    assert Panel(client_as("viewer"), fatal_call.id).decide("upheld").status_code == 403
    assert snapshot(data_dir) == before
    assert Panel(client_as("inspector2"), fatal_call.id).decide("upheld").status_code == 302
    assert state(data_dir, fatal_call.id) == "final"


def test_an_administrator_decides_too(client_as: ClientAs, data_dir: Path,
                                      fatal_call: StoredCall) -> None:
    reviewed(client_as, data_dir, fatal_call.id, "inspector")
    Panel(client_as("supervisor"), fatal_call.id).appeal("wrong")
    assert Panel(client_as("admin"), fatal_call.id).decide("upheld", "fine").status_code == 302
    appeal = db_rows(data_dir, "SELECT * FROM appeals")[0]
    assert (appeal["decided_by"], appeal["decision"]) == ("alice", "upheld")


def test_a_supervisor_never_acts_on_another_team(client_as: ClientAs, data_dir: Path,
                                                 calls: list[StoredCall]) -> None:
    t2 = calls[2]
    assert t2.team == "T2"
    reviewed(client_as, data_dir, t2.id)
    sam = client_as("supervisor")
    before = snapshot(data_dir)
    assert Panel(sam, t2.id).appeal("not my team").status_code == 404
    assert Panel(sam, "no-such-call").appeal("x").status_code == 404
    assert snapshot(data_dir) == before
    # An inspector gets 404 for a call that does not exist, too.
    assert Panel(client_as("inspector"), "no-such-call").comment("x").status_code == 404


def test_another_inspector_cannot_change_a_review_in_progress(
        client_as: ClientAs, data_dir: Path, fatal_call: StoredCall) -> None:
    seq = seq_of(data_dir, fatal_call.id, "insult")
    assert Panel(client_as("inspector"), fatal_call.id).verdict(seq, "rejected").status_code == 302
    before = snapshot(data_dir)
    other = Panel(client_as("inspector2"), fatal_call.id)
    response = other.verdict(seq, "confirmed")
    assert response.status_code == 409
    assert "ivan" in response.get_data(as_text=True)
    assert other.submit().status_code == 409
    assert snapshot(data_dir) == before


def test_post_without_csrf_token_is_rejected(client_as: ClientAs, data_dir: Path,
                                             fatal_call: StoredCall) -> None:
    client = client_as("inspector")
    seq = seq_of(data_dir, fatal_call.id, "insult")
    response = client.post(f"/calls/{fatal_call.id}/review/verdict",
                           data={"seq": seq, "verdict": "rejected"})
    assert response.status_code == 400
    response = client.post(f"/calls/{fatal_call.id}/review/verdict",
                           data={"seq": seq, "verdict": "rejected", "csrf_token": "forged"})
    assert response.status_code == 400
    assert review_row(data_dir, fatal_call.id) is None
    assert client.post("/sampling", data={"name": "x"}).status_code in (400, 403)


# ------------------------------------------------------------------ the whole flow


def test_full_flow_with_scores_history_and_audit(client_as: ClientAs, data_dir: Path,
                                                 fatal_call: StoredCall) -> None:
    cid = fatal_call.id
    insult = seq_of(data_dir, cid, "insult")
    forbidden = seq_of(data_dir, cid, "forbidden_words")
    risk = seq_of(data_dir, cid, "complaint_risk")
    ivan = Panel(client_as("inspector"), cid)

    response = ivan.verdict(insult, "rejected", "ASR misheard")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/calls/{cid}")
    row = review_row(data_dir, cid)
    assert row is not None
    assert (row["state"], row["reviewer"], row["round"]) == ("in_review", "ivan", 1)
    assert row["machine_score"] == 0 and row["reviewed_score"] == 90
    assert row["reviewed_passed"] == 1

    assert ivan.verdict(forbidden, "confirmed").status_code == 302
    assert ivan.add("closing", "0:06", "12", "no goodbye").status_code == 302
    assert review_row(data_dir, cid)["reviewed_score"] == 85  # type: ignore[index]
    assert ivan.comment("Rude, but no insult.").status_code == 302
    assert ivan.submit().status_code == 302
    row = review_row(data_dir, cid)
    assert row is not None
    assert (row["state"], row["reviewed_score"], row["comment"]) == (
        "reviewed", 85, "Rude, but no insult.")
    verdicts = {r["finding_seq"]: r["verdict"] for r in db_rows(
        data_dir, "SELECT * FROM finding_verdicts WHERE call_id = ?", [cid])}
    assert verdicts == {insult: "rejected", forbidden: "confirmed", risk: "confirmed"}

    sam = Panel(client_as("supervisor"), cid)
    assert sam.appeal("   ").status_code == 400
    assert state(data_dir, cid) == "reviewed"
    assert sam.appeal("The agent said 不清楚 about a fact, not as a refusal.").status_code == 302
    row = review_row(data_dir, cid)
    assert row is not None and (row["state"], row["round"]) == ("appealed", 2)

    iris = Panel(client_as("inspector2"), cid)
    added_id = db_rows(data_dir, "SELECT id FROM added_findings")[0]["id"]
    response = iris.decide("changed", "Agreed with the team", **{
        f"verdict-{forbidden}": "rejected", f"verdict-{insult}": ""})
    assert response.status_code == 302
    row = review_row(data_dir, cid)
    assert row is not None
    assert (row["state"], row["reviewed_score"], row["reviewed_passed"]) == ("final", 95, 1)
    appeal = db_rows(data_dir, "SELECT * FROM appeals WHERE call_id = ?", [cid])[0]
    assert (appeal["decision"], appeal["decided_by"]) == ("changed", "iris")
    assert (appeal["score_before"], appeal["score_after"]) == (85, 95)
    assert db_rows(data_dir, "SELECT removed FROM added_findings WHERE id = ?",
                   [added_id])[0]["removed"] == 0

    history = db_rows(data_dir, "SELECT * FROM review_history WHERE call_id = ? ORDER BY id",
                      [cid])
    assert [(h["action"], h["username"], h["round"]) for h in history] == [
        ("verdict", "ivan", 1), ("verdict", "ivan", 1), ("add_finding", "ivan", 1),
        ("comment", "ivan", 1), ("submit", "ivan", 1), ("appeal", "sam", 2),
        ("decision", "iris", 2)]
    assert [(h["score_before"], h["score_after"]) for h in history] == [
        (0, 90), (90, 90), (90, 85), (85, 85), (85, 85), (85, 85), (85, 95)]
    assert [(h["state_before"], h["state_after"]) for h in history] == [
        ("scored", "in_review"), ("in_review", "in_review"), ("in_review", "in_review"),
        ("in_review", "in_review"), ("in_review", "reviewed"), ("reviewed", "appealed"),
        ("appealed", "final")]
    first = json.loads(history[0]["detail"])
    assert (first["seq"], first["verdict"], first["comment"]) == (insult, "rejected",
                                                                  "ASR misheard")
    decision = json.loads(history[-1]["detail"])
    assert decision["decision"] == "changed"
    assert [v["seq"] for v in decision["verdicts"]] == [forbidden]

    assert audit_actions(data_dir, cid) == [
        "review_verdict", "review_verdict", "review_add_finding", "review_comment",
        "review_submit", "appeal", "appeal_decision"]
    entries = db_rows(data_dir, "SELECT * FROM audit_log WHERE call_id = ? ORDER BY id", [cid])
    assert [e["username"] for e in entries] == ["ivan"] * 5 + ["sam", "iris"]
    last = json.loads(entries[-1]["detail"])
    assert (last["score_before"], last["score_after"]) == (85, 95)

    # Final: nothing changes any more.
    before = snapshot(data_dir)
    assert ivan.verdict(forbidden, "confirmed").status_code == 409
    assert sam.appeal("again").status_code == 409
    assert Panel(client_as("admin"), cid).finalize().status_code == 409
    assert snapshot(data_dir) == before


def test_admin_finalizes_a_review_nobody_appealed(client_as: ClientAs, data_dir: Path,
                                                  calls: list[StoredCall]) -> None:
    cid = calls[1].id
    reviewed(client_as, data_dir, cid)
    assert Panel(client_as("inspector2"), cid).finalize().status_code == 403
    assert Panel(client_as("admin"), cid).finalize().status_code == 302
    assert state(data_dir, cid) == "final"
    history = db_rows(data_dir, "SELECT action, state_before, state_after FROM review_history"
                      " WHERE call_id = ? ORDER BY id", [cid])
    assert history[-1] == {"action": "finalize", "state_before": "reviewed",
                           "state_after": "final"}
    assert audit_actions(data_dir, cid)[-1] == "review_finalize"
    assert Panel(client_as("supervisor"), cid).appeal("late").status_code == 409


def test_a_clean_call_can_be_submitted_straight_away(client_as: ClientAs, data_dir: Path,
                                                     calls: list[StoredCall]) -> None:
    clean = calls[3]
    assert clean.findings == 0
    assert Panel(client_as("inspector"), clean.id).submit().status_code == 302
    row = review_row(data_dir, clean.id)
    assert row is not None
    assert (row["state"], row["reviewer"], row["reviewed_score"]) == ("reviewed", "ivan", 100)


# ------------------------------------------------------------------ refused moves


def test_invalid_transitions_are_refused_and_change_nothing(
        client_as: ClientAs, data_dir: Path, calls: list[StoredCall]) -> None:
    cid = calls[1].id
    ivan = Panel(client_as("inspector"), cid)
    admin = Panel(client_as("admin"), cid)
    sam = Panel(client_as("supervisor"), cid)
    iris = Panel(client_as("inspector2"), cid)
    seq = seq_of(data_dir, cid, "greeting")

    def refused(response: Any, status: int = 409) -> None:
        assert response.status_code == status, response.get_data(as_text=True)

    # scored: nothing to appeal, decide or finalize
    before = snapshot(data_dir)
    refused(sam.appeal("too early"))
    refused(iris.decide("upheld"))
    refused(admin.finalize())
    assert snapshot(data_dir) == before

    # in review: still nothing to appeal, decide or finalize
    ivan.verdict(seq, "rejected")
    before = snapshot(data_dir)
    refused(sam.appeal("too early"))
    refused(iris.decide("upheld"))
    refused(admin.finalize())
    refused(ivan.verdict(seq, "maybe"), 400)
    refused(ivan.verdict(999, "rejected"), 400)
    refused(ivan.add("not_an_item", "1:00"), 400)
    refused(ivan.add("closing", "1:xx"), 400)
    refused(ivan.add("closing", "0:09", "0:05"), 400)
    refused(ivan.add("closing", "59:00"), 400)
    refused(ivan.remove(12345), 400)
    refused(ivan.comment("x" * 2001), 400)
    assert snapshot(data_dir) == before

    # reviewed: verdicts are locked; no decision without an appeal
    ivan.submit()
    before = snapshot(data_dir)
    refused(ivan.verdict(seq, "confirmed"))
    refused(ivan.add("closing", "1:00"))
    refused(ivan.comment("later thoughts"))
    refused(ivan.submit())
    refused(iris.decide("upheld"))
    refused(sam.appeal(""), 400)
    assert snapshot(data_dir) == before

    # appealed: locked for the reviewer; a decision must say what it is
    sam.appeal("please look again")
    before = snapshot(data_dir)
    refused(ivan.verdict(seq, "confirmed"))
    refused(sam.appeal("twice"))
    refused(admin.finalize())
    refused(iris.decide("maybe"), 400)
    refused(iris.decide("changed"), 400)  # a change with no change
    refused(iris.decide("upheld", **{f"verdict-{seq}": "confirmed"}), 400)
    assert "upheld" not in {r["decision"] for r in db_rows(data_dir, "SELECT * FROM appeals")}
    assert snapshot(data_dir) == before


def test_remove_an_added_finding_before_submit(client_as: ClientAs, data_dir: Path,
                                               calls: list[StoredCall]) -> None:
    cid = calls[3].id
    ivan = Panel(client_as("inspector"), cid)
    assert ivan.add("greeting", "0", "3", "no 您好").status_code == 302
    assert review_row(data_dir, cid)["reviewed_score"] == 95  # type: ignore[index]
    added_id = db_rows(data_dir, "SELECT id FROM added_findings")[0]["id"]
    assert ivan.remove(added_id).status_code == 302
    assert review_row(data_dir, cid)["reviewed_score"] == 100  # type: ignore[index]
    assert ivan.remove(added_id).status_code == 400
    ivan.add("greeting", "0", "3")
    second = db_rows(data_dir, "SELECT id FROM added_findings WHERE removed = 0")[0]["id"]
    ivan.submit()
    assert ivan.remove(second).status_code == 409
    assert audit_actions(data_dir, cid).count("review_remove_finding") == 1


# ------------------------------------------------------------------ the reviewed score


def expected_score(data_dir: Path, call_id: str, rejected: set[str],
                   added: list[tuple[str, float, float]]) -> tuple[float, bool]:
    """score_findings on the machine's findings minus `rejected` items plus `added`."""
    from admin_web.review_score import added_finding

    conn = site_db.connect(data_dir)
    try:
        call = machine_score(conn, call_id)
        assert call is not None
        rubric = rubric_of(conn, call.rubric_id, call.rubric_version)
        machine = [f for f in reviewed_findings(conn, call_id, rubric)
                   if f.item_id not in rejected]
    finally:
        conn.close()
    adjusted = machine + [added_finding(rubric, i, s, e, "") for i, s, e in added]
    sheet = score_findings(rubric, adjusted)
    return sheet.score, sheet.passed


def test_reviewed_score_is_score_findings_on_the_adjusted_findings(
        client_as: ClientAs, data_dir: Path, calls: list[StoredCall]) -> None:
    # The machine's own findings give back the machine's score.
    for call in calls:
        assert expected_score(data_dir, call.id, set(), [])[0] == call.score

    fatal = calls[0]
    ivan = Panel(client_as("inspector"), fatal.id)
    ivan.verdict(seq_of(data_dir, fatal.id, "insult"), "rejected")
    score, passed = expected_score(data_dir, fatal.id, {"insult"}, [])
    assert score == 90 and passed  # a rejected fatal finding restores a real score
    row = review_row(data_dir, fatal.id)
    assert row is not None and (row["reviewed_score"], row["reviewed_passed"]) == (90, 1)

    # Caps apply: forbidden_words deducts 10 a time up to 20.
    ivan.add("forbidden_words", "7", "8")
    ivan.add("forbidden_words", "9", "10")
    score, passed = expected_score(data_dir, fatal.id, {"insult"},
                                   [("forbidden_words", 7, 8), ("forbidden_words", 9, 10)])
    assert score == 80 and passed
    assert review_row(data_dir, fatal.id)["reviewed_score"] == 80  # type: ignore[index]

    # A fatal item added by the reviewer makes the call fail with 0.
    failed = calls[1]
    iris = Panel(client_as("inspector2"), failed.id)
    iris.add("insult", "5", "5.5", "heard it on the recording")
    row = review_row(data_dir, failed.id)
    assert row is not None and (row["reviewed_score"], row["reviewed_passed"]) == (0, 0)
    # Rejecting findings of a failed call can make it pass.
    iris.remove(db_rows(data_dir, "SELECT id FROM added_findings WHERE call_id = ?",
                        [failed.id])[0]["id"])
    for item in ("greeting", "closing"):
        iris.verdict(seq_of(data_dir, failed.id, item), "rejected")
    score, passed = expected_score(data_dir, failed.id, {"greeting", "closing"}, [])
    assert (score, passed) == (85, True)
    row = review_row(data_dir, failed.id)
    assert row is not None and (row["reviewed_score"], row["reviewed_passed"]) == (85, 1)


@pytest.mark.parametrize(("text", "seconds"), [
    ("75", 75.0), ("75.5", 75.5), ("1:15", 75.0), ("1:15.5", 75.5), ("0:01:15", 75.0),
    (" 2:00 ", 120.0), ("1：05", 65.0),
])
def test_parse_time(text: str, seconds: float) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1:75", "-3", "1:2:3:4", "1.5:00", "nan", "1:"])
def test_parse_time_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


# ------------------------------------------------------------------ the panel


def ids(html: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', html))


def test_panel_for_the_reviewer_in_review(app: Flask, client_as: ClientAs, data_dir: Path,
                                          people: dict[str, users.User],
                                          fatal_call: StoredCall) -> None:
    insult = seq_of(data_dir, fatal_call.id, "insult")
    ivan = Panel(client_as("inspector"), fatal_call.id)
    ivan.verdict(insult, "rejected", "misheard")
    html = render_panel(app, data_dir, people["inspector"], fatal_call.id)
    assert {"review-state", "machine-score", "reviewed-score", "add-finding",
            "review-comment", "submit-review", "review-history"} <= ids(html)
    assert not {"appeal-form", "decide-form", "finalize"} & ids(html)
    assert re.search(r'id="review-state" data-state="in_review"[^>]*>In review<', html)
    assert re.search(r'id="machine-score">0<', html)
    assert re.search(r'id="reviewed-score">90<', html)
    assert re.search(rf'<span class="verdict-state verdict-rejected" data-seq="{insult}">', html)
    for seq in (0, 1, 2):
        assert re.search(rf'<form class="verdict" data-seq="{seq}"', html)
    assert 'button type="submit" name="verdict" value="confirmed"' in html
    for field in ("item_id", "start", "end", "comment"):
        assert f'name="{field}"' in html
    assert "misheard" in html and "Score 0 → 90" in html
    # Another inspector sees who reviews it, and no forms.
    other = render_panel(app, data_dir, people["inspector2"], fatal_call.id)
    assert "ivan is reviewing this call" in other
    assert "add-finding" not in ids(other) and 'class="verdict"' not in other


def test_panel_offers_appeal_decision_and_finalize_to_the_right_people(
        app: Flask, client_as: ClientAs, data_dir: Path, people: dict[str, users.User],
        fatal_call: StoredCall) -> None:
    cid = fatal_call.id
    reviewed(client_as, data_dir, cid)
    sam = render_panel(app, data_dir, people["supervisor"], cid)
    assert "appeal-form" in ids(sam) and 'name="reason"' in sam
    assert re.search(r'data-state="reviewed"', sam)
    assert "finalize" in ids(render_panel(app, data_dir, people["admin"], cid))
    assert "finalize" not in ids(render_panel(app, data_dir, people["inspector2"], cid))
    viewer = render_panel(app, data_dir, people["viewer"], cid)
    assert not {"appeal-form", "decide-form", "finalize", "add-finding"} & ids(viewer)

    Panel(client_as("supervisor"), cid).appeal("please")
    iris = render_panel(app, data_dir, people["inspector2"], cid)
    assert "decide-form" in ids(iris)
    assert 'name="decision" value="upheld"' in iris and 'name="decision" value="changed"' in iris
    ivan = render_panel(app, data_dir, people["inspector"], cid)
    assert "decide-form" not in ids(ivan)
    assert "another inspector or an administrator decides" in ivan


def test_panel_of_a_call_outside_the_team_is_never_built(client_as: ClientAs,
                                                          calls: list[StoredCall]) -> None:
    # The call page itself checks the scope; the panel's own routes do as well.
    sam = client_as("supervisor")
    assert Panel(sam, calls[3].id).appeal("x").status_code == 404


def test_the_call_page_includes_the_panel(client_as: ClientAs, data_dir: Path,
                                          fatal_call: StoredCall) -> None:
    Panel(client_as("inspector"), fatal_call.id).verdict(
        seq_of(data_dir, fatal_call.id, "insult"), "rejected")
    page = client_as("inspector").get(f"/calls/{fatal_call.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert {"review-panel", "review-state", "machine-score", "reviewed-score", "add-finding",
            "review-comment", "submit-review", "review-history"} <= ids(html)
    assert "/static/js/review.js" in html and "/static/css/review.css" in html
    sam = client_as("supervisor").get(f"/calls/{fatal_call.id}").get_data(as_text=True)
    assert 'id="review-state" data-state="in_review"' in sam and "add-finding" not in ids(sam)
