"""The front end in larger chunks: the same utterances whatever the chunking, and nothing
held back at the end of a call.

A live leg stores audio as it comes but runs its DSP (VAD, levels, endpointer) once per
100 ms of new audio; the endpointer takes frames in runs. These tests hold the decisions to
those of 20 ms pushes and of the offline segmentation, and follow RTP through the jitter
buffer, the sink and the engine to the utterances handed to the ASR.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from core.asr.types import AsrRequest, AsrResult
from core.audio.samples import SAMPLE_CALLS, render
from core.audio.segmentation import Endpointer, UtteranceSpan, frame_levels_dbfs, segment_leg
from core.config import load_settings
from core.ingest.sip_bridge import _sinks
from core.live.call import CallSetup
from core.live.engine import LiveEngine
from core.live.leg import DSP_CHUNK_FRAMES, FRAME_SAMPLES, LiveLeg
from kernels.g711 import ulaw_decode, ulaw_encode
from kernels.levels import frame_pitch_hz
from kernels.vad import StreamingVad
from telephony.rtp import RtpLeg
from telephony.rtp_packet import RtpPacket

RUDE = next(c for c in SAMPLE_CALLS if c.name == "en-complaint-rude")
RATE = 8000


@pytest.fixture(scope="module")
def rude_legs() -> tuple[np.ndarray, np.ndarray]:
    agent, customer, _ = render(RUDE)
    return agent.astype(np.float32), customer.astype(np.float32)


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 32768.0, -32768, 32767).astype(np.int16)


def _long_turn(seconds: float = 34.0) -> np.ndarray:
    """A turn with no pause long enough to end it: it is cut at the 15 s limit, twice."""
    rng = np.random.default_rng(4)
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(170 * (1 + 0.15 * np.sin(2 * np.pi * 0.3 * t))) / RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = rng.uniform(0.3, 1.0, int(seconds * 4) + 1)[(t * 4).astype(int)]
    x = x * 0.12 * syllables * (0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t))
    x += 0.003 * rng.standard_normal(len(t))
    return np.concatenate([np.zeros(RATE), x, np.zeros(RATE)]).astype(np.float32)


def _key(span: UtteranceSpan) -> tuple[object, ...]:
    return (span.start, span.end, span.speech_start, span.speech_end, span.voiced_s,
            span.level_db, span.forced_cut)  # fmt: skip


def _stream(pcm: np.ndarray, sizes: Sequence[int]) -> tuple[list[UtteranceSpan], list[object]]:
    """Push ``pcm`` in chunks of the given sizes (cycled); the spans and voiced segments."""
    leg = LiveLeg("agent", partial_every_s=0)
    spans: list[UtteranceSpan] = []
    voiced: list[object] = []
    pos, i = 0, 0
    while pos < len(pcm):
        n = sizes[i % len(sizes)]
        out = leg.push(pcm[pos : pos + n])
        spans += [u.span for u in out.finished]
        voiced += out.voiced
        pos += n
        i += 1
    out = leg.flush()
    spans += [u.span for u in out.finished]
    voiced += out.voiced
    return spans, voiced


@pytest.mark.parametrize("which", ["agent", "customer", "long turn"])
def test_a_leg_cuts_the_same_utterances_whatever_the_chunking(
    rude_legs: tuple[np.ndarray, np.ndarray], which: str
) -> None:
    x = {"agent": rude_legs[0], "customer": rude_legs[1], "long turn": _long_turn()}[which]
    pcm = _int16(x)
    per_packet = _stream(pcm, [160])
    rng = np.random.default_rng(9)
    for sizes in ([800], [1600], [37, 160, 999, 2400, 80], rng.integers(1, 3000, 50).tolist()):
        spans, voiced = _stream(pcm, sizes)
        assert [_key(s) for s in spans] == [_key(s) for s in per_packet[0]], sizes
        assert voiced == per_packet[1], sizes
    offline, activity = segment_leg(np.asarray(pcm, np.float32) / 32768.0, "agent")
    spans = per_packet[0]
    assert len(spans) == len(offline) >= 2
    if which == "long turn":
        assert sum(s.forced_cut for s in spans) == 2
    for live, off in zip(spans, offline, strict=True):
        assert live.start == pytest.approx(off.start, abs=0.021)
        assert live.end == pytest.approx(off.end, abs=0.021)
        assert live.level_db == pytest.approx(off.level_db, abs=0.5)
    assert per_packet[1] == activity.voiced


def test_the_endpointer_in_runs_of_frames_equals_frame_by_frame(
    rude_legs: tuple[np.ndarray, np.ndarray],
) -> None:
    for x in (*rude_legs, _long_turn()):
        voice, like = StreamingVad().process_detail(x)
        levels = frame_levels_dbfs(x)[: len(voice)]
        pitch = np.asarray(frame_pitch_hz(x, RATE, 20), np.float64)[: len(voice)]
        one = Endpointer()
        spans_one = [s for i in range(len(voice)) for s in
                     one.push(voice[i : i + 1], like[i : i + 1], levels[i : i + 1],
                              pitch[i : i + 1])]  # fmt: skip
        spans_one += one.flush()
        rng = np.random.default_rng(2)
        runs = Endpointer()
        spans_runs, i = [], 0
        while i < len(voice):
            n = int(rng.choice([1, 2, 5, 8, 9, 40, 300]))
            spans_runs += runs.push(voice[i : i + n], like[i : i + n], levels[i : i + n],
                                    pitch[i : i + n])  # fmt: skip
            i += n
        spans_runs += runs.flush()
        assert spans_runs == spans_one and len(spans_one) >= 2
        assert runs.take_voiced() == one.take_voiced()
        assert runs.frames_seen == one.frames_seen == len(voice)


def test_a_leg_holds_short_pushes_until_100_ms_and_flush_takes_the_rest() -> None:
    t = np.arange(RATE) / RATE
    speech = _int16((0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)))
                    .astype(np.float32))  # fmt: skip
    # The call ends mid-speech, 3 frames and 60 samples after the last whole 100 ms.
    pcm = np.concatenate([np.zeros(RATE // 2, np.int16), speech, speech[: 3 * 160 + 60]])
    leg = LiveLeg("agent", partial_every_s=0)
    assert DSP_CHUNK_FRAMES * FRAME_SAMPLES == 800
    for i in range(0, 640, 160):
        out = leg.push(pcm[i : i + 160])
        assert out.position_s == pytest.approx((i + 160) / RATE)  # stored at once
    assert leg._frames_done == 0  # four frames: not processed yet
    leg.push(pcm[640:800])
    assert leg._frames_done == 5
    finished = []
    for i in range(800, len(pcm), 160):
        finished += leg.push(pcm[i : i + 160]).finished
    assert finished == []
    assert leg._frames_done == len(pcm) // FRAME_SAMPLES - 3  # the last 3 frames are held
    out = leg.flush()
    assert len(out.finished) == 1
    span = out.finished[0].span
    assert span.speech_start == pytest.approx(0.5, abs=0.05)
    assert span.speech_end == pytest.approx((len(pcm) // FRAME_SAMPLES) * 0.02, abs=0.021)
    reference, _ = _stream(pcm, [160])
    assert [_key(span)] == [_key(s) for s in reference]


class _Recorder:
    """Stands in for Whisper: records the audio length of every finished utterance."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lengths: dict[str, int] = {}

    def transcribe_batch(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
        with self.lock:
            for r in requests:
                if not r.id.endswith("p"):
                    self.lengths[r.id] = len(r.audio)
        return [AsrResult(id=r.id, text="", language="en", filtered=True) for r in requests]


def test_rtp_through_the_sink_and_the_engine_gives_the_offline_utterances(
    tmp_path: Path, rude_legs: tuple[np.ndarray, np.ndarray]
) -> None:
    """Packets through the jitter buffer, the batching sink and the engine, the call ended
    as the server ends it (legs flushed, then ``end_call``): every utterance of each leg
    reaches the ASR, the last ones included."""
    config = load_settings(overrides={"data_dir": str(tmp_path), "rubric": "default-en",
                                      "live_partial_every_s": 0}, environ={})  # fmt: skip
    asr = _Recorder()
    engine = LiveEngine(config, lambda: asr)  # type: ignore[arg-type]
    engine.start()
    codes = {role: ulaw_encode(_int16(x)) for role, x in zip(("agent", "customer"), rude_legs,
                                                             strict=True)}  # fmt: skip
    cut = {role: len(c) - 4321 for role, c in codes.items()}  # end mid-packet, mid-speech
    try:
        call = engine.open_call(CallSetup(source="siprec", agent_id="1001",
                                          recording_path=tmp_path / "call.wav"))  # fmt: skip
        sinks = _sinks(engine, call)
        legs = {role: RtpLeg(i, {0: "PCMU"}, None, on_audio=sinks(role))
                for i, role in enumerate(codes)}  # fmt: skip
        for k in range(0, max(cut.values()), 160):
            for i, (role, leg) in enumerate(legs.items()):
                if k < cut[role]:
                    payload = codes[role][k : min(k + 160, cut[role])].tobytes()
                    packet = RtpPacket(0, (77 + k // 160) & 0xFFFF, 1000 + k, 0x100 + i,
                                       payload=payload)  # fmt: skip
                    leg.feed(packet.serialize(), k / RATE)
        for leg in legs.values():
            leg.flush()
        engine.end_call(call, "bye")
        assert engine.wait_calls(60)
    finally:
        engine.shutdown(10)
    for role in codes:
        pcm = ulaw_decode(codes[role][: cut[role]]).astype(np.float32) / 32768.0
        offline, _ = segment_leg(pcm, role)  # type: ignore[arg-type]
        # Per utterance: its own decode, or the early one it took (same audio; see
        # core.live.early), when the only one is early.
        by_seq: dict[int, int] = {}
        for key, n in sorted(asr.lengths.items(), key=lambda kv: not kv[0].endswith("e")):
            if f"/{role}/" in key:
                by_seq[int(key.rsplit("/", 1)[1].rstrip("e"))] = n
        got = sorted(by_seq.items())
        assert len(got) == len(offline) >= 2, role
        for (_, n), off in zip(got, offline, strict=True):  # 16 kHz audio of each utterance
            assert n == pytest.approx(2 * RATE * (off.end - off.start), abs=2 * 0.021 * 2 * RATE)
