"""Login, lock-out, idle timeout, CSRF, roles on the call list, team scope, headers."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask import Flask

from admin_web import audit, create_app, site_db, users
from core import clock
from tests.admin_web.conftest import PASSWORD, StoredCall, csrf_token, login, make_user


def test_no_builtin_account(app: Flask, data_dir: Path) -> None:
    conn = site_db.connect(data_dir)
    try:
        assert users.list_users(conn) == []
    finally:
        conn.close()
    client = app.test_client()
    for name in ("admin", "root", "callqa"):
        for password in ("admin", "password", "callqa", ""):
            assert login(client, name, password).status_code == 401


def test_login_posts_username_password_and_token(client_as, people) -> None:
    client = client_as("inspector")
    page = client.get("/")
    assert page.status_code == 200
    assert "ivan" in page.get_data(as_text=True)


def test_unauthenticated_requests_go_to_login(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]
    assert client.get("/calls.csv").status_code == 302


def test_login_without_csrf_token_is_refused(app: Flask, people) -> None:
    client = app.test_client()
    client.get("/login")
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302  # still not logged in


def test_logout_without_csrf_token_is_refused(client_as) -> None:
    client = client_as("admin")
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200


def test_lockout_after_repeated_failures(app: Flask, people, data_dir: Path) -> None:
    client = app.test_client()
    limit = app.config["LOCKOUT_FAILURES"]
    for _ in range(limit):
        assert login(client, "ivan", "wrong password!").status_code == 401
    # Locked: even the right password is refused.
    response = login(client, "ivan")
    assert response.status_code == 401
    assert "账号已暂时锁定" in response.get_data(as_text=True)  # a new box speaks Chinese
    # After the lock expires, the right password works again.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=app.config["LOCKOUT_S"] + 1)
    clock.set_now(lambda: later)
    try:
        assert login(client, "ivan").status_code == 302
    finally:
        clock.reset()
    conn = site_db.connect(data_dir)
    try:
        actions = [e["action"] for e in audit.entries(conn, username="ivan")]
    finally:
        conn.close()
    assert actions.count("login_failed") == limit + 1
    assert "login" in actions


def test_idle_session_ends(data_dir: Path, calls, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app({"DATA_DIR": str(data_dir), "TESTING": True,
                      "DAEMON_ADDRESS": "127.0.0.1:9", "SESSION_IDLE_S": 60})
    make_user(data_dir, "ivan", "inspector")
    client = app.test_client()
    assert login(client, "ivan").status_code == 302
    assert client.get("/").status_code == 200
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 61)
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_password_change_ends_sessions(client_as, people, data_dir: Path) -> None:
    client = client_as("inspector")
    conn = site_db.connect(data_dir)
    try:
        users.set_password(conn, people["inspector"].id, "another long password")
    finally:
        conn.close()
    assert client.get("/").status_code == 302


def test_roles_on_the_call_list(client_as, calls: list[StoredCall]) -> None:
    for role in ("admin", "inspector", "supervisor", "viewer"):
        assert client_as(role).get("/").status_code == 200
    # Export is a permission of its own: the viewer and the supervisor lack it.
    assert client_as("viewer").get("/calls.csv").status_code == 403
    assert client_as("supervisor").get("/calls.csv").status_code == 403
    assert client_as("admin").get("/calls.csv").status_code == 200


def test_supervisor_sees_only_own_team(client_as, calls: list[StoredCall]) -> None:
    own = {c.id for c in calls if c.team == "T1"}
    other = {c.id for c in calls if c.team != "T1"}
    page = client_as("supervisor").get("/").get_data(as_text=True)
    assert all(cid in page for cid in own)
    assert not any(cid in page for cid in other)
    # Asking for the other team by filter changes nothing.
    page = client_as("supervisor").get("/?team=T2").get_data(as_text=True)
    assert not any(cid in page for cid in other)
    admin_page = client_as("admin").get("/").get_data(as_text=True)
    assert all(cid in admin_page for cid in own | other)


def test_supervisor_export_is_team_bound(app: Flask, calls: list[StoredCall],
                                         data_dir: Path) -> None:
    make_user(data_dir, "sue", "supervisor", team="T1", recording="play,export")
    client = app.test_client()
    assert login(client, "sue").status_code == 302
    text = client.get("/calls.csv").get_data().decode("utf-8-sig")
    assert all(c.id in text for c in calls if c.team == "T1")
    assert not any(c.id in text for c in calls if c.team != "T1")


def test_list_filters_sort_and_paging(client_as, calls: list[StoredCall]) -> None:
    client = client_as("admin")
    failed = client.get("/?result=failed").get_data(as_text=True)
    assert all((c.id in failed) == (not c.passed) for c in calls)
    fired = client.get("/?item=pace").get_data(as_text=True)
    assert [c.id for c in calls if c.id in fired] == [calls[2].id]
    dated = client.get("/?since=2025-09-04&until=2025-09-05").get_data(as_text=True)
    assert [c.id for c in calls if c.id in dated] == [calls[1].id, calls[2].id]
    by_score = client.get("/?sort=score&dir=asc").get_data(as_text=True)
    positions = sorted(calls, key=lambda c: c.score)
    order = [by_score.index(c.id) for c in positions]
    assert order == sorted(order)
    scored = client.get("/?min_score=1&max_score=100&agent=A05").get_data(as_text=True)
    assert [c.id for c in calls if c.id in scored] == [calls[2].id]


def test_csv_export_is_audited_and_neutralised(client_as, calls, data_dir: Path) -> None:
    response = client_as("admin").get("/calls.csv")
    raw = response.get_data()
    assert raw.startswith("\ufeff".encode())
    assert response.mimetype == "text/csv"
    conn = site_db.connect(data_dir)
    try:
        assert [e["action"] for e in audit.entries(conn, action="export_calls_csv")]
    finally:
        conn.close()
    from admin_web.calls import neutralise

    assert neutralise("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert neutralise("@SUM") == "'@SUM"
    assert neutralise("-1") == "'-1"
    assert neutralise("A01") == "A01"


def test_security_headers(client_as) -> None:
    response = client_as("admin").get("/")
    csp = response.headers["Content-Security-Policy"]
    script_src = csp.split("script-src")[1].split(";")[0]
    assert script_src.strip() == "'self'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_session_cookie_flags(app: Flask, people) -> None:
    client = app.test_client()
    token = csrf_token(client)
    response = client.post("/login", data={"username": "alice", "password": PASSWORD,
                                           "csrf_token": token})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_secure_cookie_when_tls(data_dir: Path, calls) -> None:
    app = create_app({"DATA_DIR": str(data_dir), "TESTING": True,
                      "DAEMON_ADDRESS": "127.0.0.1:9", "SESSION_COOKIE_SECURE": True})
    make_user(data_dir, "alice", "admin")
    client = app.test_client()
    token = csrf_token(client)
    response = client.post("/login", data={"username": "alice", "password": PASSWORD,
                                           "csrf_token": token})
    assert "Secure" in response.headers["Set-Cookie"]


def test_secret_key_generated_with_mode_0600(app: Flask, data_dir: Path) -> None:
    path = data_dir / "admin_secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert app.config["SECRET_KEY"] == path.read_bytes().strip()
    # A second app over the same data reuses it (sessions survive a restart).
    again = create_app({"DATA_DIR": str(data_dir), "TESTING": True,
                        "DAEMON_ADDRESS": "127.0.0.1:9"})
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"]


def test_daemon_down_banner(client_as) -> None:
    page = client_as("viewer").get("/").get_data(as_text=True)
    assert 'id="daemon-down"' in page


def test_language_follows_the_user(app: Flask, data_dir: Path, calls) -> None:
    make_user(data_dir, "zhang", "inspector", language="zh")
    client = app.test_client()
    assert login(client, "zhang").status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "通话" in page and 'lang="zh-CN"' in page
    token = csrf_token(client, "/")
    client.post("/language", data={"language": "en", "csrf_token": token, "next": "/"})
    page = client.get("/").get_data(as_text=True)
    assert 'lang="en"' in page and ">Calls<" in page


def test_new_box_defaults_to_chinese(app: Flask) -> None:
    page = app.test_client().get("/login").get_data(as_text=True)
    assert 'lang="zh-CN"' in page


def test_create_user_reads_password_from_stdin(tmp_path: Path) -> None:
    data = tmp_path / "d"
    cmd = [sys.executable, "-m", "core.cli", "--data-dir", str(data), "admin", "create-user",
           "lee", "--role", "supervisor", "--team", "T9"]
    done = subprocess.run(cmd, input="a long enough password\n", capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "created supervisor lee" in done.stdout
    short = subprocess.run([*cmd[:-5], "kim", "--role", "viewer"], input="short\n",
                           capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and "at least" in short.stderr
    no_team = subprocess.run([*cmd[:-5], "kay", "--role", "supervisor"],
                             input="a long enough password\n", capture_output=True, text=True,
                             timeout=60)
    assert no_team.returncode == 2 and "team" in no_team.stderr
    conn = site_db.connect(data)
    try:
        result = users.authenticate(conn, "lee", "a long enough password", 5, 60)
        assert result.reason == "ok" and result.user is not None
        assert result.user.team_scope == "T9"
        assert [e["action"] for e in audit.entries(conn)] == ["user_created"]
    finally:
        conn.close()
