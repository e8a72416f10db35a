"""Logging in and out, the current user, and the permission checks every route uses.

The session cookie holds the user's id, the user's session epoch (bumped by a password
change or by disabling the account, which ends every session at once) and the time of the
last request; a session idle longer than `admin_session_idle_s` is over.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

from admin_web import audit, users
from admin_web.db import get_conn

bp = Blueprint("auth", __name__)

F = TypeVar("F", bound=Callable[..., Any])


@bp.before_app_request
def load_user() -> None:
    g.user = None
    user_id = session.get("user_id")
    if user_id is None:
        return
    idle_s = float(current_app.config["SESSION_IDLE_S"])
    last = float(session.get("seen", 0))
    now = time.time()
    user = users.get_user(get_conn(), int(user_id))
    if (user is None or user.disabled or user.session_epoch != session.get("epoch")
            or now - last > idle_s):
        session.clear()
        if user is not None and now - last > idle_s:
            g.session_expired = True
        return
    session["seen"] = now
    g.user = user


def current_user() -> users.User:
    user = g.get("user")
    if user is None:
        abort(401)
    return cast(users.User, user)


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.get("user") is None:
            if request.accept_mimetypes.best == "application/json":
                abort(401)
            return redirect(url_for("auth.login", next=request.full_path))
        return view(*args, **kwargs)

    return cast(F, wrapped)


def require(*permissions: str) -> Callable[[F], F]:
    """Only users holding every one of `permissions`; others get 403."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = g.get("user")
            if user is None:
                return redirect(url_for("auth.login", next=request.full_path))
            if not all(user.can(p) for p in permissions):
                abort(403)
            return view(*args, **kwargs)

        return cast(F, wrapped)

    return decorate


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("calls.index")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    if g.get("session_expired"):
        error = _("Your session ended after a time without activity. Please log in again.")
    if request.method == "POST":
        username = request.form.get("username", "")
        password = request.form.get("password", "")
        conn = get_conn()
        result = users.authenticate(
            conn, username, password,
            max_failures=int(current_app.config["LOCKOUT_FAILURES"]),
            lockout_s=float(current_app.config["LOCKOUT_S"]),
        )
        if result.reason == "ok" and result.user is not None:
            session.clear()
            session.permanent = True
            session["user_id"] = result.user.id
            session["epoch"] = result.user.session_epoch
            session["seen"] = time.time()
            audit.record(conn, result.user.username, "login")
            return redirect(_safe_next(request.args.get("next")))
        audit.record(conn, username.strip()[:64] or "?", "login_failed",
                     detail={"reason": result.reason})
        if result.reason == "locked":
            error = _("Too many failed logins: this account is locked for a while.")
        elif result.reason == "disabled":
            error = _("This account is disabled.")
        else:
            error = _("Wrong user name or password.")
        return render_template("auth/login.html", error=error), 401
    return render_template("auth/login.html", error=error)


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    user = g.get("user")
    if user is not None:
        audit.record(get_conn(), user.username, "logout")
    session.clear()
    flash(_("You are logged out."))
    return redirect(url_for("auth.login"))


@bp.route("/language", methods=["POST"])
def set_language() -> Any:
    """Switch the interface language; remembered on the user."""
    lang = request.form.get("language", "")
    if lang not in users.LANGUAGES:
        abort(400)
    session["language"] = lang
    user = g.get("user")
    if user is not None:
        users.set_language(get_conn(), user.id, lang)
    return redirect(_safe_next(request.form.get("next")))
