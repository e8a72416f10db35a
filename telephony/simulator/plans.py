"""What to simulate: `CallPlan`, plans loaded from stereo WAV files (`read_wav_legs`,
`load_plan_from_wav`) and the AoR helpers."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernels.g711 import alaw_decode, ulaw_decode
from telephony.simulator.constants import (
    AGENT,
    AGENT_DOMAIN,
    CODECS,
    DEFAULT_AGENT_AOR,
    DEFAULT_CUSTOMER_AOR,
    DIRECTIONS,
    SAMPLE_RATE_HZ,
)
from telephony.sip.message import SipParseError, parse_uri


def _as_pcm16(audio: object, what: str) -> np.ndarray:
    """Mono int16 PCM from an int16 array, or from float audio in [-1, 1] (scaled by 32768)."""
    if not isinstance(audio, np.ndarray):
        raise TypeError(f"{what}: expected a NumPy array of 8 kHz mono PCM, got {type(audio)}")
    if audio.ndim != 1:
        raise ValueError(
            f"{what}: expected mono audio (a 1-D array), got shape {audio.shape}; give each "
            "leg its own channel, or load a stereo WAV with load_plan_from_wav"
        )
    if audio.size == 0:
        raise ValueError(f"{what}: the audio is empty")
    if audio.dtype == np.int16:
        return np.ascontiguousarray(audio)
    if audio.dtype in (np.float32, np.float64):
        if not np.isfinite(audio).all():
            raise ValueError(f"{what}: the audio holds NaN or infinite samples")
        scaled = np.rint(audio.astype(np.float64) * 32768.0)
        return np.clip(scaled, -32768, 32767).astype(np.int16)
    raise ValueError(
        f"{what}: expected int16 or float32 PCM, got {audio.dtype}; convert it with "
        "audio.astype(np.int16) or scale floats to [-1, 1]"
    )


def _user_of(aor: str) -> str:
    try:
        return parse_uri(aor).user
    except SipParseError:
        return aor


@dataclass(frozen=True, eq=False)
class CallPlan:
    """One call to simulate: both legs' audio, who speaks them, the codec and when to start.

    `agent_audio` and `customer_audio` are 8 kHz mono PCM, int16 or float in [-1, 1]
    (float audio is scaled by 32768 and stored as int16). The legs may differ in length;
    each stream ends with its own audio. `direction` says who placed the call: `inbound`
    (the customer called the agent, the usual call-center case) or `outbound`; the metadata
    marks that participant as the calling party.
    """

    agent_audio: np.ndarray
    customer_audio: np.ndarray
    agent_aor: str = DEFAULT_AGENT_AOR
    customer_aor: str = DEFAULT_CUSTOMER_AOR
    codec: str = "PCMU"
    start_offset_s: float = 0.0
    sample_rate: int = SAMPLE_RATE_HZ
    direction: str = "inbound"
    name: str = ""

    def __post_init__(self) -> None:
        if self.sample_rate != SAMPLE_RATE_HZ:
            raise ValueError(
                f"the audio must be sampled at {SAMPLE_RATE_HZ} Hz, got {self.sample_rate} Hz;"
                " resample it first (e.g. `sox in.wav -r 8000 out.wav`)"
            )
        codec = str(self.codec).upper()
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {self.codec!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if not self.start_offset_s >= 0.0:
            raise ValueError(f"start_offset_s must be 0 or more, got {self.start_offset_s}")
        for aor, what in ((self.agent_aor, "agent_aor"), (self.customer_aor, "customer_aor")):
            try:
                parse_uri(aor)
            except SipParseError as exc:
                raise ValueError(f"{what}: {exc}") from exc
        object.__setattr__(self, "codec", codec)
        object.__setattr__(self, "agent_audio", _as_pcm16(self.agent_audio, "agent audio"))
        object.__setattr__(self, "customer_audio", _as_pcm16(self.customer_audio, "customer audio"))

    @property
    def agent_id(self) -> str:
        """The user part of the agent's AoR (the extension or login)."""
        return _user_of(self.agent_aor)

    @property
    def duration_s(self) -> float:
        """Seconds of audio of the longer leg."""
        return max(len(self.agent_audio), len(self.customer_audio)) / SAMPLE_RATE_HZ

    def audio(self, role: str) -> np.ndarray:
        return self.agent_audio if role == AGENT else self.customer_audio


def agent_aor_for(agent_id: str | int, domain: str = AGENT_DOMAIN) -> str:
    """`sip:<agent_id>@<domain>`: the AoR of an agent extension."""
    return f"sip:{agent_id}@{domain}"


WAVE_PCM = 1
WAVE_ALAW = 6
WAVE_MULAW = 7
WAVE_EXTENSIBLE = 0xFFFE


def read_wav_legs(path: Path | str) -> tuple[int, list[np.ndarray]]:
    """The sample rate and the int16 channels of a PCM16, mu-law or A-law WAV file.

    Raises `ValueError` saying what is wrong with a file that is not one of these.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a folder, not a WAV file") from None
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    chunks: dict[bytes, tuple[int, int]] = {}
    pos = 12
    while pos + 8 <= len(data) and b"data" not in chunks:
        chunk_id, size = struct.unpack_from("<4sI", data, pos)
        chunks.setdefault(chunk_id, (pos + 8, size))
        pos += 8 + size + (size & 1)
    if b"fmt " not in chunks or b"data" not in chunks:
        raise ValueError(f"{path}: the WAV file lacks its 'fmt ' or 'data' chunk")
    fmt_at, fmt_size = chunks[b"fmt "]
    if fmt_size < 16 or fmt_at + 16 > len(data):
        raise ValueError(f"{path}: the WAV 'fmt ' chunk is truncated")
    tag, n_channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", data, fmt_at)
    if tag == WAVE_EXTENSIBLE and fmt_size >= 40 and fmt_at + 26 <= len(data):
        tag = struct.unpack_from("<H", data, fmt_at + 24)[0]
    width = {WAVE_PCM: 16, WAVE_ALAW: 8, WAVE_MULAW: 8}.get(tag)
    if width is None or bits != width or n_channels < 1 or block_align != n_channels * width // 8:
        raise ValueError(
            f"{path}: WAV encoding {tag} with {bits} bits is not supported; "
            "use 16-bit PCM, G.711 mu-law or A-law"
        )
    data_at, data_size = chunks[b"data"]
    frames = min(data_size, len(data) - data_at) // block_align
    raw = np.frombuffer(data, np.uint8, frames * block_align, data_at)
    if tag == WAVE_PCM:
        pcm = raw.view("<i2").astype(np.int16)
    else:
        codes = np.ascontiguousarray(raw)
        pcm = ulaw_decode(codes) if tag == WAVE_MULAW else alaw_decode(codes)
    interleaved = pcm.reshape(frames, n_channels)
    return rate, [np.ascontiguousarray(interleaved[:, c]) for c in range(n_channels)]


def load_plan_from_wav(
    path: Path | str,
    *,
    agent_id: str | int = "1001",
    agent_aor: str | None = None,
    customer_aor: str = DEFAULT_CUSTOMER_AOR,
    codec: str = "PCMU",
    start_offset_s: float = 0.0,
    direction: str = "inbound",
) -> CallPlan:
    """A plan from a stereo 8 kHz WAV file: the agent on the left, the customer on the right.

    16-bit PCM, G.711 mu-law and A-law files are read; a mu-law file sent as PCMU (or an
    A-law one as PCMA) sends the file's own audio unchanged. `agent_aor` overrides the AoR
    made from `agent_id` (`sip:<agent_id>@pbx.example.com`).
    """
    rate, channels = read_wav_legs(path)
    if rate != SAMPLE_RATE_HZ:
        raise ValueError(
            f"{path}: sampled at {rate} Hz; the simulator sends 8 kHz G.711, "
            "resample it (e.g. `sox in.wav -r 8000 out.wav`)"
        )
    if len(channels) != 2:
        raise ValueError(
            f"{path}: {len(channels)} channel(s); a stereo file is expected "
            "(the agent on the left, the customer on the right)"
        )
    if not len(channels[0]):
        raise ValueError(f"{path}: the file holds no audio")
    return CallPlan(
        agent_audio=channels[0],
        customer_audio=channels[1],
        agent_aor=agent_aor or agent_aor_for(agent_id),
        customer_aor=customer_aor,
        codec=codec,
        start_offset_s=start_offset_s,
        direction=direction,
        name=Path(path).name,
    )
