"""Reading StreamAudio frames: any sequence of frames gives chunks or AudioFrameError, never
another exception, and a position far ahead of a leg's audio is refused rather than filled
with hours of silence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.api.audio_frames import (
    MAX_POSITION_GAP_S,
    AudioChunkReader,
    AudioFrameError,
    decoder_for,
)
from core.live.leg import LiveLeg
from proto import callqa_pb2 as pb
from tests.fuzz import seeds
from tests.fuzz.strategies import PROPERTY_SETTINGS, any_input
from tests.fuzz.targets import TARGETS

ENCODINGS = st.sampled_from(
    [pb.AUDIO_ENCODING_PCM16_LE, pb.AUDIO_ENCODING_PCMU, pb.AUDIO_ENCODING_PCMA, 0, 9]
)


@st.composite
def frames(draw: st.DrawFn) -> pb.AudioFrame:
    kind = draw(st.sampled_from(["audio", "audio", "audio", "end", "setup", "empty"]))
    if kind == "end":
        return pb.AudioFrame(end=pb.CallEnd())
    if kind == "setup":
        return pb.AudioFrame(setup=pb.CallSetup(agent_id="A1"))
    if kind == "empty":
        return pb.AudioFrame()
    chunk = pb.AudioChunk(leg=draw(st.integers(0, 3)), payload=draw(st.binary(max_size=64)))
    if draw(st.booleans()):
        chunk.position_ms = draw(st.integers(0, 2**64 - 1) | st.integers(0, 10**6))
    return pb.AudioFrame(audio=chunk)


@PROPERTY_SETTINGS
@given(ENCODINGS, st.sampled_from([0, 8000, 16000, 44100]), st.lists(frames(), max_size=12))
def test_frames_give_chunks_or_audio_frame_errors(
    encoding: int, rate: int, stream: list[pb.AudioFrame]
) -> None:
    try:
        decode, rate = decoder_for(encoding, rate)
    except AudioFrameError as exc:
        assert str(exc)
        return
    reader = AudioChunkReader(decode, rate)
    ends = {"agent": 0, "customer": 0}
    for frame in stream:
        try:
            chunk = reader.read(frame)
        except AudioFrameError as exc:
            assert str(exc)
            continue
        if chunk is None:
            assert frame.WhichOneof("frame") == "end"
            break
        assert chunk.pcm.dtype == np.int16 and chunk.pcm.size > 0
        start = ends[chunk.leg] if chunk.at_sample is None else chunk.at_sample
        assert start - ends[chunk.leg] <= MAX_POSITION_GAP_S * rate
        ends[chunk.leg] = max(ends[chunk.leg], start + chunk.pcm.size)


def test_any_byte_stream_of_frames() -> None:
    run = TARGETS["grpc_audio"].load()

    @PROPERTY_SETTINGS
    @given(any_input(seeds.audio_frame_streams()))
    def check(data: bytes) -> None:
        run(data)

    check()


def _chunk(position_ms: int | None) -> pb.AudioFrame:
    chunk = pb.AudioChunk(leg=pb.LEG_AGENT, payload=b"\x00\x10" * 160)
    if position_ms is not None:
        chunk.position_ms = position_ms
    return pb.AudioFrame(audio=chunk)


@pytest.mark.parametrize("position_ms", [2**64 - 1, 2**40, (MAX_POSITION_GAP_S + 1) * 1000])
def test_a_position_far_ahead_is_refused(position_ms: int) -> None:
    decode, rate = decoder_for(pb.AUDIO_ENCODING_PCM16_LE, 8000)
    reader = AudioChunkReader(decode, rate)
    with pytest.raises(AudioFrameError, match=f"more than {MAX_POSITION_GAP_S} s after"):
        reader.read(_chunk(position_ms))


def test_gaps_up_to_the_limit_reach_the_leg_as_silence() -> None:
    decode, rate = decoder_for(pb.AUDIO_ENCODING_PCM16_LE, 8000)
    reader = AudioChunkReader(decode, rate)
    leg = LiveLeg("agent")
    first = reader.read(_chunk(None))
    gap = reader.read(_chunk(MAX_POSITION_GAP_S * 1000 + 20))
    assert first is not None and gap is not None
    for chunk in (first, gap):
        leg.push(chunk.pcm, chunk.at_sample)
    assert leg.position_s == pytest.approx(MAX_POSITION_GAP_S + 0.02 + 0.02)
    with pytest.raises(AudioFrameError):  # a second jump counts from the new end
        reader.read(_chunk(2 * MAX_POSITION_GAP_S * 1000 + 100))


def test_the_proto_states_the_gap_limit() -> None:
    proto = Path(__file__).resolve().parents[3] / "proto" / "callqa.proto"
    assert f"more than {MAX_POSITION_GAP_S} s after the end" in proto.read_text(encoding="utf-8")
