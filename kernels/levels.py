"""Per-frame level (dBFS) and pitch (Hz) of one telephone leg, float32 mono in [-1, 1].

Levels
    RMS of each full frame in dB relative to full scale: ``10 * log10(mean(x**2))``, so
    a full-scale square wave reads 0 dBFS and a full-scale sine -3.01 dBFS; frames below
    ``LEVEL_FLOOR_DBFS`` (-100 dBFS, digital silence included) read the floor.

Pitch
    For every frame, a window of ``max(2 * frame, 2.5 / 60 Hz)`` samples (40 ms and
    ~42 ms at 20 ms frames) centred on the frame (zero past the end of the audio) has its
    mean removed, is Hann-weighted, and its autocorrelation is normalised by lag 0 and by
    the window's own autocorrelation, so long lags are not penalised. Over the lags of
    60-400 Hz the kernel takes the shortest lag whose normalised correlation comes within
    ``PITCH_OCTAVE_RATIO`` of the best (against sub-octave picks), moves to the best lag a
    few steps ahead, and refines it by a parabola through its neighbours. Frames whose
    correlation at that lag is below ``PITCH_MIN_CORR``, or whose window is quieter than
    ``PITCH_GATE_DBFS``, are unvoiced and read 0. This follows
    :func:`frame_pitch_hz_reference` (same windows and rules); the parabolic refinement only
    replaces its whole-lag value by a fractional lag less than one step away.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kernels._checks import as_array, check_ndim, check_positive_int

SUPPORTED_RATES_HZ = (8000, 16000)
LEVEL_FLOOR_DBFS = -100.0
PITCH_MIN_HZ = 60.0
PITCH_MAX_HZ = 400.0
PITCH_MIN_CORR = 0.5
PITCH_OCTAVE_RATIO = 0.85
PITCH_PEAK_SEARCH = 6
PITCH_GATE_DBFS = -90.0
_F32 = np.dtype(np.float32)


@njit(nogil=True, cache=True, inline="always")
def frame_level_db(x: np.ndarray, start: int, n: int, floor_power: float) -> np.float32:
    """Level in dBFS of ``x[start:start + n]``, at least ``10 * log10(floor_power)``.

    The one computation of a frame's level: :func:`frame_level_dbfs` and the streaming VAD
    (``kernels.vad.StreamingVad.process_levels``) both call it, so they agree to the bit.
    """
    acc = 0.0
    for i in range(start, start + n):
        v = np.float64(x[i])
        acc += v * v
    power = max(acc / n, floor_power)
    return np.float32(10.0 * math.log10(power))


@njit(nogil=True, cache=True)
def _levels_kernel(x: np.ndarray, n: int, floor_db: float, out: np.ndarray) -> None:
    floor_power = 10.0 ** (floor_db / 10.0)
    for f in range(out.shape[0]):
        out[f] = frame_level_db(x, f * n, n, floor_power)


def pitch_window(sample_rate: int, frame_len: int) -> int:
    """Length in samples of the analysis window used for one frame's pitch."""
    return max(2 * frame_len, int(2.5 * sample_rate / PITCH_MIN_HZ))


def _lag_range(sample_rate: int, win: int) -> tuple[int, int]:
    return int(sample_rate / PITCH_MAX_HZ), min(int(sample_rate / PITCH_MIN_HZ), win - 2)


def _window_tables(sample_rate: int, frame_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The Hann window and, per lag, 1 / (its normalised autocorrelation)."""
    win = pitch_window(sample_rate, frame_len)
    hann = np.hanning(win)
    wac = np.correlate(hann, hann, mode="full")[win - 1:]
    inv = wac[0] / np.maximum(wac, 1e-30)
    return hann, inv


@njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _dot(a: np.ndarray, b: np.ndarray) -> float:
    # Reassociation lets LLVM vectorise this sum (float32 lanes, float32 accumulators).
    acc = np.float32(0.0)
    for i in range(a.shape[0]):
        acc += a[i] * b[i]
    return float(acc)


@njit(nogil=True, cache=True)
def _autocorr(w: np.ndarray, lag: int) -> float:
    return np.float64(_dot(w[:w.shape[0] - lag], w[lag:]))


@njit(nogil=True, cache=True)
def _pitch_kernel(x: np.ndarray, sample_rate: int, n: int, hann: np.ndarray,
                  inv_wac: np.ndarray, lag_lo: int, lag_hi: int, min_corr: float,
                  octave_ratio: float, search: int, gate_power: float,
                  out: np.ndarray) -> None:
    win = hann.shape[0]
    total = x.shape[0]
    w = np.empty(win, dtype=np.float32)
    buf = np.empty(win, dtype=np.float64)
    n_lags = lag_hi - lag_lo + 1
    seg = np.empty(n_lags, dtype=np.float64)
    for f in range(out.shape[0]):
        start = f * n + n // 2 - win // 2
        start = max(0, min(start, total - 1))
        # Window with zeros past the end, mean removed, Hann-weighted.
        mean = 0.0
        energy = 0.0
        for i in range(win):
            j = start + i
            v = np.float64(x[j]) if j < total else 0.0
            buf[i] = v
            mean += v
            energy += v * v
        mean /= win
        out[f] = 0.0
        if energy / win < gate_power:
            continue
        for i in range(win):
            w[i] = np.float32((buf[i] - mean) * hann[i])
        ac0 = _autocorr(w, 0) + 1e-20
        peak = -1e30
        for k in range(n_lags):
            lag = lag_lo + k
            s = _autocorr(w, lag) / ac0 * inv_wac[lag]
            seg[k] = s
            if s > peak:
                peak = s
        # Shortest lag close to the best peak, then the best lag a few steps ahead of it.
        first = 0
        for k in range(n_lags):
            if seg[k] >= octave_ratio * peak:
                first = k
                break
        best = first
        for k in range(first, min(first + search, n_lags)):
            if seg[k] > seg[best]:
                best = k
        if seg[best] < min_corr:
            continue
        frac = 0.0
        if 0 < best < n_lags - 1:
            a = seg[best - 1]
            b = seg[best]
            c = seg[best + 1]
            denom = a - 2.0 * b + c
            if denom < 0.0:
                frac = min(0.5, max(-0.5, 0.5 * (a - c) / denom))
        out[f] = np.float32(sample_rate / (lag_lo + best + frac))


_FRAME_LEN: dict[tuple[int, int], int] = {}


def _check(audio: object, sample_rate: object, frame_ms: object) -> tuple[np.ndarray, int, int]:
    """Validate the common arguments; return (audio, rate, samples per frame)."""
    if (type(audio) is np.ndarray and audio.dtype is _F32 and audio.ndim == 1
            and audio.flags.c_contiguous and type(sample_rate) is int and type(frame_ms) is int):
        n = _FRAME_LEN.get((sample_rate, frame_ms))
        if n is not None:  # arguments already validated once
            return audio, sample_rate, n
    if not (type(audio) is np.ndarray and audio.dtype is _F32 and audio.ndim == 1):
        a = as_array(audio, "audio")
        if a.dtype != np.float32:
            raise TypeError(
                f"audio must have dtype float32 (samples in [-1, 1]), got {a.dtype}; "
                f"use audio.astype(numpy.float32) (int16 PCM: audio.astype(numpy.float32) "
                f"/ 32768)"
            )
        check_ndim(a, 1, "audio")
        audio = a
    assert isinstance(audio, np.ndarray)
    rate = check_positive_int(sample_rate, "sample_rate")
    if rate not in SUPPORTED_RATES_HZ:
        raise ValueError(
            f"sample_rate must be one of {SUPPORTED_RATES_HZ} Hz, got {rate} Hz; resample "
            f"the leg to 8000 Hz first"
        )
    ms = check_positive_int(frame_ms, "frame_ms")
    if (rate * ms) % 1000 or ms > 1000:
        raise ValueError(
            f"frame_ms must give a whole number of samples at {rate} Hz and be at most "
            f"1000, got {ms} ms; use 10, 20 or 30"
        )
    if type(sample_rate) is int and type(frame_ms) is int:
        _FRAME_LEN[(rate, ms)] = rate * ms // 1000
    return np.ascontiguousarray(audio), rate, rate * ms // 1000


def frame_level_dbfs(audio: np.ndarray, sample_rate: int, frame_ms: int) -> np.ndarray:
    """RMS level of each full ``frame_ms`` frame in dBFS (float32, floor -100 dBFS).

    A trailing partial frame is ignored. A full-scale sine reads -3.01 dBFS.
    """
    x, _, n = _check(audio, sample_rate, frame_ms)
    out = np.empty(x.shape[0] // n, dtype=np.float32)
    if out.shape[0]:
        _levels_kernel(x, n, LEVEL_FLOOR_DBFS, out)
    return out


_TABLES: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, int, int]] = {}


def _pitch_tables(rate: int, n: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    key = (rate, n)
    if key not in _TABLES:
        hann, inv = _window_tables(rate, n)
        lo, hi = _lag_range(rate, hann.shape[0])
        _TABLES[key] = (hann, inv, lo, hi)
    return _TABLES[key]


def frame_pitch_hz(audio: np.ndarray, sample_rate: int, frame_ms: int) -> np.ndarray:
    """Pitch of each full ``frame_ms`` frame in Hz (float32), 0 for unvoiced frames.

    Autocorrelation pitch in 60-400 Hz over a ~40 ms window centred on the frame; see the
    module notes for the rules.
    """
    x, rate, n = _check(audio, sample_rate, frame_ms)
    out = np.zeros(x.shape[0] // n, dtype=np.float32)
    if out.shape[0]:
        hann, inv, lo, hi = _pitch_tables(rate, n)
        gate = 10.0 ** (PITCH_GATE_DBFS / 10.0)
        _pitch_kernel(x, rate, n, hann, inv, lo, hi, PITCH_MIN_CORR, PITCH_OCTAVE_RATIO,
                      PITCH_PEAK_SEARCH, gate, out)
    return out


# ---------------------------------------------------------------- references


def frame_level_dbfs_reference(audio: np.ndarray, sample_rate: int, frame_ms: int) -> np.ndarray:
    """The plain NumPy computation of :func:`frame_level_dbfs`, its reference."""
    n = sample_rate * frame_ms // 1000
    m = len(audio) // n
    frames = audio[: m * n].reshape(m, n).astype(np.float64)
    power = np.mean(frames * frames, axis=1)
    return np.maximum(10.0 * np.log10(power + 1e-12), LEVEL_FLOOR_DBFS)


def frame_pitch_hz_reference(
    audio: np.ndarray, sample_rate: int, frame_ms: int, wanted: np.ndarray
) -> np.ndarray:
    """The plain NumPy computation of :func:`frame_pitch_hz` (whole lags, no refinement) for
    the ``wanted`` frames; 0 elsewhere. Kept as the kernel's reference."""
    n = sample_rate * frame_ms // 1000
    win = max(2 * n, int(2.5 * sample_rate / PITCH_MIN_HZ))
    out = np.zeros(len(wanted), dtype=np.float64)
    idx = np.flatnonzero(wanted)
    if idx.size == 0:
        return out
    x = np.concatenate([audio.astype(np.float64), np.zeros(win)])
    starts = np.minimum(idx * n + n // 2 - win // 2, len(audio) - 1).clip(0)
    frames = x[starts[:, None] + np.arange(win)[None, :]]
    frames -= frames.mean(axis=1, keepdims=True)
    frames *= np.hanning(win)[None, :]
    nfft = 1 << math.ceil(math.log2(2 * win))
    spec = np.fft.rfft(frames, nfft, axis=1)
    ac = np.fft.irfft(spec * np.conj(spec), nfft, axis=1)[:, :win]
    lag_lo = int(sample_rate / PITCH_MAX_HZ)
    lag_hi = min(int(sample_rate / PITCH_MIN_HZ), win - 2)
    # Normalise by the window's own autocorrelation so long lags are not penalised.
    wac = np.correlate(np.hanning(win), np.hanning(win), mode="full")[win - 1 :]
    lags = slice(lag_lo, lag_hi + 1)
    seg = ac[:, lags] / (ac[:, :1] + 1e-20) / (wac[None, lags] / wac[0])
    # The shortest lag that comes close to the best peak, to avoid sub-octave picks.
    rows = np.arange(len(idx))
    peak = seg.max(axis=1)
    first = np.argmax(seg >= PITCH_OCTAVE_RATIO * peak[:, None], axis=1)
    ahead = np.clip(first[:, None] + np.arange(PITCH_PEAK_SEARCH)[None, :], 0, seg.shape[1] - 1)
    best = ahead[rows, np.argmax(seg[rows[:, None], ahead], axis=1)]
    peak = seg[rows, best]
    lag = best + lag_lo
    voiced = peak >= PITCH_MIN_CORR
    out[idx[voiced]] = sample_rate / lag[voiced]
    return out
