"""A real `callqa serve`, started with a permissive umask, keeps its files to its own user:
after the start (which assembles the embedded model) and one stored call, the database,
recordings, spool, model folder and log are 0600 files in 0700 folders, and a folder an
earlier run left 0755 is narrowed."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from core.daemon.child import ServeProcess
from proto import callqa_pb2 as pb
from tests.core.serve_harness import audio_frames

pytestmark = pytest.mark.model


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_serve_creates_its_files_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "recordings").mkdir(parents=True)
    (data_dir / "recordings").chmod(0o755)  # as an earlier run might have left it
    log_file = data_dir / "log" / "callqa.log"
    settings = {"sip_enabled": "false", "log_file": str(log_file), "model": "base"}
    previous = os.umask(0o022)  # the child inherits a permissive umask
    try:
        daemon = ServeProcess(data_dir, settings).start(timeout_s=180)
    finally:
        os.umask(previous)
    try:
        tone = (np.sin(np.arange(16000) * 0.2) * 6000).astype(np.int16)
        events = list(daemon.stub().StreamAudio(
            audio_frames(tone, tone[::-1].copy(), speed=20.0, agent_id="M1"), timeout=120,
        ))  # fmt: skip
        assert events[-1].WhichOneof("event") == "ended", events[-1]
        call_id = events[0].call_id
        deadline = time.monotonic() + 60
        call = daemon.stub().GetCall(pb.CallRef(call_id=call_id), timeout=10)
        while call.status != pb.CALL_STATUS_SCORED and time.monotonic() < deadline:
            time.sleep(0.3)
            call = daemon.stub().GetCall(pb.CallRef(call_id=call_id), timeout=10)
        recording = Path(call.recording_path)
        assert recording.is_file() and recording.is_relative_to(data_dir / "recordings")
    finally:
        daemon.stop()

    assert (data_dir / "models" / "whisper-base" / "model.bin").is_file()
    assert log_file.is_file()
    checked = {"files": 0, "folders": 0}
    for name in ("callqa.db", "recordings", "spool", "models", "log"):
        top = data_dir / name
        for path in [top, *top.rglob("*")] if top.is_dir() else [top]:
            if path.is_symlink():
                continue
            wanted = 0o700 if path.is_dir() else 0o600
            assert _mode(path) == wanted, f"{path}: {_mode(path):04o}"
            checked["folders" if path.is_dir() else "files"] += 1
    for sidecar in ("callqa.db-wal", "callqa.db-shm"):
        if (data_dir / sidecar).exists():
            assert _mode(data_dir / sidecar) == 0o600, sidecar
    assert checked["files"] >= 6 and checked["folders"] >= 5, checked
