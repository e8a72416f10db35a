"""Log-mel spectrogram: fast kernel vs the NumPy reference (faster-whisper's extractor: in
test_logmel_faster_whisper.py)."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.logmel import (
    HOP_LENGTH,
    log_mel_spectrogram,
    log_mel_spectrogram_reference,
    mel_filterbank,
)
from kernels.resample import upsample_8k_to_16k

RATE = 16000
TOL = 1e-4


def noise(n: int, seed: int = 0, amp: float = 0.1) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def speechy(seconds: float = 2.0) -> np.ndarray:
    """Telephone-like audio: harmonics below 3.4 kHz at 8 kHz, upsampled to 16 kHz, so the
    bands above 4 kHz are 70+ dB down and land on the clamp."""
    t = np.arange(int(8000 * seconds)) / 8000
    f0 = 130 + 30 * np.sin(2 * np.pi * 1.3 * t)
    ph = 2 * np.pi * np.cumsum(f0) / 8000
    x = sum(np.sin(k * ph) / k for k in range(1, 25) if 130 * k < 3400)
    env = 0.5 * (1 + np.sin(2 * np.pi * 2 * t))
    return upsample_8k_to_16k((0.2 * x * env).astype(np.float32))


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("n", [201, 400, 1234, 16000, 3 * RATE + 77])
def test_matches_reference(n_mels, n):
    x = noise(n, seed=n)
    got = log_mel_spectrogram(x, n_mels)
    ref = log_mel_spectrogram_reference(x, n_mels)
    assert got.dtype == np.float32 and got.shape == ref.shape == (n_mels, n // HOP_LENGTH)
    np.testing.assert_allclose(got, ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_matches_reference_on_speech_like_audio_with_padding(n_mels):
    x = speechy()
    for padding in (0, 160, 480000 - len(x)):
        got = log_mel_spectrogram(x, n_mels, padding)
        ref = log_mel_spectrogram_reference(x, n_mels, padding)
        assert got.shape == (n_mels, (len(x) + padding) // HOP_LENGTH)
        np.testing.assert_allclose(got, ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_zero_padding_frames_come_out_as_if_transformed(n_mels):
    """The padding of a short utterance to its encoder window is not transformed frame by
    frame; the result is the same to the bit as the zeros appended and transformed."""
    for x in (speechy(3.0), noise(1234, seed=3), noise(0)[:0]):
        for padding in (199, 200, 201, 361, 10 * RATE - len(x), 30 * RATE - len(x)):
            if len(x) + padding <= 200:  # too short for the STFT at all
                continue
            got = log_mel_spectrogram(x, n_mels, padding)
            whole = log_mel_spectrogram(np.concatenate([x, np.zeros(padding, np.float32)]),
                                        n_mels)  # fmt: skip
            assert np.array_equal(got, whole), (len(x), padding)
            ref = log_mel_spectrogram_reference(x, n_mels, padding)
            np.testing.assert_allclose(got, ref, atol=TOL, rtol=0)


def test_full_30_s_window_matches_reference():
    x = noise(30 * RATE, seed=7, amp=0.3)
    np.testing.assert_allclose(log_mel_spectrogram(x), log_mel_spectrogram_reference(x),
                               atol=TOL, rtol=0)


def test_known_values_silence_and_a_tone():
    # Silence: every bin is the log floor, -10, scaled to (-10 + 4) / 4.
    silent = log_mel_spectrogram(np.zeros(3200, np.float32))
    np.testing.assert_array_equal(silent, np.float32(-1.5))
    # A 1 kHz tone peaks in the mel band whose triangle is centred nearest 1 kHz.
    t = np.arange(RATE) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    mel = log_mel_spectrogram(tone)
    fb = mel_filterbank(80)
    expected = int(np.argmax(fb[:, round(1000 / (RATE / 400))]))
    assert np.all(np.argmax(mel[:, 5:-5], axis=0) == expected)
    # The output is clamped to 8 decades (2.0 after scaling) below its maximum.
    assert mel.max() - mel.min() == pytest.approx(2.0, abs=1e-6)


def test_bad_input_raises_with_fix():
    with pytest.raises(TypeError, match=r"numpy\.asarray"):
        log_mel_spectrogram([0.0] * 1000)
    with pytest.raises(TypeError, match=r"astype\(numpy\.float32\) / 32768"):
        log_mel_spectrogram(np.zeros(1000, np.int16))
    with pytest.raises(TypeError, match="float32"):
        log_mel_spectrogram(np.zeros(1000, np.float64))
    with pytest.raises(ValueError, match="1-D"):
        log_mel_spectrogram(np.zeros((2, 1000), np.float32))
    with pytest.raises(ValueError, match="128 for large-v3"):
        log_mel_spectrogram(np.zeros(1000, np.float32), n_mels=64)
    with pytest.raises(ValueError, match="pass more audio or a larger padding"):
        log_mel_spectrogram(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="use 0 for no padding"):
        log_mel_spectrogram(np.zeros(1000, np.float32), padding=-1)
    # Short audio is fine once padding makes it long enough.
    assert log_mel_spectrogram(np.zeros(100, np.float32), padding=300).shape == (80, 2)
    # Non-contiguous input is accepted (copied).
    x = noise(8000)
    np.testing.assert_array_equal(log_mel_spectrogram(np.repeat(x, 2)[::2]),
                                  log_mel_spectrogram(x))
