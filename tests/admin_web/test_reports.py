"""Quality reports: figures against hand-computed ones, supervisors' scope, CSV exports.

The stock calls (conftest) fall in the week of Monday 2025-09-01:

    T1/A01 09-03  forbidden_words (A, -10), complaint_risk (A, alert only), insult (A, fatal)
                  -> 0, failed; A/B/C counted: A 2 (the alert-only finding is not a problem)
    T1/A02 09-04  forbidden_words (A, -10), greeting (B, -5), closing (C, -5), dead_air (B, -5)
                  -> 75, failed; A 1, B 2, C 1
    T2/A05 09-05  pace (C, -3) -> 97, passed; C 1
    T2/A06 09-06  nothing -> 100, passed

so the week has 4 calls, 2 passed (50%), an average of (0 + 75 + 97 + 100) / 4 = 68, and
A 3, B 2, C 2. The tests add one call to the week before (T1/A01 on 08-28, greeting only:
95, passed) for the trend.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin_web import report_data, site_db
from tests.admin_web.conftest import StoredCall, store_call
from tests.admin_web.review_util import Panel, audit_actions, db_rows, seq_of

ClientAs = Callable[[str], FlaskClient]
WEEK = "period=week&date=2025-09-03"


@pytest.fixture
def earlier(data_dir: Path, calls: list[StoredCall]) -> StoredCall:
    """One call in the week before the stock calls' week."""
    return store_call(data_dir, agent="A01", team="T1", started="2025-08-28T10:00:00+08:00",
                      findings=[("greeting", "agent", 0.0, 15.0, "missing: 您好")])


def figures(data_dir: Path, level: str, team: str | None = None, agent: str | None = None,
            team_scope: str | None = None, first: str = "2025-09-01",
            last: str = "2025-09-07") -> dict[str, Any]:
    site_db.prepare(data_dir)
    conn = site_db.connect(data_dir)
    try:
        scope = report_data.Scope(level, team, agent, team_scope)
        period = report_data.Period("week", dt.date.fromisoformat(first),
                                    dt.date.fromisoformat(last))
        return report_data.report(conn, scope, period)
    finally:
        conn.close()


def chart_data(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page,
                      re.S)
    assert match, "no chart data on the page"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def kpi(page: str, kpi_id: str) -> str:
    match = re.search(rf'id="{kpi_id}">.*?class="kpi-value"[^>]*data-value="([^"]*)"', page,
                      re.S)
    assert match, kpi_id
    return match.group(1)


def read_csv(response: Any) -> list[list[str]]:
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8")[1:])))


def test_periods() -> None:
    day = dt.date(2025, 9, 3)  # a Wednesday
    assert report_data.make_period("day", day) == report_data.Period("day", day, day)
    week = report_data.make_period("week", day)
    assert (week.first, week.last, week.days) == (dt.date(2025, 9, 1), dt.date(2025, 9, 7), 7)
    month = report_data.make_period("month", day)
    assert (month.first, month.last) == (dt.date(2025, 9, 1), dt.date(2025, 9, 30))
    assert (month.previous().first, month.previous().last) == (dt.date(2025, 8, 2),
                                                               dt.date(2025, 8, 31))
    custom = report_data.make_period("custom", day, dt.date(2025, 9, 10), dt.date(2025, 9, 5))
    assert (custom.first, custom.last, custom.days) == (dt.date(2025, 9, 5),
                                                        dt.date(2025, 9, 10), 6)
    long = report_data.make_period("custom", day, dt.date(2020, 1, 1), dt.date(2025, 9, 5))
    assert long.days == report_data.MAX_PERIOD_DAYS
    # a day in UTC+8, as UTC instants
    assert week.instants() == ("2025-08-31 16:00:00", "2025-09-07 16:00:00")


def test_center_week_figures(data_dir: Path, earlier: StoredCall) -> None:
    f = figures(data_dir, "center")
    s = f["summary"]
    assert (s["calls"], s["passed"], s["fatal"]) == (4, 2, 1)
    assert s["pass_rate"] == 0.5 and s["avg_score"] == 68.0
    assert s["abc"] == {"A": 3, "B": 2, "C": 2}
    p = f["prev_summary"]
    assert (p["calls"], p["pass_rate"], p["avg_score"], p["abc"]) == (
        1, 1.0, 95.0, {"A": 0, "B": 1, "C": 0})
    assert f["changes"] == {"calls": 3, "pass_rate": -0.5, "avg_score": -27.0,
                            "final_pass_rate": -0.5}
    assert f["abc_changes"] == {"A": 3, "B": 1, "C": 2}

    items = {i["item_id"]: i for i in f["items"]}
    assert f["items"][0]["item_id"] == "forbidden_words"
    fw = items["forbidden_words"]
    assert (fw["hits"], fw["calls"], fw["agents"], fw["counted"], fw["prev_hits"]) == (
        2, 2, 2, 2, 0)
    assert fw["call_share"] == 0.5 and fw["name"] == "服务禁语"
    assert items["complaint_risk"]["counted"] == 0  # alert only: not an A problem
    assert items["insult"]["counted"] == 1  # fatal
    assert items["greeting"]["prev_hits"] == 1

    # T1 has two agents and both said a forbidden word: common; the rest is individual.
    assert [(c["team"], c["item_id"], c["agents"], c["team_agents"], c["share"])
            for c in f["common"]] == [("T1", "forbidden_words", 2, 2, 1.0)]
    assert f["common"][0]["prev_share"] is None  # A01 alone last week never said one
    # T2's pace fired for 1 of 2 agents (50 %): above the share, below the agent minimum.
    assert sorted((i["team"], i["agent"], i["item_id"]) for i in f["individual"]) == [
        ("T1", "A01", "complaint_risk"), ("T1", "A01", "insult"),
        ("T1", "A02", "closing"), ("T1", "A02", "dead_air"), ("T1", "A02", "greeting"),
        ("T2", "A05", "pace")]

    assert f["group_kind"] == "team"
    groups = {g["key"]: g for g in f["groups"]}
    assert (groups["T1"]["calls"], groups["T1"]["pass_rate"], groups["T1"]["avg_score"]) == (
        2, 0.0, 37.5)
    assert groups["T1"]["abc"] == {"A": 3, "B": 2, "C": 1}
    assert groups["T1"]["pass_rate_change"] == -1.0
    assert (groups["T2"]["avg_score"], groups["T2"]["pass_rate_change"]) == (98.5, None)

    heat = f["heatmap"]
    assert heat["rows"] == ["T1", "T2"]
    assert heat["column_ids"][0] == "forbidden_words"
    cells = {(heat["rows"][y], heat["column_ids"][x]): v for x, y, v in heat["cells"]}
    assert cells[("T1", "forbidden_words")] == 100.0
    assert cells[("T2", "pace")] == 50.0 and cells[("T2", "forbidden_words")] == 0.0

    daily = {d["day"]: d for d in f["daily"]}
    assert len(daily) == 14 and f["daily"][0]["day"] == "2025-08-25"
    assert (daily["2025-09-03"]["calls"], daily["2025-09-03"]["avg_score"]) == (1, 0.0)
    assert daily["2025-08-28"]["pass_rate"] == 1.0
    assert daily["2025-09-02"] == {"day": "2025-09-02", "calls": 0, "pass_rate": None,
                                   "avg_score": None}


def test_a_period_is_days_in_center_time(data_dir: Path, calls: list[StoredCall]) -> None:
    """Calls stored in UTC fall on the center's day (UTC+8), not on the stored date."""
    store_call(data_dir, agent="A06", team="T2", started="2025-08-31T16:30:00+00:00",
               findings=[])  # 2025-09-01 00:30 in the center: this week
    store_call(data_dir, agent="A06", team="T2", started="2025-09-07T17:00:00+00:00",
               findings=[])  # 2025-09-08 01:00: next week
    f = figures(data_dir, "center")
    assert f["summary"]["calls"] == 5
    assert {d["day"]: d["calls"] for d in f["daily"]}["2025-09-01"] == 1
    nxt = figures(data_dir, "center", first="2025-09-08", last="2025-09-14")
    assert nxt["summary"]["calls"] == 1 and nxt["prev_summary"]["calls"] == 5


def test_reviews_and_agreement(client_as: ClientAs, data_dir: Path,
                               calls: list[StoredCall]) -> None:
    a02 = calls[1]
    panel = Panel(client_as("inspector"), a02.id)
    greeting = seq_of(data_dir, a02.id, "greeting")
    assert panel.verdict(greeting, "rejected").status_code in (200, 302)
    assert panel.submit().status_code in (200, 302)
    f = figures(data_dir, "center")
    s = f["summary"]
    assert (s["reviewed"], s["reviewed_machine_avg"], s["reviewed_avg"]) == (1, 75.0, 80.0)
    assert (s["reviewed_machine_pass_rate"], s["reviewed_pass_rate"]) == (0.0, 1.0)
    assert s["final_pass_rate"] == 0.75 and s["pass_rate"] == 0.5
    agreement = {i["item_id"]: i for i in f["agreement"]["items"]}
    assert f["agreement"]["calls"] == 1
    assert (agreement["greeting"]["rejected"], agreement["greeting"]["confirmed"]) == (1, 0)
    assert agreement["forbidden_words"]["confirmed"] == 1
    t1 = {g["key"]: g for g in f["groups"]}["T1"]
    assert (t1["reviewed"], t1["reviewed_avg"]) == (1, 80.0)
    page = client_as("viewer").get(f"/reports?level=center&{WEEK}").get_data(as_text=True)
    assert 'data-key="reviewed_avg">80.0<' in page
    assert 'data-key="final_pass_rate">75.0%<' in page


def test_report_page(client_as: ClientAs, earlier: StoredCall) -> None:
    page = client_as("inspector").get(f"/reports?level=center&{WEEK}").get_data(as_text=True)
    assert kpi(page, "kpi-calls") == "4"
    assert kpi(page, "kpi-pass-rate") == "0.5"
    assert kpi(page, "kpi-avg-score") == "68.0"
    assert re.findall(r'data-severity="(\w)" data-value="(\d+)"', page) == [
        ("A", "3"), ("B", "2"), ("C", "2")]
    assert "2025-09-01 – 2025-09-07" in page and "2025-08-25 – 2025-08-31" in page
    assert 'id="common-rule"' in page and "30%" in page  # the threshold, explained
    data = chart_data(page)
    assert data["abc"] == {"now": {"A": 3, "B": 2, "C": 2}, "before": {"A": 0, "B": 1, "C": 0}}
    assert len(data["daily"]) == 14 and data["periodFirst"] == "2025-09-01"
    assert data["heatmap"]["rows"] == ["T1", "T2"]
    # the page draws with the vendored ECharts and its own script, no inline script
    assert "/static/vendor/echarts.min.js" in page and "/static/js/reports.js" in page
    assert not re.search(r"<script(?![^>]*(src=|application/json))", page)


def test_each_role_may_read_reports(client_as: ClientAs) -> None:
    for role in ("admin", "inspector", "supervisor", "viewer"):
        client = client_as(role)
        assert client.get(f"/reports?{WEEK}").status_code == 200, role
        assert 'id="nav-reports"' in client.get("/").get_data(as_text=True), role


def test_supervisor_sees_own_team_only(client_as: ClientAs, data_dir: Path,
                                       earlier: StoredCall) -> None:
    sam = client_as("supervisor")  # team T1
    page = sam.get(f"/reports?level=center&{WEEK}").get_data(as_text=True)
    assert 'data-level="team"' in page and "Team T1" in page
    assert kpi(page, "kpi-calls") == "2" and kpi(page, "kpi-avg-score") == "37.5"
    assert ">T2<" not in page and "A05" not in page and "A06" not in page
    assert 'value="center"' not in page  # no center report to choose
    assert chart_data(page)["abc"]["now"] == {"A": 3, "B": 2, "C": 1}
    assert sam.get(f"/reports?level=team&team=T2&{WEEK}").status_code == 403
    assert sam.get(f"/reports?level=agent&agent=A05&{WEEK}").status_code == 404
    assert sam.get(f"/reports/export.csv?level=team&team=T2&{WEEK}").status_code == 403
    # the scope is in the queries themselves: a report asked with the supervisor's scope
    # but no team still counts T1 only
    f = figures(data_dir, "center", team_scope="T1")
    assert f["summary"]["calls"] == 2 and {g["key"] for g in f["groups"]} == {"T1"}
    assert {i["item_id"] for i in f["items"]} == {
        "forbidden_words", "complaint_risk", "insult", "greeting", "closing", "dead_air"}
    assert f["heatmap"]["rows"] == ["T1"]
    assert f["prev_summary"]["calls"] == 1
    agent = sam.get(f"/reports?level=agent&agent=A02&{WEEK}")
    assert agent.status_code == 200 and kpi(agent.get_data(as_text=True), "kpi-calls") == "1"


def test_team_and_agent_reports(data_dir: Path, calls: list[StoredCall]) -> None:
    team = figures(data_dir, "team", team="T1")
    assert team["summary"]["calls"] == 2 and team["group_kind"] == "agent"
    assert [(g["key"], g["avg_score"]) for g in team["groups"]] == [("A01", 0.0), ("A02", 75.0)]
    assert team["heatmap"]["rows"] == ["A01", "A02"]
    agent = figures(data_dir, "agent", team="T1", agent="A02")
    s = agent["summary"]
    assert (s["calls"], s["avg_score"], s["abc"]) == (1, 75.0, {"A": 1, "B": 2, "C": 1})
    # forbidden_words is common in T1; the agent's report counts the agent's own finding
    assert [(c["item_id"], c["agents"], c["hits"]) for c in agent["common"]] == [
        ("forbidden_words", 2, 1)]
    assert sorted(i["item_id"] for i in agent["individual"]) == [
        "closing", "dead_air", "greeting"]
    assert agent["group_kind"] == "day"
    assert [(g["key"], g["calls"]) for g in agent["groups"]] == [("2025-09-04", 1)]
    assert agent["heatmap"] is None


def test_summary_csv(client_as: ClientAs, data_dir: Path, earlier: StoredCall) -> None:
    response = client_as("supervisor").get(f"/reports/export.csv?level=team&team=T1&{WEEK}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    table = read_csv(response)
    assert table[0][:5] == ["Agent", "Calls scored", "Passed", "Pass rate", "Average score"]
    assert table[1:] == [
        ["A01", "1", "0", "0.0%", "0.0", "0", "", "", "2", "0", "0"],
        ["A02", "1", "0", "0.0%", "75.0", "0", "", "", "1", "2", "1"],
        ["Total: T1", "2", "0", "0.0%", "37.5", "0", "", "", "3", "2", "1"],
    ]
    detail = json.loads(db_rows(data_dir, "SELECT detail FROM audit_log WHERE action ="
                                " 'export_report_csv'")[0]["detail"])
    assert detail == {"what": "summary", "level": "team", "team": "T1", "agent": None,
                      "first": "2025-09-01", "last": "2025-09-07", "rows": 3}


def test_problems_csv_is_neutralised_and_audited(client_as: ClientAs, data_dir: Path,
                                                 calls: list[StoredCall]) -> None:
    # An agent and a team whose ids a spreadsheet would run as formulas.
    for agent in ("=HYPERLINK(\"x\")", "+A1", "-2+3", "@SUM(A1)"):
        store_call(data_dir, agent=agent, team="=T9", started="2025-09-02T10:00:00+08:00",
                   findings=[("closing", "agent", 6.0, 12.0, "missing: 再见")])
    client = client_as("admin")
    table = read_csv(client.get(f"/reports/export.csv?level=center&{WEEK}&what=problems"))
    assert table[0] == ["Team", "Agent", "Rubric item", "Item name", "Severity", "Findings",
                        "Problem type"]
    rows = {(r[0], r[1], r[2]): r for r in table[1:]}
    # all four agents of '=T9' hit closing: common; the team cell is neutralised
    assert rows[("'=T9", "4 of 4 agents", "closing")][5:] == ["4", "Common"]
    assert rows[("T1", "2 of 2 agents", "forbidden_words")][5:] == ["2", "Common"]
    assert rows[("T2", "A05", "pace")][4:] == ["C", "1", "Individual"]
    summary = read_csv(client.get(f"/reports/export.csv?level=center&{WEEK}&what=summary"))
    # teams from the lowest pass rate up: T1, then '=T9' and T2 (both 100 %) by name
    assert [r[0] for r in summary[1:]] == ["T1", "'=T9", "T2", "Total: Whole center"]
    assert summary[2][:5] == ["'=T9", "4", "4", "100.0%", "95.0"]
    team = read_csv(client.get(f"/reports/export.csv?level=team&team=%3DT9&{WEEK}"))
    assert sorted(r[0] for r in team[1:-1]) == ["'+A1", "'-2+3", "'=HYPERLINK(\"x\")",
                                                "'@SUM(A1)"]
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in team for cell in r)
    assert audit_actions(data_dir).count("export_report_csv") == 3
    assert client.get(f"/reports/export.csv?{WEEK}&what=nope").status_code == 400


def test_reports_need_login(app: Flask) -> None:
    response = app.test_client().get("/reports")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_report_queries_read_the_covering_indexes(data_dir: Path,
                                                  calls: list[StoredCall]) -> None:
    """The version 5 indexes exist and the report's queries read scores through them (not
    the score rows with their JSON): benchmarks/bench_report.py measures what that saves."""
    site_db.prepare(data_dir)
    conn = site_db.connect(data_dir)
    try:
        scores_ix, findings_ix = report_data._indexes(conn)
        assert (scores_ix, findings_ix) == ("INDEXED BY scores_report",
                                            "INDEXED BY findings_report")
        scope = report_data.Scope("center")
        period = report_data.Period("week", dt.date(2025, 9, 1), dt.date(2025, 9, 7))
        where, params = scope.where(period, agent=False)
        plan = " | ".join(r[3] for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT COUNT(*), SUM(s.score) FROM cq.calls c"
            f" CROSS JOIN cq.scores s {scores_ix} ON s.call_id = c.id WHERE {where}", params))
        assert "COVERING INDEX calls_report_" in plan, plan
        assert "COVERING INDEX scores_report" in plan, plan
    finally:
        conn.close()
