"""The progressive WAV recorder: placement, interleaving, header fix-ups, crash recovery."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.audio.wav import read_wav
from telephony.recorder import CallRecorder, RecordingError, recover_wav, wav_header

REPO = Path(__file__).resolve().parents[2]


def samples(path: Path) -> np.ndarray:
    """The recording as int16 frames (n, channels)."""
    rec = read_wav(path)
    return np.stack([np.round(c * 32768).astype(np.int32) for c in rec.channels], axis=1)


def ramp(n: int, start: int = 1) -> np.ndarray:
    return (np.arange(n) % 30000 + start).astype(np.int16)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_header_is_canonical():
    head = wav_header(2, 8000, 320)
    assert len(head) == 44
    assert struct.unpack_from("<4sI4s", head) == (b"RIFF", 356, b"WAVE")
    assert struct.unpack_from("<HHIIHH", head, 20) == (1, 2, 8000, 32000, 4, 16)
    assert struct.unpack_from("<4sI", head, 36) == (b"data", 320)


def test_channels_interleave_although_written_apart(tmp_path: Path):
    path = tmp_path / "call.wav"
    rec = CallRecorder(path)
    left = ramp(24000)
    right = -ramp(24000)
    # The customer leg runs 0.5 s behind the agent leg, in 20 ms pieces.
    for i in range(0, 24000, 160):
        rec.write(0, left[i:i + 160], i)
        j = i - 4000
        if j >= 0:
            rec.write(1, right[j:j + 160], j)
    for j in range(20000, 24000, 160):
        rec.write(1, right[j:j + 160], j)
    assert rec.close() == path
    got = samples(path)
    assert got.shape == (24000, 2)
    assert np.array_equal(got[:, 0], left) and np.array_equal(got[:, 1], right)


def test_gaps_are_silence_and_late_audio_is_patched_in(tmp_path: Path):
    path = tmp_path / "gaps.wav"
    rec = CallRecorder(path)
    rec.write(0, ramp(160), 0)
    rec.write(1, ramp(160, 5), 8000)  # a gap of almost a second on both channels
    rec.write(0, ramp(8000, 7), 16000)  # far ahead: the start goes to disk
    rec.write(1, ramp(160, 9), 100)  # late, into frames already on disk
    rec.write(0, ramp(100, 3), -50)  # before the start: cut
    rec.close()
    got = samples(path)
    assert got.shape == (24000, 2)
    assert np.array_equal(got[:50, 0], ramp(100, 3)[50:])
    assert np.array_equal(got[50:160, 0], ramp(160)[50:])
    assert np.all(got[160:16000, 0] == 0)
    assert np.array_equal(got[16000:, 0], ramp(8000, 7))
    assert np.all(got[:100, 1] == 0)
    assert np.array_equal(got[100:260, 1], ramp(160, 9))
    assert np.array_equal(got[8000:8160, 1], ramp(160, 5))


def test_header_sizes_follow_every_second(tmp_path: Path):
    path = tmp_path / "live.wav"
    clock = FakeClock()
    rec = CallRecorder(path, clock=clock)
    for i in range(0, 8000 * 3, 160):
        clock.now = i / 8000
        rec.write(0, ramp(160), i)
        rec.write(1, ramp(160), i)
    # Without closing: a reader trusting the header sees all but the last second or so.
    declared = struct.unpack_from("<I", path.read_bytes(), 40)[0] // 4
    assert 8000 * 1.5 <= declared <= 8000 * 3
    assert read_wav(path).duration_s == declared / 8000
    rec.close()
    assert read_wav(path).duration_s == 3.0


def test_closed_recorder_refuses_writes(tmp_path: Path):
    rec = CallRecorder(tmp_path / "c.wav", channels=1)
    rec.write(0, ramp(10), 0)
    rec.close()
    rec.close()
    with pytest.raises(RecordingError, match="closed"):
        rec.write(0, ramp(10), 10)
    with pytest.raises(ValueError, match="channel"):
        CallRecorder(tmp_path / "d.wav", channels=1).write(1, ramp(1), 0)


def test_sample_at_sets_the_origin_once(tmp_path: Path):
    rec = CallRecorder(tmp_path / "o.wav")
    assert rec.sample_at(50.0) == 0
    assert rec.sample_at(50.25) == 2000
    assert rec.sample_at(49.0) == 0
    rec.close()


WRITER = """
import sys, time
import numpy as np
from pathlib import Path
from telephony.recorder import CallRecorder
rec = CallRecorder(Path(sys.argv[1]))
frame = (np.arange(160) * 50).astype(np.int16)
start = time.monotonic()
for i in range(0, 8000 * 3, 160):       # 3 s of audio, written in real time x 10
    rec.write(0, frame, i)
    rec.write(1, -frame, i)
    time.sleep(0.002)
    if i == 8000 * 2:
        time.sleep(1.1)                  # a quiet moment for the header to catch up
print("done", flush=True)
time.sleep(60)                           # never closes: killed here
"""


def test_recover_after_sigkill(tmp_path: Path):
    path = tmp_path / "crash.wav"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"done"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    # As left: readable, the header lags the data by at most about a second.
    before = read_wav(path).duration_s
    assert 1.0 <= before <= 3.0
    duration = recover_wav(path)
    # Everything but the reorder window (0.2 s) and one commit step reached the disk.
    assert 2.5 <= duration <= 3.0
    rec = read_wav(path)
    assert rec.duration_s == duration
    left = np.round(rec.channels[0] * 32768).astype(np.int32)
    right = np.round(rec.channels[1] * 32768).astype(np.int32)
    frame = np.arange(160) * 50
    assert np.array_equal(left[:160], frame) and np.array_equal(right[:160], -frame)


def test_recover_cuts_a_torn_frame_and_rejects_garbage(tmp_path: Path):
    path = tmp_path / "torn.wav"
    path.write_bytes(wav_header(2, 8000, 0) + bytes(4 * 8000) + b"\x01\x02\x03")
    assert recover_wav(path) == 1.0
    assert path.stat().st_size == 44 + 32000
    assert read_wav(path).duration_s == 1.0
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav file at all")
    with pytest.raises(RecordingError, match="not a WAV file"):
        recover_wav(bad)


def test_packets_reach_the_disk_in_commits_not_one_by_one(tmp_path: Path, monkeypatch):
    """A minute of 20 ms packets on both legs: a few hundred writes, not 6,000 (what kept
    writing cheap; its speed is measured in benchmarks/, not asserted here)."""
    import telephony.recorder as recorder

    writes = []
    real_pwrite = os.pwrite

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        writes.append(len(data))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(recorder.os, "pwrite", pwrite)
    now = [0.0]
    rec = CallRecorder(tmp_path / "fast.wav", clock=lambda: now[0])
    agent = ramp(8000 * 60, 0)
    customer = -agent
    for i in range(0, len(agent), 160):
        rec.write(0, agent[i : i + 160], i)
        rec.write(1, customer[i : i + 160], i)
        now[0] += 0.02  # one packet a leg every 20 ms, as a call sends them
    rec.close()
    commits = 60_000 // recorder.COMMIT_CHUNK_MS
    header_syncs = 60 / recorder.HEADER_SYNC_INTERVAL_S
    # Each header sync also commits what the window can give up and writes the sizes.
    assert len(writes) <= commits + 2 * header_syncs + 4
    assert read_wav(tmp_path / "fast.wav").duration_s == 60.0
    frames = samples(tmp_path / "fast.wav")
    assert np.array_equal(frames[:, 0], agent) and np.array_equal(frames[:, 1], customer)


def test_legs_released_out_of_step_are_not_patched_into_the_file(tmp_path: Path, monkeypatch):
    """The receive thread ticks a call's two legs at different moments: the customer's
    200 ms pieces come 400 ms after the agent's. The window waits for the leg that lags, so
    nothing is read back and patched; the file is exact."""
    import telephony.recorder as recorder

    reads = []
    real_pread = os.pread
    monkeypatch.setattr(recorder.os, "pread",
                        lambda fd, n, at: reads.append(n) or real_pread(fd, n, at))  # fmt: skip
    rec = CallRecorder(tmp_path / "steps.wav")
    agent = ramp(8000 * 20, 0)
    customer = -agent
    piece, lag = 1600, 3200
    for i in range(0, len(agent) + lag, piece):
        if i < len(agent):
            rec.write(0, agent[i : i + piece], i)
        if i >= lag:
            rec.write(1, customer[i - lag : i - lag + piece], i - lag)
    rec.close()
    assert reads == []
    frames = samples(tmp_path / "steps.wav")
    assert np.array_equal(frames[:, 0], agent) and np.array_equal(frames[:, 1], customer)


def test_a_leg_that_stops_holds_the_window_back_no_longer_than_the_hold(tmp_path: Path):
    """One leg goes quiet (no packets) after 1 s: the other's audio still reaches the disk,
    at most ``REORDER_HOLD_MS`` and a commit behind it."""
    import telephony.recorder as recorder

    path = tmp_path / "one-way.wav"
    rec = CallRecorder(path)
    agent = ramp(8000 * 10, 0)
    rec.write(1, -agent[:8000], 0)
    for i in range(0, len(agent), 160):
        rec.write(0, agent[i : i + 160], i)
    on_disk = (os.path.getsize(path) - 44) // 4
    behind_ms = 1000 * (len(agent) - on_disk) / 8000
    assert behind_ms <= recorder.REORDER_HOLD_MS + recorder.COMMIT_CHUNK_MS
    rec.close()
    frames = samples(path)
    assert np.array_equal(frames[:, 0], agent)
    assert np.array_equal(frames[:8000, 1], -agent[:8000]) and not frames[8000:, 1].any()
