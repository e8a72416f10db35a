"""Recordings as the browser plays them: a 16-bit PCM WAV, agent left, and its peaks.

Stored recordings are G.711 mu-law or A-law or PCM16, 8 or 16 kHz, mono or stereo, with the
agent on whichever channel the capture put it (``call.meta["agent_channel"]``). Browsers do
not all play G.711 WAV, and the player draws the agent's lane on top, so the site serves a
converted copy: PCM16 at the stored rate, the agent on the LEFT channel and the customer on
the RIGHT (a mono recording stays mono: one lane).

Converted files and their peaks are cached under ``DATA_DIR/admin_cache/``, keyed by the
call id and the source file's modification time and size, so that a re-scored or replaced
recording is converted again. Each cache file is written to a temporary name and renamed
into place (readers never see half a file) with mode 0600: these are customers' voices.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.audio.wav import AudioFileError, read_wav

logger = logging.getLogger(__name__)

CACHE_DIR_NAME = "admin_cache"
CACHE_DIR_MODE = 0o700
CACHE_FILE_MODE = 0o600
WAVE_FORMAT_PCM = 1
PCM16_MAX = 32767
PCM16_SCALE = 32768.0          # core.audio.wav decodes int16 as value / 32768
# Peaks: about this many min/max pairs per second of call, within these bounds.
PEAK_BUCKETS_PER_S = 20
MIN_PEAK_BUCKETS = 1000
MAX_PEAK_BUCKETS = 4000
PEAK_DECIMALS = 3
SAFE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


class RecordingUnavailable(Exception):
    """The call's recording cannot be served; ``reason`` is 'none', 'missing' or 'unreadable'."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Converted:
    """A recording ready for the browser: the PCM16 WAV file and its peaks (JSON)."""

    wav_path: Path
    peaks_path: Path


def cache_dir(data_dir: Path) -> Path:
    """The folder of converted recordings (created, owner-only)."""
    folder = Path(data_dir) / CACHE_DIR_NAME
    folder.mkdir(mode=CACHE_DIR_MODE, parents=True, exist_ok=True)
    return folder


def source_path(data_dir: Path, recording_path: str | None) -> Path:
    """The stored recording of a call; `RecordingUnavailable` when there is none or it is gone.

    A relative path is taken from the data folder.
    """
    if not recording_path:
        raise RecordingUnavailable("none")
    path = Path(recording_path)
    if not path.is_absolute():
        path = Path(data_dir) / path
    if not path.is_file():
        raise RecordingUnavailable("missing", str(path))
    return path


def agent_is_right(meta: dict[str, Any]) -> bool:
    """Whether the stored file has the agent on its right (second) channel."""
    channel = str(meta.get("agent_channel", "left")).strip().lower()
    return channel in ("right", "r", "1")


def lanes_for(meta: dict[str, Any], n_channels: int) -> tuple[str, ...]:
    """The speaker of each channel of the converted file."""
    if n_channels >= 2:
        return ("agent", "customer")
    mono = meta.get("mono_speaker")
    return (mono if mono in ("agent", "customer", "mixed") else "agent",)


def _cache_stem(call_id: str) -> str:
    if SAFE_ID_RE.match(call_id):
        return call_id
    return "h" + hashlib.sha256(call_id.encode("utf-8")).hexdigest()[:32]


def _cache_key(call_id: str, source: Path, agent_right: bool) -> tuple[str, str]:
    st = source.stat()
    stem = _cache_stem(call_id)
    return stem, f"{stem}__{st.st_mtime_ns}_{st.st_size}_{'R' if agent_right else 'L'}"


def _write_atomic(folder: Path, name: str, payload: bytes) -> Path:
    """Write `payload` to ``folder/name`` through a temporary file and a rename; mode 0600."""
    target = folder / name
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
    try:
        os.fchmod(fd, CACHE_FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _drop_stale(folder: Path, stem: str, keep: str) -> None:
    """Remove the cache files of older versions of the same recording."""
    for old in folder.glob(f"{stem}__*"):
        if not old.name.startswith(keep):
            try:
                old.unlink()
            except OSError:
                logger.debug("could not remove stale cache file %s", old)


def to_pcm16(channels: list[np.ndarray]) -> np.ndarray:
    """Float channels in [-1, 1] (as `read_wav` gives them) as interleaved int16 frames."""
    stacked = np.stack(channels, axis=1)
    pcm = np.clip(np.round(stacked * PCM16_SCALE), -PCM16_SCALE, PCM16_MAX)
    return pcm.astype("<i2")


def wav_bytes(frames: np.ndarray, sample_rate: int) -> bytes:
    """A PCM16 WAV file holding interleaved int16 `frames` (n_frames x n_channels)."""
    n_channels = int(frames.shape[1])
    payload = np.ascontiguousarray(frames, dtype="<i2").tobytes()
    fmt = struct.pack("<HHIIHH", WAVE_FORMAT_PCM, n_channels, sample_rate,
                      sample_rate * 2 * n_channels, 2 * n_channels, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(payload)) + b"WAVE"
            + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", len(payload)) + payload)


def peak_buckets(duration_s: float, n_samples: int) -> int:
    """How many min/max pairs to draw a call of this length with."""
    wanted = round(duration_s * PEAK_BUCKETS_PER_S)
    return max(1, min(n_samples, max(MIN_PEAK_BUCKETS, min(MAX_PEAK_BUCKETS, wanted))))


def compute_peaks(frames: np.ndarray, sample_rate: int) -> dict[str, Any]:
    """Per channel, the minimum and maximum of each bucket of samples, in [-1, 1].

    ``peaks[c]`` interleaves them: ``[min0, max0, min1, max1, ...]``, the form wavesurfer.js
    draws directly (it takes the largest magnitude under each pixel).
    """
    n_samples = int(frames.shape[0])
    duration = n_samples / sample_rate
    buckets = peak_buckets(duration, n_samples)
    edges = np.linspace(0, n_samples, buckets + 1).astype(np.int64)[:-1]
    peaks: list[list[float]] = []
    for c in range(frames.shape[1]):
        x = frames[:, c].astype(np.float32) / PCM16_SCALE
        lo = np.minimum.reduceat(x, edges)
        hi = np.maximum.reduceat(x, edges)
        pairs = np.round(np.stack([lo, hi], axis=1).reshape(-1).astype(np.float64),
                         PEAK_DECIMALS)
        peaks.append([float(v) for v in pairs])
    return {
        "duration": round(duration, 3),
        "sample_rate": sample_rate,
        "buckets": buckets,
        "peaks": peaks,
    }


def prepare(data_dir: Path, call_id: str, recording_path: str | None,
            meta: dict[str, Any]) -> Converted:
    """The converted WAV and peaks of a call, from the cache or made now.

    Raises `RecordingUnavailable` when the call has no recording, the file is gone or it
    cannot be decoded.
    """
    source = source_path(data_dir, recording_path)
    agent_right = agent_is_right(meta)
    folder = cache_dir(data_dir)
    try:
        stem, key = _cache_key(call_id, source, agent_right)
    except FileNotFoundError as exc:
        raise RecordingUnavailable("missing", str(source)) from exc
    wav_path = folder / f"{key}.wav"
    peaks_path = folder / f"{key}.peaks.json"
    if wav_path.is_file() and peaks_path.is_file():
        return Converted(wav_path, peaks_path)
    try:
        recording = read_wav(source)
    except AudioFileError as exc:
        reason = "missing" if not source.exists() else "unreadable"
        raise RecordingUnavailable(reason, str(exc)) from exc
    channels = list(recording.channels[:2])
    if len(channels) == 2 and agent_right:
        channels.reverse()
    frames = to_pcm16(channels)
    peaks = compute_peaks(frames, recording.sample_rate)
    peaks["lanes"] = list(lanes_for(meta, len(channels)))
    _write_atomic(folder, wav_path.name, wav_bytes(frames, recording.sample_rate))
    _write_atomic(folder, peaks_path.name,
                  json.dumps(peaks, separators=(",", ":")).encode("utf-8"))
    _drop_stale(folder, stem, key)
    return Converted(wav_path, peaks_path)
