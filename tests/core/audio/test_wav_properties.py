"""Properties of the WAV reader, checked with hypothesis: what the writers write reads back
sample for sample, and any other bytes are read or refused with AudioFileError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.audio.wav import AudioFileError, parse_wav, write_wav_g711, write_wav_pcm16
from kernels.g711 import alaw_decode, ulaw_decode
from tests.fuzz import seeds
from tests.fuzz.strategies import PROPERTY_SETTINGS, any_input
from tests.fuzz.targets import TARGETS

SAMPLES = st.lists(st.integers(-32767, 32767), min_size=1, max_size=300)


@PROPERTY_SETTINGS
@given(st.lists(SAMPLES, min_size=1, max_size=2), st.sampled_from([8000, 16000]))
def test_pcm16_round_trip(
    tmp_path_factory: pytest.TempPathFactory, legs: list[list[int]], rate: int
) -> None:
    n = min(len(leg) for leg in legs)
    pcm = [np.array(leg[:n], dtype=np.int16) for leg in legs]
    path = tmp_path_factory.mktemp("wav") / "pcm.wav"
    write_wav_pcm16(path, [p / 32767.0 for p in pcm], rate)
    rec = parse_wav(Path(path).read_bytes())
    assert (rec.sample_rate, rec.encoding, len(rec.channels)) == (rate, "pcm16", len(pcm))
    for got, want in zip(rec.channels, pcm, strict=True):
        assert np.array_equal(np.round(got * 32768.0).astype(np.int16), want)


@PROPERTY_SETTINGS
@given(
    st.lists(st.binary(min_size=1, max_size=301), min_size=1, max_size=2),
    st.sampled_from(["mulaw", "alaw"]),
)
def test_g711_round_trip(
    tmp_path_factory: pytest.TempPathFactory, legs: list[bytes], law: str
) -> None:
    n = min(len(leg) for leg in legs)
    codes = [np.frombuffer(leg[:n], dtype=np.uint8).copy() for leg in legs]
    path = tmp_path_factory.mktemp("wav") / "g711.wav"
    write_wav_g711(path, codes, 8000, law)
    rec = parse_wav(Path(path).read_bytes())
    decode = ulaw_decode if law == "mulaw" else alaw_decode
    assert rec.encoding == law and len(rec.channels) == len(codes)
    for got, want in zip(rec.channels, codes, strict=True):
        assert np.array_equal(got, np.asarray(decode(want)).astype(np.float32) / 32768.0)


def test_any_input_is_read_or_refused_with_audio_file_error() -> None:
    run = TARGETS["wav"].load()

    @PROPERTY_SETTINGS
    @given(any_input(seeds.wav_files()))
    def check(data: bytes) -> None:
        run(data)

    check()


def test_a_header_claiming_more_data_than_the_file_holds_is_refused() -> None:
    data = bytearray(seeds.wav_files()[0])
    at = data.index(b"data") + 4
    data[at : at + 4] = (2**32 - 1).to_bytes(4, "little")
    with pytest.raises(AudioFileError, match="truncated"):
        parse_wav(bytes(data))
