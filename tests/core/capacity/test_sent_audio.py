"""A stored recording against the audio sent: exact copies pass, any other difference counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.audio.wav import write_wav_pcm16
from core.capacity.sent_audio import compare, sent_legs

RATE = 8000
Legs = tuple[np.ndarray, np.ndarray]


@pytest.fixture()
def sent(tmp_path: Path) -> Legs:
    """Two legs of 1.5 s (the customer silent for the first 0.2 s) as the box decodes them."""
    rng = np.random.default_rng(7)
    agent = rng.uniform(-0.5, 0.5, int(1.5 * RATE)).astype(np.float32)
    customer = rng.uniform(-0.5, 0.5, int(1.5 * RATE)).astype(np.float32)
    customer[: int(0.2 * RATE)] = 0.0
    path = tmp_path / "call.wav"
    write_wav_pcm16(path, [agent, customer], RATE)
    legs = sent_legs(path)
    assert legs[0].dtype == np.int16 and len(legs[0]) == len(agent)
    assert not np.array_equal(legs[0], np.round(agent * 32767).astype(np.int16))  # G.711
    return legs


def recording(legs: Legs, starts: tuple[int, int]) -> np.ndarray:
    frames = max(s + len(leg) for s, leg in zip(starts, legs, strict=True))
    out = np.zeros((frames, 2), dtype=np.int16)
    for ch, (start, leg) in enumerate(zip(starts, legs, strict=True)):
        out[start : start + len(leg), ch] = leg
    return out


def test_an_exact_copy_is_complete_wherever_each_leg_starts(sent: Legs) -> None:
    rec = recording(sent, (0, 37))
    result = compare(rec, sent, cut=False)
    assert result.complete and result.mismatches == 0 and result.note == ""
    assert result.samples_compared == 2 * len(sent[0])
    assert result.covered_s == pytest.approx(1.5)


def test_a_changed_sample_or_extra_sound_is_a_mismatch(sent: Legs) -> None:
    rec = recording(sent, (0, 37))
    rec[5000, 1] ^= 1
    result = compare(rec, sent, cut=False)
    assert result.mismatches == 1 and not result.complete
    rec = recording(sent, (0, 37))
    rec[10, 1] = 99  # sound before the customer's leg began
    assert compare(rec, sent, cut=False).mismatches == 1


def test_a_short_recording_is_not_complete(sent: Legs) -> None:
    rec = recording(sent, (0, 0))[:8000]
    result = compare(rec, sent, cut=False)
    assert result.mismatches == 0 and result.covered_s == pytest.approx(1.0)
    assert not result.complete


def test_a_cut_recording_may_end_in_silence_not_yet_arrived(sent: Legs) -> None:
    rec = recording(sent, (0, 37))[:9000].copy()
    rec[8600:, 1] = 0  # the customer's last packets had not arrived at the kill
    cut = compare(rec, sent, cut=True)
    assert cut.mismatches == 0
    assert cut.covered_s == pytest.approx((8600 - 37) / RATE, abs=0.01)
    assert compare(rec, sent, cut=False).mismatches > 0
    rec[4000, 0] = 0  # a hole in the middle is never excused
    assert compare(rec, sent, cut=True).mismatches > 0


def test_another_calls_audio_is_not_found(sent: Legs) -> None:
    rng = np.random.default_rng(8)
    other = rng.integers(-9000, 9000, size=(len(sent[0]), 2)).astype(np.int16)
    result = compare(other, sent, cut=False)
    assert "not found" in result.note and not result.complete
