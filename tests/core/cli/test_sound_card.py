"""`callqa capture` and `callqa listen` through PortAudio on file-backed ALSA devices, against
a real `callqa serve`: no sound hardware is needed.

The test's ``.asoundrc`` (in a temporary HOME given to the commands) defines two ALSA PCMs of
the ``file`` plugin over the ``null`` device: ``callqa_rec`` reads its capture from a raw file
(``infile``), ``callqa_play`` writes what is played to a raw file. Samples flow both ways:

* capture: known speech on the two channels of the input file becomes a call in the daemon,
  transcribed and scored, whose stored recording holds exactly those samples; by key, the
  call holds what the card gave between two Enters;
* listen: a call streamed to the daemon (StreamAudio) is played while it goes on, and the
  output file holds exactly the agent's samples; the latency from the audio's arrival on the
  box to its playback (stamped by the box, compared at each write) stays under 500 ms. The
  daemon's log has the audit lines of the listening.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from core.audio.samples import synthesize
from core.audio.wav import read_wav
from proto import callqa_pb2 as pb
from tests.core.serve_harness import Daemon, EventCollector, audio_frames

pytestmark = [pytest.mark.model, pytest.mark.speech]

RATE = 8000
FRAME = 160
MAX_LATENCY_MS = 500.0
REPO = Path(__file__).resolve().parents[3]

ASOUNDRC = """\
pcm.callqa_play {{
  type file
  slave.pcm "null"
  file "{play}"
  format "raw"
}}
pcm.callqa_rec {{
  type file
  slave.pcm "null"
  file "/dev/null"
  infile "{rec}"
  format "raw"
}}
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path):  # type: ignore[no-untyped-def]
    d = Daemon(tmp_path_factory.mktemp("serve"), base_model_dir).start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def alsa_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("alsa-home")
    (home / ".asoundrc").write_text(
        ASOUNDRC.format(play=home / "played.raw", rec=home / "captured.raw"), encoding="utf-8"
    )
    return home


def _callqa(home: Path, *args: str, stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQA_")}
    env["HOME"] = str(home)
    empty = home / "empty.toml"
    empty.write_text("", encoding="utf-8")
    env["CALLQA_CONFIG"] = str(empty)
    return subprocess.Popen(
        [sys.executable, "-m", "core.cli", *args], env=env, cwd=REPO, stdin=stdin,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _finish(proc: subprocess.Popen, timeout_s: float = 90) -> tuple[str, str]:
    """The command's output once it ends; killed (with its output shown) when it does not."""
    try:
        return proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"still running after {timeout_s} s:\n{out}\n{err}") from None


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def test_capture_makes_a_scored_call_of_the_cards_samples(daemon: Daemon, alsa_home: Path) -> None:
    agent = _int16(synthesize("Hello, thank you for calling.", "en-us"))
    customer = _int16(synthesize("My bill is wrong.", "en-gb"))
    lead, gap, tail = int(0.6 * RATE), int(0.3 * RATE), int(4.0 * RATE)
    total = lead + len(agent) + gap + len(customer) + tail
    card = np.zeros((total, 2), np.int16)
    card[lead : lead + len(agent), 0] = agent
    card[lead + len(agent) + gap : lead + len(agent) + gap + len(customer), 1] = customer
    card.astype("<i2").tofile(alsa_home / "captured.raw")

    proc = _callqa(alsa_home, "capture", "--device", "callqa_rec", "--channels", "2",
                   "--end-silence-s", "1.0", "--calls", "1", "--agent", "CAP1",
                   "--rubric", "default-en", "--address", daemon.address, "-q")  # fmt: skip
    out, err = _finish(proc)
    assert proc.returncode == 0, f"{out}\n{err}\n{daemon.log()}"
    assert "scored" in out, out

    stub = daemon.stub()
    listed = stub.ListCalls(pb.ListCallsRequest(agent_id="CAP1"), timeout=10).calls
    assert len(listed) == 1, listed
    call = stub.GetCall(pb.CallRef(call_id=listed[0].call_id), timeout=10)
    assert call.status == pb.CALL_STATUS_SCORED and call.HasField("score")
    said = " ".join(u.text.lower() for u in call.transcript if u.speaker == pb.SPEAKER_AGENT)
    assert "thank" in said or "calling" in said, said

    recording = read_wav(call.recording_path)
    rec = np.stack([_int16(ch) for ch in recording.channels], axis=1)
    first = int(np.flatnonzero(rec[:, 0])[0])  # the card's first voiced sample, in the call
    start = lead + int(np.flatnonzero(agent)[0]) - first
    assert 0 <= start <= lead, start  # the call began at the voice, with what came before it
    assert len(rec) >= len(agent) + gap + len(customer)
    assert np.array_equal(rec, card[start : start + len(rec)])


def test_capture_by_key_makes_a_call_of_what_came_between_two_enters(
    daemon: Daemon, alsa_home: Path
) -> None:
    rng = np.random.default_rng(11)
    card = rng.integers(-2000, 2000, (10 * RATE, 2), dtype=np.int16)
    card.astype("<i2").tofile(alsa_home / "captured.raw")
    proc = _callqa(alsa_home, "capture", "--device", "callqa_rec", "--start-by", "key",
                   "--agent", "KEY1", "--address", daemon.address, "-q",
                   stdin=subprocess.PIPE)  # fmt: skip
    assert proc.stdin is not None and proc.stderr is not None
    assert "capturing from sound device" in proc.stderr.readline()  # it reads the card now
    proc.stdin.write("\n")
    proc.stdin.flush()
    time.sleep(1.0)
    proc.stdin.write("\n")
    out, err = _finish(proc)  # closes standard input: the capture stops
    assert proc.returncode == 0, f"{out}\n{err}"

    stub = daemon.stub()
    listed = stub.ListCalls(pb.ListCallsRequest(agent_id="KEY1"), timeout=10).calls
    assert len(listed) == 1, listed
    call = stub.GetCall(pb.CallRef(call_id=listed[0].call_id), timeout=10)
    assert call.status == pb.CALL_STATUS_SCORED
    recording = read_wav(call.recording_path)
    rec = np.stack([_int16(ch) for ch in recording.channels], axis=1)
    assert 0.7 * RATE <= len(rec) <= 2.5 * RATE, len(rec) / RATE
    first = np.flatnonzero((card[:, 0] == rec[0, 0]) & (card[:, 1] == rec[0, 1]))
    assert any(np.array_equal(card[i : i + len(rec)], rec) for i in first)


def test_listen_plays_a_live_call_and_is_audited(daemon: Daemon, alsa_home: Path) -> None:
    rng = np.random.default_rng(7)
    agent = rng.integers(-3000, 3000, int(3.0 * RATE), dtype=np.int16)
    customer = rng.integers(-3000, 3000, int(3.0 * RATE), dtype=np.int16)
    played = alsa_home / "played.raw"
    played.unlink(missing_ok=True)
    stub = daemon.stub()

    with pytest.raises(grpc.RpcError) as unknown:
        next(iter(stub.ListenCall(pb.ListenRequest(call_id="no-such-call"), timeout=5)))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    # The call starts; its audio waits until the listeners are in, so they hear all of it.
    frames = audio_frames(agent, customer, agent_id="LST1", external_id="listen-1")
    listening = threading.Event()

    def gated() -> Iterator[pb.AudioFrame]:
        yield next(frames)  # the setup
        listening.wait(30)
        yield from frames

    streamed = EventCollector(stub.StreamAudio(gated(), timeout=60))
    deadline = time.monotonic() + 10
    live = pb.ListLiveCallsRequest(agent_ids=["LST1"])
    while not stub.ListLiveCalls(live, timeout=5).calls:
        assert time.monotonic() < deadline, "the streamed call never went live"
        time.sleep(0.05)
    both = EventCollector(stub.ListenCall(pb.ListenRequest(call_id="listen-1"), timeout=60))
    proc = _callqa(alsa_home, "listen", "listen-1", "--leg", "agent", "--device", "callqa_play",
                   "--listener", "qa-lead", "--address", daemon.address, "--json")  # fmt: skip
    deadline = time.monotonic() + 30
    while daemon.log().count("listen started: call") < 2:  # the audit line of each listener
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, daemon.log()[-2000:]
        time.sleep(0.05)
    listening.set()
    out, err = _finish(proc, 60)
    streamed.join(30)
    both.join(10)
    assert proc.returncode == 0, f"{out}\n{err}"
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["legs"] == "agent" and summary["skipped_samples"] == 0, summary
    assert summary["played_s"] >= 2.9, summary
    assert summary["latency_max_ms"] < MAX_LATENCY_MS, summary

    # What the card played: the agent's samples in order, with only whole frames of silence
    # where nothing had come in time (played, never taking the place of audio).
    written = np.fromfile(played, dtype="<i2")
    blocks = written[: len(written) // FRAME * FRAME].reshape(-1, FRAME)
    audio = blocks[blocks.any(axis=1)].reshape(-1)
    audio = audio[: int(np.flatnonzero(audio)[-1]) + 1]
    assert np.array_equal(audio, agent[: len(audio)])
    assert len(audio) >= len(agent) - FRAME

    # The in-process listener to both legs got each leg's samples at their positions.
    assert both.error is None, both.error
    got = {pb.LEG_AGENT: agent, pb.LEG_CUSTOMER: customer}
    seen = {leg: 0 for leg in got}
    for piece in both.items:
        pcm = np.frombuffer(piece.pcm16, dtype="<i2")
        pos = piece.position_samples
        assert np.array_equal(pcm, got[piece.leg][pos : pos + len(pcm)])
        seen[piece.leg] += len(pcm)
    assert seen == {leg: len(pcm) for leg, pcm in got.items()}, seen

    log = daemon.log()
    assert "listen started: call" in log and "'qa-lead'" in log, log[-2000:]
    assert "listen ended: call" in log and "legs agent by 'qa-lead'" in log

