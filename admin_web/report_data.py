"""The figures of a quality report (质检报告): an agent, a team or the whole center, one period.

A report covers the calls *scored* in a period (a day, an ISO week, a calendar month or
any run of days, in the center's time, UTC+8) and compares them with the period of the same
number of days just before (the trend, 环比):

* calls scored, passed, the pass rate (合格率) and the average machine score;
* machine against reviewer: on the calls a reviewer scored (reviewed, appealed or final),
  the machine's average beside the reviewers', and the pass rate once reviews replace the
  machine's verdict;
* A/B/C problem counts (`cq.findings.severity`): findings that count against the agent,
  those of an item that deducts points or is fatal in the rubric version the call was scored
  with, as `core.rubric.scoring` counts them; alert-only findings are left out;
* the items that fired most, and the split into common problems (共性问题) and individual
  ones (个性问题): an item is a common problem of a team when it fired for at least
  `COMMON_SHARE` of the team's agents who took calls in the period, and for at least
  `COMMON_MIN_AGENTS` of them; otherwise it is an individual problem of each agent it fired
  for. Common problems call for team training, individual ones for coaching one agent;
* per item, a heatmap of how often it fired on the calls of each team (center report) or of
  each agent (team report), and the machine/reviewer agreement (`admin_web.agreement`).

Every query carries the user's `team_scope` (a supervisor's own team): the restriction is in
the SQL, never only in the menus.

Times: calls are stored with the offset they were recorded with (UTC from the daemon, +08:00
from some imports), so a period is compared as instants (``datetime(started_at)``, UTC),
after a range on the stored text that the ``started_at`` indexes can use (a day wider on
each side than any offset can move a time). Days of the trend are days in UTC+8.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from admin_web.agreement import REVIEWED_STATES, item_agreement
from admin_web.review_score import ScoringError, rubric_of
from admin_web.site_db import rows

# An item is a common problem (共性问题) of a team when it fired for at least this share of
# the team's agents who took calls in the period ...
COMMON_SHARE = 0.30
# ... and for at least this many of them (in a team of one or two, everything would be
# "common").
COMMON_MIN_AGENTS = 2
# How many rows the pages show of the longest lists (the CSV export has them all).
TOP_ITEMS = 15
INDIVIDUAL_ROWS = 30
HEATMAP_ITEMS = 12
MAX_PERIOD_DAYS = 366
# The trend chart shows at least this many days, ending on the period's last day.
MIN_TREND_DAYS = 14

LEVELS = ("center", "team", "agent")
PERIODS = ("day", "week", "month", "custom")
SEVERITIES = ("A", "B", "C")
CENTER_OFFSET = dt.timedelta(hours=8)
CENTER_DAY_SQL = "date(c.started_at, '+8 hours')"


@dataclass(frozen=True)
class Period:
    """Days first..last (inclusive) in the center's time."""

    kind: str
    first: dt.date
    last: dt.date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def previous(self) -> Period:
        """The period of the same number of days that ends the day before this one."""
        last = self.first - dt.timedelta(days=1)
        return Period(self.kind, last - dt.timedelta(days=self.days - 1), last)

    def instants(self) -> tuple[str, str]:
        """[since, until) in UTC, as SQLite's ``datetime()`` writes them."""
        since = dt.datetime.combine(self.first, dt.time()) - CENTER_OFFSET
        until = dt.datetime.combine(self.last + dt.timedelta(days=1), dt.time()) - CENTER_OFFSET
        return since.strftime("%Y-%m-%d %H:%M:%S"), until.strftime("%Y-%m-%d %H:%M:%S")

    def day_list(self) -> list[str]:
        return [(self.first + dt.timedelta(days=i)).isoformat() for i in range(self.days)]


def make_period(kind: str, anchor: dt.date, since: dt.date | None = None,
                until: dt.date | None = None) -> Period:
    """The period of `kind` holding `anchor` (custom: since..until, at most a year)."""
    if kind == "day":
        return Period(kind, anchor, anchor)
    if kind == "week":
        first = anchor - dt.timedelta(days=anchor.weekday())
        return Period(kind, first, first + dt.timedelta(days=6))
    if kind == "month":
        first = anchor.replace(day=1)
        nxt = (first + dt.timedelta(days=32)).replace(day=1)
        return Period(kind, first, nxt - dt.timedelta(days=1))
    first, last = since or anchor, until or since or anchor
    if last < first:
        first, last = last, first
    if (last - first).days >= MAX_PERIOD_DAYS:
        first = last - dt.timedelta(days=MAX_PERIOD_DAYS - 1)
    return Period("custom", first, last)


@dataclass(frozen=True)
class Scope:
    """Whose calls: the center, one team, or one agent (within `team`, the agent's team)."""

    level: str
    team: str | None = None
    agent: str | None = None
    team_scope: str | None = None      # the user's own restriction (a supervisor's team)

    def where(self, period: Period, *, agent: bool = True) -> tuple[str, list[Any]]:
        """SQL conditions on ``c`` (cq.calls): the period, the team scope, team and agent."""
        since, until = period.instants()
        clauses = [
            # a range the started_at indexes can use, then the exact instants
            "c.started_at >= ?", "c.started_at < ?",
            "datetime(c.started_at) >= ?", "datetime(c.started_at) < ?",
        ]
        params: list[Any] = [(period.first - dt.timedelta(days=1)).isoformat(),
                             (period.last + dt.timedelta(days=2)).isoformat(), since, until]
        for clause, value in (("c.team_id = ?", self.team_scope), ("c.team_id = ?", self.team),
                              ("c.agent_id = ?", self.agent if agent else None)):
            if value:
                clauses.append(clause)
                params.append(value)
        return " AND ".join(clauses), params


def _ratio(num: float, den: float) -> float | None:
    return None if not den else num / den


def _reviewed_sql() -> str:
    states = ", ".join(f"'{s}'" for s in REVIEWED_STATES)
    return f"r.state IN ({states}) AND r.reviewed_score IS NOT NULL"


# The covering indexes of the calls database's version 5 (`core.storage.migrations`). SQLite
# would look a score up by its primary key and read the whole row (kilobytes of JSON), so the
# queries name the index that holds what they read, when the database has it.
SCORES_INDEX = "scores_report"
FINDINGS_INDEX = "findings_report"


def _indexes(conn: sqlite3.Connection) -> tuple[str, str]:
    """``INDEXED BY`` clauses for scores and findings ('' where the index is missing)."""
    have = {r[0] for r in conn.execute(
        "SELECT name FROM cq.sqlite_master WHERE type = 'index' AND name IN (?, ?)",
        [SCORES_INDEX, FINDINGS_INDEX])}
    return (f"INDEXED BY {SCORES_INDEX}" if SCORES_INDEX in have else "",
            f"INDEXED BY {FINDINGS_INDEX}" if FINDINGS_INDEX in have else "")


def _call_rows(conn: sqlite3.Connection, scope: Scope, span: Period, scores_ix: str
               ) -> list[dict[str, Any]]:
    """Per team, agent and day of `span`: calls, passed, score sum, reviews.

    One pass over the calls of the trend, which holds the period and the one before it.
    The calls are the outer loop (CROSS JOIN), found by time or team and time; their
    scores come from the covering index.
    """
    where, params = scope.where(span, agent=False)
    reviewed = _reviewed_sql()
    return rows(
        conn,
        f"SELECT c.team_id AS team, c.agent_id AS agent, {CENTER_DAY_SQL} AS day,"
        " COUNT(*) AS calls, SUM(s.passed) AS passed, SUM(s.score) AS score_sum,"
        f" SUM(s.fatal) AS fatal, SUM({reviewed}) AS reviewed,"
        f" SUM(CASE WHEN {reviewed} THEN s.score END) AS reviewed_machine_sum,"
        f" SUM(CASE WHEN {reviewed} THEN s.passed END) AS reviewed_machine_passed,"
        f" SUM(CASE WHEN {reviewed} THEN r.reviewed_score END) AS reviewed_sum,"
        f" SUM(CASE WHEN {reviewed} THEN r.reviewed_passed END) AS reviewed_passed,"
        f" SUM(CASE WHEN {reviewed} THEN r.reviewed_passed ELSE s.passed END) AS final_passed"
        f" FROM cq.calls c CROSS JOIN cq.scores s {scores_ix} ON s.call_id = c.id"
        " LEFT JOIN call_reviews r ON r.call_id = c.id"
        f" WHERE {where} GROUP BY c.team_id, c.agent_id, day",
        params,
    )


def _finding_rows(conn: sqlite3.Connection, scope: Scope, period: Period, scores_ix: str,
                  findings_ix: str) -> list[dict[str, Any]]:
    """Per team, agent, rubric version, item and period (``now`` 1: this one, 0: the one
    before): findings, calls with the item, findings that deducted."""
    prev = period.previous()
    where, params = scope.where(Period("custom", prev.first, period.last), agent=False)
    return rows(
        conn,
        f"SELECT {CENTER_DAY_SQL} >= ? AS now, c.team_id AS team, c.agent_id AS agent,"
        " s.rubric_id, s.rubric_version, f.item_id, f.severity, COUNT(*) AS hits,"
        " COUNT(DISTINCT f.call_id) AS calls, SUM(f.deduct > 0) AS deducting"
        f" FROM cq.calls c CROSS JOIN cq.scores s {scores_ix} ON s.call_id = c.id"
        f" JOIN cq.findings f {findings_ix} ON f.call_id = c.id"
        f" WHERE {where}"
        " GROUP BY now, c.team_id, c.agent_id, s.rubric_id, s.rubric_version, f.item_id,"
        " f.severity",
        [period.first.isoformat(), *params],
    )


def _sum_days(day_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows per team, agent and day summed per team and agent."""
    out: dict[tuple[Any, Any], dict[str, Any]] = {}
    for r in day_rows:
        e = out.get((r["team"], r["agent"]))
        if e is None:
            out[(r["team"], r["agent"])] = {k: v for k, v in r.items() if k != "day"}
            continue
        for k, v in r.items():
            if k not in ("team", "agent", "day") and v is not None:
                e[k] = (e[k] or 0) + v
    return list(out.values())


class _Rubrics:
    """What each rubric version says of its items (counted as A/B/C or not, names)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._items: dict[tuple[str, int | None], dict[str, Any] | None] = {}

    def items(self, rubric_id: str, version: int | None) -> dict[str, Any] | None:
        key = (rubric_id, version)
        if key not in self._items:
            try:
                self._items[key] = {i.id: i for i in rubric_of(self.conn, rubric_id,
                                                                version).items}
            except ScoringError:
                self._items[key] = None
        return self._items[key]

    def counted(self, row: dict[str, Any]) -> int:
        """How many of the row's findings count as A/B/C problems."""
        items = self.items(row["rubric_id"], row["rubric_version"])
        item = None if items is None else items.get(row["item_id"])
        if item is None:  # rubric or item unknown: judge by what was deducted
            return int(row["deducting"] or 0)
        return int(row["hits"]) if (item.deduct > 0 or item.fatal) else 0

    def name(self, item_id: str) -> str | None:
        for items in self._items.values():
            if items and item_id in items:
                return str(items[item_id].label)
        return None


def _item_names(conn: sqlite3.Connection, rubrics: _Rubrics, ids: set[str]) -> dict[str, str]:
    names = {}
    for item_id in ids:
        name = rubrics.name(item_id)
        if name is None:
            row = conn.execute("SELECT name FROM cq.findings WHERE item_id = ? AND name <> ''"
                               " LIMIT 1", [item_id]).fetchone()
            name = row[0] if row else item_id
        names[item_id] = name
    return names


def _summary(call_rows: list[dict[str, Any]], abc: dict[str, int]) -> dict[str, Any]:
    def total(key: str) -> float:
        return float(sum((r[key] or 0) for r in call_rows))

    calls = int(total("calls"))
    reviewed = int(total("reviewed"))
    return {
        "calls": calls,
        "passed": int(total("passed")),
        "fatal": int(total("fatal")),
        "pass_rate": _ratio(total("passed"), calls),
        "avg_score": _ratio(total("score_sum"), calls),
        "reviewed": reviewed,
        "reviewed_machine_avg": _ratio(total("reviewed_machine_sum"), reviewed),
        "reviewed_avg": _ratio(total("reviewed_sum"), reviewed),
        "reviewed_machine_pass_rate": _ratio(total("reviewed_machine_passed"), reviewed),
        "reviewed_pass_rate": _ratio(total("reviewed_passed"), reviewed),
        "final_pass_rate": _ratio(total("final_passed"), calls),
        "abc": {s: int(abc.get(s, 0)) for s in SEVERITIES},
    }


class _Figures:
    """One period's rows, narrowed to the report's agent when it has one."""

    def __init__(self, scope: Scope, period: Period, day_rows: list[dict[str, Any]],
                 finding_rows: list[dict[str, Any]], rubrics: _Rubrics) -> None:
        self.period = period
        first, last = period.first.isoformat(), period.last.isoformat()
        self.all_calls = _sum_days([r for r in day_rows if first <= r["day"] <= last])
        self.all_findings = finding_rows
        for r in self.all_findings:
            r["counted"] = rubrics.counted(r)
        keep = (lambda r: r["agent"] == scope.agent) if scope.agent else (lambda r: True)
        self.calls = [r for r in self.all_calls if keep(r)]
        self.findings = [r for r in self.all_findings if keep(r)]
        abc: dict[str, int] = defaultdict(int)
        for r in self.findings:
            abc[r["severity"]] += r["counted"]
        self.summary = _summary(self.calls, abc)

    def item_hits(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        agents: dict[str, set[tuple[str | None, str | None]]] = defaultdict(set)
        for r in self.findings:
            e = out.setdefault(r["item_id"], {"item_id": r["item_id"], "severity": r["severity"],
                                              "hits": 0, "calls": 0, "counted": 0})
            e["hits"] += r["hits"]
            e["calls"] += r["calls"]
            e["counted"] += r["counted"]
            agents[r["item_id"]].add((r["team"], r["agent"]))
        for item_id, e in out.items():
            e["agents"] = len(agents[item_id])
        return out

    def team_agents(self) -> dict[str | None, set[str | None]]:
        """Each team's agents who took calls in the period (over the whole scope)."""
        out: dict[str | None, set[str | None]] = defaultdict(set)
        for r in self.all_calls:
            out[r["team"]].add(r["agent"])
        return out

    def problems(self) -> dict[tuple[str | None, str], dict[str, Any]]:
        """Per team and item: the agents it fired for, and whether it is common there."""
        team_agents = self.team_agents()
        out: dict[tuple[str | None, str], dict[str, Any]] = {}
        for r in self.all_findings:
            e = out.setdefault((r["team"], r["item_id"]), {
                "team": r["team"], "item_id": r["item_id"], "severity": r["severity"],
                "agents": set(), "hits": 0, "calls": 0, "per_agent": defaultdict(int)})
            e["agents"].add(r["agent"])
            e["hits"] += r["hits"]
            e["calls"] += r["calls"]
            e["per_agent"][r["agent"]] += r["hits"]
        for (team, _item), e in out.items():
            size = len(team_agents.get(team, ()))
            e["team_agents"] = size
            e["share"] = _ratio(len(e["agents"]), size)
            e["common"] = (len(e["agents"]) >= COMMON_MIN_AGENTS
                           and (e["share"] or 0) >= COMMON_SHARE)
        return out


def _change(now: float | None, before: float | None) -> float | None:
    return None if now is None or before is None else now - before


def _groups(scope: Scope, cur: _Figures, prev: _Figures,
            daily: dict[str, dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The breakdown table: teams (center), agents (team) or days (agent)."""
    if scope.level == "agent":
        out = []
        for day in cur.period.day_list():
            d = daily.get(day)
            if d:
                out.append({"key": day, "calls": d["calls"], "pass_rate":
                            _ratio(d["passed"], d["calls"]),
                            "avg_score": _ratio(d["score_sum"], d["calls"])})
        return "day", out
    key = "team" if scope.level == "center" else "agent"

    def by(fig: _Figures) -> dict[Any, dict[str, Any]]:
        calls: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        abc: dict[Any, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for r in fig.calls:
            calls[r[key]].append(r)
        for r in fig.findings:
            abc[r[key]][r["severity"]] += r["counted"]
        return {k: _summary(v, abc[k]) for k, v in calls.items()}

    now, before = by(cur), by(prev)
    out = []
    for k, s in now.items():
        p = before.get(k) or {}
        out.append({"key": k, **s,
                    "pass_rate_change": _change(s["pass_rate"], p.get("pass_rate")),
                    "avg_score_change": _change(s["avg_score"], p.get("avg_score"))})
    out.sort(key=lambda g: (g["pass_rate"] if g["pass_rate"] is not None else 2, str(g["key"])))
    return key, out


def report(conn: sqlite3.Connection, scope: Scope, period: Period) -> dict[str, Any]:
    """Every figure of the report, as plain dicts and lists (see the module documentation)."""
    rubrics = _Rubrics(conn)
    scores_ix, findings_ix = _indexes(conn)
    previous = period.previous()
    trend = Period("custom", min(previous.first,
                                 period.last - dt.timedelta(days=MIN_TREND_DAYS - 1)),
                   period.last)
    day_rows = _call_rows(conn, scope, trend, scores_ix)
    finding_rows = _finding_rows(conn, scope, period, scores_ix, findings_ix)
    cur = _Figures(scope, period, day_rows, [r for r in finding_rows if r["now"]], rubrics)
    prev = _Figures(scope, previous, day_rows, [r for r in finding_rows if not r["now"]],
                    rubrics)
    daily = _daily(day_rows, scope)

    items_now, items_before = cur.item_hits(), prev.item_hits()
    problems_now, problems_before = cur.problems(), prev.problems()
    names = _item_names(conn, rubrics, set(items_now) | set(items_before)
                        | {k[1] for k in problems_now})
    calls = cur.summary["calls"]
    items = []
    for item_id, e in items_now.items():
        before = items_before.get(item_id)
        items.append({**e, "name": names[item_id], "call_share": _ratio(e["calls"], calls),
                      "prev_hits": before["hits"] if before else 0})
    items.sort(key=lambda e: (-e["hits"], e["item_id"]))

    common, individual = [], []
    for (team, item_id), e in problems_now.items():
        if scope.team and team != scope.team:
            continue
        before = problems_before.get((team, item_id))
        base = {"team": team, "item_id": item_id, "name": names[item_id],
                "severity": e["severity"]}
        if e["common"]:
            if scope.agent and scope.agent not in e["agents"]:
                continue
            # an agent's report counts the agent's own findings; the agents, the team's
            hits = e["per_agent"][scope.agent] if scope.agent else e["hits"]
            common.append({**base, "agents": len(e["agents"]), "team_agents": e["team_agents"],
                           "share": e["share"], "hits": hits, "calls": e["calls"],
                           "prev_share": before["share"] if before else None,
                           "prev_common": bool(before and before["common"])})
            continue
        for agent, hits in e["per_agent"].items():
            if scope.agent and agent != scope.agent:
                continue
            individual.append({**base, "agent": agent, "hits": hits})
    common.sort(key=lambda e: (-(e["share"] or 0), -e["hits"], str(e["team"]), e["item_id"]))
    individual.sort(key=lambda e: (-e["hits"], str(e["team"]), str(e["agent"]), e["item_id"]))

    group_kind, groups = _groups(scope, cur, prev, daily)
    return {
        "period": period, "previous": previous,
        "summary": cur.summary, "prev_summary": prev.summary,
        "changes": {k: _change(cur.summary[k], prev.summary[k])
                    for k in ("calls", "pass_rate", "avg_score", "final_pass_rate")},
        "abc_changes": {s: cur.summary["abc"][s] - prev.summary["abc"][s] for s in SEVERITIES},
        "items": items, "common": common, "individual": individual,
        "group_kind": group_kind, "groups": groups,
        "heatmap": _heatmap(scope, cur, items, names),
        "daily": [_day(day, daily.get(day)) for day in trend.day_list()],
        "trend_period": trend,
        "agreement": item_agreement(conn, since=period.first.isoformat(),
                                    until=period.last.isoformat(),
                                    team=scope.team, team_scope=scope.team_scope),
    }


def _daily(day_rows: list[dict[str, Any]], scope: Scope) -> dict[str, dict[str, Any]]:
    """Calls, passed and score sum per day (of the report's agent, if it has one)."""
    out: dict[str, dict[str, Any]] = {}
    for r in day_rows:
        if scope.agent and r["agent"] != scope.agent:
            continue
        e = out.setdefault(r["day"], {"calls": 0, "passed": 0, "score_sum": 0.0})
        for k in e:
            e[k] += r[k] or 0
    return out


def _day(day: str, d: dict[str, Any] | None) -> dict[str, Any]:
    if not d:
        return {"day": day, "calls": 0, "pass_rate": None, "avg_score": None}
    return {"day": day, "calls": d["calls"], "pass_rate": _ratio(d["passed"], d["calls"]),
            "avg_score": _ratio(d["score_sum"], d["calls"])}


def _heatmap(scope: Scope, cur: _Figures, items: list[dict[str, Any]],
             names: dict[str, str]) -> dict[str, Any] | None:
    """Share of calls on which each item fired, per team (center) or agent (team)."""
    if scope.level == "agent":
        return None
    key = "team" if scope.level == "center" else "agent"
    columns = [e["item_id"] for e in items[:HEATMAP_ITEMS]]
    calls: dict[Any, int] = defaultdict(int)
    for r in cur.calls:
        calls[r[key]] += r["calls"]
    with_item: dict[tuple[Any, str], int] = defaultdict(int)
    for r in cur.findings:
        with_item[(r[key], r["item_id"])] += r["calls"]
    row_keys = sorted(calls, key=lambda k: str(k))
    cells = []
    for y, k in enumerate(row_keys):
        for x, item_id in enumerate(columns):
            share = _ratio(with_item.get((k, item_id), 0), calls[k])
            cells.append([x, y, None if share is None else round(100 * share, 1)])
    return {"kind": key, "rows": [str(k) if k is not None else "—" for k in row_keys],
            "columns": [names[i] for i in columns], "column_ids": columns, "cells": cells}


def teams_and_agents(conn: sqlite3.Connection, *, team_scope: str | None
                     ) -> dict[str, Any]:
    """The teams, and each team's agents, for the report's menus (within the user's scope)."""
    scope_sql, params = ("WHERE team_id = ?", [team_scope]) if team_scope else ("", [])
    agents: dict[str, list[str]] = defaultdict(list)
    for team, agent in conn.execute(
            f"SELECT DISTINCT team_id, agent_id FROM cq.calls {scope_sql} ORDER BY 1, 2", params):
        if team and agent:
            agents[team].append(agent)
    teams = sorted(agents)
    return {"teams": teams, "agents": dict(agents)}


def agent_team(conn: sqlite3.Connection, agent: str, *, team_scope: str | None) -> str | None:
    """The team of an agent's latest call (within the user's scope); None if there is none."""
    sql = "SELECT team_id FROM cq.calls c WHERE c.agent_id = ?"
    params: list[Any] = [agent]
    if team_scope:
        sql += " AND c.team_id = ?"
        params.append(team_scope)
    row = conn.execute(sql + " ORDER BY c.started_at DESC LIMIT 1", params).fetchone()
    return None if row is None else row[0]


def latest_day(conn: sqlite3.Connection, *, team_scope: str | None) -> dt.date | None:
    """The center day of the latest call in scope (the report's default date)."""
    sql = "SELECT c.started_at FROM cq.calls c"
    params: list[Any] = []
    if team_scope:
        sql += " WHERE c.team_id = ?"
        params.append(team_scope)
    row = conn.execute(sql + " ORDER BY c.started_at DESC LIMIT 1", params).fetchone()
    if row is None:
        return None
    when = dt.datetime.fromisoformat(row[0])
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (when.astimezone(dt.UTC) + CENTER_OFFSET).date()
