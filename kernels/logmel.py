"""Whisper-compatible log-mel spectrogram of 16 kHz mono audio."""

from __future__ import annotations

import functools

import numpy as np

from kernels._checks import as_array, check_dtype, check_ndim

SAMPLE_RATE_HZ = 16000
N_FFT = 400
HOP_LENGTH = 160
N_FREQS = N_FFT // 2 + 1
LOG_FLOOR = 1e-10
DYNAMIC_RANGE_LOG10 = 8.0
SUPPORTED_N_MELS = (80, 128)


def _hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    f = np.asarray(f, dtype=np.float64)
    mel = f / f_sp
    high = f >= min_log_hz
    mel[high] = min_log_mel + np.log(f[high] / min_log_hz) / logstep
    return mel


def _mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    m = np.asarray(m, dtype=np.float64)
    f = m * f_sp
    high = m >= min_log_mel
    f[high] = min_log_hz * np.exp(logstep * (m[high] - min_log_mel))
    return f


@functools.lru_cache(maxsize=4)
def mel_filterbank(n_mels: int) -> np.ndarray:
    """Slaney-scale, Slaney-normalised mel filterbank, shape ``(n_mels, 201)``, float32.

    Triangles on the Slaney mel scale from 0 Hz to 8000 Hz over the 201 bins of a
    400-point FFT at 16 kHz; each triangle is scaled by ``2 / (f_right - f_left)`` so
    that its area is constant. The returned array is read-only.
    """
    fft_hz = np.linspace(0.0, SAMPLE_RATE_HZ / 2, N_FREQS)
    mel_edges = np.linspace(
        _hz_to_mel_slaney(np.array([0.0]))[0],
        _hz_to_mel_slaney(np.array([SAMPLE_RATE_HZ / 2]))[0],
        n_mels + 2,
    )
    hz_edges = _mel_to_hz_slaney(mel_edges)
    widths = np.diff(hz_edges)
    ramps = hz_edges[:, None] - fft_hz[None, :]
    weights = np.zeros((n_mels, N_FREQS), dtype=np.float64)
    for i in range(n_mels):
        rising = -ramps[i] / widths[i]
        falling = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (hz_edges[2 : n_mels + 2] - hz_edges[:n_mels]))[:, None]
    out = weights.astype(np.float32)
    out.flags.writeable = False
    return out


def _check_inputs(audio: object, n_mels: object, padding: object) -> np.ndarray:
    x = as_array(audio, "audio")
    check_dtype(
        x,
        np.float32,
        "audio",
        hint="pass 16 kHz mono samples in [-1, 1] as audio.astype(numpy.float32) "
        "(int16 PCM: audio.astype(numpy.float32) / 32768)",
    )
    check_ndim(x, 1, "audio")
    if isinstance(n_mels, bool) or not isinstance(n_mels, int | np.integer):
        raise TypeError(f"n_mels must be an int, got {type(n_mels).__name__}")
    if int(n_mels) not in SUPPORTED_N_MELS:
        raise ValueError(
            f"n_mels must be one of {SUPPORTED_N_MELS} (80 for Whisper up to large-v2, "
            f"128 for large-v3), got {n_mels}"
        )
    if isinstance(padding, bool) or not isinstance(padding, int | np.integer):
        raise TypeError(f"padding must be an int number of samples, got {type(padding).__name__}")
    if int(padding) < 0:
        raise ValueError(f"padding must be >= 0 samples, got {padding}; use 0 for no padding")
    n_total = x.shape[0] + int(padding)
    if n_total <= N_FFT // 2:
        raise ValueError(
            f"audio plus padding must be longer than {N_FFT // 2} samples for the reflect-padded "
            f"STFT, got {n_total}; pass more audio or a larger padding"
        )
    return x


def log_mel_spectrogram(audio: np.ndarray, n_mels: int = 80, padding: int = 0) -> np.ndarray:
    """Whisper's log-mel spectrogram of 16 kHz mono float32 audio.

    Appends ``padding`` zero samples, takes a centred, reflect-padded STFT (400-point
    periodic Hann window, hop 160), drops the last frame, applies the Slaney mel
    filterbank to the power spectrum, takes ``log10(max(x, 1e-10))``, clamps to
    ``max - 8`` and returns ``(x + 4) / 4`` as float32 of shape ``(n_mels, n_frames)``
    with ``n_frames = (len(audio) + padding) // 160``.
    """
    x = _check_inputs(audio, n_mels, padding)
    if padding:
        x = np.concatenate([x, np.zeros(int(padding), dtype=np.float32)])
    half = N_FFT // 2
    xp = np.pad(x, (half, half), mode="reflect")
    n_frames = x.shape[0] // HOP_LENGTH
    idx = np.arange(N_FFT)[None, :] + HOP_LENGTH * np.arange(n_frames)[:, None]
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    spec = np.fft.rfft(xp[idx] * window, axis=1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    mel = mel_filterbank(int(n_mels)) @ power.T
    log_spec = np.log10(np.maximum(mel, LOG_FLOOR))
    log_spec = np.maximum(log_spec, log_spec.max() - DYNAMIC_RANGE_LOG10)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)
