"""The rubric pages: list, editor (form and YAML), validation at the field in English and
Chinese, history and diffs, import and export, activation, and rubric routes.

Pages that only read run against the shared fixtures (no daemon: a port nothing listens on),
which also shows that a save is refused while the daemon is down. Saving, importing,
activating and routing run against a real `callqa serve` child (ASR off), whose database
the site reads; a route set on the site changes the rubric of the next call streamed to
that daemon.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin_web import create_app, users
from core.daemon.child import ServeProcess
from core.rubric import load_rubric_text
from core.rubric.defaults import builtin_rubrics
from core.storage import repository
from core.storage.db import open_db
from tests.admin_web.conftest import csrf_token, login, make_user, post_form, stock_calls
from tests.core.storage.test_rubric_routes import rubric_of_new_call

# A rubric with every kind and every field of RUBRIC.md (format 1), for the form round trip.
EVERY_FIELD = """\
format: 1
id: every-field
name: Every field
language: zh
pass_score: 70
total: 90
categories:
  - {id: manners, name: 服务礼仪}
  - {id: risk, name: 风险}
items:
  - id: banned
    name: 禁语
    category: manners
    kind: forbidden_phrase
    speaker: agent
    phrases: [不知道, '12315']
    match: exact
    severity: A
    deduct: 10
    max_deduct: 20
    alert: true
  - id: greeting
    kind: required_phrase
    speaker: any
    phrases: ['您好.*服务']
    match: regex
    window: {first_s: 15}
    severity: B
    deduct: 5
  - id: closing
    kind: required_phrase
    phrases: [再见]
    window: {last_s: 20.5}
    severity: C
    deduct: 2
    enabled: false
  - id: sorry
    kind: trigger_response
    trigger: {speaker: customer, phrases: [太慢了, 投诉]}
    response: {speaker: agent, phrases: [抱歉], within_turns: 2}
    match: fuzzy
    severity: B
    deduct: 3
  - id: dead_air
    kind: silence
    min_s: 8
    hold_phrases: [请稍等]
    severity: B
    deduct: 5
  - id: interrupt
    kind: overtalk
    speaker: customer
    min_overlap_s: 1.5
    severity: C
    deduct: 1
  - id: pace
    kind: speech_rate
    speaker: agent
    min_per_min: 120
    max_per_min: 330
    min_utterance_s: 3
    severity: C
    deduct: 3
  - id: loud
    kind: volume
    speaker: agent
    rise_db: 6
    severity: B
    deduct: 5
  - id: fillers
    kind: filler_words
    speaker: agent
    phrases: [嗯, 那个]
    max_per_min: 6
    severity: C
    deduct: 2
  - id: complaint
    category: risk
    kind: keyword_alert
    speaker: customer
    phrases: [投诉]
    match: fuzzy
    severity: A
    alert: true
  - id: angry
    kind: emotion
    speaker: customer
    min_confidence: 0.7
    severity: B
    deduct: 0
    fatal: true
"""


# ---------------------------------------------------------------- reading pages


class _FormFields(HTMLParser):
    """The fields a browser would send for one form of a page (its id), by name."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        if tag == "input" and a.get("name") and a.get("type") not in ("file", "submit"):
            if a.get("type") == "checkbox" and "checked" not in a:
                return
            self.fields.append((a["name"], a.get("value", "")))
        elif tag == "select":
            self._select, self._options = a.get("name"), []
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea":
            self._textarea, self._text = a.get("name"), ""

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select is not None:
            chosen = [v for v, s in self._options if s] or [v for v, _s in self._options[:1]]
            self.fields.append((self._select, chosen[0] if chosen else ""))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.fields.append((self._textarea, self._text.removeprefix("\n")))
            self._textarea = None


def form_fields(html: str, form_id: str = "rubric-form") -> dict[str, str]:
    parser = _FormFields(form_id)
    parser.feed(html)
    return dict(parser.fields)


class _Block(HTMLParser):
    """The text inside the element carrying ``data-error-key=KEY``."""

    VOID: ClassVar[set[str]] = {"input", "br", "img", "meta", "link", "hr", "col"}

    def __init__(self, key: str) -> None:
        super().__init__(convert_charrefs=True)
        self.key, self.depth, self.text, self.found = key, 0, "", False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        if self.depth:
            self.depth += 1
        elif dict(attrs).get("data-error-key") == self.key:
            self.depth, self.found = 1, True

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag not in self.VOID:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.text += data


def at_field(html: str, key: str) -> str:
    parser = _Block(key)
    parser.feed(html)
    assert parser.found, f"no field {key} on the page"
    return " ".join(parser.text.split())


def error_spans(html: str) -> list[tuple[str, str]]:
    return re.findall(r'class="field-error" data-for="([^"]+)">([^<]*)<', html)


def editor_post(client: FlaskClient, fields: dict[str, str], action: str) -> Any:
    return post_form(client, "/rubrics/editor", {**fields, "action": action})


def audit_entries(data_dir: Path, action: str) -> list[dict[str, Any]]:
    from admin_web import site_db

    conn = site_db.connect(data_dir)
    try:
        return [json.loads(r["detail"]) for r in conn.execute(
            "SELECT detail FROM audit_log WHERE action = ? ORDER BY id", [action])]
    finally:
        conn.close()


def stored_versions(data_dir: Path, rubric_id: str) -> list[tuple[int, bool]]:
    db = open_db(data_dir / "callqa.db")
    try:
        rows = db.execute("SELECT version, active FROM rubric_versions WHERE rubric_id = ?"
                          " ORDER BY version", [rubric_id]).fetchall()
        return [(int(v), bool(a)) for v, a in rows]
    finally:
        db.close()


# ---------------------------------------------------------------- roles and CSRF


def test_each_role_sees_what_it_may(client_as: Callable[[str], FlaskClient]) -> None:
    admin = client_as("admin")
    page = admin.get("/rubrics").get_data(as_text=True)
    assert 'id="nav-rubrics"' in page and 'id="new-rubric"' in page
    assert 'id="import-form"' in page and 'data-rubric-id="default-zh"' in page
    assert admin.get("/rubrics/edit/default-zh").status_code == 200
    assert admin.get("/rubrics/routes").status_code == 200
    view = admin.get("/rubrics/view/default-zh").get_data(as_text=True)
    assert 'id="edit-rubric"' in view and 'id="export-rubric"' in view
    if "dryrun" in admin.application.blueprints:  # the dry run's pages take it from there
        assert 'action="/dryrun/start?rubric_id=default-zh&amp;version=1"' in view

    inspector = client_as("inspector")
    page = inspector.get("/rubrics").get_data(as_text=True)
    assert 'id="nav-rubrics"' in page and 'id="new-rubric"' not in page
    assert 'id="import-form"' not in page
    view = inspector.get("/rubrics/view/default-zh").get_data(as_text=True)
    assert 'id="rubric-yaml"' in view and 'id="edit-rubric"' not in view
    assert 'id="route-form"' not in inspector.get("/rubrics/routes").get_data(as_text=True)
    assert inspector.get("/rubrics/export/default-zh").status_code == 200
    for path in ("/rubrics/edit/default-zh", "/rubrics/new"):
        assert inspector.get(path).status_code == 403
    for path, data in (("/rubrics/editor", {"action": "save"}),
                       ("/rubrics/routes", {"kind": "team", "value": "T1",
                                            "rubric_id": "default-en"}),
                       ("/rubrics/activate/default-zh/1", {}),
                       ("/rubrics/import", {})):
        assert post_form(inspector, path, data).status_code == 403, path

    for role in ("supervisor", "viewer"):
        client = client_as(role)
        assert 'id="nav-rubrics"' not in client.get("/").get_data(as_text=True)
        for path in ("/rubrics", "/rubrics/view/default-zh", "/rubrics/routes",
                     "/rubrics/export/default-zh", "/rubrics/diff/default-zh"):
            assert client.get(path).status_code == 403, (role, path)


def test_posts_need_the_csrf_token(client_as: Callable[[str], FlaskClient]) -> None:
    admin = client_as("admin")
    for path in ("/rubrics/editor", "/rubrics/routes", "/rubrics/activate/default-zh/1",
                 "/rubrics/import"):
        assert admin.post(path, data={"action": "check"}).status_code == 400, path
    html = post_form(admin, "/rubrics/editor", {"action": "check", "source": "yaml",
                                                "yaml_text": "x"}).get_data(as_text=True)
    assert 'id="form-unreadable"' in html
    assert "The rubric must be a YAML mapping (format, id, items, ...)." in html
    html = editor_post(admin, {"source": "yaml", "yaml_text": "{{{"}, "to_form").get_data(
        as_text=True)
    assert "This is not valid YAML:" in html and 'id="form-unreadable"' in html


# ---------------------------------------------------------------- editor


def test_every_kind_and_field_goes_through_the_form(client_as: Callable[[str], FlaskClient]
                                                   ) -> None:
    admin = client_as("admin")
    # The YAML into the form ...
    page = editor_post(admin, {"source": "yaml", "yaml_text": EVERY_FIELD}, "to_form")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="problems"' not in html, error_spans(html)
    fields = form_fields(html)
    assert fields["items-1-match"] == "regex" and fields["items-2-window_mode"] == "last_s"
    assert fields["items-3-trigger_phrases"] == "太慢了\n投诉"
    assert "items-2-enabled" not in fields and fields["items-10-fatal"] == "1"
    # ... and the form, untouched, back into YAML that means the same rubric.
    back = editor_post(admin, fields, "to_yaml").get_data(as_text=True)
    text = form_fields(back, "yaml-form")["yaml_text"]
    assert load_rubric_text(text) == load_rubric_text(EVERY_FIELD)
    # The built-in rubric too, its header comment kept.
    fields = form_fields(admin.get("/rubrics/edit/default-zh").get_data(as_text=True))
    text = form_fields(editor_post(admin, fields, "to_yaml").get_data(as_text=True),
                       "yaml-form")["yaml_text"]
    assert text.startswith("# Built-in Chinese rubric")
    assert load_rubric_text(text) == load_rubric_text(builtin_rubrics()["default-zh"])


def test_items_are_added_moved_and_removed(client_as: Callable[[str], FlaskClient]) -> None:
    admin = client_as("admin")
    fields = form_fields(editor_post(admin, {"source": "yaml", "yaml_text": EVERY_FIELD},
                                     "to_form").get_data(as_text=True))
    html = editor_post(admin, fields, "add_item").get_data(as_text=True)
    added = form_fields(html)
    assert added["items-11-id"] == "item-12" and added["items-11-kind"] == "forbidden_phrase"
    moved = form_fields(editor_post(admin, added, "up:1").get_data(as_text=True))
    assert (moved["items-0-id"], moved["items-1-id"]) == ("greeting", "banned")
    removed = form_fields(editor_post(admin, moved, "remove_item:0").get_data(as_text=True))
    assert removed["items-0-id"] == "banned" and "items-11-id" not in removed
    with_cat = form_fields(editor_post(admin, removed, "add_category").get_data(as_text=True))
    assert with_cat["categories-2-id"] == ""


def _broken_form(client: FlaskClient) -> dict[str, str]:
    """The editor's form for default-zh, with two mistakes: the highest speech rate below the
    lowest (item 13, pace) and a deduction that is not a number (item 1, greeting)."""
    fields = form_fields(client.get("/rubrics/edit/default-zh").get_data(as_text=True))
    assert fields["items-12-id"] == "pace" and fields["items-0-id"] == "greeting"
    fields["items-12-rate_max_per_min"] = "100"
    fields["items-0-deduct"] = "five"
    return fields


def test_validation_errors_stand_at_their_fields_in_english(
    client_as: Callable[[str], FlaskClient], data_dir: Path
) -> None:
    admin = client_as("admin")
    before = stored_versions(data_dir, "default-zh")
    response = editor_post(admin, _broken_form(admin), "save")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Not saved: the rubric has problems" in at_field_notice(html)
    assert "Must be greater than the lowest rate." in at_field(html, "items-12-max_per_min")
    assert "Highest rate per minute" in at_field(html, "items-12-max_per_min")
    assert "Must be a number, 0 or more." in at_field(html, "items-0-deduct")
    assert sorted(error_spans(html)) == sorted([
        ("items-0-deduct", "Must be a number, 0 or more."),
        ("items-12-max_per_min", "Must be greater than the lowest rate."),
    ])
    # The YAML view lists them all, with the validator's own words kept.
    assert "items[12] (id=pace): max_per_min: must be a number &gt; min_per_min" in html
    assert stored_versions(data_dir, "default-zh") == before  # nothing saved

    # Mistakes made in the YAML are placed at the form's fields as well.
    text = builtin_rubrics()["default-zh"].replace("'12315'", "12315").replace(
        "    deduct: 5\n", "    dedcut: 5\n", 1)
    html = editor_post(admin, {"source": "yaml", "yaml_text": text}, "save").get_data(
        as_text=True)
    assert "Line 2: Must be text: in YAML, put numbers in quotes ('12315')." in at_field(
        html, "items-14-phrases")
    assert "dedcut: Unknown field (did you mean deduct?)." in at_field(html, "items-0")
    assert "Required: fill this in." in at_field(html, "items-0-deduct")
    assert 'id="panel-yaml" data-panel="yaml" >' in html  # the YAML tab stays open


def at_field_notice(html: str) -> str:
    match = re.search(r'id="editor-notice"[^>]*>([^<]*)<', html)
    assert match, "no notice"
    return match.group(1)


@pytest.fixture
def zh_app(data_dir: Path, calls: list[Any]) -> Flask:
    """The site with its Chinese catalogue."""
    return create_app({"DATA_DIR": str(data_dir), "TESTING": True,
                       "DAEMON_ADDRESS": "127.0.0.1:9"})


def test_validation_errors_stand_at_their_fields_in_chinese(zh_app: Flask,
                                                            data_dir: Path) -> None:
    make_user(data_dir, "li", "admin", language="zh")
    client = zh_app.test_client()
    assert login(client, "li").status_code == 302
    response = editor_post(client, _broken_form(client), "save")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "未保存：质检规则存在问题" in at_field_notice(html)
    assert "必须大于最低语速。" in at_field(html, "items-12-max_per_min")
    assert "每分钟最高语速" in at_field(html, "items-12-max_per_min")
    assert "必须是大于或等于 0 的数字。" in at_field(html, "items-0-deduct")
    text = builtin_rubrics()["default-zh"].replace("severity: B\n", "severity: D\n", 1)
    html = editor_post(client, {"source": "yaml", "yaml_text": text}, "check").get_data(
        as_text=True)
    assert "必须是以下之一：A、B、C（当前为 'D'）。" in at_field(html, "items-0-severity")


def test_a_save_is_refused_while_the_daemon_is_down(
    client_as: Callable[[str], FlaskClient], data_dir: Path
) -> None:
    admin = client_as("admin")
    before = stored_versions(data_dir, "default-zh")
    fields = form_fields(admin.get("/rubrics/edit/default-zh").get_data(as_text=True))
    fields["top-pass_score"] = "85"
    response = editor_post(admin, fields, "save")
    html = response.get_data(as_text=True)
    assert response.status_code == 503
    notice = at_field_notice(html)
    assert "Not saved: the callqa daemon is not answering at 127.0.0.1:9" in notice
    assert form_fields(html)["top-pass_score"] == "85"  # the edit is still on the page
    assert stored_versions(data_dir, "default-zh") == before
    assert audit_entries(data_dir, "rubric_save") == []
    # Routes and activation say so too, and change nothing.
    page = post_form(admin, "/rubrics/routes", {"kind": "team", "value": "T1",
                                                "rubric_id": "default-en", "action": "set"})
    assert page.status_code == 302
    routes = admin.get("/rubrics/routes").get_data(as_text=True)
    assert "Not changed: the callqa daemon is not answering" in routes
    assert 'id="routes-offline"' in routes and 'data-source="stored"' not in routes


# ---------------------------------------------------------------- history, export, import


def test_history_shows_a_readable_diff(client_as: Callable[[str], FlaskClient],
                                       data_dir: Path) -> None:
    text = builtin_rubrics()["default-zh"]
    changed = text.replace("pass_score: 80", "pass_score: 85").replace(
        "    phrases: [您好, 很高兴为您服务]", "    phrases: [您好, 很高兴为您服务, 您好请讲]")
    db = open_db(data_dir / "callqa.db")
    try:  # versions as the daemon stores them (the calls fixture stored version 1)
        assert repository.record_rubric_version(db, "default-zh", changed) == 2
    finally:
        db.close()
    admin = client_as("inspector")
    view = admin.get("/rubrics/view/default-zh").get_data(as_text=True)
    assert 'data-version="2"' in view and 'class="diff-link"' in view
    html = admin.get("/rubrics/diff/default-zh?a=1&b=2").get_data(as_text=True)
    assert "2 lines added" in html and "2 lines removed" in html
    rows = re.findall(r'<tr class="(add|del)">.*?<td class="code">(.*?)</td>', html, re.S)
    plain = [(kind, re.sub(r"</?mark>", "", code)) for kind, code in rows]
    assert ("del", "pass_score: 80") in plain and ("add", "pass_score: 85") in plain
    assert ("add", "    phrases: [您好, 很高兴为您服务, 您好请讲]") in plain
    assert "<mark>5</mark>" in html  # the changed part of the line is marked
    # The stored texts as they are: the comment lines show as they are.
    raw = admin.get("/rubrics/diff/default-zh?a=1&b=2&text=1&full=1").get_data(as_text=True)
    assert "# Built-in Chinese rubric" in raw and "1 lines added" not in raw
    same = admin.get("/rubrics/diff/default-zh?a=2&b=2").get_data(as_text=True)
    assert "The two texts are the same." in same


def test_export_downloads_a_version_and_is_audited(client_as: Callable[[str], FlaskClient],
                                                   data_dir: Path) -> None:
    client = client_as("inspector")
    response = client.get("/rubrics/export/default-zh?version=1")
    assert response.status_code == 200
    assert 'filename="default-zh-v1.yaml"' in response.headers["Content-Disposition"]
    assert response.get_data(as_text=True) == builtin_rubrics()["default-zh"]
    builtin = client.get("/rubrics/export/default-en")
    assert 'filename="default-en-built-in.yaml"' in builtin.headers["Content-Disposition"]
    assert audit_entries(data_dir, "rubric_export") == [
        {"rubric_id": "default-zh", "version": 1},
        {"rubric_id": "default-en", "version": "built-in"},
    ]
    assert client.get("/rubrics/export/default-zh?version=9").status_code == 404


def test_an_invalid_import_opens_in_the_editor(client_as: Callable[[str], FlaskClient],
                                               data_dir: Path) -> None:
    admin = client_as("admin")
    bad = EVERY_FIELD.replace("min_s: 8", "min_s: -8")
    response = admin.post("/rubrics/import", data={
        "csrf_token": csrf_token(admin, "/rubrics"),
        "file": (io.BytesIO(bad.encode()), "every.yaml")}, content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Not imported: every.yaml has problems" in at_field_notice(html)
    assert "Must be a number greater than 0." in at_field(html, "items-4-min_s")
    assert form_fields(html, "yaml-form")["yaml_text"] == bad
    assert stored_versions(data_dir, "every-field") == []
    latin = admin.post("/rubrics/import", data={
        "csrf_token": csrf_token(admin, "/rubrics"),
        "file": (io.BytesIO("name: caf\xe9".encode("latin-1")), "old.yaml")},
        content_type="multipart/form-data", follow_redirects=True)
    assert "Not imported: old.yaml is not UTF-8 text." in latin.get_data(as_text=True)


# ---------------------------------------------------------------- with a real daemon


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A `callqa serve` child and the site over the same data folder."""
    data = tmp_path_factory.mktemp("rubrics-live") / "data"
    data.mkdir()
    stock_calls(data)
    daemon = ServeProcess(data, {"asr_enabled": "false", "sip_enabled": "false",
                                 "rubric_routes": "team:T2=default-en"}).start()
    app = create_app({"DATA_DIR": str(data), "TESTING": True, "DAEMON_ADDRESS": daemon.address})
    people: dict[str, users.User] = {
        "admin": make_user(data, "alice", "admin"),
        "inspector": make_user(data, "ivan", "inspector"),
    }
    try:
        yield {"data": data, "daemon": daemon, "app": app, "people": people}
    finally:
        daemon.stop()


def _client(live: dict[str, Any], role: str) -> FlaskClient:
    client: FlaskClient = live["app"].test_client()
    assert login(client, live["people"][role].username).status_code == 302
    return client


def test_save_makes_a_draft_and_activation_puts_it_in_use(live: dict[str, Any]) -> None:
    data, admin = live["data"], _client(live, "admin")
    # The stock calls were scored with the built-in text, stored as version 1, never
    # activated: it is in use as the latest version.
    assert stored_versions(data, "default-zh") == [(1, False)]
    fields = form_fields(admin.get("/rubrics/edit/default-zh").get_data(as_text=True))
    fields["top-pass_score"] = "85"
    response = editor_post(admin, fields, "save")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].endswith("/rubrics/view/default-zh?version=2")
    # A draft: the version in use was pinned (made active), the new one waits.
    assert stored_versions(data, "default-zh") == [(1, True), (2, False)]
    page = admin.get("/rubrics/view/default-zh?version=2").get_data(as_text=True)
    assert "Saved as version 2 of default-zh, a draft" in page
    assert "pass_score: 85" in page and ">alice<" in page.replace("</td>", "<")
    assert audit_entries(data, "rubric_save")[-1] == {
        "rubric_id": "default-zh", "version": 2, "unchanged": False, "source": "form",
        "from": "default-zh v1"}
    stub = live["daemon"].stub()
    assert rubric_of_new_call(stub, team="T1") == ("default-zh", 1)
    # Saving the same text again makes no version.
    again = editor_post(admin, form_fields(admin.get(
        "/rubrics/edit/default-zh?version=2").get_data(as_text=True)), "save")
    assert again.headers["Location"].endswith("version=2")
    assert stored_versions(data, "default-zh") == [(1, True), (2, False)]

    # Activation, through the daemon: the next call gets version 2, no restart.
    response = post_form(admin, "/rubrics/activate/default-zh/2", {}, page="/rubrics")
    assert response.status_code == 302
    assert stored_versions(data, "default-zh") == [(1, False), (2, True)]
    assert audit_entries(data, "rubric_activate")[-1] == {
        "rubric_id": "default-zh", "version": 2, "previous": 1}
    assert rubric_of_new_call(stub, team="T1") == ("default-zh", 2)
    listing = admin.get("/rubrics").get_data(as_text=True)
    row = re.search(r'data-rubric-id="default-zh">(.*?)</tr>', listing, re.S)
    assert row and "version 2" in row.group(1)
    team = re.search(r'data-team="T1">(.*?)</tr>', listing, re.S)
    assert team and "default-zh" in team.group(1) and "version 2" in team.group(1)


def test_import_stores_a_new_rubric(live: dict[str, Any]) -> None:
    data, admin = live["data"], _client(live, "admin")
    response = admin.post("/rubrics/import", data={
        "csrf_token": csrf_token(admin, "/rubrics"),
        "file": (io.BytesIO(EVERY_FIELD.encode()), "every.yaml")},
        content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].endswith("/rubrics/view/every-field?version=1")
    assert stored_versions(data, "every-field") == [(1, False)]
    assert audit_entries(data, "rubric_import")[-1] == {
        "rubric_id": "every-field", "version": 1, "unchanged": False, "source": "file",
        "file": "every.yaml"}
    view = admin.get("/rubrics/view/every-field").get_data(as_text=True)
    assert "(imported)" in view and "every-field" in view
    exported = admin.get("/rubrics/export/every-field?version=1").get_data(as_text=True)
    assert exported == EVERY_FIELD


def test_a_route_set_on_the_site_changes_the_rubric_of_new_calls(live: dict[str, Any]) -> None:
    data, admin = live["data"], _client(live, "admin")
    stub = live["daemon"].stub()
    page = admin.get("/rubrics/routes").get_data(as_text=True)
    assert 'data-kind="team" data-value="T2" data-source="setting"' in page
    assert "Routes set here win over a route of the rubric_routes setting" in page
    assert rubric_of_new_call(stub, team="T1")[0] == "default-zh"

    response = post_form(admin, "/rubrics/routes", {"kind": "team", "value": "T1",
                                                    "rubric_id": "default-en", "action": "set"})
    assert response.status_code == 302
    assert rubric_of_new_call(stub, team="T1")[0] == "default-en"
    page = admin.get("/rubrics/routes").get_data(as_text=True)
    assert "Team T1: new calls get rubric default-en." in page
    assert 'data-kind="team" data-value="T1" data-source="stored"' in page
    # A route set here for T2 replaces the setting's route for T2.
    post_form(admin, "/rubrics/routes", {"kind": "team", "value": "T2",
                                         "rubric_id": "default-zh", "action": "set"})
    assert rubric_of_new_call(stub, team="T2")[0] == "default-zh"
    page = admin.get("/rubrics/routes").get_data(as_text=True)
    assert re.search(r'data-value="T2" data-source="setting" class="overridden"', page)
    # An agent route wins over the team route.
    post_form(admin, "/rubrics/routes", {"kind": "agent", "value": "A01",
                                         "rubric_id": "default-zh", "action": "set"})
    assert rubric_of_new_call(stub, team="T1", agent="A01")[0] == "default-zh"
    listing = admin.get("/rubrics").get_data(as_text=True)
    team = re.search(r'data-team="T1">(.*?)</tr>', listing, re.S)
    assert team and "default-en" in team.group(1) and "Agent A01: default-zh" in team.group(1)
    # Removing the T2 route brings the setting's route back; an unknown rubric is refused.
    post_form(admin, "/rubrics/routes", {"kind": "team", "value": "T2", "action": "remove"})
    assert rubric_of_new_call(stub, team="T2")[0] == "default-en"
    refused = post_form(admin, "/rubrics/routes", {"kind": "team", "value": "T1",
                                                   "rubric_id": "nope", "action": "set"})
    assert refused.status_code == 302
    assert rubric_of_new_call(stub, team="T1")[0] == "default-en"
    details = audit_entries(data, "rubric_route")
    assert details[:2] == [
        {"kind": "team", "value": "T1", "rubric_id": "default-en"},
        {"kind": "team", "value": "T2", "rubric_id": "default-zh"},
    ]
    assert {"kind": "team", "value": "T2", "rubric_id": None} in details
    assert all(d.get("rubric_id") != "nope" for d in details)
    # The routes are the daemon's: they are in its database, not the site's.
    db = open_db(data / "callqa.db")
    try:
        stored = db.execute("SELECT kind, value, rubric_id FROM rubric_routes"
                            " ORDER BY kind, value").fetchall()
    finally:
        db.close()
    assert [tuple(r) for r in stored] == [("agent", "A01", "default-zh"),
                                          ("team", "T1", "default-en")]
