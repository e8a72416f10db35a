"""Fixtures for the admin web: a data folder with calls stored by core's own storage code,
the app over it, users of every role, and a logged-in test client.

The stored calls are made here (not transcribed) so that route tests run in milliseconds;
the browser tests use calls scored by the real pipeline instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin_web import create_app, site_db, users
from core.audio.wav import write_wav_g711
from core.calls import CallResult, Finding, Utterance
from core.rubric.scoring import score_findings
from core.storage import repository
from core.storage.db import open_db
from core.storage.rubric_catalog import resolve_rubric
from kernels.g711 import ulaw_encode

PASSWORD = "correct horse battery"
SAMPLE_RATE = 8000


@dataclass(frozen=True)
class StoredCall:
    id: str
    agent: str
    team: str
    score: float
    passed: bool
    findings: int


def _finding(rubric: Any, item_id: str, speaker: str, start: float, end: float,
             evidence: str, detail: dict[str, Any] | None = None) -> Finding:
    item = next(i for i in rubric.items if i.id == item_id)
    return Finding(item_id=item.id, kind=item.kind, speaker=speaker, start=start, end=end,
                   evidence=evidence, severity=item.severity, deduct=item.deduct,
                   name=item.name, category=item.category, alert=item.alert,
                   detail=detail or {})


def store_call(data_dir: Path, *, agent: str, team: str, started: str,
               findings: list[tuple[str, str, float, float, str]],
               duration_s: float = 12.0, logprob: float = -0.2) -> StoredCall:
    """Store one scored call (recording, transcript, findings, score) as core does."""
    db = open_db(data_dir / "callqa.db")
    try:
        resolved = resolve_rubric(db, "default-zh")
        rubric = resolved.rubric
        fs = [_finding(rubric, item, sp, s, e, ev) for item, sp, s, e, ev in findings]
        sheet = score_findings(rubric, fs)
        t = np.arange(int(duration_s * SAMPLE_RATE)) / SAMPLE_RATE
        agent_audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (t % 4 < 2)).astype(np.float32)
        customer_audio = (0.3 * np.sin(2 * np.pi * 330 * t) * (t % 4 >= 2)).astype(np.float32)
        call_id = repository.new_call_id()
        path = repository.recording_path(data_dir, call_id, started)
        path.parent.mkdir(parents=True, exist_ok=True)
        codes = [ulaw_encode(np.round(x * 32767).astype(np.int16))
                 for x in (agent_audio, customer_audio)]
        write_wav_g711(path, codes, SAMPLE_RATE, "mulaw")
        transcript = [
            Utterance(speaker="agent", start=0.2, end=1.8, text="您好，很高兴为您服务。",
                      avg_logprob=logprob, no_speech_prob=0.01),
            Utterance(speaker="customer", start=2.2, end=3.8, text="我的快递太慢了，我要投诉。",
                      avg_logprob=-1.2, no_speech_prob=0.05),
            Utterance(speaker="agent", start=4.2, end=5.8, text="这个我也不知道。",
                      avg_logprob=logprob, no_speech_prob=0.01),
        ]
        result = CallResult(
            rubric_id=rubric.id, rubric_version=resolved.version, score=sheet.score,
            passed=sheet.passed, fatal=sheet.fatal, findings=sheet.findings,
            transcript=transcript,
            metrics={"duration_s": duration_s, "silence": [[6.0, 9.5]], "overtalk": [],
                     "rate_unit": "chars"},
            category_scores=sheet.category_scores(), scoring=sheet.to_json(),
        )
        record = repository.CallRecord(
            id=call_id, source="siprec", recording_path=str(path), duration_s=duration_s,
            started_at=started, agent_id=agent, team_id=team, language="zh",
            meta={"agent_channel": "left", "channels": 2}, status="scored",
        )
        repository.save_scored_call(db, record, result)
    finally:
        db.close()
    return StoredCall(call_id, agent, team, sheet.score, sheet.passed, len(sheet.findings))


def stock_calls(data_dir: Path) -> list[StoredCall]:
    """Four calls over two teams: a fatal one, a failed one, a flagged pass, a clean pass."""
    return [
        store_call(data_dir, agent="A01", team="T1", started="2025-09-03T09:00:00+08:00",
                   findings=[("forbidden_words", "agent", 4.4, 5.0, "不知道"),
                             ("complaint_risk", "customer", 3.0, 3.6, "投诉"),
                             ("insult", "agent", 5.0, 5.5, "你有病吧")]),
        store_call(data_dir, agent="A02", team="T1", started="2025-09-04T10:00:00+08:00",
                   findings=[("forbidden_words", "agent", 4.4, 5.0, "不知道"),
                             ("greeting", "agent", 0.0, 15.0, "missing: 您好"),
                             ("closing", "agent", 6.0, 12.0, "missing: 再见"),
                             ("dead_air", "any", 6.0, 9.5, "silence 3.5 s")]),
        store_call(data_dir, agent="A05", team="T2", started="2025-09-05T11:00:00+08:00",
                   findings=[("pace", "agent", 4.2, 5.8, "420 chars/min (fast)")]),
        store_call(data_dir, agent="A06", team="T2", started="2025-09-06T12:00:00+08:00",
                   findings=[]),
    ]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def calls(data_dir: Path) -> list[StoredCall]:
    return stock_calls(data_dir)


@pytest.fixture
def app(data_dir: Path, calls: list[StoredCall]) -> Iterator[Flask]:
    app = create_app({
        "DATA_DIR": str(data_dir),
        "TESTING": True,
        # No daemon runs in these tests: a port nothing listens on.
        "DAEMON_ADDRESS": "127.0.0.1:9",
    })
    yield app


def make_user(data_dir: Path, name: str, role: str, team: str | None = None,
              recording: str | None = None, language: str = "en") -> users.User:
    conn = site_db.connect(data_dir)
    try:
        return users.create_user(conn, name, PASSWORD, role, team, language, recording)
    finally:
        conn.close()


@pytest.fixture
def people(app: Flask, data_dir: Path) -> dict[str, users.User]:
    """One user per role; the supervisor leads team T1."""
    return {
        "admin": make_user(data_dir, "alice", "admin"),
        "inspector": make_user(data_dir, "ivan", "inspector"),
        "inspector2": make_user(data_dir, "iris", "inspector"),
        "supervisor": make_user(data_dir, "sam", "supervisor", team="T1"),
        "viewer": make_user(data_dir, "vera", "viewer"),
    }


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    token = csrf_token(client)
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token})


@pytest.fixture
def client_as(app: Flask, people: dict[str, users.User]
              ) -> Callable[[str], FlaskClient]:
    """A test client logged in as the user of that role ('admin', 'supervisor', ...)."""

    def make(role: str) -> FlaskClient:
        client = app.test_client()
        response = login(client, people[role].username)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return make


def post_form(client: FlaskClient, path: str, data: dict[str, Any],
              page: str = "/") -> Any:
    """POST a form the way a browser does: with the CSRF token from a page of the site."""
    return client.post(path, data={**data, "csrf_token": csrf_token(client, page)})
