"""The review of one call (人工复核) as a state machine, and every change a person makes to it.

States and the moves between them::

    scored ──first verdict, added finding or comment──▶ in_review   (reviewer = that inspector)
    in_review ──submit──▶ reviewed                      (scored ──submit──▶ reviewed as well)
    reviewed ──appeal (team supervisor, with a reason)──▶ appealed  (round + 1)
    appealed ──decision: upheld | changed──▶ final      (an administrator, or an inspector
                                                         who is not the reviewer)
    reviewed ──finalize (an administrator; nobody appealed)──▶ final

Only the reviewer changes a call in review. Verdicts and added findings are locked once the
call is reviewed; the only way to change them afterwards is a decision "changed" on an
appeal, which carries its changes with it. Submitting a review confirms the findings the
reviewer left without a verdict.

Every change is one ``BEGIN IMMEDIATE`` transaction that checks the state, writes the
change, re-scores the call (`admin_web.review_score`), keeps a `review_history` row with
the score before and after, and appends the audit entry. A refused change raises
`ReviewRefused` (409 for a move the state does not allow, 400 for bad input, 403 for a
person who may not make it) and writes nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _

from admin_web import audit
from admin_web.labels import state_names
from admin_web.review_score import CallScore, ScoringError, call_rubric, machine_score
from admin_web.review_score import reviewed_sheet as _sheet
from admin_web.site_db import one, rows, write
from admin_web.users import User
from core import clock

STATES = ("scored", "in_review", "reviewed", "appealed", "final")
EDITABLE = ("scored", "in_review")
VERDICTS = ("confirmed", "rejected")
DECISIONS = ("upheld", "changed")
MAX_TEXT = 2000


class ReviewRefused(Exception):
    """A change that is not allowed; `message` says why, `status` is the HTTP status."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Review:
    call_id: str
    state: str = "scored"
    reviewer: str | None = None
    round: int = 0
    machine_score: float | None = None
    reviewed_score: float | None = None
    reviewed_passed: bool | None = None
    comment: str = ""

    def score_now(self) -> float | None:
        """The score the call stands at: the reviewed one once there is one."""
        return self.reviewed_score if self.reviewed_score is not None else self.machine_score


@dataclass(frozen=True)
class NewFinding:
    item_id: str
    start: float
    end: float
    comment: str = ""


@dataclass
class Changes:
    """What a decision "changed" changes: verdicts by finding seq, added findings removed
    (by id) and new findings."""

    verdicts: dict[int, str] = field(default_factory=dict)
    remove: list[int] = field(default_factory=list)
    add: list[NewFinding] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.verdicts or self.remove or self.add)


def get_review(conn: sqlite3.Connection, call_id: str) -> Review:
    """The call's review row; a call without one is 'scored'."""
    row = one(conn, "SELECT * FROM call_reviews WHERE call_id = ?", [call_id])
    if row is None:
        return Review(call_id)
    return Review(
        call_id=call_id, state=row["state"], reviewer=row["reviewer"], round=row["round"],
        machine_score=row["machine_score"], reviewed_score=row["reviewed_score"],
        reviewed_passed=None if row["reviewed_passed"] is None else bool(row["reviewed_passed"]),
        comment=row["comment"],
    )


def _save(conn: sqlite3.Connection, r: Review) -> None:
    conn.execute(
        "INSERT INTO call_reviews (call_id, state, reviewer, round, machine_score,"
        " reviewed_score, reviewed_passed, comment, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id) DO UPDATE SET"
        " state = excluded.state, reviewer = excluded.reviewer, round = excluded.round,"
        " machine_score = excluded.machine_score, reviewed_score = excluded.reviewed_score,"
        " reviewed_passed = excluded.reviewed_passed, comment = excluded.comment,"
        " updated_at = excluded.updated_at",
        [r.call_id, r.state, r.reviewer, r.round, r.machine_score, r.reviewed_score,
         None if r.reviewed_passed is None else int(r.reviewed_passed), r.comment,
         clock.utc_now_iso()],
    )


def _history(conn: sqlite3.Connection, r: Review, action: str, user: User, state_before: str,
             score_before: float | None, detail: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO review_history (call_id, round, action, username, at, state_before,"
        " state_after, score_before, score_after, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [r.call_id, r.round, action, user.username, clock.utc_now_iso(), state_before,
         r.state, score_before, r.score_now(), json.dumps(detail, ensure_ascii=False)],
    )


def _call(conn: sqlite3.Connection, call_id: str) -> CallScore:
    call = machine_score(conn, call_id)
    if call is None:
        raise ReviewRefused(_("This call has not been scored yet, so it cannot be reviewed."))
    return call


def _rescore(conn: sqlite3.Connection, call: CallScore, r: Review) -> None:
    try:
        sheet = _sheet(conn, call)
    except ScoringError as exc:
        raise ReviewRefused(_("This call cannot be scored again: %(why)s", why=str(exc))) from exc
    r.machine_score = call.score
    r.reviewed_score = sheet.score
    r.reviewed_passed = sheet.passed


def _text(value: str, what: str) -> str:
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise ReviewRefused(_("The %(what)s is too long (at most %(n)s characters).",
                              what=what, n=MAX_TEXT), 400)
    return value


def _begin_edit(conn: sqlite3.Connection, call_id: str, user: User
                ) -> tuple[CallScore, Review, str, float | None]:
    """Check that `user` may change the review now; a scored call goes into review."""
    call = _call(conn, call_id)
    r = get_review(conn, call_id)
    if r.state not in EDITABLE:
        raise ReviewRefused(_("This review is %(state)s: its verdicts are locked.",
                              state=state_label(r.state)))
    if r.state == "in_review" and r.reviewer != user.username:
        raise ReviewRefused(_("%(name)s is reviewing this call; only they can change the "
                              "review.", name=r.reviewer or "?"))
    state_before, score_before = r.state, r.score_now()
    if score_before is None:
        score_before = call.score
    if r.state == "scored":
        r.state, r.reviewer, r.round = "in_review", user.username, max(1, r.round)
    return call, r, state_before, score_before


def state_label(state: str) -> str:
    return state_names().get(state, state)


def _finding_row(conn: sqlite3.Connection, call_id: str, seq: int) -> dict[str, Any]:
    row = one(conn, "SELECT seq, item_id, name FROM cq.findings WHERE call_id = ? AND seq = ?",
              [call_id, seq])
    if row is None:
        raise ReviewRefused(_("This call has no finding %(seq)s.", seq=seq), 400)
    return row


def _put_verdict(conn: sqlite3.Connection, call_id: str, seq: int, verdict: str, comment: str,
                 user: User) -> dict[str, Any]:
    if verdict not in VERDICTS:
        raise ReviewRefused(_("A verdict is 'confirmed' or 'rejected'."), 400)
    finding = _finding_row(conn, call_id, seq)
    old = one(conn, "SELECT verdict FROM finding_verdicts WHERE call_id = ? AND finding_seq = ?",
              [call_id, seq])
    conn.execute(
        "INSERT INTO finding_verdicts (call_id, finding_seq, item_id, verdict, comment,"
        " username, at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id, finding_seq)"
        " DO UPDATE SET verdict = excluded.verdict, comment = excluded.comment,"
        " username = excluded.username, at = excluded.at",
        [call_id, seq, finding["item_id"], verdict, comment, user.username, clock.utc_now_iso()],
    )
    return {"seq": seq, "item_id": finding["item_id"], "name": finding["name"],
            "verdict": verdict, "previous": old["verdict"] if old else None, "comment": comment}


def _check_new(conn: sqlite3.Connection, call: CallScore, new: NewFinding) -> NewFinding:
    rubric = call_rubric(conn, call)
    if new.item_id not in {it.id for it in rubric.items}:
        raise ReviewRefused(_("Choose an item of this call's rubric."), 400)
    if new.start < 0 or new.end < new.start:
        raise ReviewRefused(_("The end of a finding cannot come before its start."), 400)
    if call.duration_s is not None and new.start > call.duration_s + 1.0:
        raise ReviewRefused(_("The finding starts after the end of the call."), 400)
    return NewFinding(new.item_id, new.start, new.end, _text(new.comment, _("comment")))


def _insert_added(conn: sqlite3.Connection, call_id: str, new: NewFinding, user: User
                  ) -> dict[str, Any]:
    cur = conn.execute(
        "INSERT INTO added_findings (call_id, item_id, start_s, end_s, comment, username, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [call_id, new.item_id, new.start, new.end, new.comment, user.username,
         clock.utc_now_iso()],
    )
    return {"id": cur.lastrowid, "item_id": new.item_id, "start": new.start, "end": new.end,
            "comment": new.comment}


def _remove_added(conn: sqlite3.Connection, call_id: str, added_id: int) -> dict[str, Any]:
    row = one(conn, "SELECT id, item_id, start_s, end_s FROM added_findings WHERE id = ?"
              " AND call_id = ? AND removed = 0", [added_id, call_id])
    if row is None:
        raise ReviewRefused(_("There is no such added finding on this call."), 400)
    conn.execute("UPDATE added_findings SET removed = 1 WHERE id = ?", [added_id])
    return {"id": added_id, "item_id": row["item_id"], "start": row["start_s"],
            "end": row["end_s"]}


Change = Callable[[CallScore, Review], dict[str, Any]]


def _edit(conn: sqlite3.Connection, call_id: str, user: User, action: str,
          change: Change) -> dict[str, Any]:
    """One change of a call in review: `change(call, review)` returns the detail to keep."""
    with write(conn):
        call, r, state_before, score_before = _begin_edit(conn, call_id, user)
        detail = change(call, r)
        _rescore(conn, call, r)
        _save(conn, r)
        _history(conn, r, action, user, state_before, score_before, detail)
        audit.record(conn, user.username, f"review_{action}", call_id,
                     {**detail, "score_before": score_before, "score_after": r.score_now()})
    return detail


def set_verdict(conn: sqlite3.Connection, call_id: str, user: User, seq: int, verdict: str,
                comment: str = "") -> None:
    """Confirm or reject the machine's finding `seq` (again, if it had a verdict)."""
    _edit(conn, call_id, user, "verdict", lambda call, r: _put_verdict(
        conn, call_id, seq, verdict, _text(comment, _("comment")), user))


def add_finding(conn: sqlite3.Connection, call_id: str, user: User, new: NewFinding) -> int:
    """Add a finding the machine missed; returns its id."""
    detail = _edit(conn, call_id, user, "add_finding", lambda call, r: _insert_added(
        conn, call_id, _check_new(conn, call, new), user))
    return int(detail["id"])


def remove_added(conn: sqlite3.Connection, call_id: str, user: User, added_id: int) -> None:
    """Take back an added finding, before the review is submitted."""
    _edit(conn, call_id, user, "remove_finding",
          lambda call, r: _remove_added(conn, call_id, added_id))


def set_comment(conn: sqlite3.Connection, call_id: str, user: User, comment: str) -> None:
    """The reviewer's comment on the whole call."""
    text = _text(comment, _("comment"))

    def change(call: CallScore, r: Review) -> dict[str, Any]:
        previous, r.comment = r.comment, text
        return {"comment": text, "previous": previous}

    _edit(conn, call_id, user, "comment", change)


def submit(conn: sqlite3.Connection, call_id: str, user: User) -> None:
    """Finish the review: findings without a verdict are confirmed, the call is reviewed."""

    def change(call: CallScore, r: Review) -> dict[str, Any]:
        open_seqs = [row["seq"] for row in rows(
            conn, "SELECT f.seq FROM cq.findings f WHERE f.call_id = ? AND NOT EXISTS"
            " (SELECT 1 FROM finding_verdicts v WHERE v.call_id = f.call_id"
            " AND v.finding_seq = f.seq) ORDER BY f.seq", [call_id])]
        for seq in open_seqs:
            _put_verdict(conn, call_id, seq, "confirmed", "", user)
        r.state = "reviewed"
        return {"confirmed_without_verdict": open_seqs}

    _edit(conn, call_id, user, "submit", change)


def appeal(conn: sqlite3.Connection, call_id: str, user: User, reason: str) -> int:
    """A supervisor disputes a reviewed call of their team; returns the appeal's id."""
    text = _text(reason, _("reason"))
    if not text:
        raise ReviewRefused(_("An appeal needs a reason."), 400)
    with write(conn):
        call = _call(conn, call_id)
        if user.team_scope is not None and call.team_id != user.team_scope:
            raise ReviewRefused(_("Not found."), 404)
        r = get_review(conn, call_id)
        if r.state != "reviewed":
            raise ReviewRefused(_("Only a reviewed call can be appealed; this one is "
                                  "%(state)s.", state=state_label(r.state)))
        state_before, score = r.state, r.score_now()
        r.state, r.round = "appealed", r.round + 1
        now = clock.utc_now_iso()
        cur = conn.execute(
            "INSERT INTO appeals (call_id, round, appealed_by, reason, appealed_at,"
            " score_before) VALUES (?, ?, ?, ?, ?, ?)",
            [call_id, r.round, user.username, text, now, score],
        )
        appeal_id = int(cur.lastrowid or 0)
        _save(conn, r)
        _history(conn, r, "appeal", user, state_before, score,
                 {"appeal_id": appeal_id, "reason": text})
        audit.record(conn, user.username, "appeal", call_id,
                     {"appeal_id": appeal_id, "reason": text, "score": score})
    return appeal_id


def open_appeal(conn: sqlite3.Connection, call_id: str) -> dict[str, Any] | None:
    return one(conn, "SELECT * FROM appeals WHERE call_id = ? AND decided_by IS NULL"
               " ORDER BY id DESC LIMIT 1", [call_id])


def may_decide(user: User, r: Review) -> bool:
    """An administrator or an inspector may decide, but never on their own review."""
    return user.role in ("admin", "inspector") and r.reviewer != user.username


def decide(conn: sqlite3.Connection, call_id: str, user: User, decision: str, comment: str,
           changes: Changes | None = None) -> None:
    """Decide the open appeal: uphold the review, or change it (with `changes`); final."""
    changes = changes or Changes()
    if decision not in DECISIONS:
        raise ReviewRefused(_("Choose whether to uphold or change the review."), 400)
    text = _text(comment, _("comment"))
    with write(conn):
        call = _call(conn, call_id)
        r = get_review(conn, call_id)
        if r.state != "appealed":
            raise ReviewRefused(_("Only an appealed call can be decided; this one is "
                                  "%(state)s.", state=state_label(r.state)))
        if not may_decide(user, r):
            raise ReviewRefused(_("The reviewer of a call cannot decide its appeal."), 403)
        pending = open_appeal(conn, call_id)
        if pending is None:
            raise ReviewRefused(_("This call has no open appeal."))
        if decision == "upheld" and changes:
            raise ReviewRefused(_("Upholding keeps the review as it is: choose \"change\" "
                                  "to change verdicts or findings."), 400)
        if decision == "changed" and not changes:
            raise ReviewRefused(_("A changed decision needs at least one changed verdict "
                                  "or finding."), 400)
        state_before, score_before = r.state, r.score_now()
        done: dict[str, list[dict[str, Any]]] = {"verdicts": [], "removed": [], "added": []}
        for seq, verdict in sorted(changes.verdicts.items()):
            done["verdicts"].append(_put_verdict(conn, call_id, seq, verdict, text, user))
        for added_id in changes.remove:
            done["removed"].append(_remove_added(conn, call_id, added_id))
        for new in changes.add:
            done["added"].append(_insert_added(conn, call_id, _check_new(conn, call, new), user))
        _rescore(conn, call, r)
        r.state = "final"
        now = clock.utc_now_iso()
        conn.execute(
            "UPDATE appeals SET decided_by = ?, decision = ?, decision_comment = ?,"
            " decided_at = ?, score_before = ?, score_after = ? WHERE id = ?",
            [user.username, decision, text, now, score_before, r.score_now(), pending["id"]],
        )
        _save(conn, r)
        detail = {"appeal_id": pending["id"], "decision": decision, "comment": text,
                  **({k: v for k, v in done.items() if v})}
        _history(conn, r, "decision", user, state_before, score_before, detail)
        audit.record(conn, user.username, "appeal_decision", call_id,
                     {**detail, "score_before": score_before, "score_after": r.score_now()})


def finalize(conn: sqlite3.Connection, call_id: str, user: User) -> None:
    """An administrator closes a reviewed call that nobody appealed."""
    if user.role != "admin":
        raise ReviewRefused(_("Only an administrator can finalize a review."), 403)
    with write(conn):
        _call(conn, call_id)
        r = get_review(conn, call_id)
        if r.state != "reviewed":
            raise ReviewRefused(_("Only a reviewed call that nobody appealed can be "
                                  "finalized; this one is %(state)s.",
                                  state=state_label(r.state)))
        score = r.score_now()
        r.state = "final"
        _save(conn, r)
        _history(conn, r, "finalize", user, "reviewed", score, {})
        audit.record(conn, user.username, "review_finalize", call_id, {"score": score})
