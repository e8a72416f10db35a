"""Helpers for the review tests: posting panel forms, reading the site database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, g, render_template
from flask.testing import FlaskClient

from admin_web import calls_data, review_data, site_db, users
from tests.admin_web.conftest import post_form


def db_rows(data_dir: Path, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    conn = site_db.connect(data_dir)
    try:
        return site_db.rows(conn, sql, params)
    finally:
        conn.close()


def review_row(data_dir: Path, call_id: str) -> dict[str, Any] | None:
    found = db_rows(data_dir, "SELECT * FROM call_reviews WHERE call_id = ?", [call_id])
    return found[0] if found else None


def state(data_dir: Path, call_id: str) -> str:
    row = review_row(data_dir, call_id)
    return "scored" if row is None else str(row["state"])


def seq_of(data_dir: Path, call_id: str, item_id: str, nth: int = 0) -> int:
    found = db_rows(data_dir, "SELECT seq FROM cq.findings WHERE call_id = ? AND item_id = ?"
                    " ORDER BY seq", [call_id, item_id])
    return int(found[nth]["seq"])


def snapshot(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Everything a review change writes, to compare before and after a refused one."""
    tables = ("call_reviews", "finding_verdicts", "added_findings", "review_history",
              "appeals", "audit_log")
    out = {t: db_rows(data_dir, f"SELECT * FROM {t} ORDER BY rowid") for t in tables}
    # Loading pages logs nothing, but logins do: compare the review actions only.
    out["audit_log"] = [r for r in out["audit_log"] if r["action"] not in ("login", "logout")]
    return out


def audit_actions(data_dir: Path, call_id: str | None = None) -> list[str]:
    where = " WHERE call_id = ?" if call_id else ""
    sql = f"SELECT action FROM audit_log{where} ORDER BY id"
    return [r["action"] for r in db_rows(data_dir, sql, [call_id] if call_id else [])]


class Panel:
    """Posts the review panel's forms for one call, as a browser would."""

    def __init__(self, client: FlaskClient, call_id: str) -> None:
        self.client = client
        self.call_id = call_id

    def post(self, what: str, data: dict[str, Any] | None = None) -> Any:
        return post_form(self.client, f"/calls/{self.call_id}/{what}", data or {})

    def verdict(self, seq: int, verdict: str, comment: str = "") -> Any:
        return self.post("review/verdict", {"seq": seq, "verdict": verdict, "comment": comment})

    def add(self, item_id: str, start: str, end: str = "", comment: str = "") -> Any:
        return self.post("review/findings", {"item_id": item_id, "start": start, "end": end,
                                             "comment": comment})

    def remove(self, added_id: int) -> Any:
        return self.post(f"review/findings/{added_id}/remove")

    def comment(self, text: str) -> Any:
        return self.post("review/comment", {"comment": text})

    def submit(self) -> Any:
        return self.post("review/submit")

    def appeal(self, reason: str) -> Any:
        return self.post("appeal", {"reason": reason})

    def decide(self, decision: str, comment: str = "", **changes: Any) -> Any:
        return self.post("decision", {"decision": decision, "comment": comment, **changes})

    def finalize(self) -> Any:
        return self.post("finalize")


def render_panel(app: Flask, data_dir: Path, user: users.User, call_id: str) -> str:
    """The review panel as the call page includes it, for `user`."""
    with app.test_request_context("/"):
        g.user = user
        conn = site_db.connect(data_dir)
        try:
            call = calls_data.get_call(conn, call_id, team_scope=user.team_scope)
            assert call is not None
            review = review_data.panel_context(conn, call, user)
            return render_template("review/panel.html", call=call, review=review)
        finally:
            conn.close()
