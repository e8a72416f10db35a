"""Sampling plans (抽检计划): an administrator puts calls in front of the inspectors.

A plan selects calls by filter (team, agent, machine score range, duration range, date
range). Only calls that nobody has reviewed and that no plan queued yet are eligible; they
fall in two groups:

* flagged: the machine failed them, a fatal item fired, or they have alert findings;
* passed: the machine passed them without an alert. Its misses hide here, so a random share
  of them (`passed_share`, at least one call when there is any) is always taken.

The plan's amount (a percentage of the eligible calls, or a count) is what it takes in all:
the random passed share first, then flagged calls in risk order (`admin_web.review_queue`),
then more random passed calls if the flagged ones run out. With a quota per inspector, the
calls are assigned round-robin to the chosen inspectors, each up to the quota counting the
calls already assigned to them and still open; what does not fit is not taken (the flagged
calls go first, the passed share last).

Randomness comes from ``random.Random(seed)`` alone, over candidates in a fixed order, and
the seed is stored in the plan's summary: the same seed over the same calls takes the same
calls. The summary (JSON) says how many calls matched, how many were eligible, how many
were taken as flagged and as random passed, and how many each inspector got.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from flask_babel import gettext as _

from admin_web import audit
from admin_web.calls_data import FROM_CALLS, CallFilter
from admin_web.review_queue import RISK_COLUMNS_SQL, RISK_ORDER_SQL
from admin_web.site_db import one, rows, write
from admin_web.users import User
from core import clock

MODES = ("percent", "count")
DEFAULT_PASSED_SHARE = 0.10


class PlanError(ValueError):
    """The plan cannot be made as asked; the message says why."""


@dataclass
class PlanRequest:
    name: str
    mode: str = "percent"
    amount: float = 10.0
    passed_share: float = DEFAULT_PASSED_SHARE     # a fraction, 0 < share <= 1
    quota: int | None = None                       # calls per inspector, open ones counted
    inspectors: list[str] = field(default_factory=list)
    seed: int | None = None
    team: str | None = None
    agent: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    since: str | None = None                        # YYYY-MM-DD, center time
    until: str | None = None

    def filter_dict(self) -> dict[str, Any]:
        keys = ("team", "agent", "min_score", "max_score", "min_duration", "max_duration",
                "since", "until")
        return {k: v for k, v in asdict(self).items() if k in keys and v not in (None, "")}


@dataclass
class Selection:
    """What a plan takes: the calls with their reason and inspector, and the summary."""

    taken: list[dict[str, Any]]
    summary: dict[str, Any]


def check(req: PlanRequest) -> None:
    if not req.name.strip() or len(req.name) > 100:
        raise PlanError(_("A plan needs a name of 1 to 100 characters."))
    if req.mode not in MODES:
        raise PlanError(_("The amount is a percentage or a count."))
    if req.mode == "percent" and not 0 < req.amount <= 100:
        raise PlanError(_("A percentage is more than 0 and at most 100."))
    if req.mode == "count" and (req.amount < 1 or not float(req.amount).is_integer()):
        raise PlanError(_("A count is a whole number of at least 1."))
    if not 0 < req.passed_share <= 1:
        raise PlanError(_("The share of passed calls is more than 0 and at most 100 percent."))
    if req.quota is not None and req.quota < 1:
        raise PlanError(_("A quota is at least 1 call per inspector."))
    if req.quota is not None and not req.inspectors:
        raise PlanError(_("A quota needs at least one inspector."))
    for lo, hi in ((req.min_score, req.max_score), (req.min_duration, req.max_duration)):
        if lo is not None and hi is not None and lo > hi:
            raise PlanError(_("A range's lower end is above its upper end."))


def inspectors(conn: sqlite3.Connection) -> list[str]:
    """The inspectors a plan can assign calls to (enabled accounts)."""
    return [r["username"] for r in rows(
        conn, "SELECT username FROM users WHERE role = 'inspector' AND disabled = 0"
        " ORDER BY username")]


def open_assignments(conn: sqlite3.Connection, names: list[str]) -> dict[str, int]:
    """Calls already assigned to each inspector and not yet reviewed."""
    counts = dict.fromkeys(names, 0)
    for r in rows(conn, "SELECT q.assigned_to, COUNT(*) AS n FROM review_queue q"
                  " LEFT JOIN call_reviews r ON r.call_id = q.call_id"
                  " WHERE COALESCE(r.state, 'scored') IN ('scored', 'in_review')"
                  " AND q.assigned_to IS NOT NULL GROUP BY q.assigned_to"):
        if r["assigned_to"] in counts:
            counts[r["assigned_to"]] = int(r["n"])
    return counts


def _matching(conn: sqlite3.Connection, req: PlanRequest) -> tuple[list[dict[str, Any]], int]:
    """Eligible calls in risk order, and how many calls matched the filter at all."""
    flt = CallFilter(since=req.since, until=req.until, agent=req.agent, team=req.team,
                     min_score=req.min_score, max_score=req.max_score)
    clauses, params = flt.where(None)
    clauses.append("s.call_id IS NOT NULL")
    for clause, value in (("c.duration_s >= ?", req.min_duration),
                          ("c.duration_s <= ?", req.max_duration)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    where = " WHERE " + " AND ".join(clauses)
    matched = int(conn.execute("SELECT COUNT(*)" + FROM_CALLS + where, params).fetchone()[0])
    eligible = rows(
        conn,
        f"SELECT {RISK_COLUMNS_SQL}" + FROM_CALLS + where
        + " AND COALESCE(r.state, 'scored') = 'scored'"
        " AND NOT EXISTS (SELECT 1 FROM review_queue q WHERE q.call_id = c.id)"
        + f" ORDER BY {RISK_ORDER_SQL}",
        params,
    )
    return eligible, matched


def _is_flagged(row: dict[str, Any]) -> bool:
    return bool(row["fatal"]) or not row["passed"] or int(row["alerts"]) > 0


def select(eligible: list[dict[str, Any]], matched: int, req: PlanRequest, seed: int,
           open_counts: dict[str, int]) -> Selection:
    """The plan's choice among `eligible` (in risk order); a pure function of its inputs."""
    flagged = [r for r in eligible if _is_flagged(r)]
    passed = sorted((r for r in eligible if not _is_flagged(r)), key=lambda r: r["id"])
    if req.mode == "percent":
        target = math.ceil(req.amount / 100.0 * len(eligible) - 1e-9)
    else:
        target = int(req.amount)
    target = min(target, len(eligible))
    share = min(len(passed), max(1, round(req.passed_share * len(passed)))) if passed else 0
    n_flagged = min(len(flagged), max(0, target - share))
    extra = min(len(passed) - share, max(0, target - share - n_flagged))
    names = sorted(req.inspectors)
    room = {n: max(0, (req.quota or 0) - open_counts.get(n, 0)) for n in names}
    capped = False
    if req.quota is not None:
        cap = sum(room.values())
        if share + n_flagged + extra > cap:
            # The quota cuts the extra passed calls first, then flagged ones, the share last.
            capped = True
            share = min(share, cap)
            n_flagged = min(n_flagged, cap - share)
            extra = min(extra, cap - share - n_flagged)
    n_passed = share + extra
    rng = random.Random(seed)
    passed_pick = rng.sample(passed, n_passed) if n_passed else []
    chosen = [(r, "flagged") for r in flagged[:n_flagged]]
    chosen += [(r, "random_passed") for r in sorted(passed_pick, key=lambda r: r["id"])]
    per_inspector = dict.fromkeys(names, 0)
    taken = []
    turn = 0
    for row, reason in chosen:
        assignee = None
        if names:
            for _attempt in range(len(names)):
                candidate = names[turn % len(names)]
                turn += 1
                if req.quota is None or per_inspector[candidate] < room[candidate]:
                    assignee = candidate
                    break
        if assignee is not None:
            per_inspector[assignee] += 1
        taken.append({"call_id": row["id"], "reason": reason, "assigned_to": assignee,
                      "score": row["score"], "agent_id": row["agent_id"],
                      "team_id": row["team_id"]})
    summary = {
        "seed": seed, "matched": matched, "eligible": len(eligible),
        "already_reviewed_or_queued": matched - len(eligible),
        "eligible_flagged": len(flagged), "eligible_passed": len(passed),
        "mode": req.mode, "amount": req.amount, "target": target,
        "passed_share": req.passed_share, "quota": req.quota, "capped_by_quota": capped,
        "taken": len(taken), "taken_flagged": n_flagged, "taken_passed": n_passed,
        "per_inspector": per_inspector,
        "unassigned": sum(1 for t in taken if t["assigned_to"] is None),
        "call_ids": [t["call_id"] for t in taken],
    }
    return Selection(taken, summary)


def preview(conn: sqlite3.Connection, req: PlanRequest) -> Selection:
    """What the plan would take now, without taking it."""
    check(req)
    seed = req.seed if req.seed is not None else secrets.randbelow(2**31)
    eligible, matched = _matching(conn, req)
    return select(eligible, matched, req, seed, open_assignments(conn, req.inspectors))


def create_plan(conn: sqlite3.Connection, req: PlanRequest, user: User) -> int:
    """Make the plan and queue its calls, all in one transaction; returns the plan's id."""
    check(req)
    known = set(inspectors(conn))
    unknown = [n for n in req.inspectors if n not in known]
    if unknown:
        raise PlanError(_("Not an inspector: %(names)s", names=", ".join(unknown)))
    seed = req.seed if req.seed is not None else secrets.randbelow(2**31)
    with write(conn):
        eligible, matched = _matching(conn, req)
        sel = select(eligible, matched, req, seed, open_assignments(conn, req.inspectors))
        now = clock.utc_now_iso()
        cur = conn.execute(
            "INSERT INTO sampling_plans (name, created_by, created_at, filter, mode, amount,"
            " passed_share, quota_per_inspector, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [req.name.strip(), user.username, now,
             json.dumps(req.filter_dict(), ensure_ascii=False), req.mode, req.amount,
             req.passed_share, req.quota, json.dumps(sel.summary, ensure_ascii=False)],
        )
        plan_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO review_queue (call_id, plan_id, reason, assigned_to, added_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(t["call_id"], plan_id, t["reason"], t["assigned_to"], now) for t in sel.taken],
        )
        detail = {k: v for k, v in sel.summary.items() if k != "call_ids"}
        audit.record(conn, user.username, "sampling_plan", None,
                     {"plan_id": plan_id, "name": req.name.strip(),
                      "filter": req.filter_dict(), **detail})
    return plan_id


def _plan(row: dict[str, Any]) -> dict[str, Any]:
    row["filter"] = json.loads(row["filter"] or "{}")
    row["summary"] = json.loads(row["summary"] or "{}")
    return row


def list_plans(conn: sqlite3.Connection, limit: int = 100) -> list[dict[str, Any]]:
    return [_plan(r) for r in rows(conn, "SELECT * FROM sampling_plans ORDER BY id DESC"
                                   " LIMIT ?", [limit])]


def get_plan(conn: sqlite3.Connection, plan_id: int) -> dict[str, Any] | None:
    row = one(conn, "SELECT * FROM sampling_plans WHERE id = ?", [plan_id])
    if row is None:
        return None
    plan = _plan(row)
    plan["calls"] = rows(
        conn,
        "SELECT q.call_id, q.reason, q.assigned_to, c.started_at, c.agent_id, c.team_id,"
        " s.score, s.passed, s.fatal, COALESCE(r.state, 'scored') AS state, r.reviewer"
        " FROM review_queue q LEFT JOIN cq.calls c ON c.id = q.call_id"
        " LEFT JOIN cq.scores s ON s.call_id = q.call_id"
        " LEFT JOIN call_reviews r ON r.call_id = q.call_id"
        " WHERE q.plan_id = ? ORDER BY q.reason, s.score, q.call_id",
        [plan_id],
    )
    return plan

