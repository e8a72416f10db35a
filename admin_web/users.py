"""Users of the admin web: creation, password checks, lock-out after repeated failures.

Passwords are hashed with Werkzeug's scrypt. There is no built-in account and no default
password: the first administrator is made with `callqa admin create-user`.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from admin_web import roles
from admin_web.site_db import one, rows, write
from core import clock

MIN_PASSWORD_CHARS = 10
LANGUAGES = ("zh", "en")


class UserError(ValueError):
    """A user cannot be created or changed as asked; the message says why."""


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    team_id: str | None
    language: str
    recording_perms: str
    disabled: bool
    session_epoch: int

    @property
    def permissions(self) -> frozenset[str]:
        return roles.permissions(self.role, self.recording_perms)

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def team_scope(self) -> str | None:
        """The only team whose calls this user may see, or None for every team."""
        return self.team_id if self.role in roles.TEAM_BOUND_ROLES else None


def _user(row: dict[str, Any]) -> User:
    return User(
        id=row["id"], username=row["username"], role=row["role"], team_id=row["team_id"],
        language=row["language"], recording_perms=row["recording_perms"],
        disabled=bool(row["disabled"]), session_epoch=row["session_epoch"],
    )


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if password.strip() != password or not password.strip():
        raise UserError("the password must not begin or end with spaces")


def create_user(conn: sqlite3.Connection, username: str, password: str, role: str,
                team_id: str | None = None, language: str = "zh",
                recording_perms: str | None = None) -> User:
    username = username.strip()
    if not username or len(username) > 64 or any(c.isspace() for c in username):
        raise UserError("a user name is 1 to 64 characters without spaces")
    if role not in roles.ROLES:
        raise UserError(f"unknown role {role!r}: use {', '.join(roles.ROLES)}")
    if role in roles.TEAM_BOUND_ROLES and not team_id:
        raise UserError(f"a {role} needs a team (--team)")
    if language not in LANGUAGES:
        raise UserError(f"unknown language {language!r}: use {', '.join(LANGUAGES)}")
    check_password_strength(password)
    perms = (",".join(roles.DEFAULT_RECORDING_PERMISSIONS[role]) if recording_perms is None
             else roles.parse_recording_perms(recording_perms))
    now = clock.utc_now_iso()
    with write(conn):
        if one(conn, "SELECT id FROM users WHERE username = ?", [username]):
            raise UserError(f"user {username!r} already exists")
        cur = conn.execute(
            "INSERT INTO users (username, password_hash, role, team_id, language,"
            " recording_perms, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [username, generate_password_hash(password, method="scrypt"), role, team_id or None,
             language, perms, now, now],
        )
        user_id = int(cur.lastrowid or 0)
    found = get_user(conn, user_id)
    assert found is not None
    return found


def get_user(conn: sqlite3.Connection, user_id: int) -> User | None:
    row = one(conn, "SELECT * FROM users WHERE id = ?", [user_id])
    return None if row is None else _user(row)


def find_user(conn: sqlite3.Connection, username: str) -> User | None:
    row = one(conn, "SELECT * FROM users WHERE username = ?", [username.strip()])
    return None if row is None else _user(row)


def list_users(conn: sqlite3.Connection) -> list[User]:
    return [_user(r) for r in rows(conn, "SELECT * FROM users ORDER BY username")]


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    reason: str  # 'ok', 'unknown', 'bad_password', 'locked', 'disabled'
    locked_until: str | None = None


def authenticate(conn: sqlite3.Connection, username: str, password: str,
                 max_failures: int, lockout_s: float) -> LoginResult:
    """Check a login; count failures and lock the account after `max_failures` in a row.

    A locked account refuses even the right password until the lock expires.
    """
    now = clock.now()
    with write(conn):
        row = one(conn, "SELECT * FROM users WHERE username = ?", [username.strip()])
        if row is None:
            # Hash anyway, so that a wrong user name takes as long as a wrong password.
            check_password_hash(_DUMMY_HASH, password)
            return LoginResult(None, "unknown")
        user = _user(row)
        if row["locked_until"] and dt.datetime.fromisoformat(row["locked_until"]) > now:
            return LoginResult(user, "locked", row["locked_until"])
        if not check_password_hash(row["password_hash"], password):
            failures = row["failed_logins"] + 1
            locked = None
            if failures >= max_failures:
                locked = (now + dt.timedelta(seconds=lockout_s)).isoformat(timespec="seconds")
                failures = 0
            conn.execute(
                "UPDATE users SET failed_logins = ?, locked_until = ? WHERE id = ?",
                [failures, locked, user.id],
            )
            return LoginResult(user, "locked" if locked else "bad_password", locked)
        if user.disabled:
            return LoginResult(user, "disabled")
        conn.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?",
                     [user.id])
        return LoginResult(user, "ok")


def set_password(conn: sqlite3.Connection, user_id: int, password: str) -> None:
    """A new password; every session of the user ends."""
    check_password_strength(password)
    with write(conn):
        conn.execute(
            "UPDATE users SET password_hash = ?, session_epoch = session_epoch + 1,"
            " failed_logins = 0, locked_until = NULL, updated_at = ? WHERE id = ?",
            [generate_password_hash(password, method="scrypt"), clock.utc_now_iso(), user_id],
        )


def set_language(conn: sqlite3.Connection, user_id: int, language: str) -> None:
    if language not in LANGUAGES:
        raise UserError(f"unknown language {language!r}")
    with write(conn):
        conn.execute("UPDATE users SET language = ?, updated_at = ? WHERE id = ?",
                     [language, clock.utc_now_iso(), user_id])


def _enabled_admins_besides(conn: sqlite3.Connection, user_id: int) -> int:
    row = one(conn, "SELECT count(*) AS n FROM users WHERE role = 'admin' AND disabled = 0"
                    " AND id != ?", [user_id])
    return int(row["n"]) if row else 0


def _require(conn: sqlite3.Connection, user_id: int) -> User:
    user = get_user(conn, user_id)
    if user is None:
        raise UserError(f"no user with id {user_id}")
    return user


def set_role(conn: sqlite3.Connection, user_id: int, role: str) -> None:
    """A new role; refused when it would leave no enabled administrator, or leave a
    supervisor without a team. Permissions follow at the user's next request."""
    if role not in roles.ROLES:
        raise UserError(f"unknown role {role!r}: use {', '.join(roles.ROLES)}")
    with write(conn):
        user = _require(conn, user_id)
        if role in roles.TEAM_BOUND_ROLES and not user.team_id:
            raise UserError(f"a {role} needs a team: set the team first")
        if user.role == "admin" and role != "admin" and not _enabled_admins_besides(conn,
                                                                                  user_id):
            raise UserError("this is the last enabled administrator")
        conn.execute("UPDATE users SET role = ?, updated_at = ? WHERE id = ?",
                     [role, clock.utc_now_iso(), user_id])


def set_team(conn: sqlite3.Connection, user_id: int, team_id: str | None) -> None:
    """The user's team (a supervisor sees only this team's calls); None for no team."""
    team = (team_id or "").strip() or None
    if team is not None and (len(team) > 64 or any(c.isspace() for c in team)):
        raise UserError("a team id is 1 to 64 characters without spaces")
    with write(conn):
        user = _require(conn, user_id)
        if team is None and user.role in roles.TEAM_BOUND_ROLES:
            raise UserError(f"a {user.role} needs a team")
        conn.execute("UPDATE users SET team_id = ?, updated_at = ? WHERE id = ?",
                     [team, clock.utc_now_iso(), user_id])


def set_recording_perms(conn: sqlite3.Connection, user_id: int, perms: str) -> None:
    """What the user may do with recordings: comma-separated play, download, export."""
    try:
        normal = roles.parse_recording_perms(perms)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    with write(conn):
        _require(conn, user_id)
        conn.execute("UPDATE users SET recording_perms = ?, updated_at = ? WHERE id = ?",
                     [normal, clock.utc_now_iso(), user_id])


def set_disabled(conn: sqlite3.Connection, user_id: int, disabled: bool) -> None:
    """Disable (every session of the user ends at once) or re-enable an account; the last
    enabled administrator cannot be disabled."""
    with write(conn):
        user = _require(conn, user_id)
        if disabled and user.role == "admin" and not _enabled_admins_besides(conn, user_id):
            raise UserError("this is the last enabled administrator")
        if disabled:
            conn.execute("UPDATE users SET disabled = 1, session_epoch = session_epoch + 1,"
                         " updated_at = ? WHERE id = ?", [clock.utc_now_iso(), user_id])
        else:
            conn.execute("UPDATE users SET disabled = 0, failed_logins = 0, locked_until = NULL,"
                         " updated_at = ? WHERE id = ?", [clock.utc_now_iso(), user_id])


_DUMMY_HASH = generate_password_hash("not a password of anyone", method="scrypt")
