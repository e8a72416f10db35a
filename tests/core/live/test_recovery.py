"""Recovery after a kill: a kill in the middle of filing a call, a call cut too short to
score, and the alerts raised before the kill.

The killed engine runs in a child process (``crash_child``) that really dies by SIGKILL at
the first database write of the end-of-call filing; the engine that recovers is the real
one, with a scripted ASR (the model is not under test).
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import load_settings
from core.live.engine import LiveEngine
from core.storage import repository
from core.storage.db import open_db
from core.storage.live_calls import RECOVERABLE
from tests.core.live.crash_child import LONG_S, ScriptedAsr

ROOT = Path(__file__).resolve().parents[3]


def _wait_recovered(db_path: Path, ids: list[str], timeout_s: float) -> dict[str, dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        db = open_db(db_path)
        try:
            rows = {i: repository.get_call(db, i) for i in ids}
        finally:
            db.close()
        if all(r is not None and r["status"] not in RECOVERABLE for r in rows.values()):
            return rows  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"not recovered in {timeout_s} s: {rows}")
        time.sleep(0.2)


def test_a_kill_during_filing_keeps_the_recording_score_and_alerts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    child = subprocess.run(
        [sys.executable, "-m", "tests.core.live.crash_child", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert child.returncode == -signal.SIGKILL, (child.returncode, child.stderr[-3000:])
    ids = json.loads(child.stdout.splitlines()[0])
    db = open_db(tmp_path / "callqa.db")
    row = repository.get_call(db, ids["long"])
    db.close()
    assert row is not None and row["status"] == "live"
    filed = repository.recording_path(tmp_path, ids["long"], row["started_at"])
    # The kill came between the two halves of filing: the file is filed, the row is not.
    assert filed.is_file() and not Path(row["recording_path"]).exists()
    raised = row["meta"].get("alerts_raised")
    assert raised and raised[0]["finding"]["item_id"] == "forbidden_words"

    config = load_settings(overrides={"data_dir": str(tmp_path), "rubric": "default-en"},
                           environ={})  # fmt: skip
    engine = LiveEngine(config, ScriptedAsr)
    with caplog.at_level(logging.INFO, logger="core.live.recovery"):
        engine.start()
        try:
            rows = _wait_recovered(tmp_path / "callqa.db", [ids["long"], ids["short"]], 60)
        finally:
            engine.shutdown(5)
    long_call, short_call = rows[ids["long"]], rows[ids["short"]]
    assert long_call["status"] == "interrupted"
    assert long_call["score"] is not None, long_call["meta"]
    assert long_call["duration_s"] == pytest.approx(LONG_S, abs=0.3)
    assert long_call["recording_path"] == str(filed) and filed.is_file()
    assert "error" not in long_call["meta"]["interrupted"]
    assert any(f["item_id"] == "forbidden_words" for f in long_call["findings"])
    # The alerts raised live before the kill are still the call's.
    assert [a["alert_id"] for a in long_call["meta"]["alerts_raised"]] == [
        a["alert_id"] for a in raised
    ]
    assert f"call {ids['long']}: its recording was filed at" in caplog.text
    # A call the kill cut after a fraction of a second is kept, but not scored.
    assert short_call["status"] == "interrupted"
    assert short_call["score"] is None and not short_call["findings"]
    assert short_call["meta"]["interrupted"]["too_short"] is True
    assert 0.0 <= short_call["duration_s"] < 1.0
    assert short_call["recording_path"] and Path(short_call["recording_path"]).is_file()
