"""A full data disk: new calls are refused while it is nearly full and taken again when
space returns (each change logged once), and a call whose recording hits ENOSPC goes on
live, is scored and stored, with its recording a valid WAV up to where the disk took it.

The free space and ENOSPC are simulated (``os.statvfs`` and ``os.pwrite`` of the modules
that call them); the engine, recorder, writer and SQLite are the real ones, with a
scripted ASR (the model is not under test).
"""

from __future__ import annotations

import errno
import logging
import os
import wave
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from core.audio.samples import SAMPLE_CALLS, render
from core.config import load_settings
from core.live.call import CallSetup
from core.live.disk_guard import DiskLow
from core.live.engine import LiveEngine
from core.storage import repository
from core.storage.db import open_db
from tests.core.live.crash_child import ScriptedAsr

RUDE = next(c for c in SAMPLE_CALLS if c.name == "en-complaint-rude")
MIB = 1024 * 1024


def _engine(tmp_path: Path) -> LiveEngine:
    config = load_settings(overrides={"data_dir": str(tmp_path), "rubric": "default-en"},
                           environ={}).replace(disk_min_free_mb=1024.0)  # fmt: skip
    engine = LiveEngine(config, ScriptedAsr)
    engine.start()
    return engine


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 32768.0, -32768, 32767).astype(np.int16)


def test_new_calls_are_refused_while_the_disk_is_nearly_full_and_taken_when_space_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    free_mb = [100.0]
    real_statvfs = os.statvfs

    def statvfs(path: Any) -> Any:
        real = real_statvfs(path)
        return SimpleNamespace(f_bavail=int(free_mb[0] * MIB) // real.f_frsize,
                               f_frsize=real.f_frsize)  # fmt: skip

    monkeypatch.setattr("telephony.health.os.statvfs", statvfs)
    engine = _engine(tmp_path)
    engine.disk.space.interval_s = 0.0  # read the (simulated) disk at every call
    try:
        with caplog.at_level(logging.INFO, logger="core.live.disk_guard"):
            for _ in range(2):
                with pytest.raises(DiskLow, match="disk nearly full: 100 MB free, 1024 MB"):
                    engine.open_call(CallSetup(source="grpc", agent_id="D1"))
            assert engine.disk.refused == 2 and engine.calls == {}
            assert caplog.text.count("nearly full") == 1  # said once, not per call
            free_mb[0] = 5000.0
            call = engine.open_call(CallSetup(source="grpc", agent_id="D1"))
            assert "has room again (5000 MB free)" in caplog.text
            engine.end_call(call, "end")
            assert engine.wait_calls(30)
    finally:
        engine.shutdown(5)
    db = open_db(tmp_path / "callqa.db")
    try:
        assert [r[0] for r in db.execute("SELECT agent_id FROM calls")] == ["D1"]  # the one taken
    finally:
        db.close()
    assert not list((tmp_path / "spool" / "live").glob("*.wav"))  # none half-written


def test_a_call_whose_recording_hits_enospc_is_still_scored_and_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    limit = 44 + 2 * 8000 * 2 * 2  # the disk takes the header and 2 s of stereo audio
    real_pwrite = os.pwrite

    def pwrite(fd: int, data: Any, offset: int) -> int:
        if offset + len(data) > limit:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr("telephony.recorder.os.pwrite", pwrite)
    engine = _engine(tmp_path)
    agent, customer, _ = render(RUDE)
    agent16, customer16 = _int16(agent[: 8 * 8000]), _int16(customer[: 8 * 8000])
    try:
        with caplog.at_level(logging.INFO, logger="telephony.recorder"):
            call = engine.open_call(CallSetup(source="grpc", agent_id="D2"))
            for i in range(0, len(agent16), 160):  # no error reaches the ingest
                engine.feed(call, "agent", agent16[i : i + 160])
                engine.feed(call, "customer", customer16[i : i + 160])
            engine.end_call(call, "end")
            assert engine.wait_calls(30)
    finally:
        engine.shutdown(5)
    assert caplog.text.count("the disk is full") == 1
    db = open_db(tmp_path / "callqa.db")
    try:
        stored = repository.get_call(db, call.call_id)
    finally:
        db.close()
    assert stored is not None and stored["status"] == "scored", stored
    assert stored["score"] is not None
    assert max(u["end_s"] for u in stored["utterances"]) > 6.0  # transcribed past the cut
    assert "No space left" in stored["meta"]["recording_cut"]
    assert stored["meta"]["live"]["end_reason"] == "end"
    with wave.open(str(stored["recording_path"])) as w:  # a valid WAV up to the full disk
        on_disk_s = w.getnframes() / w.getframerate()
        assert w.getnchannels() == 2
    assert 1.5 <= on_disk_s <= 2.0
    assert stored["duration_s"] >= on_disk_s
