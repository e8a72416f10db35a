"""The review queue: the calls an inspector should listen to next, riskiest first.

A call is in the queue while its review state is 'scored' or 'in_review' and

* the machine flagged it: it failed, a fatal item fired, or it has alert findings; or
* a sampling plan put it there (a row in ``review_queue``, with the plan, the reason and
  the inspector it is assigned to).

Order, riskiest first (each key breaks the ties of the one before):

1. calls where a fatal item fired;
2. the lowest machine score;
3. the most alert findings (complaint-risk and the other alert items);
4. the least sure finding: each finding's stored confidence (core.rubric.confidence: the
   line's ASR confidence, how its phrase matched, its margin past the threshold), the call
   counting with its least confident one (none stored: after those that have one). A doubtful
   finding is the likeliest to be wrong, and the one a person should hear first;
5. the lowest ASR confidence behind a finding: for each finding, the utterances whose time
   overlaps the finding's span; confidence = exp(avg_logprob) of such an utterance, and the
   call counts with its least confident one (no such utterance: after those that have one);
6. the oldest call first, then the call id.

Each row says why the call is there (`reasons`) and carries its risk factors, so the page
can show both.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from admin_web.site_db import rows
from core.calls import asr_confidence

PAGE_SIZE = 50

# The lowest avg_logprob of an utterance overlapping one of the call's findings.
MIN_LOGPROB_SQL = (
    "(SELECT MIN(u.avg_logprob) FROM cq.findings f JOIN cq.utterances u"
    " ON u.call_id = f.call_id AND u.start_s <= f.end_s AND u.end_s >= f.start_s"
    " WHERE f.call_id = c.id AND u.avg_logprob IS NOT NULL)"
)
ALERTS_SQL = "(SELECT COUNT(*) FROM cq.findings f WHERE f.call_id = c.id AND f.alert = 1)"
MIN_FINDING_CONFIDENCE_SQL = "(SELECT MIN(f.confidence) FROM cq.findings f WHERE f.call_id = c.id)"
RISK_ORDER_SQL = (
    "s.fatal DESC, s.score ASC, alerts DESC, min_finding_confidence ASC NULLS LAST,"
    " min_logprob ASC NULLS LAST, c.started_at ASC, c.id"
)
RISK_COLUMNS_SQL = (
    "c.id, c.started_at, c.duration_s, c.agent_id, c.team_id, s.score, s.passed, s.fatal,"
    f" {ALERTS_SQL} AS alerts, {MIN_FINDING_CONFIDENCE_SQL} AS min_finding_confidence,"
    f" {MIN_LOGPROB_SQL} AS min_logprob"
)


@dataclass(frozen=True)
class QueueFilter:
    mine: str | None = None          # a username: only calls assigned to or reviewed by them
    team_scope: str | None = None    # a supervisor's team (the queue is not theirs, but still)


def confidence(min_logprob: float | None) -> float | None:
    """ASR confidence of an utterance from its average log-probability."""
    return asr_confidence(None if min_logprob is None else float(min_logprob))


def _reasons(row: dict[str, Any]) -> list[str]:
    out = []
    if row["fatal"]:
        out.append("fatal")
    elif not row["passed"]:
        out.append("failed")
    if row["alerts"]:
        out.append("alerts")
    if row["plan_id"] is not None:
        out.append("plan")
    return out


def queue(conn: sqlite3.Connection, flt: QueueFilter, page: int = 1,
          page_size: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], int]:
    """One page of the queue in risk order, and how many calls are in it."""
    clauses = [
        "COALESCE(r.state, 'scored') IN ('scored', 'in_review')",
        f"(s.passed = 0 OR s.fatal = 1 OR {ALERTS_SQL} > 0 OR q.call_id IS NOT NULL)",
    ]
    params: list[Any] = []
    if flt.team_scope is not None:
        clauses.append("c.team_id = ?")
        params.append(flt.team_scope)
    if flt.mine:
        clauses.append("(q.assigned_to = ? OR r.reviewer = ?)")
        params.extend([flt.mine, flt.mine])
    base = (
        " FROM cq.calls c JOIN cq.scores s ON s.call_id = c.id"
        " LEFT JOIN call_reviews r ON r.call_id = c.id"
        " LEFT JOIN review_queue q ON q.call_id = c.id"
        " LEFT JOIN sampling_plans p ON p.id = q.plan_id"
        " WHERE " + " AND ".join(clauses)
    )
    total = int(conn.execute("SELECT COUNT(*)" + base, params).fetchone()[0])
    page = max(1, page)
    found = rows(
        conn,
        f"SELECT {RISK_COLUMNS_SQL}, COALESCE(r.state, 'scored') AS state, r.reviewer,"
        " q.plan_id, q.reason AS plan_reason, q.assigned_to, p.name AS plan_name"
        + base + f" ORDER BY {RISK_ORDER_SQL} LIMIT ? OFFSET ?",
        [*params, page_size, (page - 1) * page_size],
    )
    for row in found:
        row["fatal"] = bool(row["fatal"])
        row["passed"] = bool(row["passed"])
        row["confidence"] = confidence(row["min_logprob"])
        row["reasons"] = _reasons(row)
    return found, total
