"""Synthetic sounds of a phone line that are not speech: noise bursts, hold music, tones, DTMF.

The speech check (``core.asr.speech_check``) must drop these before Whisper, and the Numba
VAD cuts several of them as utterances (they are loud and steady). Each generator returns
8 kHz float32 samples in [-1, 1], from a seeded generator where there is chance, so a test
or a benchmark reads the same audio every run.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE_HZ = 8000
DTMF_LOW_HZ = (697, 770, 852, 941)
DTMF_HIGH_HZ = (1209, 1336, 1477, 1633)
DTMF_KEYS = "123A456B789C*0#D"
# A simple tune for hold music: (semitones above A3, beats).
_TUNE = ((3, 1), (7, 1), (10, 1), (15, 2), (12, 1), (10, 1), (7, 2), (5, 1), (8, 1), (12, 2))


def _time(seconds: float) -> np.ndarray:
    return np.arange(round(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ


def _at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) or 1.0
    return np.clip(x * (10 ** (dbfs / 20) / rms), -1.0, 1.0).astype(np.float32)


def noise_burst(seconds: float, dbfs: float = -20.0, seed: int = 0) -> np.ndarray:
    """White noise shaped by a fast attack and slow decay (a crackle, a bump on the mic)."""
    rng = np.random.default_rng(seed)
    t = _time(seconds)
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-t / max(seconds / 3, 1e-3))
    return _at_level(rng.standard_normal(len(t)) * envelope, dbfs)


def steady_noise(seconds: float, dbfs: float = -25.0, seed: int = 0) -> np.ndarray:
    """Low-passed white noise at a steady level (a fan, line hiss turned up)."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(len(_time(seconds)))
    kernel = np.ones(4) / 4  # a gentle low-pass, as a line's noise
    return _at_level(np.convolve(white, kernel, mode="same"), dbfs)


def hold_music(seconds: float, dbfs: float = -20.0, tempo_bpm: float = 100.0) -> np.ndarray:
    """A looping tune of harmonic notes over a bass line, with note envelopes."""
    t = _time(seconds)
    out = np.zeros(len(t))
    beat_s = 60.0 / tempo_bpm
    start = 0.0
    index = 0
    while start < seconds:
        step, beats = _TUNE[index % len(_TUNE)]
        length = beats * beat_s
        mask = (t >= start) & (t < start + length)
        local = t[mask] - start
        envelope = np.minimum(1.0, local / 0.02) * np.exp(-local / (0.8 * length))
        f = 220.0 * 2 ** (step / 12)
        tone = sum(np.sin(2 * np.pi * k * f * local) / k for k in (1, 2, 3, 4))
        bass = 0.6 * np.sin(2 * np.pi * (f / 4) * local)
        out[mask] = envelope * (tone + bass)
        start += length
        index += 1
    return _at_level(out, dbfs)


def tone(seconds: float, hz: float = 440.0, dbfs: float = -20.0,
         on_s: float | None = None, off_s: float = 0.0) -> np.ndarray:  # fmt: skip
    """A sine at ``hz``; with ``on_s``, cadenced: on for ``on_s``, off for ``off_s`` (a busy or
    ringback tone)."""
    t = _time(seconds)
    x = np.sin(2 * np.pi * hz * t)
    if on_s is not None:
        x = np.where((t % (on_s + off_s)) < on_s, x, 0.0)
    return _at_level(x, dbfs)


def dtmf(keys: str, dbfs: float = -20.0, key_s: float = 0.12, gap_s: float = 0.08) -> np.ndarray:
    """The DTMF digits ``keys`` (of ``DTMF_KEYS``), each ``key_s`` long, ``gap_s`` apart."""
    parts = []
    t = _time(key_s)
    for key in keys:
        index = DTMF_KEYS.find(key)
        if index < 0:
            raise ValueError(f"{key!r} is not a DTMF key: use one of {DTMF_KEYS}")
        low, high = DTMF_LOW_HZ[index // 4], DTMF_HIGH_HZ[index % 4]
        parts.append(np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
        parts.append(np.zeros(round(gap_s * SAMPLE_RATE_HZ)))
    return _at_level(np.concatenate(parts), dbfs)


def line_sounds(seconds: float = 3.0) -> dict[str, np.ndarray]:
    """One of each kind, about ``seconds`` long, by name."""
    digits = max(1, round(seconds / 0.2))
    return {
        "noise_burst": noise_burst(seconds),
        "steady_noise": steady_noise(seconds),
        "hold_music": hold_music(seconds),
        "tone_440": tone(seconds, 440.0),
        "tone_1000": tone(seconds, 1000.0),
        "busy_tone": tone(seconds, 450.0, on_s=0.35, off_s=0.35),
        "dtmf": dtmf(("1234567890*#" * 8)[:digits]),
    }
