"""The site saves reviews while core stores calls: neither waits long, neither fails.

The daemon writes callqa.db; the site writes admin.db and reads callqa.db (attached
read-only). A thread stores calls through core's storage code in a loop while the test
client saves reviews; no write may fail with "database is locked", every review must be
saved and every call stored.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient

from admin_web import site_db
from tests.admin_web.conftest import StoredCall, store_call
from tests.admin_web.review_util import Panel, db_rows, state

STORED_AT_LEAST = 15
REVIEWED = 8


def test_reviews_save_while_calls_are_stored(client_as: Callable[[str], FlaskClient],
                                             data_dir: Path, calls: list[StoredCall]) -> None:
    targets = [store_call(data_dir, agent="R1", team="T1", started="2025-11-01T09:00:00+08:00",
                          findings=[("forbidden_words", "agent", 4.4, 5.0, "不知道"),
                                    ("greeting", "agent", 0.0, 15.0, "missing")])
               for _ in range(REVIEWED)]
    ivan = client_as("inspector")
    errors: list[str] = []
    stored: list[str] = []
    reviewing = threading.Event()
    finished = threading.Event()
    stored_while_reviewing = 0

    def store_calls() -> None:
        # From the first review until the last one is saved (and at least a few calls).
        nonlocal stored_while_reviewing
        try:
            reviewing.wait(10)
            while not finished.is_set() or len(stored) < STORED_AT_LEAST:
                i = len(stored)
                stored.append(store_call(
                    data_dir, agent="W1", team="T2",
                    started=f"2025-11-02T{9 + i // 60:02d}:{i % 60:02d}:00+08:00",
                    findings=[("pace", "agent", 4.2, 5.8, "fast")]).id)
                if not finished.is_set():
                    stored_while_reviewing += 1
        except Exception:
            errors.append(traceback.format_exc())

    writer = threading.Thread(target=store_calls)
    writer.start()
    try:
        for n, call in enumerate(targets):
            panel = Panel(ivan, call.id)
            reviewing.set()
            responses = [panel.verdict(0, "rejected", f"check {n}"), panel.verdict(1, "confirmed"),
                         panel.comment("done"), panel.submit()]
            for response in responses:
                assert response.status_code == 302, response.get_data(as_text=True)
    finally:
        reviewing.set()
        finished.set()
        writer.join(120)
    assert not writer.is_alive()
    assert not errors, errors[0]
    assert len(stored) >= STORED_AT_LEAST
    assert stored_while_reviewing >= 2  # the two really ran side by side

    for call in targets:
        assert state(data_dir, call.id) == "reviewed"
    assert len(db_rows(data_dir, "SELECT * FROM review_history WHERE action = 'submit'")) == (
        REVIEWED)
    assert len(db_rows(data_dir, "SELECT * FROM audit_log WHERE action LIKE 'review_%'")) == (
        4 * REVIEWED)
    conn = site_db.connect(data_dir)
    try:
        count = conn.execute("SELECT COUNT(*) FROM cq.calls").fetchone()[0]
        found = {r[0] for r in conn.execute("SELECT call_id FROM cq.scores")}
    finally:
        conn.close()
    assert count == len(calls) + REVIEWED + len(stored)
    assert set(stored) <= found
