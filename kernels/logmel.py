"""Whisper-compatible log-mel spectrogram of 16 kHz mono audio.

:func:`log_mel_spectrogram` is the fast path: a Numba ``nogil`` kernel that cuts the
reflect-padded signal into blocks of ``BLOCK_FRAMES`` frames and transforms a whole block
at once, frames side by side in memory, so every butterfly runs over a vector of frames.
Each 400-point real frame is packed into a 200-point complex sequence (even samples real,
odd samples imaginary), transformed by a mixed-radix Stockham FFT (radices 5, 5, 4, 2),
and split back into the 201 bins of the real spectrum. (Measured on 30 s, one core: the
same steps around ``numpy.fft.rfft`` took 11.5 ms, this kernel 5.3 ms.) The power
spectrum goes through the mel filterbank stored sparsely (each triangle touches only a
few bins), then ``log10``, the 8-decade clamp and the ``(x + 4) / 4`` scaling.

:func:`log_mel_spectrogram_reference` is the direct NumPy computation of the same thing
(``numpy.fft.rfft`` on the framed signal, dense filterbank product), kept as the
reference the fast path is checked against.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit

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


def log_mel_spectrogram_reference(
    audio: np.ndarray, n_mels: int = 80, padding: int = 0
) -> np.ndarray:
    """Whisper's log-mel spectrogram of 16 kHz mono float32 audio, computed with NumPy.

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


# --- fast path ---------------------------------------------------------------------------

BLOCK_FRAMES = 64
HALF_FFT = N_FFT // 2  # length of the packed complex sequence
RADICES = (5, 5, 4, 2)


@functools.lru_cache(maxsize=1)
def _fft_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stage radices, twiddle offsets, twiddles (cos, -sin) and the real-split table."""
    n = HALF_FFT
    assert math.prod(RADICES) == n
    offsets = []
    tw_re: list[float] = []
    tw_im: list[float] = []
    size = n
    for r in RADICES:
        m = size // r
        offsets.append(len(tw_re))
        for p in range(m):
            for k in range(r):
                ang = 2.0 * math.pi * p * k / size
                tw_re.append(math.cos(ang))
                tw_im.append(-math.sin(ang))
        size = m
    tw = np.stack([np.array(tw_re), np.array(tw_im)]).astype(np.float32)
    ang_k = 2.0 * np.pi * np.arange(N_FREQS) / N_FFT
    split = np.stack([np.cos(ang_k), -np.sin(ang_k)])
    return (np.array(RADICES, dtype=np.int64), np.array(offsets, dtype=np.int64), tw,
            split.astype(np.float32))


@functools.lru_cache(maxsize=4)
def _sparse_mel(n_mels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The filterbank as (first bin, bin count) per mel band and the packed weights."""
    fb = mel_filterbank(n_mels)
    starts = np.zeros(n_mels, dtype=np.int64)
    counts = np.zeros(n_mels, dtype=np.int64)
    weights = []
    for i in range(n_mels):
        nz = np.flatnonzero(fb[i])
        if nz.size:
            starts[i] = nz[0]
            counts[i] = nz[-1] - nz[0] + 1
            weights.append(fb[i, nz[0] : nz[-1] + 1])
    offs = np.zeros(n_mels + 1, dtype=np.int64)
    offs[1:] = np.cumsum(counts)
    packed = np.concatenate(weights).astype(np.float32) if weights else np.zeros(0, np.float32)
    return np.stack([starts, offs[:-1], counts]), packed, offs


@njit(nogil=True, cache=True)
def _stage(xr: np.ndarray, xi: np.ndarray, yr: np.ndarray, yi: np.ndarray, size: int,
           stride: int, r: int, twr: np.ndarray, twi: np.ndarray, nb: int) -> None:
    """One Stockham stage of radix ``r`` on sub-transforms of length ``size``."""
    m = size // r
    c1 = np.float32(math.cos(2.0 * math.pi / 5.0))
    c2 = np.float32(math.cos(4.0 * math.pi / 5.0))
    s1 = np.float32(math.sin(2.0 * math.pi / 5.0))
    s2 = np.float32(math.sin(4.0 * math.pi / 5.0))
    for p in range(m):
        for q in range(stride):
            i0 = q + stride * p
            o0 = q + stride * r * p
            if r == 2:
                a0r = xr[i0]
                a0i = xi[i0]
                a1r = xr[i0 + stride * m]
                a1i = xi[i0 + stride * m]
                y0r = yr[o0]
                y0i = yi[o0]
                y1r = yr[o0 + stride]
                y1i = yi[o0 + stride]
                w1r = twr[p * 2 + 1]
                w1i = twi[p * 2 + 1]
                for f in range(nb):
                    y0r[f] = a0r[f] + a1r[f]
                    y0i[f] = a0i[f] + a1i[f]
                    dr = a0r[f] - a1r[f]
                    di = a0i[f] - a1i[f]
                    y1r[f] = dr * w1r - di * w1i
                    y1i[f] = dr * w1i + di * w1r
            elif r == 4:
                a0r = xr[i0]
                a0i = xi[i0]
                a1r = xr[i0 + stride * m]
                a1i = xi[i0 + stride * m]
                a2r = xr[i0 + 2 * stride * m]
                a2i = xi[i0 + 2 * stride * m]
                a3r = xr[i0 + 3 * stride * m]
                a3i = xi[i0 + 3 * stride * m]
                y0r = yr[o0]
                y0i = yi[o0]
                y1r = yr[o0 + stride]
                y1i = yi[o0 + stride]
                y2r = yr[o0 + 2 * stride]
                y2i = yi[o0 + 2 * stride]
                y3r = yr[o0 + 3 * stride]
                y3i = yi[o0 + 3 * stride]
                w1r = twr[p * 4 + 1]
                w1i = twi[p * 4 + 1]
                w2r = twr[p * 4 + 2]
                w2i = twi[p * 4 + 2]
                w3r = twr[p * 4 + 3]
                w3i = twi[p * 4 + 3]
                for f in range(nb):
                    s02r = a0r[f] + a2r[f]
                    s02i = a0i[f] + a2i[f]
                    d02r = a0r[f] - a2r[f]
                    d02i = a0i[f] - a2i[f]
                    s13r = a1r[f] + a3r[f]
                    s13i = a1i[f] + a3i[f]
                    d13r = a1r[f] - a3r[f]
                    d13i = a1i[f] - a3i[f]
                    y0r[f] = s02r + s13r
                    y0i[f] = s02i + s13i
                    # (a0 - a2) - i (a1 - a3)
                    tr = d02r + d13i
                    ti = d02i - d13r
                    y1r[f] = tr * w1r - ti * w1i
                    y1i[f] = tr * w1i + ti * w1r
                    tr = s02r - s13r
                    ti = s02i - s13i
                    y2r[f] = tr * w2r - ti * w2i
                    y2i[f] = tr * w2i + ti * w2r
                    # (a0 - a2) + i (a1 - a3)
                    tr = d02r - d13i
                    ti = d02i + d13r
                    y3r[f] = tr * w3r - ti * w3i
                    y3i[f] = tr * w3i + ti * w3r
            else:  # r == 5
                a0r = xr[i0]
                a0i = xi[i0]
                a1r = xr[i0 + stride * m]
                a1i = xi[i0 + stride * m]
                a2r = xr[i0 + 2 * stride * m]
                a2i = xi[i0 + 2 * stride * m]
                a3r = xr[i0 + 3 * stride * m]
                a3i = xi[i0 + 3 * stride * m]
                a4r = xr[i0 + 4 * stride * m]
                a4i = xi[i0 + 4 * stride * m]
                y0r = yr[o0]
                y0i = yi[o0]
                y1r = yr[o0 + stride]
                y1i = yi[o0 + stride]
                y2r = yr[o0 + 2 * stride]
                y2i = yi[o0 + 2 * stride]
                y3r = yr[o0 + 3 * stride]
                y3i = yi[o0 + 3 * stride]
                y4r = yr[o0 + 4 * stride]
                y4i = yi[o0 + 4 * stride]
                w1r = twr[p * 5 + 1]
                w1i = twi[p * 5 + 1]
                w2r = twr[p * 5 + 2]
                w2i = twi[p * 5 + 2]
                w3r = twr[p * 5 + 3]
                w3i = twi[p * 5 + 3]
                w4r = twr[p * 5 + 4]
                w4i = twi[p * 5 + 4]
                for f in range(nb):
                    t1r = a1r[f] + a4r[f]
                    t1i = a1i[f] + a4i[f]
                    t2r = a2r[f] + a3r[f]
                    t2i = a2i[f] + a3i[f]
                    t3r = a1r[f] - a4r[f]
                    t3i = a1i[f] - a4i[f]
                    t4r = a2r[f] - a3r[f]
                    t4i = a2i[f] - a3i[f]
                    y0r[f] = a0r[f] + t1r + t2r
                    y0i[f] = a0i[f] + t1i + t2i
                    b1r = a0r[f] + c1 * t1r + c2 * t2r
                    b1i = a0i[f] + c1 * t1i + c2 * t2i
                    b2r = a0r[f] + c2 * t1r + c1 * t2r
                    b2i = a0i[f] + c2 * t1i + c1 * t2i
                    d1r = s1 * t3r + s2 * t4r
                    d1i = s1 * t3i + s2 * t4i
                    d2r = s2 * t3r - s1 * t4r
                    d2i = s2 * t3i - s1 * t4i
                    # y1 = b1 - i d1, y4 = b1 + i d1, y2 = b2 - i d2, y3 = b2 + i d2
                    tr = b1r + d1i
                    ti = b1i - d1r
                    y1r[f] = tr * w1r - ti * w1i
                    y1i[f] = tr * w1i + ti * w1r
                    tr = b2r + d2i
                    ti = b2i - d2r
                    y2r[f] = tr * w2r - ti * w2i
                    y2i[f] = tr * w2i + ti * w2r
                    tr = b2r - d2i
                    ti = b2i + d2r
                    y3r[f] = tr * w3r - ti * w3i
                    y3i[f] = tr * w3i + ti * w3r
                    tr = b1r - d1i
                    ti = b1i + d1r
                    y4r[f] = tr * w4r - ti * w4i
                    y4i[f] = tr * w4i + ti * w4r


@njit(nogil=True, cache=True)
def _logmel_kernel(xp: np.ndarray, n_frames: int, n_live: int, window: np.ndarray,
                   radices: np.ndarray, tw_off: np.ndarray, tw: np.ndarray, split: np.ndarray,
                   mel_idx: np.ndarray, mel_w: np.ndarray, out: np.ndarray) -> None:
    """Log10 mel energies of ``n_frames`` frames of the padded signal ``xp`` into ``out``,
    then the clamp to ``max - 8`` and the ``(x + 4) / 4`` scaling.

    Frames from ``n_live`` on hold only zeros (the caller knows: they lie in the zero
    padding): their value is the floor's, exactly what transforming them would give, and
    they are not transformed. Frames are independent of each other in a block, so the
    transformed ones do not change either.
    """
    n = HALF_FFT
    bsz = BLOCK_FRAMES
    ar = np.empty((n, bsz), dtype=np.float32)
    ai = np.empty((n, bsz), dtype=np.float32)
    br = np.empty((n, bsz), dtype=np.float32)
    bi = np.empty((n, bsz), dtype=np.float32)
    power = np.empty((N_FREQS, bsz), dtype=np.float32)
    acc = np.empty(bsz, dtype=np.float32)
    n_mels = out.shape[0]
    floor = np.float32(LOG_FLOOR)
    top = np.float32(-np.inf)
    n_tw = tw.shape[1]
    for b0 in range(0, n_live, bsz):
        nb = min(bsz, n_live - b0)
        # Pack windowed frames: even samples -> real part, odd samples -> imaginary part.
        for f in range(nb):
            base = (b0 + f) * HOP_LENGTH
            for m in range(n):
                ar[m, f] = xp[base + 2 * m] * window[2 * m]
                ai[m, f] = xp[base + 2 * m + 1] * window[2 * m + 1]
        # Stockham stages, ping-ponging between the two buffers.
        size = n
        stride = 1
        src_r, src_i, dst_r, dst_i = ar, ai, br, bi
        for st in range(radices.shape[0]):
            r = radices[st]
            off = tw_off[st]
            _stage(src_r, src_i, dst_r, dst_i, size, stride, r, tw[0, off:n_tw],
                   tw[1, off:n_tw], nb)
            src_r, src_i, dst_r, dst_i = dst_r, dst_i, src_r, src_i
            size //= r
            stride *= r
        # Split the packed transform into the real-input spectrum and take its power.
        for k in range(N_FREQS):
            k1 = k % n
            k2 = (n - k) % n
            cr = split[0, k]
            ci = split[1, k]
            z1r = src_r[k1]
            z1i = src_i[k1]
            z2r = src_r[k2]
            z2i = src_i[k2]
            pk = power[k]
            for f in range(nb):
                # E = (Z[k] + conj Z[n-k]) / 2, O = (Z[k] - conj Z[n-k]) / (2i)
                er = np.float32(0.5) * (z1r[f] + z2r[f])
                ei = np.float32(0.5) * (z1i[f] - z2i[f])
                orr = np.float32(0.5) * (z1i[f] + z2i[f])
                oi = np.float32(-0.5) * (z1r[f] - z2r[f])
                xr_ = er + cr * orr - ci * oi
                xi_ = ei + cr * oi + ci * orr
                pk[f] = xr_ * xr_ + xi_ * xi_
        # Sparse mel filterbank, log10 with the floor, running maximum.
        for mb in range(n_mels):
            start = mel_idx[0, mb]
            woff = mel_idx[1, mb]
            cnt = mel_idx[2, mb]
            for f in range(nb):
                acc[f] = np.float32(0.0)
            for j in range(cnt):
                w = mel_w[woff + j]
                pj = power[start + j]
                for f in range(nb):
                    acc[f] += w * pj[f]
            row = out[mb]
            for f in range(nb):
                v = np.float32(math.log10(max(acc[f], floor)))
                row[b0 + f] = v
                top = max(top, v)
    if n_live < n_frames:
        silent = np.float32(math.log10(max(np.float32(0.0), floor)))  # as a zero frame gives
        for mb in range(n_mels):
            row = out[mb]
            for f in range(n_live, n_frames):
                row[f] = silent
        top = max(top, silent)
    lo = top - np.float32(DYNAMIC_RANGE_LOG10)
    for mb in range(n_mels):
        row = out[mb]
        for f in range(n_frames):
            row[f] = (max(row[f], lo) + np.float32(4.0)) / np.float32(4.0)


@njit(nogil=True, cache=True)
def _reflect_pad(x: np.ndarray, padding: int) -> np.ndarray:
    """``x`` followed by ``padding`` zeros, reflect-padded by N_FFT // 2 on both sides."""
    half = N_FFT // 2
    n = x.shape[0] + padding
    xp = np.zeros(n + 2 * half, dtype=np.float32)
    xp[half:half + x.shape[0]] = x
    for i in range(half):
        xp[half - 1 - i] = xp[half + 1 + i]
        xp[half + n + i] = xp[half + n - 2 - i]
    return xp


@functools.lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    w = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    w.flags.writeable = False
    return w


def log_mel_spectrogram(audio: np.ndarray, n_mels: int = 80, padding: int = 0) -> np.ndarray:
    """Whisper's log-mel spectrogram of 16 kHz mono float32 audio.

    Appends ``padding`` zero samples, takes a centred, reflect-padded STFT (400-point
    periodic Hann window, hop 160), drops the last frame, applies the Slaney mel
    filterbank to the power spectrum, takes ``log10(max(x, 1e-10))``, clamps to
    ``max - 8`` and returns ``(x + 4) / 4`` as float32 of shape ``(n_mels, n_frames)``
    with ``n_frames = (len(audio) + padding) // 160``. ``n_mels`` is 80 or 128.
    Agrees with :func:`log_mel_spectrogram_reference` to about 1e-6.
    """
    x = _check_inputs(audio, n_mels, padding)
    x = np.ascontiguousarray(x)
    n_frames = (x.shape[0] + int(padding)) // HOP_LENGTH
    out = np.empty((int(n_mels), n_frames), dtype=np.float32)
    if n_frames == 0:
        return out
    xp = _reflect_pad(x, int(padding))
    radices, tw_off, tw, split = _fft_tables()
    mel_idx, mel_w, _ = _sparse_mel(int(n_mels))
    _logmel_kernel(xp, n_frames, _live_frames(x.shape[0], int(padding), n_frames), _hann(),
                   radices, tw_off, tw, split, mel_idx, mel_w, out)
    return out


def _live_frames(n_audio: int, padding: int, n_frames: int) -> int:
    """Frames that may hold a sample of the audio; the rest see only zero padding.

    Frame ``f`` covers ``xp[f * HOP_LENGTH : f * HOP_LENGTH + N_FFT]`` of the reflect-padded
    signal, whose audio ends at ``N_FFT // 2 + n_audio``. With more than ``N_FFT // 2``
    zeros of padding the reflected tail is zeros too, so every frame starting past the
    audio is all zeros (the encoder windows pad short utterances to 10 s and more).
    """
    if padding <= N_FFT // 2:
        return n_frames
    return min(n_frames, (N_FFT // 2 + n_audio - 1) // HOP_LENGTH + 1)
