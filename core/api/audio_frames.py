"""Reading a StreamAudio request stream: the `CallSetup` first, then audio chunks and the end.

`decoder_for` picks the payload decoder of a setup's encoding and sample rate;
`AudioChunkReader` turns each later `AudioFrame` into the leg, its samples and where they
start. Every way a frame can be unusable raises `AudioFrameError` saying what was wrong: the
service refuses a bad setup with INVALID_ARGUMENT and drops (and counts) a bad chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kernels.g711 import alaw_decode, ulaw_decode
from proto import callqa_pb2 as pb

# A chunk may start at most this far after the end of its leg's audio so far: the gap is
# filled with silence, held in memory and written to the recording.
MAX_POSITION_GAP_S = 600
G711_RATE_HZ = 8000
PCM16_RATES_HZ = (8000, 16000)

Decoder = Callable[[bytes], np.ndarray]


class AudioFrameError(ValueError):
    """An AudioFrame that cannot be used; the text says what was wrong."""


def _g711(table: Callable[[np.ndarray], np.ndarray]) -> Decoder:
    def decode(payload: bytes) -> np.ndarray:
        if not payload:
            raise AudioFrameError("the audio chunk has an empty payload")
        return np.asarray(table(np.frombuffer(payload, dtype=np.uint8)))

    return decode


def _pcm16(payload: bytes) -> np.ndarray:
    if not payload or len(payload) % 2:
        raise AudioFrameError(f"PCM16 payloads hold whole 2-byte samples, got {len(payload)} bytes")
    return np.frombuffer(payload, dtype="<i2").astype(np.int16)


def decoder_for(encoding: int, rate: int) -> tuple[Decoder, int]:
    """The payload decoder of a stream's encoding and its sample rate (0: the default)."""
    if encoding in (pb.AUDIO_ENCODING_PCMU, pb.AUDIO_ENCODING_PCMA):
        if rate not in (0, G711_RATE_HZ):
            raise AudioFrameError("PCMU and PCMA run at 8000 Hz")
        table = ulaw_decode if encoding == pb.AUDIO_ENCODING_PCMU else alaw_decode
        return _g711(table), G711_RATE_HZ
    if encoding == pb.AUDIO_ENCODING_PCM16_LE:
        if rate not in PCM16_RATES_HZ:
            raise AudioFrameError(f"sample_rate_hz must be 8000 or 16000 for PCM16, got {rate}")
        return _pcm16, rate
    raise AudioFrameError("encoding must be PCM16_LE, PCMU or PCMA")


@dataclass(frozen=True)
class AudioChunk:
    """One chunk of one leg's audio, decoded."""

    leg: str  # "agent" or "customer"
    pcm: np.ndarray  # int16
    at_sample: int | None  # where it starts in the leg's timeline; None: right after the last


class AudioChunkReader:
    """Reads the frames after the setup; `read` returns None for the end of the call."""

    def __init__(self, decode: Decoder, sample_rate: int) -> None:
        self.decode = decode
        self.sample_rate = sample_rate
        self._ends: dict[str, int] = {"agent": 0, "customer": 0}

    def read(self, frame: pb.AudioFrame) -> AudioChunk | None:
        kind = frame.WhichOneof("frame")
        if kind == "end":
            return None
        if kind != "audio":
            what = "a second CallSetup" if kind == "setup" else "an empty AudioFrame"
            raise AudioFrameError(f"{what} in the audio stream")
        chunk = frame.audio
        if chunk.leg not in (pb.LEG_AGENT, pb.LEG_CUSTOMER):
            raise AudioFrameError(f"the audio chunk names no leg (leg {chunk.leg})")
        leg = "agent" if chunk.leg == pb.LEG_AGENT else "customer"
        pcm = self.decode(chunk.payload)
        end = self._ends[leg]
        at: int | None = None
        if chunk.HasField("position_ms"):
            at = chunk.position_ms * self.sample_rate // 1000
            if at - end > MAX_POSITION_GAP_S * self.sample_rate:
                raise AudioFrameError(
                    f"position_ms {chunk.position_ms} is more than {MAX_POSITION_GAP_S} s after"
                    f" the end of the {leg} leg's audio ({end * 1000 // self.sample_rate} ms)"
                )
        self._ends[leg] = max(end, (end if at is None else at) + len(pcm))
        return AudioChunk(leg, pcm, at)
