"""Agreement (一致性) between the machine and the reviewers, per rubric item.

Over every reviewed call (state reviewed, appealed or final), optionally limited to a date
range and a team, for each rubric item:

* confirmed: machine findings a reviewer confirmed (a decision on appeal counts as the last
  word: it rewrites the verdict);
* rejected: machine findings a reviewer rejected (false alarms);
* added: findings the machine missed and a reviewer added (and did not take back);
* precision (准确率) = confirmed / (confirmed + rejected): how often the machine is right
  when it fires;
* recall estimate = confirmed / (confirmed + added): how much of what the reviewers found
  the machine found too. It is an estimate: reviewers only add what they notice, on the
  calls they review.

`item_agreement` returns plain dicts and lists, for the agreement page and for reports.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from admin_web.review_score import ScoringError, rubric_of
from admin_web.site_db import rows

REVIEWED_STATES = ("reviewed", "appealed", "final")


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def _scope(since: str | None, until: str | None, team: str | None,
           team_scope: str | None) -> tuple[str, list[Any]]:
    """SQL conditions on calls ``c`` joined with their review ``r``."""
    clauses = [f"r.state IN ({', '.join('?' * len(REVIEWED_STATES))})"]
    params: list[Any] = list(REVIEWED_STATES)
    for clause, value in (("c.team_id = ?", team_scope), ("c.team_id = ?", team),
                          ("c.started_at >= ?", since and f"{since}T00:00:00+08:00"),
                          ("c.started_at <= ?", until and f"{until}T23:59:59+08:00")):
        if value:
            clauses.append(clause)
            params.append(value)
    return " AND ".join(clauses), params


def _names(conn: sqlite3.Connection, where: str, params: list[Any]) -> dict[str, str]:
    """Item names from the rubrics of the calls counted, then from the findings stored."""
    names: dict[str, str] = {}
    for r in rows(conn, "SELECT DISTINCT s.rubric_id, s.rubric_version FROM call_reviews r"
                  " JOIN cq.calls c ON c.id = r.call_id JOIN cq.scores s ON s.call_id = c.id"
                  f" WHERE {where}", params):
        try:
            rubric = rubric_of(conn, r["rubric_id"], r["rubric_version"])
        except ScoringError:
            continue
        for item in rubric.items:
            names.setdefault(item.id, item.label)
    for r in conn.execute("SELECT item_id, MAX(name) FROM cq.findings GROUP BY item_id"):
        if r[1]:
            names.setdefault(r[0], r[1])
    return names


def item_agreement(conn: sqlite3.Connection, *, since: str | None = None,
                   until: str | None = None, team: str | None = None,
                   team_scope: str | None = None) -> dict[str, Any]:
    """Machine against reviewers per rubric item; dates are YYYY-MM-DD in center time.

    Returns ``{"calls": n, "items": [{item_id, name, confirmed, rejected, added, precision,
    recall_estimate}, ...], "totals": {confirmed, rejected, added, precision,
    recall_estimate}}``; a ratio is None where its denominator is 0.
    """
    where, params = _scope(since, until, team, team_scope)
    joined = " JOIN call_reviews r ON r.call_id = x.call_id JOIN cq.calls c ON c.id = x.call_id"
    counts: dict[str, dict[str, int]] = {}

    def bump(item_id: str, key: str, n: int) -> None:
        entry = counts.setdefault(item_id, {"confirmed": 0, "rejected": 0, "added": 0})
        entry[key] += n

    for r in rows(conn, "SELECT x.item_id, x.verdict, COUNT(*) AS n FROM finding_verdicts x"
                  + joined + f" WHERE {where} GROUP BY x.item_id, x.verdict", params):
        bump(r["item_id"], r["verdict"], int(r["n"]))
    for r in rows(conn, "SELECT x.item_id, COUNT(*) AS n FROM added_findings x" + joined
                  + f" WHERE x.removed = 0 AND {where} GROUP BY x.item_id", params):
        bump(r["item_id"], "added", int(r["n"]))
    calls = int(conn.execute("SELECT COUNT(*) FROM call_reviews r JOIN cq.calls c"
                             f" ON c.id = r.call_id WHERE {where}", params).fetchone()[0])
    names = _names(conn, where, params) if counts else {}
    items: list[dict[str, Any]] = []
    for item_id, c in counts.items():
        items.append({
            "item_id": item_id, "name": names.get(item_id, item_id), **c,
            "precision": _ratio(c["confirmed"], c["confirmed"] + c["rejected"]),
            "recall_estimate": _ratio(c["confirmed"], c["confirmed"] + c["added"]),
        })
    items.sort(key=lambda i: (-(i["confirmed"] + i["rejected"] + i["added"]), i["item_id"]))
    total: dict[str, Any] = {k: sum(int(i[k]) for i in items)
                             for k in ("confirmed", "rejected", "added")}
    total["precision"] = _ratio(total["confirmed"], total["confirmed"] + total["rejected"])
    total["recall_estimate"] = _ratio(total["confirmed"], total["confirmed"] + total["added"])
    return {"calls": calls, "items": items, "totals": total}
