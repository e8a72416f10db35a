"""Reading call recordings: RIFF/WAVE with PCM16, G.711 mu-law or A-law, 8 or 16 kHz.

The standard library's `wave` module reads PCM only, and call recordings are usually
G.711 (format tags 7 and 6), so the RIFF chunks are walked here. Every way a file can be
unusable raises `AudioFileError` with a message that says what is wrong with the file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernels.g711 import alaw_decode, ulaw_decode

WAVE_FORMAT_PCM = 1
WAVE_FORMAT_ALAW = 6
WAVE_FORMAT_MULAW = 7
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
SUPPORTED_RATES_HZ = (8000, 16000)
MAX_FILE_BYTES = 4 * 1024**3
ENCODING_NAMES = {WAVE_FORMAT_PCM: "pcm16", WAVE_FORMAT_ALAW: "alaw", WAVE_FORMAT_MULAW: "mulaw"}


class AudioFileError(ValueError):
    """The file cannot be used as a call recording; the message says why."""


@dataclass(frozen=True)
class Recording:
    """A decoded recording: one float32 array in [-1, 1] per channel, all the same length."""

    channels: list[np.ndarray]
    sample_rate: int
    encoding: str

    @property
    def duration_s(self) -> float:
        return len(self.channels[0]) / self.sample_rate if self.channels else 0.0


def _chunks(data: bytes, path: Path) -> dict[bytes, tuple[int, int]]:
    """Map chunk id -> (offset, declared size) for the chunks after the RIFF header."""
    found: dict[bytes, tuple[int, int]] = {}
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, pos)
        found.setdefault(chunk_id, (pos + 8, size))
        if chunk_id == b"data":
            break
        pos += 8 + size + (size & 1)
    return found


def read_wav(path: Path | str) -> Recording:
    """Read and decode a WAV call recording, or raise AudioFileError saying why not."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise AudioFileError(f"{path}: no such file") from exc
    if path.is_dir():
        raise AudioFileError(f"{path}: is a folder, not a WAV file")
    if size == 0:
        raise AudioFileError(f"{path}: the file is empty")
    if size > MAX_FILE_BYTES:
        raise AudioFileError(f"{path}: {size} bytes is larger than the 4 GiB a WAV file can hold")
    data = path.read_bytes()
    return parse_wav(data, str(path))


def parse_wav(data: bytes, name: str = "input") -> Recording:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFileError(
            f"{name}: not a WAV file (no RIFF/WAVE header); convert it with "
            "`sox IN -r 8000 -e u-law OUT.wav` or `ffmpeg -i IN -ar 8000 -c:a pcm_mulaw OUT.wav`"
        )
    chunks = _chunks(data, Path(name))
    if b"fmt " not in chunks:
        raise AudioFileError(f"{name}: WAV file has no 'fmt ' chunk (truncated or damaged header)")
    fmt_off, fmt_size = chunks[b"fmt "]
    if fmt_size < 16 or fmt_off + 16 > len(data):
        raise AudioFileError(f"{name}: WAV 'fmt ' chunk is truncated")
    tag, n_channels, rate, _byte_rate, block_align, bits = struct.unpack_from(
        "<HHIIHH", data, fmt_off
    )
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if fmt_size < 40 or fmt_off + 40 > len(data):
            raise AudioFileError(f"{name}: WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk is truncated")
        tag = struct.unpack_from("<H", data, fmt_off + 24)[0]
    if tag not in ENCODING_NAMES:
        raise AudioFileError(
            f"{name}: WAV encoding tag {tag} is not supported; use PCM 16-bit, "
            "G.711 mu-law (7) or A-law (6)"
        )
    expected_bits = 16 if tag == WAVE_FORMAT_PCM else 8
    if bits != expected_bits:
        raise AudioFileError(
            f"{name}: {ENCODING_NAMES[tag]} with {bits} bits per sample is not supported "
            f"(expected {expected_bits})"
        )
    if rate not in SUPPORTED_RATES_HZ:
        raise AudioFileError(
            f"{name}: sample rate {rate} Hz is not supported; resample to 8000 or 16000 Hz"
        )
    if n_channels not in (1, 2):
        raise AudioFileError(
            f"{name}: {n_channels} channels; a call recording has 2 (agent and customer) "
            "or 1 (use --speaker)"
        )
    if block_align != n_channels * bits // 8:
        raise AudioFileError(f"{name}: inconsistent block align {block_align} in 'fmt ' chunk")
    if b"data" not in chunks:
        raise AudioFileError(f"{name}: WAV file has no 'data' chunk")
    data_off, data_size = chunks[b"data"]
    available = len(data) - data_off
    if data_size > available:
        raise AudioFileError(
            f"{name}: truncated: the data chunk declares {data_size} bytes but only "
            f"{available} are present"
        )
    n_frames = data_size // block_align
    if n_frames == 0:
        raise AudioFileError(f"{name}: the recording holds no audio samples")
    raw = np.frombuffer(data, dtype=np.uint8, count=n_frames * block_align, offset=data_off)
    if tag == WAVE_FORMAT_PCM:
        pcm = raw.view("<i2").astype(np.int16)
    elif tag == WAVE_FORMAT_MULAW:
        pcm = ulaw_decode(np.ascontiguousarray(raw))
    else:
        pcm = alaw_decode(np.ascontiguousarray(raw))
    interleaved = pcm.reshape(n_frames, n_channels)
    channels = [
        np.ascontiguousarray(interleaved[:, c]).astype(np.float32) / 32768.0
        for c in range(n_channels)
    ]
    return Recording(channels=channels, sample_rate=rate, encoding=ENCODING_NAMES[tag])


def write_wav_pcm16(path: Path, channels: list[np.ndarray], sample_rate: int) -> None:
    """Write float32 channels in [-1, 1] as an interleaved PCM16 WAV file."""
    stacked = np.stack([np.clip(c, -1.0, 1.0) for c in channels], axis=1)
    pcm = np.round(stacked * 32767.0).astype("<i2")
    payload = pcm.tobytes()
    n_ch = len(channels)
    header = b"RIFF" + struct.pack("<I", 36 + len(payload)) + b"WAVE"
    fmt = struct.pack(
        "<HHIIHH", WAVE_FORMAT_PCM, n_ch, sample_rate, sample_rate * 2 * n_ch, 2 * n_ch, 16
    )
    body = b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(payload))
    path.write_bytes(header + body + payload)


def write_wav_g711(path: Path, channels: list[np.ndarray], sample_rate: int, law: str) -> None:
    """Write G.711 code channels (uint8) as an interleaved mu-law or A-law WAV file."""
    tag = WAVE_FORMAT_MULAW if law == "mulaw" else WAVE_FORMAT_ALAW
    payload = np.stack(channels, axis=1).astype(np.uint8).tobytes()
    n_ch = len(channels)
    fmt = struct.pack("<HHIIHHH", tag, n_ch, sample_rate, sample_rate * n_ch, n_ch, 8, 0)
    n_frames = len(channels[0])
    body = (
        b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"fact"
        + struct.pack("<II", 4, n_frames)
        + b"data"
        + struct.pack("<I", len(payload))
        + payload
        + (b"\x00" if len(payload) & 1 else b"")
    )
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)


# The sample byte that decodes to silence, per encoding.
_SILENT_BYTE = {WAVE_FORMAT_MULAW: 0xFF, WAVE_FORMAT_ALAW: 0xD5}
_HEADER_READ_BYTES = 65536


def silence_spans(path: Path, spans_s: list[tuple[float, float]]) -> int:
    """Overwrite [start, end) seconds of every channel of the WAV file at ``path`` with
    silence, in place (the file keeps its size and format); returns the frames silenced."""
    with open(path, "r+b") as f:
        head = f.read(_HEADER_READ_BYTES)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise AudioFileError(f"{path}: not a WAV file (no RIFF/WAVE header)")
        chunks = _chunks(head, path)
        if b"fmt " not in chunks or b"data" not in chunks:
            raise AudioFileError(f"{path}: no 'fmt ' or 'data' chunk in its header")
        tag, _n, rate, _byte_rate, block_align, _bits = struct.unpack_from(
            "<HHIIHH", head, chunks[b"fmt "][0])
        if tag == WAVE_FORMAT_EXTENSIBLE:
            tag = struct.unpack_from("<H", head, chunks[b"fmt "][0] + 24)[0]
        if tag not in ENCODING_NAMES or block_align < 1 or rate < 1:
            raise AudioFileError(f"{path}: WAV encoding tag {tag} cannot be silenced")
        data_off, _declared = chunks[b"data"]
        f.seek(0, 2)
        frames = (f.tell() - data_off) // block_align
        done = 0
        for start_s, end_s in spans_s:
            first = max(0, int(start_s * rate))
            last = min(frames, int(np.ceil(end_s * rate)))
            if last <= first:
                continue
            f.seek(data_off + first * block_align)
            f.write(bytes([_SILENT_BYTE.get(tag, 0)]) * ((last - first) * block_align))
            done += last - first
        f.flush()
        return done
