"""8 kHz -> 16 kHz upsampling of telephone audio (float32), one-shot, streaming and banked;
and the one 16 kHz -> 8 kHz conversion (`downsample_16k_to_8k`).

The interpolation filter is a linear-phase Kaiser-windowed sinc lowpass designed at the
16 kHz output rate: ``FILTER_TAPS = 4 * HALF_SPAN + 1`` (125) taps, cutoff 3.7 kHz, flat
to within +-0.002 dB from 0 to 3.4 kHz (the telephone band) and at least 70 dB down from
4 kHz up, so the spectral images of the 8 kHz input (at ``8 kHz - f``) are removed. Each
of the two polyphase branches is normalised to unit DC gain, so a constant input gives
the same constant out and the 8 kHz image of DC is exactly zero.

Delay conventions
-----------------
* :func:`upsample_8k_to_16k` is zero-phase: output sample ``2 * n`` lies at the time of
  input sample ``n`` and ``2 * n + 1`` half-way to the next; the input is taken as zero
  outside its ends. The output is exactly ``2 * len(x)`` samples long.
* :class:`Upsampler8kTo16k` and :class:`UpsamplerBank` return exactly two output samples
  per input sample and lag the one-shot output by ``DELAY_16K = 2 * HALF_SPAN`` output
  samples (``HALF_SPAN`` input samples, 3.875 ms): streamed output sample ``k`` is one-shot
  sample ``k - DELAY_16K``. The first ``DELAY_16K`` streamed samples are the filter's
  lead-in before time zero; ``flush()`` returns the last ``DELAY_16K`` samples. Hence
  ``concatenate(outputs)[DELAY_16K:] + flush()`` equals the one-shot result of the whole
  signal (up to float32 rounding).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from kernels._checks import (
    as_array,
    check_contiguous,
    check_dtype,
    check_ndim,
    check_out,
    check_positive_int,
)

INPUT_RATE_HZ = 8000
OUTPUT_RATE_HZ = 16000
HALF_SPAN = 31
FILTER_TAPS = 4 * HALF_SPAN + 1
BRANCH_TAPS = 2 * HALF_SPAN + 2  # 64: whole SIMD blocks, zero-padded at the ends
CUTOFF_HZ = 3700.0
KAISER_BETA = 7.2
DELAY_8K = HALF_SPAN
DELAY_16K = 2 * HALF_SPAN


def design_filter() -> np.ndarray:
    """The interpolation lowpass at 16 kHz, float64, ``FILTER_TAPS`` long, symmetric.

    Each polyphase branch (even and odd taps) sums to 0.5, so the filter applied to the
    zero-stuffed input and scaled by 2 passes DC with gain exactly 1.
    """
    m = np.arange(FILTER_TAPS) - 2 * HALF_SPAN
    fc = 2.0 * CUTOFF_HZ / OUTPUT_RATE_HZ
    h = fc * np.sinc(fc * m) * np.kaiser(FILTER_TAPS, KAISER_BETA)
    h[0::2] *= 0.5 / h[0::2].sum()
    h[1::2] *= 0.5 / h[1::2].sum()
    return h


def _branches() -> tuple[np.ndarray, np.ndarray]:
    # Tap k of either branch multiplies the input k - HALF_SPAN samples after the centre;
    # the even branch has 2*HALF_SPAN + 1 taps, the odd one 2*HALF_SPAN (k = 1..2*HALF_SPAN).
    # Both are zero-padded to BRANCH_TAPS, so the kernels read one input beyond the span.
    h = 2.0 * design_filter()
    even = np.zeros(BRANCH_TAPS, dtype=np.float32)
    even[:2 * HALF_SPAN + 1] = h[0::2]
    odd = np.zeros(BRANCH_TAPS, dtype=np.float32)
    odd[1:2 * HALF_SPAN + 1] = h[1::2]
    even.flags.writeable = False
    odd.flags.writeable = False
    return even, odd


EVEN_TAPS, ODD_TAPS = _branches()


# Reassociation lets LLVM vectorise the tap sums; the order is the same for the one-shot,
# streaming and banked paths, which all run this one kernel.
_FASTMATH = {"reassoc", "contract"}


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _poly(buf: np.ndarray, n: int, out: np.ndarray) -> None:
    """Outputs for the ``n`` centres ``buf[HALF_SPAN + j]``: out[2j] even, out[2j+1] odd.

    ``buf`` must hold ``n + 2 * HALF_SPAN + 1`` finite samples (the last one meets only
    zero taps)."""
    ge = EVEN_TAPS
    go = ODD_TAPS
    k_taps = ge.shape[0]
    j = 0
    while j + 2 <= n:
        e0 = np.float32(0.0)
        o0 = np.float32(0.0)
        e1 = np.float32(0.0)
        o1 = np.float32(0.0)
        for k in range(k_taps):
            v0 = buf[j + k]
            v1 = buf[j + k + 1]
            g = ge[k]
            h = go[k]
            e0 += g * v0
            o0 += h * v0
            e1 += g * v1
            o1 += h * v1
        out[2 * j] = e0
        out[2 * j + 1] = o0
        out[2 * j + 2] = e1
        out[2 * j + 3] = o1
        j += 2
    if j < n:
        e0 = np.float32(0.0)
        o0 = np.float32(0.0)
        for k in range(k_taps):
            v0 = buf[j + k]
            e0 += ge[k] * v0
            o0 += go[k] * v0
        out[2 * j] = e0
        out[2 * j + 1] = o0


@njit(nogil=True, cache=True)
def _oneshot(x: np.ndarray, out: np.ndarray) -> None:
    span = HALF_SPAN
    n = x.shape[0]
    xp = np.zeros(n + 2 * span + 1, dtype=np.float32)
    xp[span:span + n] = x
    _poly(xp, n, out)


@njit(nogil=True, cache=True)
def _stream(state: np.ndarray, chunk: np.ndarray, out: np.ndarray) -> None:
    """One leg. ``state[:2 * HALF_SPAN]`` holds the last inputs and is updated in place;
    the rest of ``state`` (at least ``len(chunk) + 1`` long) is scratch."""
    h = 2 * HALF_SPAN
    n = chunk.shape[0]
    for i in range(n):
        state[h + i] = chunk[i]
    state[h + n] = np.float32(0.0)
    _poly(state, n, out)
    for i in range(h):  # forward copy is safe: the source lies above the destination
        state[i] = state[n + i]


@njit(nogil=True, cache=True)
def _stream_bank(hist: np.ndarray, frames: np.ndarray, out: np.ndarray) -> None:
    h = hist.shape[1]
    n = frames.shape[1]
    work = np.zeros(h + n + 1, dtype=np.float32)
    for leg in range(frames.shape[0]):
        work[:h] = hist[leg]
        work[h:h + n] = frames[leg]
        _poly(work, n, out[leg])
        hist[leg] = work[n:n + h]


_AUDIO_HINT = (
    "pass 8 kHz mono samples in [-1, 1] as x.astype(numpy.float32) "
    "(int16 PCM: x.astype(numpy.float32) / 32768)"
)


_F32 = np.dtype(np.float32)
_empty = np.empty


def _as_audio(x: object, name: str) -> np.ndarray:
    if (type(x) is np.ndarray and x.dtype is _F32 and x.ndim == 1
            and x.flags.c_contiguous):
        return x
    arr = as_array(x, name)
    check_dtype(arr, np.float32, name, hint=_AUDIO_HINT)
    check_ndim(arr, 1, name)
    return np.ascontiguousarray(arr)


def _out_1d(out: object, n: int) -> np.ndarray:
    if (type(out) is np.ndarray and out.dtype is _F32 and out.shape == (n,)
            and out.flags.c_contiguous and out.flags.writeable):
        return out
    check_out(out, (n,), np.float32)
    assert isinstance(out, np.ndarray)
    return out


def upsample_8k_to_16k(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Upsample 8 kHz float32 audio to 16 kHz, zero-phase, ``2 * len(x)`` samples out.

    Output sample ``2n`` is time-aligned with input sample ``n``; the signal is taken
    as zero before the start and after the end.
    """
    a = _as_audio(x, "x")
    res = np.empty(2 * a.shape[0], dtype=_F32) if out is None else _out_1d(out, 2 * a.shape[0])
    if a.shape[0]:
        _oneshot(a, res)
    return res


class Upsampler8kTo16k:
    """Streaming 8 -> 16 kHz upsampler for one leg; see the module notes on delay.

    ``process`` takes chunks of any length (20 ms = 160 samples in the daemon) and
    returns twice as many samples, lagging the one-shot output by :attr:`delay` samples.
    """

    delay: int = DELAY_16K

    def __init__(self, max_chunk: int = 160) -> None:
        self._cap = check_positive_int(max_chunk, "max_chunk")
        self._state = np.zeros(self._cap + 2 * HALF_SPAN + 1, dtype=np.float32)

    def process(self, chunk: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Feed 8 kHz float32 samples; return ``2 * len(chunk)`` samples at 16 kHz."""
        c = chunk
        if (out is None and type(c) is np.ndarray and c.dtype is _F32 and c.ndim == 1
                and 0 < (n := c.size) <= self._cap and c.flags.c_contiguous):
            res = _empty(2 * n, _F32)  # fast path for a regular packet
            _stream(self._state, c, res)
            return res
        c = _as_audio(chunk, "chunk")
        n = c.shape[0]
        res = np.empty(2 * n, dtype=_F32) if out is None else _out_1d(out, 2 * n)
        if n == 0:
            return res
        if n > self._cap:
            grown = np.zeros(n + 2 * HALF_SPAN + 1, dtype=np.float32)
            grown[:2 * HALF_SPAN] = self._state[:2 * HALF_SPAN]
            self._state = grown
            self._cap = n
        _stream(self._state, c, res)
        return res

    def flush(self) -> np.ndarray:
        """Return the last :attr:`delay` output samples (input taken as zero) and reset."""
        tail = self.process(np.zeros(HALF_SPAN, dtype=np.float32))
        self.reset()
        return tail

    def reset(self) -> None:
        """Forget the history, as for a new call."""
        self._state[:] = 0.0


class UpsamplerBank:
    """Streaming 8 -> 16 kHz upsamplers for ``n_legs`` legs advanced together.

    ``process(frames)`` takes one chunk per leg as a float32 ``(n_legs, n)`` matrix
    (``n = 160`` for 20 ms) and returns ``(n_legs, 2 * n)``; every row behaves exactly
    like its own :class:`Upsampler8kTo16k`.
    """

    delay: int = DELAY_16K

    def __init__(self, n_legs: int) -> None:
        self.n_legs = check_positive_int(n_legs, "n_legs")
        self._hist = np.zeros((self.n_legs, 2 * HALF_SPAN), dtype=np.float32)

    def process(self, frames: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Feed one chunk per leg, shape ``(n_legs, n)``; return ``(n_legs, 2 * n)``."""
        f = frames
        if not (type(f) is np.ndarray and f.dtype is _F32 and f.ndim == 2
                and f.shape[0] == self.n_legs and f.shape[1] >= 1 and f.flags.c_contiguous):
            f = as_array(frames, "frames")
            check_dtype(f, np.float32, "frames", hint=_AUDIO_HINT)
            check_ndim(f, 2, "frames",
                       hint=f"stack one chunk per leg into shape ({self.n_legs}, 160)")
            if f.shape[0] != self.n_legs or f.shape[1] < 1:
                raise ValueError(
                    f"frames must have shape ({self.n_legs}, n) with n >= 1 (one row per "
                    f"leg), got {f.shape}; stack the legs' chunks with numpy.stack"
                )
            check_contiguous(f, "frames")
        shape = (self.n_legs, 2 * f.shape[1])
        if out is None:
            res = np.empty(shape, dtype=np.float32)
        else:
            check_out(out, shape, np.float32)
            res = out
        _stream_bank(self._hist, f, res)
        return res

    def flush(self) -> np.ndarray:
        """Return the last :attr:`delay` samples of every leg, ``(n_legs, delay)``; reset."""
        tail = self.process(np.zeros((self.n_legs, HALF_SPAN), dtype=np.float32))
        self._hist[:] = 0.0
        return tail

    def reset(self, leg: int | None = None) -> None:
        """Forget the history of one leg (a new call on it) or of all legs."""
        if leg is None:
            self._hist[:] = 0.0
        else:
            if not 0 <= int(leg) < self.n_legs:
                raise ValueError(f"leg must be in 0..{self.n_legs - 1}, got {leg}")
            self._hist[int(leg)] = 0.0


# ---------------------------------------------------------------- 16 kHz -> 8 kHz

_DOWN_HINT = (
    "pass 16 kHz mono samples in [-1, 1] as x.astype(numpy.float32) "
    "(int16 PCM: x.astype(numpy.float32) / 32768)"
)


def downsample_16k_to_8k(x: np.ndarray) -> np.ndarray:
    """16 kHz float32 audio at 8 kHz: the mean of each pair of samples, ``len(x) // 2`` out.

    An odd last sample is left out (a stream keeps it for its next chunk). Output sample
    ``n`` lies half-way between input samples ``2n`` and ``2n + 1``. The mean of a pair is
    a two-tap low-pass, gain ``cos(pi * f / 16 kHz)``: -0.2 dB at 1 kHz, -2.1 dB at
    3.4 kHz, and what lies above 4 kHz folds into the band (5 kHz comes back at 3 kHz, -5
    dB). It is the conversion the live legs, the offline scoring and the in-process
    benchmark share, so a 16 kHz call is heard the same way by all three; a windowed-sinc
    low-pass would keep the band flat and remove the fold (about -75 dB from 4.5 kHz up).
    """
    if not (type(x) is np.ndarray and x.dtype is _F32 and x.ndim == 1):
        a = as_array(x, "x")
        check_dtype(a, np.float32, "x", hint=_DOWN_HINT)
        check_ndim(a, 1, "x")
        x = a
    n = x.shape[0] // 2
    out: np.ndarray = (np.float32(0.5) * (x[: 2 * n : 2] + x[1 : 2 * n : 2])).astype(
        np.float32, copy=False
    )
    return out
