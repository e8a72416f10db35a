"""G.711 mu-law / A-law: every code and every int16 sample against a scalar reference coder."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from kernels.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

ALL_CODES = np.arange(256, dtype=np.uint8)
ALL_PCM = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)

# --- scalar reference coder, one sample at a time, written from the G.711 rules ---------

SEG_ULAW_END = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
SEG_ALAW_END = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _search(value: int, ends: tuple[int, ...]) -> int:
    for i, end in enumerate(ends):
        if value <= end:
            return i
    return len(ends)


def ref_ulaw_encode(sample: int) -> int:
    v = sample >> 2
    if v < 0:
        v = -v
        mask = 0x7F
    else:
        mask = 0xFF
    v = min(v, 8159) + 33
    seg = _search(v, SEG_ULAW_END)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((v >> (seg + 1)) & 0x0F)) ^ mask


def ref_alaw_encode(sample: int) -> int:
    v = sample >> 3
    if v >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        v = -v - 1
    seg = _search(v, SEG_ALAW_END)
    if seg >= 8:
        return 0x7F ^ mask
    code = seg << 4
    code |= (v >> 1) & 0x0F if seg < 2 else (v >> seg) & 0x0F
    return code ^ mask


def ref_ulaw_decode(code: int) -> int:
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)
    return 0x84 - t if u & 0x80 else t - 0x84


def ref_alaw_decode(code: int) -> int:
    a = code ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a >> 4) & 0x07
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


# --- decoding -----------------------------------------------------------------------------


def test_ulaw_decode_all_codes_match_reference():
    want = np.array([ref_ulaw_decode(c) for c in range(256)], dtype=np.int16)
    np.testing.assert_array_equal(ulaw_decode(ALL_CODES), want)


def test_alaw_decode_all_codes_match_reference():
    want = np.array([ref_alaw_decode(c) for c in range(256)], dtype=np.int16)
    np.testing.assert_array_equal(alaw_decode(ALL_CODES), want)


def test_decode_known_values_from_the_standard():
    u = ulaw_decode(ALL_CODES)
    assert u[0xFF] == 0 and u[0x7F] == 0  # the two zeros
    assert u[0x80] == 32124 and u[0x00] == -32124  # full scale, 8031 * 4
    assert u[0xFE] == 8 and u[0x7E] == -8  # first step (2 in 14-bit units)
    a = alaw_decode(ALL_CODES)
    assert a[0xD5] == 8 and a[0x55] == -8  # A-law has no zero output
    assert a[0xAA] == 32256 and a[0x2A] == -32256  # full scale, 4032 * 8


def test_decoded_values_are_odd_symmetric_and_monotonic_within_sign():
    u = ulaw_decode(ALL_CODES).astype(np.int32)
    np.testing.assert_array_equal(u[:128], -u[128:])
    assert np.all(np.diff(u[128:]) < 0) and np.all(np.diff(u[:128]) > 0)
    a = alaw_decode(ALL_CODES).astype(np.int32)
    np.testing.assert_array_equal(a[:128], -a[128:])
    # A-law segments: sorted magnitudes step 16 (seg 0, 1), then double per segment.
    mags = np.sort(a[128:])
    steps = np.diff(mags)
    assert set(steps[:31].tolist()) == {16}
    assert steps[-1] == 1024


# --- encoding -----------------------------------------------------------------------------


def test_ulaw_encode_every_int16_matches_reference():
    want = np.array([ref_ulaw_encode(int(s)) for s in ALL_PCM], dtype=np.uint8)
    np.testing.assert_array_equal(ulaw_encode(ALL_PCM), want)


def test_alaw_encode_every_int16_matches_reference():
    want = np.array([ref_alaw_encode(int(s)) for s in ALL_PCM], dtype=np.uint8)
    np.testing.assert_array_equal(alaw_encode(ALL_PCM), want)


def test_round_trip_of_decoded_values_is_identity_on_codes():
    for decode, encode in ((ulaw_decode, ulaw_encode), (alaw_decode, alaw_encode)):
        pcm = decode(ALL_CODES)
        back = encode(pcm)
        again = decode(back)
        np.testing.assert_array_equal(again, pcm)
    # Every A-law code is reachable; for mu-law only the negative zero 0x7F is not
    # (the reference coder sends zero and small negatives that round to zero to 0xFF).
    np.testing.assert_array_equal(alaw_encode(alaw_decode(ALL_CODES)), ALL_CODES)
    u = ulaw_encode(ulaw_decode(ALL_CODES))
    assert np.sum(u != ALL_CODES) == 1 and u[0x7F] == 0xFF


def test_quantisation_error_is_bounded_by_half_a_step():
    pcm = ALL_PCM.astype(np.int32)
    for decode, encode, step_max in ((ulaw_decode, ulaw_encode, 1024),
                                      (alaw_decode, alaw_encode, 1024)):
        err = np.abs(decode(encode(ALL_PCM)).astype(np.int32) - pcm)
        inside = np.abs(pcm) < 30000
        assert err[inside].max() <= step_max // 2 + 8
        small = np.abs(pcm) < 200
        assert err[small].max() <= 16


def test_matches_python_audioop():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # the standard library's up to 3.12; audioop-lts (test extra) after
    raw = ALL_PCM.tobytes()
    np.testing.assert_array_equal(
        ulaw_encode(ALL_PCM), np.frombuffer(audioop.lin2ulaw(raw, 2), np.uint8))
    np.testing.assert_array_equal(
        alaw_encode(ALL_PCM), np.frombuffer(audioop.lin2alaw(raw, 2), np.uint8))
    np.testing.assert_array_equal(
        ulaw_decode(ALL_CODES), np.frombuffer(audioop.ulaw2lin(ALL_CODES.tobytes(), 2), np.int16))
    np.testing.assert_array_equal(
        alaw_decode(ALL_CODES), np.frombuffer(audioop.alaw2lin(ALL_CODES.tobytes(), 2), np.int16))


# --- shapes, out buffers, bad input ----------------------------------------------------------


def test_two_d_bank_and_out_buffer():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, size=(7, 160), dtype=np.uint8)
    out = np.empty((7, 160), np.int16)
    res = ulaw_decode(codes, out=out)
    assert res is out
    np.testing.assert_array_equal(out, ulaw_decode(codes.ravel()).reshape(7, 160))
    pcm = rng.integers(-32768, 32768, size=(3, 50)).astype(np.int16)
    enc = np.empty((3, 50), np.uint8)
    assert alaw_encode(pcm, out=enc) is enc
    np.testing.assert_array_equal(enc[1], alaw_encode(pcm[1].copy()))
    assert ulaw_decode(np.empty(0, np.uint8)).shape == (0,)


@pytest.mark.parametrize("fn", [ulaw_decode, alaw_decode])
def test_decode_rejects_bad_input_with_fix(fn):
    with pytest.raises(TypeError, match=r"numpy\.ndarray"):
        fn([0, 1, 2])
    with pytest.raises(TypeError, match=r"uint8.*frombuffer"):
        fn(np.zeros(4, np.int16))
    with pytest.raises(ValueError, match="reshape"):
        fn(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="ascontiguousarray"):
        fn(np.zeros(8, np.uint8)[::2])
    with pytest.raises(ValueError, match=r"shape.*numpy.empty"):
        fn(np.zeros(4, np.uint8), out=np.empty(5, np.int16))
    with pytest.raises(TypeError, match=r"int16.*numpy.empty"):
        fn(np.zeros(4, np.uint8), out=np.empty(4, np.float32))


@pytest.mark.parametrize("fn", [ulaw_encode, alaw_encode])
def test_encode_rejects_bad_input_with_fix(fn):
    with pytest.raises(TypeError, match=r"numpy\.asarray"):
        fn([0, 1, 2])
    with pytest.raises(TypeError, match=r"int16.*32767"):
        fn(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="reshape"):
        fn(np.zeros((1, 2, 2), np.int16))
    ro = np.empty(4, np.uint8)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="copy"):
        fn(np.zeros(4, np.int16), out=ro)
