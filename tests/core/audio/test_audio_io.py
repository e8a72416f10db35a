"""WAV reading: every accepted encoding, and every way a file can be refused."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from core.audio.wav import AudioFileError, read_wav, write_wav_g711, write_wav_pcm16
from kernels.g711 import alaw_encode, ulaw_encode


def _tone(n: int, freq: float, rate: int) -> np.ndarray:
    t = np.arange(n) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_pcm16_stereo_round_trip(tmp_path: Path) -> None:
    left, right = _tone(1600, 440, 16000), _tone(1600, 300, 16000)
    path = tmp_path / "a.wav"
    write_wav_pcm16(path, [left, right], 16000)
    rec = read_wav(path)
    assert rec.sample_rate == 16000 and rec.encoding == "pcm16"
    assert len(rec.channels) == 2
    np.testing.assert_allclose(rec.channels[0], left, atol=1 / 16000)
    np.testing.assert_allclose(rec.channels[1], right, atol=1 / 16000)
    assert rec.duration_s == pytest.approx(0.1)


@pytest.mark.parametrize("law", ["mulaw", "alaw"])
def test_g711_stereo(tmp_path: Path, law: str) -> None:
    left, right = _tone(800, 440, 8000), _tone(800, 1000, 8000)
    enc = ulaw_encode if law == "mulaw" else alaw_encode
    codes = [enc(np.round(x * 32767).astype(np.int16)) for x in (left, right)]
    path = tmp_path / "g.wav"
    write_wav_g711(path, codes, 8000, law=law)
    rec = read_wav(path)
    assert rec.encoding == law and rec.sample_rate == 8000
    # G.711 keeps about 2 % relative error on a 0.3 amplitude tone
    np.testing.assert_allclose(rec.channels[0], left, atol=0.02)
    np.testing.assert_allclose(rec.channels[1], right, atol=0.02)


def test_mono(tmp_path: Path) -> None:
    path = tmp_path / "m.wav"
    write_wav_pcm16(path, [_tone(800, 440, 8000)], 8000)
    assert len(read_wav(path).channels) == 1


def _wav_bytes(
    tag: int, channels: int, rate: int, bits: int, payload: bytes, declared: int | None = None
) -> bytes:
    fmt = struct.pack(
        "<HHIIHH", tag, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits
    )
    size = len(payload) if declared is None else declared
    body = b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"hello, this is a text file and not audio at all", "not a WAV file"),
        (_wav_bytes(1, 2, 8000, 16, b"\x00" * 64)[:30], "truncated"),
        (
            _wav_bytes(1, 2, 8000, 16, b"\x00" * 64, declared=6400),
            "truncated: the data chunk declares 6400 bytes",
        ),
        (_wav_bytes(1, 3, 8000, 16, b"\x00" * 60), "3 channels"),
        (_wav_bytes(1, 2, 44100, 16, b"\x00" * 64), "sample rate 44100 Hz is not supported"),
        (_wav_bytes(3, 2, 8000, 32, b"\x00" * 64), "encoding tag 3 is not supported"),
        (_wav_bytes(1, 2, 8000, 16, b""), "holds no audio samples"),
    ],
)
def test_bad_files_are_refused_with_the_reason(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioFileError, match=message.replace("(", r"\(")):
        read_wav(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="no such file"):
        read_wav(tmp_path / "nope.wav")
