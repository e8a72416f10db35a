"""Users (用户管理), for administrators: create, change, disable, re-enable, reset passwords.

Every change is written to the audit log with what it was before and after; passwords never
are. Disabling a user ends all of their sessions at once (the session epoch is bumped). A
new or reset password, when the site makes it, is shown once on the page that answers the
POST and stored nowhere but as its hash.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from admin_web import audit, roles, users
from admin_web.auth import current_user, require
from admin_web.db import get_conn
from admin_web.site_db import rows

bp = Blueprint("users", __name__)

GENERATED_PASSWORD_BYTES = 12  # 16 characters


@bp.context_processor
def _names() -> dict[str, Any]:
    def recording_perm_names() -> dict[str, str]:
        return {roles.PLAY: _("Play"), roles.DOWNLOAD: _("Download"), roles.EXPORT: _("Export")}

    return {"recording_perm_names": recording_perm_names}


def _generated_password() -> str:
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def _teams() -> list[str]:
    conn = get_conn()
    known = {r["id"] for r in rows(conn, "SELECT id FROM cq.teams")}
    known |= {r["team_id"] for r in rows(conn, "SELECT DISTINCT team_id FROM users"
                                               " WHERE team_id IS NOT NULL")}
    return sorted(known)


def _user_or_404(user_id: int) -> users.User:
    user = users.get_user(get_conn(), user_id)
    if user is None:
        abort(404)
    return user


def _form_perms() -> str:
    return ",".join(p for p in roles.RECORDING_PERMISSIONS if request.form.get(f"perm_{p}"))


def _render_list(error: str | None = None, form: dict[str, Any] | None = None,
                 created: tuple[users.User, str] | None = None, status: int = 200) -> Any:
    return render_template(
        "users/list.html", users=users.list_users(get_conn()), teams=_teams(),
        roles_list=roles.ROLES, recording_perms=roles.RECORDING_PERMISSIONS,
        defaults=roles.DEFAULT_RECORDING_PERMISSIONS, languages=users.LANGUAGES,
        error=error, form=form or {}, created=created,
    ), status


@bp.route("/users")
@require(roles.USERS)
def index() -> Any:
    return _render_list()


@bp.route("/users", methods=["POST"])
@require(roles.USERS)
def create() -> Any:
    admin = current_user()
    form = {k: request.form.get(k, "").strip() for k in ("username", "role", "team", "language",
                                                         "password_mode")}
    own = request.form.get("password", "")
    generated = form["password_mode"] != "set"
    password = _generated_password() if generated else own
    conn = get_conn()
    try:
        user = users.create_user(conn, form["username"], password, form["role"],
                                 form["team"] or None, form["language"] or "zh", _form_perms())
    except users.UserError as exc:
        return _render_list(error=str(exc), form=form, status=400)
    audit.record(conn, admin.username, "user_created", detail={
        "user": user.username, "role": user.role, "team": user.team_id,
        "language": user.language, "recording": user.recording_perms,
        "password": "generated" if generated else "set",
    })
    return _render_list(created=(user, password if generated else ""))


@bp.route("/users/<int:user_id>")
@require(roles.USERS)
def edit(user_id: int) -> Any:
    user = _user_or_404(user_id)
    return _render_edit(user)


def _render_edit(user: users.User, error: str | None = None, new_password: str = "",
                 status: int = 200) -> Any:
    recent = audit.entries(get_conn(), username=user.username, limit=10)
    return render_template(
        "users/edit.html", target=user, teams=_teams(), roles_list=roles.ROLES,
        recording_perms=roles.RECORDING_PERMISSIONS, languages=users.LANGUAGES, error=error,
        new_password=new_password, recent=recent,
    ), status


@bp.route("/users/<int:user_id>", methods=["POST"])
@require(roles.USERS)
def update(user_id: int) -> Any:
    """Role, team, language and recording permissions; one audit entry with the changes."""
    admin = current_user()
    before = _user_or_404(user_id)
    conn = get_conn()
    role = request.form.get("role", before.role)
    team = request.form.get("team", "").strip() or None
    language = request.form.get("language", before.language)
    perms = _form_perms()
    try:
        if team != before.team_id and team is not None:
            users.set_team(conn, user_id, team)
        if role != before.role:
            users.set_role(conn, user_id, role)
        if team != before.team_id and team is None:
            users.set_team(conn, user_id, None)
        if language != before.language:
            users.set_language(conn, user_id, language)
        if perms != before.recording_perms:
            users.set_recording_perms(conn, user_id, perms)
    except users.UserError as exc:
        after = _user_or_404(user_id)
        _audit_changes(admin.username, before, after)
        return _render_edit(after, error=str(exc), status=400)
    after = _user_or_404(user_id)
    if _audit_changes(admin.username, before, after):
        flash(_("The changes to %(user)s are saved.", user=after.username))
    return redirect(url_for("users.edit", user_id=user_id))


def _audit_changes(admin: str, before: users.User, after: users.User) -> bool:
    changes = {}
    for field, old, new in (("role", before.role, after.role),
                            ("team", before.team_id, after.team_id),
                            ("language", before.language, after.language),
                            ("recording", before.recording_perms, after.recording_perms)):
        if old != new:
            changes[field] = [old, new]
    if changes:
        audit.record(get_conn(), admin, "user_updated",
                     detail={"user": after.username, **changes})
    return bool(changes)


@bp.route("/users/<int:user_id>/disable", methods=["POST"])
@require(roles.USERS)
def disable(user_id: int) -> Any:
    admin = current_user()
    user = _user_or_404(user_id)
    if user.id == admin.id:
        return _render_edit(user, error=_("You cannot disable your own account."), status=400)
    try:
        users.set_disabled(get_conn(), user_id, True)
    except users.UserError as exc:
        return _render_edit(user, error=str(exc), status=400)
    audit.record(get_conn(), admin.username, "user_disabled", detail={"user": user.username})
    flash(_("%(user)s is disabled and logged out everywhere.", user=user.username))
    return redirect(url_for("users.edit", user_id=user_id))


@bp.route("/users/<int:user_id>/enable", methods=["POST"])
@require(roles.USERS)
def enable(user_id: int) -> Any:
    admin = current_user()
    user = _user_or_404(user_id)
    users.set_disabled(get_conn(), user_id, False)
    audit.record(get_conn(), admin.username, "user_enabled", detail={"user": user.username})
    flash(_("%(user)s can log in again.", user=user.username))
    return redirect(url_for("users.edit", user_id=user_id))


@bp.route("/users/<int:user_id>/password", methods=["POST"])
@require(roles.USERS)
def reset_password(user_id: int) -> Any:
    """A new password, made here (shown once) or set by the administrator; the user's
    sessions end."""
    admin = current_user()
    user = _user_or_404(user_id)
    generated = request.form.get("password_mode") != "set"
    password = _generated_password() if generated else request.form.get("password", "")
    try:
        users.set_password(get_conn(), user_id, password)
    except users.UserError as exc:
        return _render_edit(user, error=str(exc), status=400)
    audit.record(get_conn(), admin.username, "password_reset",
                 detail={"user": user.username, "password": "generated" if generated else "set"})
    after = _user_or_404(user_id)
    if generated:
        return _render_edit(after, new_password=password)
    flash(_("The password of %(user)s is changed; their sessions have ended.",
            user=user.username))
    return redirect(url_for("users.edit", user_id=user_id))
