"""Sampling plans (抽检计划): counts, the random share of passed calls, quotas per inspector,
reproducibility, what is left out, the plan pages."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin_web import sampling, site_db, users
from tests.admin_web.conftest import StoredCall, post_form, store_call
from tests.admin_web.review_util import Panel, audit_actions, db_rows

ClientAs = Callable[[str], FlaskClient]


@pytest.fixture
def team3(app: Flask, data_dir: Path, calls: list[StoredCall]
          ) -> dict[str, list[StoredCall]]:
    """Team T3: 4 calls the machine flagged and 20 it passed without an alert."""
    flagged = [
        store_call(data_dir, agent="C1", team="T3", started="2025-10-01T09:00:00+08:00",
                   findings=[("insult", "agent", 5.0, 5.5, "白痴")]),
        store_call(data_dir, agent="C1", team="T3", started="2025-10-01T10:00:00+08:00",
                   findings=[("forbidden_words", "agent", 4.4, 5.0, "不知道")]),
        store_call(data_dir, agent="C2", team="T3", started="2025-10-02T09:00:00+08:00",
                   findings=[("greeting", "agent", 0.0, 15.0, "x"),
                             ("closing", "agent", 6.0, 12.0, "x"),
                             ("dead_air", "any", 6.0, 9.5, "x"),
                             ("pace", "agent", 4.2, 5.8, "x"),
                             ("polite", "agent", 0.0, 12.0, "x"),
                             ("fillers", "agent", 0.0, 12.0, "x")]),
        store_call(data_dir, agent="C2", team="T3", started="2025-10-02T10:00:00+08:00",
                   findings=[("complaint_risk", "customer", 3.0, 3.6, "投诉")]),
    ]
    passed = [
        store_call(data_dir, agent=f"C{3 + i % 3}", team="T3",
                   started=f"2025-10-{3 + i // 5:02d}T{9 + i % 5:02d}:00:00+08:00",
                   findings=[("pace", "agent", 4.2, 5.8, "x")] if i % 2 else [],
                   duration_s=10.0 + i)
        for i in range(20)
    ]
    assert [c.passed for c in flagged] == [False, True, False, True]
    return {"flagged": flagged, "passed": passed}


def request(**kw: Any) -> sampling.PlanRequest:
    return sampling.PlanRequest(**{"name": "plan", "team": "T3", **kw})


def make(data_dir: Path, admin: users.User, req: sampling.PlanRequest) -> dict[str, Any]:
    conn = site_db.connect(data_dir)
    try:
        plan_id = sampling.create_plan(conn, req, admin)
        plan = sampling.get_plan(conn, plan_id)
        assert plan is not None
        return plan
    finally:
        conn.close()


def preview(data_dir: Path, req: sampling.PlanRequest) -> dict[str, Any]:
    conn = site_db.connect(data_dir)
    try:
        return sampling.preview(conn, req).summary
    finally:
        conn.close()


def test_count_takes_the_passed_share_then_flagged_calls(
        data_dir: Path, people: dict[str, users.User],
        team3: dict[str, list[StoredCall]]) -> None:
    plan = make(data_dir, people["admin"], request(mode="count", amount=6, seed=1))
    s = plan["summary"]
    assert (s["matched"], s["eligible"], s["eligible_flagged"], s["eligible_passed"]) == (
        24, 24, 4, 20)
    assert (s["taken"], s["taken_flagged"], s["taken_passed"]) == (6, 4, 2)
    flagged_ids = {c.id for c in team3["flagged"]}
    reasons = {c["call_id"]: c["reason"] for c in plan["calls"]}
    assert {k for k, v in reasons.items() if v == "flagged"} == flagged_ids
    assert all(reasons[k] == "random_passed" for k in reasons if k not in flagged_ids)
    assert plan["filter"] == {"team": "T3"}
    assert s["seed"] == 1 and s["unassigned"] == 6


def test_percent_fills_up_with_passed_calls_when_flagged_run_out(
        data_dir: Path, people: dict[str, users.User],
        team3: dict[str, list[StoredCall]]) -> None:
    s = make(data_dir, people["admin"], request(mode="percent", amount=50, seed=2))["summary"]
    assert (s["target"], s["taken"], s["taken_flagged"], s["taken_passed"]) == (12, 12, 4, 8)


def test_the_passed_share_is_at_least_one_call(data_dir: Path,
                                               team3: dict[str, list[StoredCall]]) -> None:
    s = preview(data_dir, request(mode="count", amount=1, passed_share=0.01, seed=3))
    assert (s["taken_passed"], s["taken_flagged"]) == (1, 0)
    s = preview(data_dir, request(mode="count", amount=3, passed_share=0.25, seed=3))
    assert (s["taken_passed"], s["taken_flagged"]) == (5, 0)  # 25 % of 20, always
    # No passed call in the filter: nothing random to take.
    s = preview(data_dir, request(mode="count", amount=3, max_score=79, seed=3))
    assert (s["eligible_passed"], s["taken_passed"], s["taken_flagged"]) == (0, 0, 2)


def test_quota_per_inspector_round_robin(data_dir: Path, people: dict[str, users.User],
                                         team3: dict[str, list[StoredCall]]) -> None:
    req = request(mode="count", amount=10, quota=2, inspectors=["ivan", "iris"], seed=4)
    plan = make(data_dir, people["admin"], req)
    s = plan["summary"]
    assert s["capped_by_quota"] is True
    assert (s["taken"], s["taken_passed"], s["taken_flagged"]) == (4, 2, 2)
    assert s["per_inspector"] == {"iris": 2, "ivan": 2}
    assigned = [c["assigned_to"] for c in plan["calls"]]
    assert sorted(assigned) == ["iris", "iris", "ivan", "ivan"]
    # The calls still open count against the quota of the next plan.
    s = make(data_dir, people["admin"], request(mode="count", amount=10, quota=3,
                                                inspectors=["ivan", "iris"], seed=5))["summary"]
    assert s["per_inspector"] == {"iris": 1, "ivan": 1} and s["taken"] == 2
    with pytest.raises(sampling.PlanError):
        make(data_dir, people["admin"], request(quota=2, inspectors=[]))
    with pytest.raises(sampling.PlanError):
        make(data_dir, people["admin"], request(inspectors=["sam"]))


def test_same_seed_same_calls(data_dir: Path, people: dict[str, users.User],
                              team3: dict[str, list[StoredCall]]) -> None:
    req = request(mode="count", amount=3, passed_share=0.15, seed=12345)
    first, again = preview(data_dir, req), preview(data_dir, req)
    assert first["call_ids"] == again["call_ids"] and first["taken_passed"] == 3
    other = preview(data_dir, request(mode="count", amount=3, passed_share=0.15, seed=54321))
    assert other["call_ids"] != first["call_ids"]
    plan = make(data_dir, people["admin"], req)
    assert plan["summary"]["call_ids"] == first["call_ids"]
    assert sorted(c["call_id"] for c in plan["calls"]) == sorted(first["call_ids"])
    # Without a seed one is drawn, and stored.
    drawn = preview(data_dir, request(mode="count", amount=2))
    assert isinstance(drawn["seed"], int)


def test_only_calls_not_reviewed_or_queued_are_added(
        client_as: ClientAs, data_dir: Path, people: dict[str, users.User],
        team3: dict[str, list[StoredCall]]) -> None:
    Panel(client_as("inspector"), team3["passed"][0].id).comment("seen")
    Panel(client_as("inspector"), team3["flagged"][0].id).submit()
    first = make(data_dir, people["admin"], request(mode="count", amount=5, seed=6))
    s = first["summary"]
    assert (s["matched"], s["eligible"], s["already_reviewed_or_queued"]) == (24, 22, 2)
    taken = set(s["call_ids"])
    assert team3["passed"][0].id not in taken and team3["flagged"][0].id not in taken
    second = make(data_dir, people["admin"], request(mode="percent", amount=100, seed=7))
    assert not taken & set(second["summary"]["call_ids"])
    assert second["summary"]["eligible"] == 22 - 5
    assert len(db_rows(data_dir, "SELECT * FROM review_queue")) == 22


def test_filters(data_dir: Path, calls: list[StoredCall],
                 team3: dict[str, list[StoredCall]]) -> None:
    everything = preview(data_dir, sampling.PlanRequest(name="all", seed=1))
    assert everything["matched"] == 28
    by_agent = preview(data_dir, request(agent="C1", seed=1))
    assert by_agent["matched"] == 2
    by_score = preview(data_dir, request(min_score=90, max_score=99, seed=1))
    assert by_score["matched"] == 11  # ten pace calls at 97, the forbidden_words one at 90
    by_duration = preview(data_dir, request(min_duration=20, max_duration=25, seed=1))
    assert by_duration["matched"] == 6
    by_date = preview(data_dir, request(since="2025-10-02", until="2025-10-03", seed=1))
    assert by_date["matched"] == 2 + 5


def test_plan_pages_and_audit(client_as: ClientAs, data_dir: Path,
                              team3: dict[str, list[StoredCall]]) -> None:
    admin = client_as("admin")
    page = admin.get("/sampling").get_data(as_text=True)
    assert 'id="plan-form"' in page and 'value="ivan"' in page and 'value="iris"' in page
    form = {"name": "October T3", "team": "T3", "mode": "count", "amount": "6",
            "passed_share": "10", "quota": "3", "inspectors": ["ivan", "iris"], "seed": "99"}
    response = post_form(admin, "/sampling", {**form, "action": "preview"})
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert 'id="plan-preview"' in text and db_rows(data_dir, "SELECT * FROM sampling_plans") == []
    # A preview without a seed draws one and keeps it in the form, so that "Create" after
    # the preview takes the calls it showed.
    unseeded = post_form(admin, "/sampling", {**form, "seed": "", "action": "preview"})
    drawn = re.search(r"<code>(\d+)</code>", unseeded.get_data(as_text=True))
    assert drawn and f'name="seed" min="0" step="1" value="{drawn.group(1)}"' in (
        unseeded.get_data(as_text=True))
    response = post_form(admin, "/sampling", {**form, "action": "create"})
    assert response.status_code == 302
    plan_id = db_rows(data_dir, "SELECT id FROM sampling_plans")[0]["id"]
    assert response.headers["Location"].endswith(f"/sampling/{plan_id}")
    page = admin.get(f"/sampling/{plan_id}").get_data(as_text=True)
    assert "What it added and why" in page
    assert re.search(r'data-key="taken"><strong>6</strong>: 4 flagged, 2 random passed', page)
    assert "iris: 3" in page and "ivan: 3" in page and "<code>99</code>" in page
    assert len(re.findall(r'data-reason="random_passed"', page)) == 2
    entry = db_rows(data_dir, "SELECT * FROM audit_log WHERE action = 'sampling_plan'")
    assert len(entry) == 1 and entry[0]["username"] == "alice"
    detail = json.loads(entry[0]["detail"])
    assert (detail["plan_id"], detail["taken"], detail["seed"]) == (plan_id, 6, 99)
    assert "sampling_plan" in audit_actions(data_dir)
    # The plan list shows it; a bad form says why and queues nothing.
    assert "October T3" in admin.get("/sampling").get_data(as_text=True)
    response = post_form(admin, "/sampling", {**form, "amount": "abc", "action": "create"})
    assert response.status_code == 400 and 'id="plan-error"' in response.get_data(as_text=True)
    response = post_form(admin, "/sampling", {**form, "amount": "150", "mode": "percent"})
    assert response.status_code == 400
    assert len(db_rows(data_dir, "SELECT * FROM sampling_plans")) == 1
    assert admin.get("/sampling/999").status_code == 404


def test_only_administrators_make_plans(client_as: ClientAs,
                                        team3: dict[str, list[StoredCall]]) -> None:
    for role in ("inspector", "supervisor", "viewer"):
        client = client_as(role)
        assert client.get("/sampling").status_code == 403
        assert post_form(client, "/sampling", {"name": "x", "amount": "1"}).status_code == 403
        assert client.get("/sampling/1").status_code == 403
