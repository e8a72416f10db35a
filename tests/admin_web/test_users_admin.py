"""User administration: only administrators, CSRF on every change, a new or reset password
shown once, disabling ends the user's sessions at once, every change in the audit log (never
a password), and the audit log's date filter."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin_web import audit, site_db, users
from tests.admin_web.conftest import PASSWORD, login, post_form

PASSWORD_RE = re.compile(r'id="new-password">([^<]+)<')


def _entries(data_dir: Path, action: str) -> list[dict]:  # type: ignore[type-arg]
    conn = site_db.connect(data_dir)
    try:
        return audit.entries(conn, action=action)
    finally:
        conn.close()


def _user(data_dir: Path, name: str) -> users.User:
    conn = site_db.connect(data_dir)
    try:
        found = users.find_user(conn, name)
    finally:
        conn.close()
    assert found is not None
    return found


@pytest.mark.parametrize("role", ["inspector", "supervisor", "viewer"])
def test_other_roles_get_403(client_as: Callable[[str], FlaskClient], role: str,
                             people: dict[str, users.User]) -> None:
    client = client_as(role)
    target = people["viewer"].id
    assert client.get("/users").status_code == 403
    assert client.get(f"/users/{target}").status_code == 403
    for path in ("/users", f"/users/{target}", f"/users/{target}/disable",
                 f"/users/{target}/enable", f"/users/{target}/password"):
        assert post_form(client, path, {"username": "x", "role": "admin"}).status_code == 403
    assert 'href="/users"' not in client.get("/").get_data(as_text=True)


def test_every_change_needs_the_form_token(client_as: Callable[[str], FlaskClient],
                                           people: dict[str, users.User]) -> None:
    client = client_as("admin")
    target = people["viewer"].id
    for path in ("/users", f"/users/{target}", f"/users/{target}/disable",
                 f"/users/{target}/password"):
        assert client.post(path, data={"username": "x", "role": "viewer"}).status_code == 400
    assert not _user_flag_changed(client, target)


def _user_flag_changed(client: FlaskClient, user_id: int) -> bool:
    return "Disabled" in client.get(f"/users/{user_id}").get_data(as_text=True).split(
        "</h1>")[0]


def test_create_with_a_password_shown_once(client_as: Callable[[str], FlaskClient],
                                           app: Flask, data_dir: Path) -> None:
    admin = client_as("admin")
    page = admin.get("/users").get_data(as_text=True)
    assert 'id="audit-link"' in page and 'href="/audit"' in page
    response = post_form(admin, "/users", {"username": "nina", "role": "supervisor",
                                           "team": "T2", "language": "zh", "perm_play": "1",
                                           "password_mode": "generate"}, page="/users")
    assert response.status_code == 200
    password = PASSWORD_RE.search(response.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    assert len(password) >= 16
    assert password not in admin.get("/users").get_data(as_text=True)  # once only
    nina = _user(data_dir, "nina")
    assert (nina.role, nina.team_id, nina.language, nina.recording_perms) == (
        "supervisor", "T2", "zh", "play")
    client = app.test_client()
    assert login(client, "nina", password).status_code == 302
    (entry,) = _entries(data_dir, "user_created")
    assert entry["username"] == "alice" and entry["detail"]["user"] == "nina"
    assert entry["detail"]["password"] == "generated"
    assert password not in str(entry)
    # A supervisor needs a team; a taken name is refused.
    bad = post_form(admin, "/users", {"username": "otto", "role": "supervisor"}, page="/users")
    assert bad.status_code == 400 and "needs a team" in bad.get_data(as_text=True)
    taken = post_form(admin, "/users", {"username": "nina", "role": "viewer"}, page="/users")
    assert taken.status_code == 400


def test_create_with_a_password_set_by_the_administrator(
        client_as: Callable[[str], FlaskClient], app: Flask, data_dir: Path) -> None:
    admin = client_as("admin")
    short = post_form(admin, "/users", {"username": "omar", "role": "viewer",
                                        "password_mode": "set", "password": "short"})
    assert short.status_code == 400
    response = post_form(admin, "/users", {"username": "omar", "role": "viewer",
                                           "password_mode": "set",
                                           "password": "a long enough one"})
    assert response.status_code == 200 and 'id="new-password"' not in response.get_data(
        as_text=True)
    assert login(app.test_client(), "omar", "a long enough one").status_code == 302


def test_disable_ends_sessions_and_enable_lets_in_again(
        client_as: Callable[[str], FlaskClient], app: Flask, data_dir: Path,
        people: dict[str, users.User]) -> None:
    admin = client_as("admin")
    vera = client_as("viewer")
    assert vera.get("/").status_code == 200
    target = people["viewer"].id
    response = post_form(admin, f"/users/{target}/disable", {})
    assert response.status_code == 302
    # Her open session is over at her next request.
    assert vera.get("/").status_code == 302
    assert "/login" in vera.get("/").headers["Location"]
    assert login(app.test_client(), "vera").status_code == 401
    assert _entries(data_dir, "user_disabled")[0]["detail"] == {"user": "vera"}
    assert post_form(admin, f"/users/{target}/enable", {}).status_code == 302
    assert login(app.test_client(), "vera").status_code == 302
    assert _entries(data_dir, "user_enabled")[0]["detail"] == {"user": "vera"}


def test_the_last_administrator_stays(client_as: Callable[[str], FlaskClient],
                                      people: dict[str, users.User], data_dir: Path) -> None:
    admin = client_as("admin")
    me = people["admin"].id
    refused = post_form(admin, f"/users/{me}/disable", {})
    assert refused.status_code == 400
    demoted = post_form(admin, f"/users/{me}", {"role": "viewer", "language": "en"})
    assert demoted.status_code == 400 and "last enabled administrator" in demoted.get_data(
        as_text=True)
    assert _user(data_dir, "alice").role == "admin"


def test_reset_password_ends_sessions(client_as: Callable[[str], FlaskClient], app: Flask,
                                      data_dir: Path, people: dict[str, users.User]) -> None:
    admin = client_as("admin")
    ivan = client_as("inspector")
    target = people["inspector"].id
    response = post_form(admin, f"/users/{target}/password", {"password_mode": "generate"})
    assert response.status_code == 200
    password = PASSWORD_RE.search(response.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    assert ivan.get("/").status_code == 302  # logged out
    assert login(app.test_client(), "ivan", PASSWORD).status_code == 401
    assert login(app.test_client(), "ivan", password).status_code == 302
    (entry,) = _entries(data_dir, "password_reset")
    assert entry["detail"] == {"user": "ivan", "password": "generated"}
    # Set by the administrator instead.
    response = post_form(admin, f"/users/{target}/password",
                         {"password_mode": "set", "password": "chosen by alice"})
    assert response.status_code == 302
    assert login(app.test_client(), "ivan", "chosen by alice").status_code == 302


def test_role_team_language_and_recordings(client_as: Callable[[str], FlaskClient],
                                           data_dir: Path,
                                           people: dict[str, users.User]) -> None:
    admin = client_as("admin")
    vera = client_as("viewer")
    assert vera.get("/appeals").status_code == 403
    target = people["viewer"].id
    response = post_form(admin, f"/users/{target}", {
        "role": "supervisor", "team": "T2", "language": "zh", "perm_play": "1",
        "perm_download": "1"})
    assert response.status_code == 302
    after = _user(data_dir, "vera")
    assert (after.role, after.team_id, after.language, after.recording_perms) == (
        "supervisor", "T2", "zh", "play,download")
    (entry,) = _entries(data_dir, "user_updated")
    assert entry["detail"] == {"user": "vera", "role": ["viewer", "supervisor"],
                               "team": [None, "T2"], "language": ["en", "zh"],
                               "recording": ["", "play,download"]}
    # The new role holds at her next request, without logging in again.
    assert vera.get("/appeals").status_code == 200
    # A supervisor's team cannot be emptied.
    refused = post_form(admin, f"/users/{target}", {"role": "supervisor", "team": "",
                                                     "language": "zh"})
    assert refused.status_code == 400
    assert _user(data_dir, "vera").team_id == "T2"


def test_audit_log_filters_by_date(client_as: Callable[[str], FlaskClient],
                                   data_dir: Path) -> None:
    admin = client_as("admin")
    page = admin.get("/audit?since=2020-01-01&until=2999-12-31").get_data(as_text=True)
    assert "data-entry-id" in page and 'name="since" value="2020-01-01"' in page
    page = admin.get("/audit?until=2020-01-01").get_data(as_text=True)
    assert "data-entry-id" not in page
    page = admin.get("/audit?since=2999-01-01").get_data(as_text=True)
    assert "data-entry-id" not in page
    assert 'id="audit-chain" data-valid="1"' in page
