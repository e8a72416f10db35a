"""The review panel's POST routes: verdicts, missed findings, comments, submit, appeal,
decision, finalize.

Each route checks the permission (403, in `require`), then that the call lies in the user's
scope (404: a supervisor never learns that another team's call exists), then lets
`admin_web.reviews` make the change, which checks the state and writes the audit entry in
the same transaction. CSRF is checked for every POST by the app's CSRFProtect. A refused
change answers with its status (409 for a move the state does not allow, 400 for bad
input, 403 for a person who may not make it) and a page that says why; a change that went
through redirects back to the call page. The forms work without JavaScript.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from admin_web import calls_data, reviews, roles
from admin_web.auth import current_user, require
from admin_web.db import get_conn
from admin_web.errors import error_response
from admin_web.review_score import parse_time
from admin_web.reviews import Changes, NewFinding, ReviewRefused
from admin_web.users import User


class BadForm(ReviewRefused):
    def __init__(self, message: str) -> None:
        super().__init__(message, 400)


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


def refused(exc: ReviewRefused, back: str | None) -> Any:
    """The answer to a refused change: its status and the reason, with a way back."""
    if _wants_json():
        return error_response(exc.status, exc.message)
    return render_template("review/refused.html", status=exc.status, message=exc.message,
                           back=back), exc.status


def _act(call_id: str, change: Callable[[sqlite3.Connection, User], None], done: str) -> Any:
    user = current_user()
    conn = get_conn()
    if calls_data.call_in_scope(conn, call_id, team_scope=user.team_scope) is None:
        abort(404)
    back = url_for("calls.call_page", call_id=call_id)
    try:
        change(conn, user)
    except ReviewRefused as exc:
        return refused(exc, back)
    flash(done)
    return redirect(back)


def _time(name: str, default: float | None = None) -> float:
    raw = request.form.get(name, "").strip()
    if not raw and default is not None:
        return default
    try:
        return parse_time(raw)
    except ValueError:
        raise BadForm(_("Write a time as seconds (75) or minutes:seconds (1:15).")) from None


def _int(name: str) -> int:
    try:
        return int(request.form.get(name, ""))
    except ValueError:
        raise BadForm(_("The form is missing a value.")) from None


def _new_finding(prefix: str = "") -> NewFinding:
    start = _time(prefix + "start")
    return NewFinding(item_id=request.form.get(prefix + "item_id", "").strip(), start=start,
                      end=_time(prefix + "end", start),
                      comment=request.form.get(prefix + "comment", ""))


@require(roles.REVIEW)
def verdict(call_id: str) -> Any:
    def change(conn: sqlite3.Connection, user: User) -> None:
        reviews.set_verdict(conn, call_id, user, _int("seq"), request.form.get("verdict", ""),
                            request.form.get("comment", ""))

    word = request.form.get("verdict")
    return _act(call_id, change, _("Finding confirmed.") if word == "confirmed"
                else _("Finding rejected."))


@require(roles.REVIEW)
def add_finding(call_id: str) -> Any:
    def change(conn: sqlite3.Connection, user: User) -> None:
        reviews.add_finding(conn, call_id, user, _new_finding())

    return _act(call_id, change, _("Missed finding added."))


@require(roles.REVIEW)
def remove_finding(call_id: str, added_id: int) -> Any:
    def change(conn: sqlite3.Connection, user: User) -> None:
        reviews.remove_added(conn, call_id, user, added_id)

    return _act(call_id, change, _("Added finding taken back."))


@require(roles.REVIEW)
def comment(call_id: str) -> Any:
    def change(conn: sqlite3.Connection, user: User) -> None:
        reviews.set_comment(conn, call_id, user, request.form.get("comment", ""))

    return _act(call_id, change, _("Comment saved."))


@require(roles.REVIEW)
def submit(call_id: str) -> Any:
    def change(conn: sqlite3.Connection, user: User) -> None:
        reviews.submit(conn, call_id, user)

    return _act(call_id, change, _("Review submitted."))


@require(roles.APPEAL)
def appeal(call_id: str) -> Any:
    def change(conn: sqlite3.Connection, user: User) -> None:
        reviews.appeal(conn, call_id, user, request.form.get("reason", ""))

    return _act(call_id, change, _("Appeal sent."))


def decision_changes() -> Changes:
    """The changes a decision form carries: ``verdict-<seq>``, ``remove-<id>`` and one
    new finding (``add_item_id``, ``add_start``, ``add_end``, ``add_comment``)."""
    changes = Changes()
    for key, value in request.form.items():
        try:
            if key.startswith("verdict-") and value in reviews.VERDICTS:
                changes.verdicts[int(key.removeprefix("verdict-"))] = value
            elif key.startswith("remove-") and value:
                changes.remove.append(int(key.removeprefix("remove-")))
        except ValueError:
            raise BadForm(_("The form is missing a value.")) from None
    if request.form.get("add_item_id", "").strip():
        changes.add.append(_new_finding("add_"))
    return changes


@require(roles.DECIDE)
def decide(call_id: str) -> Any:
    def change(conn: sqlite3.Connection, user: User) -> None:
        reviews.decide(conn, call_id, user, request.form.get("decision", ""),
                       request.form.get("comment", ""), decision_changes())

    upheld = request.form.get("decision") == "upheld"
    return _act(call_id, change, _("Appeal decided: the review is upheld.") if upheld
                else _("Appeal decided: the review is changed."))


@require(roles.REVIEW)
def finalize(call_id: str) -> Any:
    def change(conn: sqlite3.Connection, user: User) -> None:
        reviews.finalize(conn, call_id, user)

    return _act(call_id, change, _("Review finalized."))


def register(bp: Blueprint) -> None:
    """Add the panel's POST routes to the review blueprint."""
    for rule, view in (
        ("/calls/<call_id>/review/verdict", verdict),
        ("/calls/<call_id>/review/findings", add_finding),
        ("/calls/<call_id>/review/findings/<int:added_id>/remove", remove_finding),
        ("/calls/<call_id>/review/comment", comment),
        ("/calls/<call_id>/review/submit", submit),
        ("/calls/<call_id>/appeal", appeal),
        ("/calls/<call_id>/decision", decide),
        ("/calls/<call_id>/finalize", finalize),
    ):
        bp.add_url_rule(rule, view.__name__, view, methods=["POST"])
