"""Quality reports (质检报告): the page with its charts, and its CSV exports.

``/reports`` shows the report of the center, a team or an agent over a day, a week, a month
or a run of days (`admin_web.report_data` has the figures and what they mean). Charts are
drawn in the browser by ECharts (``static/vendor/echarts.min.js``) from a JSON block, by
``static/js/reports.js``; the tables hold the same figures for those who read rather than look.

``/reports/export.csv`` writes the report's breakdown (``what=summary``) or every team,
agent and item that fired (``what=problems``) as CSV with a byte-order mark (Excel reads the
Chinese right), with cells that a spreadsheet would run as formulas neutralised; every
export is in the audit log.

Supervisors see their own team only: a center report becomes their team's, another team's
report is refused, and every query carries their team (`report_data.Scope.team_scope`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from flask import Blueprint, Response, abort, render_template, request, url_for
from flask_babel import gettext as _

from admin_web import audit, report_data, roles
from admin_web.auth import current_user, require
from admin_web.calls import neutralise
from admin_web.db import get_conn
from admin_web.i18n import DISPLAY_TZ

bp = Blueprint("reports", __name__)


def _date_arg(name: str) -> dt.date | None:
    raw = request.args.get(name, "").strip()
    try:
        return dt.date.fromisoformat(raw) if len(raw) == 10 else None
    except ValueError:
        return None


def _resolve() -> tuple[report_data.Scope, report_data.Period, dict[str, Any]]:
    """The report asked for in the query string, within what the user may see."""
    user = current_user()
    conn = get_conn()
    team_scope = user.team_scope
    level = request.args.get("level", "")
    team = request.args.get("team", "").strip() or None
    agent = request.args.get("agent", "").strip() or None
    if level not in report_data.LEVELS:
        level = "agent" if agent else ("team" if team or team_scope else "center")
    if level == "center":
        team = agent = None
        if team_scope:  # a supervisor's center is their team
            level, team = "team", team_scope
    if level == "team":
        agent = None
        team = team or team_scope
        if team is None:
            level = "center"
        elif team_scope and team != team_scope:
            abort(403)
    if level == "agent":
        if agent is None:
            abort(400)
        team = report_data.agent_team(conn, agent, team_scope=team_scope)
        if team is None:
            abort(404)

    kind = request.args.get("period", "")
    if kind not in report_data.PERIODS:
        kind = "week"
    anchor = (_date_arg("date") or report_data.latest_day(conn, team_scope=team_scope)
              or dt.datetime.now(DISPLAY_TZ).date())
    period = report_data.make_period(kind, anchor, _date_arg("since"), _date_arg("until"))
    scope = report_data.Scope(level=level, team=team, agent=agent, team_scope=team_scope)
    args: dict[str, Any] = {"level": level, "team": team or "", "agent": agent or "",
                            "period": kind, "date": anchor.isoformat()}
    if kind == "custom":
        args.update(since=period.first.isoformat(), until=period.last.isoformat())
    return scope, period, args


def _chart_data(figures: dict[str, Any]) -> dict[str, Any]:
    """What reports.js draws, with the labels in the user's language."""
    summary = figures["summary"]
    return {
        "daily": figures["daily"],
        "periodFirst": figures["period"].first.isoformat(),
        "abc": {"now": summary["abc"], "before": figures["prev_summary"]["abc"]},
        "heatmap": figures["heatmap"],
        "labels": {
            "passRate": _("Pass rate"), "avgScore": _("Average score"),
            "calls": _("Calls scored"), "thisPeriod": _("This period"),
            "previousPeriod": _("Previous period"), "noCalls": _("no calls"),
            "severity": {"A": _("A (serious)"), "B": _("B (major)"), "C": _("C (minor)")},
            "share": _("Share of calls with the item"),
        },
    }


@bp.route("/reports")
@require(roles.REPORTS)
def index() -> Any:
    scope, period, args = _resolve()
    conn = get_conn()
    user = current_user()
    figures = report_data.report(conn, scope, period)
    choices = report_data.teams_and_agents(conn, team_scope=user.team_scope)
    return render_template(
        "reports/index.html", figures=figures, scope=scope, args=args, choices=choices,
        chart_data=_chart_data(figures),
        common_share=report_data.COMMON_SHARE, common_min_agents=report_data.COMMON_MIN_AGENTS,
        top_items=report_data.TOP_ITEMS, individual_rows=report_data.INDIVIDUAL_ROWS,
        export_summary=url_for("reports.export_csv", **args, what="summary"),
        export_problems=url_for("reports.export_csv", **args, what="problems"),
    )


def _pct(value: float | None) -> str:
    """A ratio as a percentage text ("87.5%"), which spreadsheets read as a number."""
    return "" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> float | str:
    return "" if value is None else round(value, 2)


def _summary_rows(scope: report_data.Scope, figures: dict[str, Any]) -> list[list[Any]]:
    kind = figures["group_kind"]
    head = {"team": _("Team"), "agent": _("Agent"), "day": _("Day")}[kind]
    out: list[list[Any]] = [[head, _("Calls scored"), _("Passed"), _("Pass rate"),
                             _("Average score"), _("Reviewed"),
                             _("Machine score on reviewed calls"), _("Reviewed score"),
                             "A", "B", "C"]]

    def line(label: Any, s: dict[str, Any]) -> list[Any]:
        abc = s.get("abc", {})
        return [label, s["calls"], s.get("passed", ""), _pct(s["pass_rate"]),
                _num(s["avg_score"]), s.get("reviewed", ""),
                _num(s.get("reviewed_machine_avg")), _num(s.get("reviewed_avg")),
                abc.get("A", ""), abc.get("B", ""), abc.get("C", "")]

    for g in figures["groups"]:
        out.append(line(g["key"], g))
    total_label = {"center": _("Whole center"), "team": scope.team,
                   "agent": scope.agent}[scope.level]
    out.append(line(_("Total: %(scope)s", scope=total_label), figures["summary"]))
    return out


def _problem_rows(scope: report_data.Scope, figures: dict[str, Any]) -> list[list[Any]]:
    out: list[list[Any]] = [[_("Team"), _("Agent"), _("Rubric item"), _("Item name"),
                             _("Severity"), _("Findings"), _("Problem type")]]
    common = {(c["team"], c["item_id"]) for c in figures["common"]}
    lines: list[list[Any]] = []
    for c in figures["common"]:
        lines.append([c["team"], _("%(n)s of %(total)s agents", n=c["agents"],
                                   total=c["team_agents"]),
                      c["item_id"], c["name"], c["severity"], c["hits"], _("Common")])
    for i in figures["individual"]:
        if (i["team"], i["item_id"]) in common:
            continue
        lines.append([i["team"], i["agent"], i["item_id"], i["name"], i["severity"], i["hits"],
                      _("Individual")])
    return out + lines


@bp.route("/reports/export.csv")
@require(roles.REPORTS)
def export_csv() -> Any:
    user = current_user()
    scope, period, _args = _resolve()
    what = request.args.get("what", "summary")
    if what not in ("summary", "problems"):
        abort(400)
    conn = get_conn()
    figures = report_data.report(conn, scope, period)
    table = (_summary_rows if what == "summary" else _problem_rows)(scope, figures)
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    for line in table:
        writer.writerow([neutralise(v) for v in line])
    audit.record(conn, user.username, "export_report_csv", detail={
        "what": what, "level": scope.level, "team": scope.team, "agent": scope.agent,
        "first": period.first.isoformat(), "last": period.last.isoformat(),
        "rows": len(table) - 1,
    })
    name = "-".join(p for p in ("report", scope.team or "center", scope.agent or "",
                                period.first.isoformat(), period.last.isoformat(), what) if p)
    return Response(
        out.getvalue().encode("utf-8"), mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename={_ascii(name)}.csv"},
    )


def _ascii(name: str) -> str:
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in name)
