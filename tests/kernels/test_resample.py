"""8 -> 16 kHz upsampling: alignment, frequency response, streaming == one-shot, bank; and
16 -> 8 kHz (the mean of each pair) against a slow reference and its analytic gain."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.resample import (
    DELAY_16K,
    HALF_SPAN,
    Upsampler8kTo16k,
    UpsamplerBank,
    design_filter,
    downsample_16k_to_8k,
    upsample_8k_to_16k,
)

RATE_IN = 8000
RATE_OUT = 16000


def tone(freq_hz: float, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(RATE_IN * seconds)) / RATE_IN
    return (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def spectrum_db(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = np.hanning(len(y))
    mag = np.abs(np.fft.rfft(y * w)) / (w.sum() / 2)
    return np.fft.rfftfreq(len(y), 1 / RATE_OUT), 20 * np.log10(mag + 1e-12)


def stream(x: np.ndarray, sizes: list[int]) -> np.ndarray:
    up = Upsampler8kTo16k()
    parts = []
    pos = 0
    for n in sizes:
        out = up.process(x[pos:pos + n])
        assert out.shape == (2 * len(x[pos:pos + n]),) and out.dtype == np.float32
        parts.append(out)
        pos += n
    tail = up.flush()
    assert tail.shape == (DELAY_16K,)
    return np.concatenate([*parts, tail])


def test_length_dtype_and_empty():
    x = tone(440, 0.1)
    y = upsample_8k_to_16k(x)
    assert y.dtype == np.float32 and y.shape == (2 * len(x),)
    assert upsample_8k_to_16k(np.empty(0, np.float32)).shape == (0,)
    out = np.empty(2 * len(x), np.float32)
    assert upsample_8k_to_16k(x, out=out) is out
    np.testing.assert_array_equal(out, y)


def test_filter_is_symmetric_with_unit_dc_gain_per_branch():
    h = design_filter()
    np.testing.assert_allclose(h, h[::-1], atol=1e-15)
    assert h[0::2].sum() == pytest.approx(0.5, abs=1e-12)
    assert h[1::2].sum() == pytest.approx(0.5, abs=1e-12)
    dc = upsample_8k_to_16k(np.full(400, 0.25, np.float32))
    np.testing.assert_allclose(dc[2 * HALF_SPAN:-2 * HALF_SPAN], 0.25, atol=1e-6)


def test_output_is_time_aligned_with_input():
    # Even output samples sit on the input samples: an in-band tone is reproduced there.
    x = tone(1000)
    y = upsample_8k_to_16k(x)
    inner = slice(100, len(x) - 100)
    np.testing.assert_allclose(y[0::2][inner], x[inner], atol=2e-3)
    # Odd samples lie half-way: compare with the analytic tone at t = (n + 0.5) / 8000.
    t = (np.arange(len(x)) + 0.5) / RATE_IN
    np.testing.assert_allclose(y[1::2][inner], 0.5 * np.sin(2 * np.pi * 1000 * t)[inner],
                               atol=2e-3)
    # An impulse comes out centred on its own position (zero phase).
    imp = np.zeros(200, np.float32)
    imp[100] = 1.0
    assert int(np.argmax(upsample_8k_to_16k(imp))) == 200


@pytest.mark.parametrize("freq", [300.0, 1000.0, 2500.0, 3400.0])
def test_passband_tones_survive_and_images_are_suppressed(freq):
    y = upsample_8k_to_16k(tone(freq, amp=0.5))[400:-400]
    f, db = spectrum_db(y)
    peak = db[np.argmin(np.abs(f - freq))]
    assert peak == pytest.approx(20 * np.log10(0.5), abs=0.1)
    image = db[np.argmin(np.abs(f - (RATE_IN - freq)))]
    assert peak - image >= 40.0
    # Nothing anywhere above 4 kHz comes within 40 dB of the tone.
    assert peak - db[f >= 4000].max() >= 40.0


def test_white_noise_image_band_is_40_db_down():
    rng = np.random.default_rng(3)
    x = (0.2 * rng.standard_normal(16000)).astype(np.float32)
    y = upsample_8k_to_16k(x)
    f, db = spectrum_db(y)
    low = np.mean(10 ** (db[(f > 300) & (f < 3400)] / 10))
    high = np.mean(10 ** (db[(f > 4000)] / 10))
    assert 10 * np.log10(low / high) >= 40.0


def test_agrees_loosely_with_scipy_resample_poly():
    from scipy import signal  # in the test extra
    rng = np.random.default_rng(5)
    # Band-limited test signal: a few tones well inside the telephone band.
    t = np.arange(4000) / RATE_IN
    x = sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in
            zip(rng.uniform(0.05, 0.2, 6), rng.uniform(200, 3000, 6), rng.uniform(0, 6, 6),
                strict=True)).astype(np.float32)
    ours = upsample_8k_to_16k(x)
    ref = signal.resample_poly(x, 2, 1)
    inner = slice(200, -200)
    err = np.abs(ours[inner] - ref[inner]).max()
    assert err < 0.02 * np.abs(x).max()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_equals_one_shot_for_random_chunk_sizes(seed):
    rng = np.random.default_rng(seed)
    x = (0.3 * rng.standard_normal(9000)).astype(np.float32)
    sizes = []
    total = 0
    while total < len(x):
        n = int(rng.choice([0, 1, 7, 160, 160, 333, 1000]))
        sizes.append(n)
        total += n
    streamed = stream(x, sizes)
    assert len(streamed) == 2 * len(x) + DELAY_16K
    np.testing.assert_allclose(streamed[DELAY_16K:], upsample_8k_to_16k(x), atol=1e-5)


def test_streaming_20ms_chunks_and_reuse_after_flush():
    rng = np.random.default_rng(9)
    x = (0.3 * rng.standard_normal(160 * 25)).astype(np.float32)
    ref = upsample_8k_to_16k(x)
    up = Upsampler8kTo16k()
    assert up.delay == DELAY_16K == 2 * HALF_SPAN
    for _ in range(2):  # flush resets, so a second call gives the same result
        out = np.concatenate([up.process(c) for c in x.reshape(-1, 160)] + [up.flush()])
        np.testing.assert_allclose(out[DELAY_16K:], ref, atol=1e-5)


def test_bank_rows_match_single_leg_streams():
    rng = np.random.default_rng(11)
    n_legs, n_frames = 5, 12
    x = (0.3 * rng.standard_normal((n_legs, 160 * n_frames))).astype(np.float32)
    bank = UpsamplerBank(n_legs)
    outs = [bank.process(np.ascontiguousarray(x[:, i * 160:(i + 1) * 160]))
            for i in range(n_frames)]
    assert outs[0].shape == (n_legs, 320)
    got = np.concatenate([*outs, bank.flush()], axis=1)
    for leg in range(n_legs):
        np.testing.assert_allclose(got[leg, DELAY_16K:], upsample_8k_to_16k(x[leg]), atol=1e-5)
    # Resetting one leg makes it start afresh without touching the others.
    bank.process(np.ascontiguousarray(x[:, :160]))
    bank.reset(2)
    fresh = bank.process(np.ascontiguousarray(x[:, 160:320]))
    single = Upsampler8kTo16k()
    np.testing.assert_allclose(fresh[2], single.process(x[2, 160:320].copy()), atol=1e-6)


def test_bad_input_raises_with_fix():
    with pytest.raises(TypeError, match=r"numpy\.asarray"):
        upsample_8k_to_16k([0.0, 1.0])
    with pytest.raises(TypeError, match=r"float32.*32768"):
        upsample_8k_to_16k(np.zeros(10, np.int16))
    with pytest.raises(TypeError, match="float32"):
        upsample_8k_to_16k(np.zeros(10, np.float64))
    with pytest.raises(ValueError, match="1-D"):
        upsample_8k_to_16k(np.zeros((2, 10), np.float32))
    with pytest.raises(ValueError, match=r"shape.*numpy\.empty"):
        upsample_8k_to_16k(np.zeros(10, np.float32), out=np.empty(10, np.float32))
    up = Upsampler8kTo16k()
    with pytest.raises(TypeError, match=r"astype"):
        up.process(np.zeros(160, np.int16))
    with pytest.raises(ValueError, match="1-D"):
        up.process(np.zeros((1, 160), np.float32))
    bank = UpsamplerBank(3)
    with pytest.raises(ValueError, match=r"numpy\.stack"):
        bank.process(np.zeros((2, 160), np.float32))
    with pytest.raises(ValueError, match=r"\(3, 160\)"):
        bank.process(np.zeros(160, np.float32))
    with pytest.raises(TypeError, match="float32"):
        bank.process(np.zeros((3, 160), np.float64))
    with pytest.raises(ValueError, match="n_legs"):
        UpsamplerBank(0)


# ------------------------------------------------------------------ 16 kHz -> 8 kHz


def _pair_means_reference(x: np.ndarray) -> np.ndarray:
    """Slow and obvious: the mean of samples 2n and 2n + 1, for every whole pair."""
    return np.array([(float(x[2 * n]) + float(x[2 * n + 1])) / 2 for n in range(len(x) // 2)],
                    dtype=np.float32)  # fmt: skip


def test_downsample_is_the_mean_of_each_pair() -> None:
    rng = np.random.default_rng(7)
    for n in (0, 1, 2, 7, 320, 16001):
        x = rng.uniform(-1, 1, n).astype(np.float32)
        got = downsample_16k_to_8k(x)
        assert got.dtype == np.float32 and got.shape == (n // 2,)
        np.testing.assert_allclose(got, _pair_means_reference(x), atol=1e-7)


@pytest.mark.parametrize("freq_hz", [300.0, 1000.0, 3400.0, 5000.0])
def test_downsample_gain_is_cos_pi_f_over_16k(freq_hz: float) -> None:
    t = np.arange(RATE_OUT) / RATE_OUT
    x = (0.5 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    y = downsample_16k_to_8k(x)
    gain = np.sqrt(2 * np.mean(y.astype(np.float64) ** 2)) / 0.5
    assert gain == pytest.approx(abs(np.cos(np.pi * freq_hz / RATE_OUT)), abs=2e-3)


def test_downsample_refuses_other_dtypes_and_shapes_saying_how_to_fix() -> None:
    with pytest.raises(TypeError, match=r"float32.*x.astype\(numpy.float32\)"):
        downsample_16k_to_8k(np.zeros(4, dtype=np.int16))
    with pytest.raises(ValueError, match="1-D"):
        downsample_16k_to_8k(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(TypeError, match=r"numpy\.ndarray"):
        downsample_16k_to_8k([0.0, 0.0])  # type: ignore[arg-type]
