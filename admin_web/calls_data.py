"""Reading stored calls for the site, always within the user's scope.

Every function takes `team_scope`: None for users who may see every team, or the one team
a supervisor may see. It is a required keyword, so no query can forget it; the team
restriction is part of the SQL, not of the menu.

The calls live in the read-only attached ``cq`` schema (see `admin_web.site_db`); the review
state comes from the site's own ``call_reviews`` (a call without a row is 'scored').
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from admin_web.site_db import one, rows

PAGE_SIZE = 25
SORTS = {
    "started": "c.started_at",
    "score": "s.score",
    "duration": "c.duration_s",
    "agent": "c.agent_id",
    "team": "c.team_id",
}
REVIEW_STATE_SQL = "COALESCE(r.state, 'scored')"


@dataclass
class CallFilter:
    """The call list's filters, as given in the query string (all optional)."""

    since: str | None = None        # YYYY-MM-DD, inclusive (center time)
    until: str | None = None        # YYYY-MM-DD, inclusive
    agent: str | None = None
    team: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    result: str | None = None       # 'passed' | 'failed'
    item: str | None = None         # a rubric item that fired
    state: str | None = None        # review state
    source: str | None = None
    call_ids: list[str] = field(default_factory=list)

    def where(self, team_scope: str | None) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if team_scope is not None:
            clauses.append("c.team_id = ?")
            params.append(team_scope)
        if self.since:
            clauses.append("c.started_at >= ?")
            params.append(f"{self.since}T00:00:00+08:00")
        if self.until:
            clauses.append("c.started_at <= ?")
            params.append(f"{self.until}T23:59:59+08:00")
        for clause, value in (
            ("c.agent_id = ?", self.agent),
            ("c.team_id = ?", self.team),
            ("s.score >= ?", self.min_score),
            ("s.score <= ?", self.max_score),
            ("c.source = ?", self.source),
            (f"{REVIEW_STATE_SQL} = ?", self.state),
        ):
            if value not in (None, ""):
                clauses.append(clause)
                params.append(value)
        if self.result == "passed":
            clauses.append("s.passed = 1")
        elif self.result == "failed":
            clauses.append("s.passed = 0")
        if self.item:
            clauses.append("EXISTS (SELECT 1 FROM cq.findings f WHERE f.call_id = c.id"
                           " AND f.item_id = ?)")
            params.append(self.item)
        if self.call_ids:
            clauses.append(f"c.id IN ({','.join('?' * len(self.call_ids))})")
            params.extend(self.call_ids)
        return clauses, params


FROM_CALLS = (
    " FROM cq.calls c LEFT JOIN cq.scores s ON s.call_id = c.id"
    " LEFT JOIN call_reviews r ON r.call_id = c.id"
)


def list_calls(conn: sqlite3.Connection, flt: CallFilter, *, team_scope: str | None,
               sort: str = "started", descending: bool = True, page: int = 1,
               page_size: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], int]:
    """One page of calls and the number of calls that match."""
    clauses, params = flt.where(team_scope)
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    total = conn.execute("SELECT COUNT(*)" + FROM_CALLS + where, params).fetchone()[0]
    order = SORTS.get(sort, SORTS["started"])
    direction = "DESC" if descending else "ASC"
    page = max(1, page)
    sql = (
        "SELECT c.id, c.started_at, c.duration_s, c.agent_id, c.team_id, c.source, c.status,"
        " c.language, s.score, s.passed, s.fatal, s.rubric_id,"
        f" {REVIEW_STATE_SQL} AS review_state, r.reviewed_score,"
        " (SELECT COUNT(*) FROM cq.findings f WHERE f.call_id = c.id) AS findings,"
        " (SELECT COUNT(*) FROM cq.findings f WHERE f.call_id = c.id AND f.alert = 1) AS alerts"
        + FROM_CALLS + where
        + f" ORDER BY {order} {direction} NULLS LAST, c.id {direction} LIMIT ? OFFSET ?"
    )
    page_rows = rows(conn, sql, [*params, page_size, (page - 1) * page_size])
    return page_rows, int(total)


def filter_choices(conn: sqlite3.Connection, *, team_scope: str | None) -> dict[str, list[str]]:
    """The agents, teams, sources and fired items there are, for the filter menus."""
    scope_sql, scope_params = ("WHERE c.team_id = ?", [team_scope]) if team_scope else ("", [])
    def column(sql: str) -> list[str]:
        return [r[0] for r in conn.execute(sql, scope_params) if r[0]]
    return {
        "agents": column(f"SELECT DISTINCT c.agent_id FROM cq.calls c {scope_sql} ORDER BY 1"),
        "teams": column(f"SELECT DISTINCT c.team_id FROM cq.calls c {scope_sql} ORDER BY 1"),
        "sources": column(f"SELECT DISTINCT c.source FROM cq.calls c {scope_sql} ORDER BY 1"),
        "items": column(
            "SELECT DISTINCT f.item_id FROM cq.findings f JOIN cq.calls c ON c.id = f.call_id "
            f"{scope_sql} ORDER BY 1"
        ),
    }


def item_names(conn: sqlite3.Connection) -> dict[str, str]:
    """Each rubric item's display name, as its findings were stored."""
    return {r[0]: r[1] for r in conn.execute(
        "SELECT item_id, MAX(name) FROM cq.findings GROUP BY item_id") if r[1]}


def get_call(conn: sqlite3.Connection, call_id: str, *, team_scope: str | None
             ) -> dict[str, Any] | None:
    """One call with its score, legs, findings (each with its ``seq``) and utterances.

    None when it does not exist or lies outside `team_scope`.
    """
    clauses, params = CallFilter(call_ids=[call_id]).where(team_scope)
    call = one(
        conn,
        "SELECT c.*, s.score, s.passed, s.fatal, s.deducted, s.rubric_id, s.rubric_version,"
        " s.category_scores, s.scoring, s.metrics, s.scored_at,"
        f" {REVIEW_STATE_SQL} AS review_state, r.reviewer, r.round AS review_round,"
        " r.reviewed_score, r.reviewed_passed, r.comment AS review_comment"
        + FROM_CALLS + " WHERE " + " AND ".join(clauses),
        params,
    )
    if call is None:
        return None
    for key in ("meta", "category_scores", "scoring", "metrics"):
        call[key] = json.loads(call.get(key) or "{}")
    call["legs"] = rows(conn, "SELECT * FROM cq.legs WHERE call_id = ? ORDER BY speaker",
                        [call_id])
    call["findings"] = rows(
        conn,
        "SELECT seq, item_id, name, kind, category, speaker, severity, deduct, start_s, end_s,"
        " evidence, alert, detail, confidence FROM cq.findings WHERE call_id = ?"
        " ORDER BY start_s, seq",
        [call_id],
    )
    for f in call["findings"]:
        f["alert"] = bool(f["alert"])
        f["detail"] = json.loads(f["detail"] or "{}")
    call["utterances"] = rows(
        conn,
        "SELECT seq, speaker, start_s, end_s, text, level_db, voiced_s, pitch_hz, rate_per_min,"
        " avg_logprob, no_speech_prob, decoded_text FROM cq.utterances WHERE call_id = ?"
        " ORDER BY start_s, seq",
        [call_id],
    )
    return call


def call_in_scope(conn: sqlite3.Connection, call_id: str, *, team_scope: str | None
                  ) -> dict[str, Any] | None:
    """The call's row (id, team, recording path, status) if the user may see it."""
    clauses, params = CallFilter(call_ids=[call_id]).where(team_scope)
    return one(conn, "SELECT c.id, c.team_id, c.agent_id, c.recording_path, c.status,"
               " c.meta, c.duration_s, c.started_at, s.score, s.passed"
               + FROM_CALLS + " WHERE " + " AND ".join(clauses), params)


def rubric_yaml(conn: sqlite3.Connection, rubric_id: str | None, version: int | None
                ) -> str | None:
    """The text of the rubric version a call was scored with, if it is stored."""
    if not rubric_id or version is None:
        return None
    row = one(conn, "SELECT yaml FROM cq.rubric_versions WHERE rubric_id = ? AND version = ?",
              [rubric_id, version])
    return None if row is None else str(row["yaml"])
