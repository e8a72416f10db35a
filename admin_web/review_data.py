"""Review data for one call, as the call page shows it (see `panel_context`).

The call page includes ``templates/review/panel.html`` with ``review = panel_context(conn,
call, user)``: the review's state and scores, each machine finding with its verdict, the
findings reviewers added, the history of every round, the appeals, and what this user may
do now (each action the panel offers is one the routes in `admin_web.review` accept).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from flask_babel import gettext as _

from admin_web import reviews, roles
from admin_web.i18n import fmt_clock
from admin_web.labels import state_names
from admin_web.review_score import ScoringError, call_rubric, machine_score
from admin_web.site_db import rows
from admin_web.users import User


def _in_scope(call: dict[str, Any], user: User) -> bool:
    return user.team_scope is None or call.get("team_id") == user.team_scope


def _verb(verdict: str | None) -> str:
    return {"confirmed": _("Confirmed"), "rejected": _("Rejected")}.get(verdict or "", "")


def _verdict_line(verdict: str | None, finding: str) -> str:
    if verdict == "rejected":
        return _("Rejected finding %(finding)s", finding=finding)
    return _("Confirmed finding %(finding)s", finding=finding)


def _span(start: Any, end: Any) -> str:
    return f"{fmt_clock(start)}–{fmt_clock(end)}"


def describe(entry: dict[str, Any], names: dict[str, str],
             spans: dict[int, str]) -> list[str]:
    """What one history entry changed, in words (the first line, then details)."""
    d = entry["detail"]
    action = entry["action"]

    def finding(seq: int, item_id: str) -> str:
        return f"{names.get(item_id, item_id)} ({spans.get(seq, '?')})"

    def added(a: dict[str, Any]) -> str:
        return f"{names.get(a['item_id'], a['item_id'])} ({_span(a['start'], a['end'])})"

    lines: list[str] = []
    if action == "verdict":
        lines.append(_verdict_line(d.get("verdict"),
                                   finding(d.get("seq", -1), d.get("item_id", ""))))
        if d.get("previous") and d.get("previous") != d.get("verdict"):
            lines.append(_("was: %(verdict)s", verdict=_verb(d["previous"])))
    elif action == "add_finding":
        lines.append(_("Added a missed finding: %(finding)s", finding=added(d)))
    elif action == "remove_finding":
        lines.append(_("Took back the added finding %(finding)s", finding=added(d)))
    elif action == "comment":
        lines.append(_("Commented on the call"))
    elif action == "submit":
        lines.append(_("Submitted the review"))
        if d.get("confirmed_without_verdict"):
            lines.append(_("Confirmed on submit, without a verdict: %(n)s",
                           n=len(d["confirmed_without_verdict"])))
    elif action == "appeal":
        lines.append(_("Appealed the review"))
    elif action == "decision":
        lines.append(_("Decided the appeal: upheld") if d.get("decision") == "upheld"
                     else _("Decided the appeal: changed"))
        for v in d.get("verdicts", []):
            lines.append(_verdict_line(v.get("verdict"),
                                       finding(v.get("seq", -1), v.get("item_id", ""))))
        for a in d.get("removed", []):
            lines.append(_("Took back the added finding %(finding)s", finding=added(a)))
        for a in d.get("added", []):
            lines.append(_("Added a missed finding: %(finding)s", finding=added(a)))
    elif action == "finalize":
        lines.append(_("Finalized the review"))
    else:
        lines.append(action)
    return lines


def _item_names(conn: sqlite3.Connection, call: dict[str, Any]
                ) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Item names (rubric first, then the findings), and the rubric's enabled items."""
    names = {f["item_id"]: f["name"] or f["item_id"] for f in call.get("findings", [])}
    items: list[dict[str, str]] = []
    score = machine_score(conn, call["id"])
    if score is not None:
        try:
            rubric = call_rubric(conn, score)
        except ScoringError:
            rubric = None
        if rubric is not None:
            for it in rubric.items:
                names.setdefault(it.id, it.label)
                if it.enabled:
                    items.append({"id": it.id, "name": it.label, "severity": it.severity})
    return names, items


def panel_context(conn: sqlite3.Connection, call: dict[str, Any], user: User) -> dict[str, Any]:
    """What `templates/review/panel.html` needs for `call` (from `calls_data.get_call`)."""
    call_id = call["id"]
    r = reviews.get_review(conn, call_id)
    names, items = _item_names(conn, call)
    verdicts = {v["finding_seq"]: v for v in rows(
        conn, "SELECT * FROM finding_verdicts WHERE call_id = ?", [call_id])}
    findings = []
    spans: dict[int, str] = {}
    for f in call.get("findings", []):
        spans[f["seq"]] = _span(f["start_s"], f["end_s"])
        v = verdicts.get(f["seq"])
        findings.append({**f, "verdict": v["verdict"] if v else None,
                         "verdict_by": v["username"] if v else None,
                         "verdict_comment": v["comment"] if v else ""})
    added = rows(conn, "SELECT * FROM added_findings WHERE call_id = ? AND removed = 0"
                 " ORDER BY start_s, id", [call_id])
    for a in added:
        a["name"] = names.get(a["item_id"], a["item_id"])
    history = rows(conn, "SELECT * FROM review_history WHERE call_id = ? ORDER BY id",
                   [call_id])
    for h in history:
        h["detail"] = json.loads(h["detail"] or "{}")
        h["lines"] = describe(h, names, spans)
    appeals = rows(conn, "SELECT * FROM appeals WHERE call_id = ? ORDER BY id", [call_id])

    scored = call.get("score") is not None
    mine = r.state == "scored" or r.reviewer == user.username
    actions = []
    if scored and user.can(roles.REVIEW) and r.state in reviews.EDITABLE and mine:
        actions += ["verdict", "add_finding", "remove_finding", "comment", "submit"]
    if scored and user.can(roles.APPEAL) and r.state == "reviewed" and _in_scope(call, user):
        actions.append("appeal")
    if user.can(roles.DECIDE) and r.state == "appealed" and reviews.may_decide(user, r):
        actions.append("decide")
    if user.role == "admin" and r.state == "reviewed":
        actions.append("finalize")
    notice = None
    if user.can(roles.REVIEW) and r.state == "in_review" and not mine:
        notice = _("%(name)s is reviewing this call.", name=r.reviewer or "?")
    elif user.can(roles.DECIDE) and r.state == "appealed" and not reviews.may_decide(user, r):
        notice = _("You reviewed this call, so another inspector or an administrator "
                   "decides its appeal.")
    return {
        "call_id": call_id,
        "scored": scored,
        "state": r.state,
        "state_name": state_names().get(r.state, r.state),
        "reviewer": r.reviewer,
        "round": r.round,
        "comment": r.comment,
        "machine_score": call.get("score"),
        "machine_passed": call.get("passed"),
        "machine_fatal": bool(call.get("fatal")),
        "reviewed_score": r.reviewed_score,
        "reviewed_passed": r.reviewed_passed,
        "findings": findings,
        "verdicts": verdicts,
        "added": added,
        "history": list(reversed(history)),
        "appeals": appeals,
        "open_appeal": next((a for a in reversed(appeals) if a["decided_by"] is None), None),
        "rubric_items": items,
        "actions": actions,
        "notice": notice,
    }
