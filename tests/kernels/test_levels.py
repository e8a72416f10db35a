"""Frame levels (dBFS) and autocorrelation pitch on synthetic telephone-band signals."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.g711 import ulaw_decode, ulaw_encode
from kernels.levels import (
    LEVEL_FLOOR_DBFS,
    frame_level_dbfs,
    frame_level_dbfs_reference,
    frame_pitch_hz,
    frame_pitch_hz_reference,
)

RATE = 8000


def times(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.arange(int(rate * seconds)) / rate


def harmonic(f0: float, seconds: float = 1.0, rate: int = RATE, amp: float = 0.4) -> np.ndarray:
    """A voiced-like tone: harmonics of f0 with 1/k amplitudes, up to 3.4 kHz."""
    t = times(seconds, rate)
    n_harm = int(3400 // f0)
    x = sum(np.sin(2 * np.pi * f0 * k * t + 0.3 * k) / k for k in range(1, n_harm + 1))
    return (amp * x / np.abs(x).max()).astype(np.float32)


def speech_like(seconds: float = 2.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Glottal-pulse train with a gliding f0 through a resonance, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = times(seconds)
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = np.cumsum(f0 / RATE)
    src = (np.mod(phase, 1.0) < 0.1) - 0.1 + 0.05 * rng.standard_normal(len(t))
    y = np.zeros(len(t))
    for i in range(2, len(t)):  # two-pole resonance, a crude vowel formant
        y[i] = src[i] + 1.3 * y[i - 1] - 0.7 * y[i - 2]
    return (0.05 * y).astype(np.float32), f0


def test_full_scale_sine_is_minus_3_dbfs_and_square_is_0():
    sine = np.sin(2 * np.pi * 1000 * times(0.2)).astype(np.float32)
    lv = frame_level_dbfs(sine, RATE, 20)
    assert lv.dtype == np.float32 and lv.shape == (10,)
    np.testing.assert_allclose(lv, -3.0103, atol=1e-3)
    square = np.where(np.arange(1600) % 8 < 4, 1.0, -1.0).astype(np.float32)
    np.testing.assert_allclose(frame_level_dbfs(square, RATE, 20), 0.0, atol=1e-5)
    half = (0.5 * sine).astype(np.float32)
    np.testing.assert_allclose(frame_level_dbfs(half, RATE, 20), -3.0103 - 6.0206, atol=1e-3)


def test_silence_reads_the_floor_and_partial_frames_are_dropped():
    lv = frame_level_dbfs(np.zeros(170, np.float32), RATE, 20)
    assert lv.shape == (1,) and lv[0] == LEVEL_FLOOR_DBFS == -100.0
    assert frame_level_dbfs(np.zeros(159, np.float32), RATE, 20).shape == (0,)
    tiny = np.full(160, 1e-7, np.float32)  # -140 dBFS
    assert frame_level_dbfs(tiny, RATE, 20)[0] == -100.0


def test_levels_match_numpy_fallback():
    x, _ = speech_like()
    x[:800] = 0.0
    ours = frame_level_dbfs(x, RATE, 20)
    ref = frame_level_dbfs_reference(x, RATE, 20)
    above = ref > LEVEL_FLOOR_DBFS
    np.testing.assert_allclose(ours[above], ref[above], atol=1e-4)
    assert np.all(ours[~above] == LEVEL_FLOOR_DBFS)
    # Frames of 10 ms at 16 kHz.
    y = np.repeat(x, 2)
    assert frame_level_dbfs(y, 16000, 10).shape == (len(y) // 160,)


@pytest.mark.parametrize("f0", [80.0, 150.0, 220.0, 330.0])
def test_pitch_of_harmonic_tone_within_3_percent(f0):
    p = frame_pitch_hz(harmonic(f0), RATE, 20)
    assert p.dtype == np.float32 and p.shape == (50,)
    inner = p[2:-2]
    assert np.all(inner > 0)
    np.testing.assert_allclose(inner, f0, rtol=0.03)


def test_pitch_150_hz_is_accurate_after_g711_and_at_16k():
    x = harmonic(150.0)
    coded = ulaw_decode(ulaw_encode(np.round(x * 32767).astype(np.int16)))
    p = frame_pitch_hz((coded / 32768.0).astype(np.float32), RATE, 20)
    assert np.median(p[2:-2]) == pytest.approx(150.0, rel=0.01)
    p16 = frame_pitch_hz(harmonic(150.0, rate=16000), 16000, 20)
    np.testing.assert_allclose(p16[2:-2], 150.0, rtol=0.03)


def test_missing_fundamental_still_reads_f0():
    # Telephone bandpass removes energy below 300 Hz: keep harmonics 3..20 of 120 Hz.
    t = times(1.0)
    x = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(3, 21))
    p = frame_pitch_hz((0.3 * x / np.abs(x).max()).astype(np.float32), RATE, 20)
    assert np.median(p[2:-2]) == pytest.approx(120.0, rel=0.03)


def test_silence_and_noise_are_unvoiced():
    assert np.all(frame_pitch_hz(np.zeros(1600, np.float32), RATE, 20) == 0.0)
    noise = (0.1 * np.random.default_rng(1).standard_normal(RATE)).astype(np.float32)
    assert np.mean(frame_pitch_hz(noise, RATE, 20) > 0) < 0.1


def test_pitch_follows_gliding_f0_and_agrees_with_numpy_fallback():
    x, f0 = speech_like()
    n = 160
    ours = frame_pitch_hz(x, RATE, 20).astype(np.float64)
    ref = frame_pitch_hz_reference(x, RATE, 20, np.ones(len(x) // n, dtype=bool))
    assert np.mean((ours > 0) == (ref > 0)) >= 0.95
    both = (ours > 0) & (ref > 0)
    assert both.sum() >= 0.8 * len(ours)
    # Within one lag step of the whole-lag estimate.
    assert np.max(np.abs(RATE / ours[both] - RATE / ref[both])) <= 1.0
    centre = f0[np.arange(len(ours)) * n + n // 2]
    voiced = ours > 0
    rel = np.abs(ours[voiced] - centre[voiced]) / centre[voiced]
    assert np.median(rel) < 0.02


@pytest.mark.parametrize("fn", [frame_level_dbfs, frame_pitch_hz])
def test_bad_input_raises_with_fix(fn):
    x = np.zeros(800, np.float32)
    with pytest.raises(TypeError, match=r"numpy\.asarray"):
        fn([0.0] * 800, RATE, 20)
    with pytest.raises(TypeError, match=r"astype\(numpy\.float32\)"):
        fn(np.zeros(800, np.int16), RATE, 20)
    with pytest.raises(ValueError, match="1-D"):
        fn(np.zeros((2, 400), np.float32), RATE, 20)
    with pytest.raises(ValueError, match="resample the leg to 8000 Hz"):
        fn(x, 44100, 20)
    with pytest.raises(TypeError, match="int"):
        fn(x, 8000.0, 20)
    with pytest.raises(ValueError, match="use 10, 20 or 30"):
        fn(x, RATE, 2000)
    with pytest.raises(ValueError, match=">= 1"):
        fn(x, RATE, 0)
