"""Endpointing: synthetic rules (silence, forced cut, blips, padding) and corpus boundaries."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from core.audio.segmentation import (
    MAX_UTTERANCE_S,
    MIN_SILENCE_S,
    PAD_S,
    Endpointer,
    UtteranceSpan,
    frame_levels_dbfs,
    segment_leg,
)
from core.audio.wav import read_wav
from core.calls import Speaker
from kernels.vad import StreamingVad
from kernels.vad_bank import VadBank

CORPUS_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "corpus"
RATE = 8000
FRAME = 160
# Boundary tolerance: the padding (0.15 s) plus the spread of the labels' own times (TTS
# edges trimmed, up to ~0.08 s run to run) plus a frame or two of detection delay.
BOUNDARY_TOL_S = 0.3


def speech_like(
    seconds: float, f0: float = 210.0, dbfs: float = -28.0, seed: int = 0
) -> np.ndarray:
    """Harmonic tone with gliding pitch and 4 Hz syllabic modulation, at ``dbfs`` RMS."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 0.5 * t))) / RATE
    x = sum(np.sin(k * phase + rng.uniform(0, 6.3)) / k for k in range(1, 16) if k * f0 < 3600)
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * t))
    x *= 10 ** (dbfs / 20) / np.sqrt(np.mean(x**2))
    return x.astype(np.float32)


def leg(*pieces: tuple[str, float], noise_dbfs: float = -55.0, seed: int = 0) -> np.ndarray:
    """Concatenate ("speech"|"pause", seconds) pieces over faint white noise."""
    parts = [
        speech_like(s, seed=seed + i) if kind == "speech" else np.zeros(round(s * RATE))
        for i, (kind, s) in enumerate(pieces)
    ]
    x = np.concatenate(parts)
    rng = np.random.default_rng(seed + 100)
    return (x + rng.standard_normal(len(x)) * 10 ** (noise_dbfs / 20)).astype(np.float32)


def test_min_silence_joins_short_pauses_and_splits_long_ones() -> None:
    x = leg(("pause", 1.0), ("speech", 2.0), ("pause", 0.3), ("speech", 2.0), ("pause", 1.0))
    utts, _ = segment_leg(x, "agent")
    assert len(utts) == 1
    assert utts[0].start == pytest.approx(1.0 - PAD_S, abs=0.06)
    assert utts[0].end == pytest.approx(5.3 + PAD_S, abs=0.06)

    x = leg(("pause", 1.0), ("speech", 2.0), ("pause", 1.5), ("speech", 2.0), ("pause", 1.0))
    utts, act = segment_leg(x, "agent")
    got = [t for u in utts for t in (u.start, u.end)]
    assert got == pytest.approx([1.0 - PAD_S, 3.0 + PAD_S, 4.5 - PAD_S, 6.5 + PAD_S], abs=0.06)
    assert len(act.voiced) == 2 and act.duration_s == pytest.approx(7.5)
    utts, _ = segment_leg(x, "agent", min_silence_s=2.0)
    assert len(utts) == 1


def test_measurements_of_an_utterance() -> None:
    x = leg(("pause", 0.5), ("speech", 3.0), ("pause", 1.0))
    (utt,), _ = segment_leg(x, "customer")
    assert utt.speaker == "customer"
    assert utt.level_db == pytest.approx(-28.0, abs=1.5)
    assert utt.voiced_s == pytest.approx(3.0, abs=0.1)
    assert utt.pitch_hz == pytest.approx(210.0, rel=0.1)


def test_blips_are_dropped() -> None:
    click = np.zeros(RATE * 2, np.float32)
    click[RATE : RATE + 400] = 0.2 * np.sin(np.arange(400) * 0.3)
    utts, _ = segment_leg(click, "agent")
    assert utts == []


def test_forced_cut_lands_in_a_pause_and_respects_the_limit() -> None:
    # 40 s of speech in 2.6 s phrases with 0.3 s pauses: too long for one ASR window.
    pieces: list[tuple[str, float]] = [("pause", 0.5)]
    for _ in range(14):
        pieces += [("speech", 2.6), ("pause", 0.3)]
    x = leg(*pieces, ("pause", 1.0))
    utts, _ = segment_leg(x, "agent")
    assert len(utts) >= 3
    assert all(u.duration <= MAX_UTTERANCE_S + 1e-6 for u in utts)
    assert all(u.duration >= MAX_UTTERANCE_S - 4.0 - 0.1 for u in utts[:-1])
    pauses = [(0.5 + 2.6 * (k + 1) + 0.3 * k, 0.5 + 2.9 * (k + 1)) for k in range(14)]
    for u in utts[:-1]:
        assert any(a - 0.04 <= u.end <= b + 0.04 for a, b in pauses), f"cut mid-phrase at {u.end}"
    for a, b in itertools.pairwise(utts):
        assert b.start == pytest.approx(a.end), "a forced cut leaves no gap and no overlap"


def test_forced_cut_without_any_pause() -> None:
    x = leg(("pause", 0.5), ("speech", 40.0), ("pause", 1.0))
    utts, _ = segment_leg(x, "agent", max_utterance_s=10.0)
    assert len(utts) >= 4
    assert all(u.duration <= 10.0 + 1e-6 for u in utts)
    assert utts[0].start == pytest.approx(0.5 - PAD_S, abs=0.06)
    assert 40.3 <= utts[-1].end <= 40.5 + PAD_S + 0.06


def test_streaming_endpointer_equals_segment_leg() -> None:
    x = leg(("pause", 0.7), ("speech", 1.5), ("pause", 1.2), ("speech", 20.0), ("pause", 1.0))
    whole, _ = segment_leg(x, "agent")
    vad = StreamingVad()
    ep = Endpointer()
    rng = np.random.default_rng(3)
    spans: list[UtteranceSpan] = []
    pos = 0
    while pos < len(x):
        n = int(rng.integers(1, 2000))
        voice, like = vad.process_detail(x[pos : pos + n])
        pos += n
        start = ep.frames_seen * FRAME
        levels = frame_levels_dbfs(x[start : start + len(voice) * FRAME])
        spans += ep.push(voice, like, levels)
    spans += ep.flush()
    assert [t for s in spans for t in (s.start, s.end)] == pytest.approx(
        [t for u in whole for t in (u.start, u.end)]
    )
    assert [s.pitch_hz for s in spans] == [None] * len(spans)


def test_live_path_over_a_vad_bank_equals_segment_leg() -> None:
    # The daemon's way: one VadBank tick per 20 ms for all legs, one Endpointer per leg.
    legs = [
        leg(("pause", 0.6), ("speech", 2.0), ("pause", 0.9), ("speech", 1.2), ("pause", 1.0)),
        leg(("pause", 2.0), ("speech", 3.0), ("pause", 0.2), ("speech", 0.5), ("pause", 1.0)),
    ]
    n_frames = min(len(x) for x in legs) // FRAME
    bank = VadBank(len(legs))
    eps = [Endpointer() for _ in legs]
    spans: list[list[UtteranceSpan]] = [[] for _ in legs]
    for k in range(n_frames):
        block = np.ascontiguousarray(np.stack([x[k * FRAME : (k + 1) * FRAME] for x in legs]))
        voice, like = bank.process_detail(block)
        for i, ep in enumerate(eps):
            level = frame_levels_dbfs(block[i])
            spans[i] += ep.push(voice[i : i + 1], like[i : i + 1], level)
    for i, ep in enumerate(eps):
        spans[i] += ep.flush()
        whole, _ = segment_leg(legs[i][: n_frames * FRAME], "agent")
        assert len(whole) == len(spans[i]) >= 1
        assert [t for s in spans[i] for t in (s.start, s.end)] == pytest.approx(
            [t for u in whole for t in (u.start, u.end)]
        )


def test_segment_leg_input_errors_say_how_to_fix() -> None:
    with pytest.raises(TypeError, match="32768"):
        segment_leg(np.zeros(800, np.int16), "agent")
    with pytest.raises(ValueError, match="one channel"):
        segment_leg(np.zeros((2, 800), np.float32), "agent")
    with pytest.raises(ValueError, match="resample"):
        segment_leg(np.zeros(800, np.float32), "agent", sample_rate=11025)


def test_endpointer_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="max_utterance_s"):
        Endpointer(max_utterance_s=3.0)
    with pytest.raises(ValueError, match="one entry per frame"):
        Endpointer().push(np.zeros(3, bool), np.zeros(2, bool), np.zeros(3))


# --- corpus -------------------------------------------------------------------------------


def read_mulaw_stereo(path: Path) -> np.ndarray:
    rec = read_wav(path)
    return np.stack(rec.channels)


def longest_pause_s(audio: np.ndarray, start: float, end: float) -> float:
    """Longest stretch inside [start, end] within 6 dB of the leg's quiet level (VAD-free)."""
    n = len(audio) // FRAME
    level = 10 * np.log10(np.mean(audio[: n * FRAME].reshape(n, FRAME) ** 2, axis=1) + 1e-12)
    quiet = max(float(np.percentile(level, 10)) + 6.0, -60.0)
    low = level[int(start / 0.02) : int(end / 0.02)] < quiet
    best = run = 0
    for v in low:
        run = run + 1 if v else 0
        best = max(best, run)
    return best * 0.02


SPEAKERS: tuple[Speaker, Speaker] = ("agent", "customer")


@pytest.mark.corpus
def test_corpus_utterance_boundaries() -> None:
    matched = covered = total = found = spurious = 0
    bad_cuts: list[str] = []
    for label_path in sorted(CORPUS_DIR.glob("dev*.json")):
        label = json.loads(label_path.read_text())
        audio = read_mulaw_stereo(CORPUS_DIR / label["audio"])
        for ch, speaker in enumerate(SPEAKERS):
            utts, _ = segment_leg(audio[ch], speaker)
            refs = [t for t in label["transcript"] if t["speaker"] == speaker]
            found += len(utts)
            spurious += sum(
                not any(u.start < r["end"] and u.end > r["start"] for r in refs) for u in utts
            )
            for ref in refs:
                total += 1
                over = [u for u in utts if u.start < ref["end"] and u.end > ref["start"]]
                matched += any(
                    abs(u.start - ref["start"]) <= BOUNDARY_TOL_S
                    and abs(u.end - ref["end"]) <= BOUNDARY_TOL_S
                    for u in over
                )
                inside = sum(min(u.end, ref["end"]) - max(u.start, ref["start"]) for u in over)
                covered += inside >= 0.95 * (ref["end"] - ref["start"])
                inner = [
                    u.end
                    for u in over
                    if ref["start"] + BOUNDARY_TOL_S < u.end < ref["end"] - BOUNDARY_TOL_S
                ]
                if inner and longest_pause_s(audio[ch], ref["start"], ref["end"]) < MIN_SILENCE_S:
                    bad_cuts.append(f"{label['call_id']}/{speaker} {ref['start']:.2f}")
    print(
        f"labelled utterances {total}, found {found}; both ends within {BOUNDARY_TOL_S} s: "
        f"{matched / total:.3f}; speech >= 95 % covered: {covered / total:.3f}; "
        f"found utterances overlapping no labelled one: {spurious}"
    )
    assert total > 100
    assert matched / total >= 0.9
    assert covered / total >= 0.9
    assert spurious <= 0.02 * found
    assert 0.9 * total <= found <= 1.2 * total
    assert not bad_cuts, f"utterances cut without a long pause: {bad_cuts}"
