"""ITU-T G.711 companding: mu-law and A-law codes <-> 16-bit linear PCM.

Decoding maps each of the 256 code bytes to the value G.711 assigns it, on a 16-bit scale
(mu-law: the 14-bit value times 4, so +-32124 at most; A-law: the 13-bit value times 8, so
+-32256 at most). Encoding uses the segment/quantisation rules of G.711 on the 14 (mu-law)
or 13 (A-law) most significant bits of the int16 input, exactly as the classic reference
coder does:

* mu-law: ``v = x >> 2`` (arithmetic shift), sign taken from ``v``, magnitude ``|v|``
  clipped to 8159, biased by 33, segment = position of the leading one, 4 mantissa bits,
  all bits inverted; positive zero is code 0xFF.
* A-law: ``v = x >> 3``; a negative ``v`` is coded with magnitude ``-v - 1`` (so the two
  zero codes 0xD5 and 0x55 sit symmetrically around -0.5); segment 0 and 1 share the step
  of 2, even bits are inverted (XOR 0x55) and the sign bit is set for positive values.

Both directions run in Numba ``nogil`` kernels: decoding evaluates the expansion formula
(equal to the 256-entry tables ``*_DECODE_TABLE``, which the kernels' tests check), encoding
looks up a 16384-entry (mu-law) or 8192-entry (A-law) uint8 table indexed by the shifted
sample. The tables are built once at import from the rules above.
All functions take 1-D arrays (one leg) or 2-D arrays ``(n_legs, n_samples)`` and accept a
caller-provided ``out`` buffer to avoid allocation in the real-time path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from kernels._checks import as_array, check_contiguous, check_dtype, check_out

ULAW_BIAS = 0x84
ULAW_CLIP_14 = 8159
ULAW_MAX = 32124
ALAW_MAX = 32256

__all__ = [
    "ALAW_DECODE_TABLE",
    "ALAW_ENCODE_TABLE",
    "ULAW_DECODE_TABLE",
    "ULAW_ENCODE_TABLE",
    "alaw_decode",
    "alaw_encode",
    "ulaw_decode",
    "ulaw_encode",
]


def _build_ulaw_decode() -> np.ndarray:
    u = (~np.arange(256, dtype=np.int32)) & 0xFF
    seg = (u >> 4) & 0x07
    t = (((u & 0x0F) << 3) + ULAW_BIAS) << seg
    return np.where(u & 0x80, ULAW_BIAS - t, t - ULAW_BIAS).astype(np.int16)


def _build_alaw_decode() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a >> 4) & 0x07
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _segment(magnitude: np.ndarray, first_end: int) -> np.ndarray:
    """Index of the first segment end (first_end, 2*first_end+1, ...) >= magnitude; 8 = over."""
    ends = (first_end + 1) * (1 << np.arange(8)) - 1
    return np.searchsorted(ends, magnitude, side="left")


def _build_ulaw_encode() -> np.ndarray:
    # Index i = v + 8192 for the 14-bit value v = x >> 2 in [-8192, 8191].
    v = np.arange(-8192, 8192, dtype=np.int32)
    mask = np.where(v < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(v), ULAW_CLIP_14) + (ULAW_BIAS >> 2)
    seg = _segment(mag, 0x3F)
    code = (seg << 4) | ((mag >> (seg + 1)) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _build_alaw_encode() -> np.ndarray:
    # Index i = v + 4096 for the 13-bit value v = x >> 3 in [-4096, 4095].
    v = np.arange(-4096, 4096, dtype=np.int32)
    mask = np.where(v >= 0, 0xD5, 0x55)
    mag = np.where(v >= 0, v, -v - 1)
    seg = _segment(mag, 0x1F)
    shift = np.where(seg < 2, 1, seg)
    code = (seg << 4) | ((mag >> shift) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


ULAW_DECODE_TABLE = _frozen(_build_ulaw_decode())
ALAW_DECODE_TABLE = _frozen(_build_alaw_decode())
ULAW_ENCODE_TABLE = _frozen(_build_ulaw_encode())
ALAW_ENCODE_TABLE = _frozen(_build_alaw_encode())


# Decoding evaluates the G.711 expansion formula per sample instead of gathering from a
# table; LLVM vectorises the mu-law formula fully (several times faster than a gather on
# long blocks) and the A-law one partly. Encoding reads its table as a compile-time
# constant. Each kernel takes only the input and output arrays, which keeps per-call
# overhead low for 20 ms packets.


@njit(nogil=True, cache=True)
def _ulaw_decode_kernel(codes: np.ndarray, out: np.ndarray) -> None:
    for i in range(codes.shape[0]):
        u = ~int(codes[i]) & 0xFF
        t = (((u & 0x0F) << 3) + ULAW_BIAS) << ((u >> 4) & 0x07)
        out[i] = np.int16((ULAW_BIAS - t) if (u & 0x80) else (t - ULAW_BIAS))


@njit(nogil=True, cache=True)
def _alaw_decode_kernel(codes: np.ndarray, out: np.ndarray) -> None:
    for i in range(codes.shape[0]):
        a = int(codes[i]) ^ 0x55
        seg = (a >> 4) & 0x07
        t = (((a & 0x0F) << 4) + (0x108 if seg else 8)) << (seg - 1 if seg else 0)
        out[i] = np.int16(t if a & 0x80 else -t)


@njit(nogil=True, cache=True)
def _ulaw_encode_kernel(pcm: np.ndarray, out: np.ndarray) -> None:
    table = ULAW_ENCODE_TABLE
    for i in range(pcm.shape[0]):
        out[i] = table[(np.int32(pcm[i]) >> 2) + 8192]


@njit(nogil=True, cache=True)
def _alaw_encode_kernel(pcm: np.ndarray, out: np.ndarray) -> None:
    table = ALAW_ENCODE_TABLE
    for i in range(pcm.shape[0]):
        out[i] = table[(np.int32(pcm[i]) >> 3) + 4096]


_U8 = np.dtype(np.uint8)
_I16 = np.dtype(np.int16)


def _prepare(x: object, name: str, dtype: np.dtype, hint: str) -> np.ndarray:
    if (type(x) is np.ndarray and x.dtype is dtype and 0 < x.ndim < 3
            and x.flags.c_contiguous):
        return x
    arr = as_array(x, name)
    check_dtype(arr, dtype.type, name, hint=hint)
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"{name} must be 1-D (one leg) or 2-D (n_legs, n_samples), got shape {arr.shape}; "
            f"reshape it, e.g. {name}.reshape(-1)"
        )
    check_contiguous(arr, name)
    return arr


def _output(out: object, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if (type(out) is np.ndarray and out.dtype is dtype and out.shape == shape
            and out.flags.c_contiguous and out.flags.writeable):
        return out
    check_out(out, shape, dtype.type)
    assert isinstance(out, np.ndarray)
    return out


_CODE_HINT = (
    "G.711 codes are bytes: use numpy.frombuffer(payload, dtype=numpy.uint8) or "
    "codes.astype(numpy.uint8)"
)
_PCM_HINT = (
    "pass 16-bit linear PCM as int16; from float samples in [-1, 1] use "
    "numpy.round(numpy.clip(x, -1, 1) * 32767).astype(numpy.int16)"
)


def _run(kernel: Any, x: np.ndarray, res: np.ndarray) -> np.ndarray:
    if x.ndim == 1:
        kernel(x, res)
    else:
        kernel(x.reshape(-1), res.reshape(-1))
    return res


def ulaw_decode(codes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Decode mu-law code bytes (uint8, 1-D or 2-D) to int16 linear PCM of the same shape."""
    x = codes
    if (out is None and type(x) is np.ndarray and x.dtype is _U8 and x.ndim == 1
            and x.flags.c_contiguous):  # fast path for one leg's packet
        res = np.empty(x.shape[0], _I16)
        _ulaw_decode_kernel(x, res)
        return res
    x = _prepare(x, "codes", _U8, _CODE_HINT)
    return _run(_ulaw_decode_kernel, x, _output(out, x.shape, _I16))


def alaw_decode(codes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Decode A-law code bytes (uint8, 1-D or 2-D) to int16 linear PCM of the same shape."""
    x = codes
    if (out is None and type(x) is np.ndarray and x.dtype is _U8 and x.ndim == 1
            and x.flags.c_contiguous):  # fast path for one leg's packet
        res = np.empty(x.shape[0], _I16)
        _alaw_decode_kernel(x, res)
        return res
    x = _prepare(x, "codes", _U8, _CODE_HINT)
    return _run(_alaw_decode_kernel, x, _output(out, x.shape, _I16))


def ulaw_encode(pcm: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Encode int16 linear PCM (1-D or 2-D) to mu-law code bytes (uint8) of the same shape."""
    x = pcm
    if (out is None and type(x) is np.ndarray and x.dtype is _I16 and x.ndim == 1
            and x.flags.c_contiguous):  # fast path for one leg's packet
        res = np.empty(x.shape[0], _U8)
        _ulaw_encode_kernel(x, res)
        return res
    x = _prepare(x, "pcm", _I16, _PCM_HINT)
    return _run(_ulaw_encode_kernel, x, _output(out, x.shape, _U8))


def alaw_encode(pcm: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Encode int16 linear PCM (1-D or 2-D) to A-law code bytes (uint8) of the same shape."""
    x = pcm
    if (out is None and type(x) is np.ndarray and x.dtype is _I16 and x.ndim == 1
            and x.flags.c_contiguous):  # fast path for one leg's packet
        res = np.empty(x.shape[0], _U8)
        _alaw_encode_kernel(x, res)
        return res
    x = _prepare(x, "pcm", _I16, _PCM_HINT)
    return _run(_alaw_encode_kernel, x, _output(out, x.shape, _U8))
