"""Progressive call recordings: a stereo PCM16 WAV file that survives a crash.

The two legs of a call arrive independently, each at its own pace, so a recorder holds a
short window of interleaved audio in memory, places each leg's samples at the absolute
position it is given (gaps stay silent) and appends the window to the file as far as every
leg has filled it, waiting at most ``REORDER_HOLD_MS`` for a leg that lags (one
that pauses, or whose audio is released later than the other's). The RIFF and data sizes
in the header are rewritten at least once a second, so a process killed with SIGKILL
leaves a file that any WAV reader can open up to about the last second; :func:`recover_wav`
repairs the sizes from the file length and gets back everything that reached the disk.

Channel 0 (left) is the agent, channel 1 (right) the customer.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 8000
BYTES_PER_SAMPLE = 2
WAV_HEADER_BYTES = 44
HEADER_SYNC_INTERVAL_S = 1.0
REORDER_HOLD_MS = 600
COMMIT_CHUNK_MS = 200
MAX_WAV_BYTES = 0xFFFFFFFF - WAV_HEADER_BYTES
AGENT_CHANNEL = 0
CUSTOMER_CHANNEL = 1

NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_RIFF_SIZE_OFFSET = 4


class RecordingError(ValueError):
    """A recording cannot be written or repaired; the message says why."""


def wav_header(channels: int, sample_rate: int, data_bytes: int) -> bytes:
    """The canonical 44-byte header of a PCM16 WAV file holding ``data_bytes`` of samples."""
    block_align = channels * BYTES_PER_SAMPLE
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        sample_rate,
        sample_rate * block_align,
        block_align,
        8 * BYTES_PER_SAMPLE,
        b"data",
        data_bytes,
    )


class CallRecorder:
    """Writes one call to ``path`` as it happens.

    ``write(channel, pcm, at_sample)`` puts int16 samples at an absolute sample index of the
    recording. Audio older than the in-memory window (it reached the file already) is
    patched into the file in place, so even very late audio lands where it belongs.

    ``origin_s`` is the arrival time that sample 0 stands for; the first leg to ask
    :meth:`sample_at` sets it, so legs that start at different moments line up.
    """

    def __init__(
        self,
        path: Path,
        channels: int = 2,
        sample_rate: int = SAMPLE_RATE_HZ,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if channels < 1:
            raise ValueError(f"channels must be 1 or more, got {channels}")
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.path = Path(path)
        self.channels = channels
        self.sample_rate = sample_rate
        self.origin_s: float | None = None
        self._clock = clock
        self._hold = sample_rate * REORDER_HOLD_MS // 1000
        self._chunk = max(1, sample_rate * COMMIT_CHUNK_MS // 1000)
        self._frame_bytes = channels * BYTES_PER_SAMPLE
        self._max_frames = MAX_WAV_BYTES // self._frame_bytes
        self._buf = np.zeros((self._hold + 2 * self._chunk, channels), dtype=np.int16)
        self._base = 0  # frame index of _buf[0]; frames before it are in the file
        self._end = 0  # one past the last frame written by any channel
        self._channel_ends = [0] * channels  # one past each channel's last frame
        self._header_frames = 0  # frames the header currently declares
        self._last_sync = clock()
        self._overflow_logged = False
        self._closed = False
        self.full: str | None = None
        """Why the recording stopped early: the disk was full (None while it goes on)."""
        self.dropped_frames = 0
        """Frames not recorded because the disk was full."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o640)
        os.write(self._fd, wav_header(channels, sample_rate, 0))

    # ------------------------------------------------------------------ positions

    def sample_at(self, arrival_s: float) -> int:
        """The sample index of arrival time ``arrival_s`` (the first call sets the origin)."""
        if self.origin_s is None:
            self.origin_s = arrival_s
            return 0
        return max(0, round((arrival_s - self.origin_s) * self.sample_rate))

    @property
    def frames(self) -> int:
        """Frames (samples per channel) recorded so far, on disk or in the window (after
        the disk was full: those on disk)."""
        return self._end if self.full is None else self._base

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------ writing

    def write(self, channel: int, pcm: np.ndarray, at_sample: int) -> None:
        """Place int16 samples ``pcm`` of ``channel`` starting at frame ``at_sample``.

        When the disk is full the recording stops where the disk took it (:attr:`full` says
        why) and later audio is dropped, not raised: the file stays a valid WAV.
        """
        if self._closed:
            raise RecordingError(f"{self.path}: the recording is closed")
        if self.full is not None:
            self.dropped_frames += len(pcm)
            return
        try:
            self._write(channel, pcm, at_sample)
        except OSError as exc:
            self._on_write_error(exc)

    def _write(self, channel: int, pcm: np.ndarray, at_sample: int) -> None:
        if not 0 <= channel < self.channels:
            raise ValueError(f"channel must be in 0..{self.channels - 1}, got {channel}")
        n = len(pcm)
        if n == 0:
            return
        if at_sample < 0:
            if at_sample + n <= 0:
                return
            pcm = pcm[-at_sample:]
            n = len(pcm)
            at_sample = 0
        end = at_sample + n
        if end > self._max_frames:
            if not self._overflow_logged:
                logger.warning("%s: reached the 4 GiB WAV limit; later audio is dropped", self.path)
                self._overflow_logged = True
            if at_sample >= self._max_frames:
                return
            pcm = pcm[: self._max_frames - at_sample]
            n = len(pcm)
            end = at_sample + n
        if at_sample < self._base:
            cut = min(n, self._base - at_sample)
            self._patch_file(channel, pcm[:cut], at_sample)
            if cut == n:
                return
            pcm = pcm[cut:]
            at_sample = self._base
        if end - self._base > len(self._buf):
            self._make_room(at_sample, end)
        lo = at_sample - self._base
        self._buf[lo : lo + len(pcm), channel] = pcm
        if end > self._end:
            self._end = end
        if end > self._channel_ends[channel]:
            self._channel_ends[channel] = end
        ready = self._ready()
        if ready - self._base >= self._chunk:
            self._commit(ready)
        if self._clock() - self._last_sync >= HEADER_SYNC_INTERVAL_S:
            self.sync()

    def sync(self) -> None:
        """Append what the window can give up and rewrite the header sizes now."""
        if self._closed or self.full is not None:
            return
        try:
            self._commit(self._ready())
            self._write_sizes(self._base)
        except OSError as exc:
            self._on_write_error(exc)
        self._last_sync = self._clock()

    def close(self) -> Path:
        """Write everything, fix the header and close the file; returns its path."""
        if self._closed:
            return self.path
        try:
            if self.full is None:
                self._commit(self._end)
                self._write_sizes(self._base)
        except OSError as exc:
            self._on_write_error(exc)
        finally:
            os.close(self._fd)
            self._closed = True
        return self.path

    def _on_write_error(self, exc: OSError) -> None:
        """Out of disk space: end the file at the last whole commit, with its header saying
        so, and take no more audio. Other errors are raised."""
        if exc.errno not in NO_SPACE_ERRNOS:
            raise exc
        self.full = f"{exc.strerror or exc} after {self._base / self.sample_rate:.1f} s"
        self.dropped_frames += self._end - self._base
        logger.error("%s: the disk is full; the recording ends at %.1f s", self.path,
                     self._base / self.sample_rate)  # fmt: skip
        with contextlib.suppress(OSError):  # neither needs new space
            os.ftruncate(self._fd, WAV_HEADER_BYTES + self._base * self._frame_bytes)
            self._write_sizes(self._base)

    def __enter__(self) -> CallRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _ready(self) -> int:
        """Frames the file may take now: as far as every channel has reached, and never
        more than the hold behind the furthest one (a channel that has sent nothing yet, or
        has gone quiet, lags)."""
        return max(min(self._channel_ends), self._end - self._hold)

    def _make_room(self, start: int, end: int) -> None:
        """Commit or grow so that frames ``[start, end)`` fit in the window."""
        keep_from = min(start, max(self._base, end - self._hold - self._chunk))
        if keep_from > self._base:
            self._commit(min(keep_from, self._end))
            if keep_from > self._base:  # a jump past everything written: silence on disk
                self._write_silence(keep_from - self._base)
        need = end - self._base
        if need > len(self._buf):
            grown = np.zeros((max(need, 2 * len(self._buf)), self.channels), dtype=np.int16)
            used = self._end - self._base
            grown[:used] = self._buf[:used]
            self._buf = grown

    def _commit(self, upto: int) -> None:
        """Append frames ``[_base, upto)`` to the file and slide the window."""
        n = upto - self._base
        if n <= 0:
            return
        used = self._end - self._base
        self._append(self._buf[:n].tobytes())
        rest = used - n
        if rest > 0:
            self._buf[:rest] = self._buf[n:used]
        self._buf[max(rest, 0) : used] = 0
        self._base = upto

    def _write_silence(self, frames: int) -> None:
        block = bytes(self._frame_bytes * min(frames, self.sample_rate * 10))
        left = frames
        while left > 0:
            take = min(left, len(block) // self._frame_bytes)
            self._append(block[: take * self._frame_bytes])
            left -= take
        self._base += frames
        self._end = max(self._end, self._base)

    def _append(self, data: bytes) -> None:
        offset = WAV_HEADER_BYTES + self._base * self._frame_bytes
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view = view[written:]
            offset += written

    def _patch_file(self, channel: int, pcm: np.ndarray, at_sample: int) -> None:
        """Write late samples of one channel into frames that are already on disk."""
        offset = WAV_HEADER_BYTES + at_sample * self._frame_bytes
        size = len(pcm) * self._frame_bytes
        raw = bytearray(os.pread(self._fd, size, offset))
        frames = np.frombuffer(raw, dtype="<i2").reshape(-1, self.channels)
        frames[:, channel] = pcm[: len(frames)]
        os.pwrite(self._fd, raw, offset)

    def _write_sizes(self, frames: int) -> None:
        if frames == self._header_frames:
            return
        # Both sizes in one write: the header from the RIFF size to the data size.
        data_bytes = frames * self._frame_bytes
        header = wav_header(self.channels, self.sample_rate, data_bytes)
        os.pwrite(self._fd, header[_RIFF_SIZE_OFFSET:WAV_HEADER_BYTES], _RIFF_SIZE_OFFSET)
        self._header_frames = frames


def recover_wav(path: Path | str) -> float:
    """Repair the header sizes of a WAV file left by a crashed writer; returns its duration.

    The data chunk is taken to run to the end of the file (cut to whole frames). Files
    that do not start with a RIFF/WAVE header with ``fmt`` and ``data`` chunks raise
    :class:`RecordingError`.
    """
    path = Path(path)
    with open(path, "r+b") as f:
        head = f.read(4096)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise RecordingError(f"{path}: not a WAV file (no RIFF/WAVE header)")
        pos = 12
        block_align = 0
        sample_rate = 0
        while pos + 8 <= len(head):
            chunk_id, size = struct.unpack_from("<4sI", head, pos)
            if chunk_id == b"fmt ":
                if size < 16 or pos + 24 > len(head):
                    raise RecordingError(f"{path}: the fmt chunk is too short")
                _, _, sample_rate, _, block_align = struct.unpack_from("<HHIIH", head, pos + 8)
            elif chunk_id == b"data":
                if block_align == 0 or sample_rate == 0:
                    raise RecordingError(f"{path}: the data chunk comes before a valid fmt chunk")
                data_start = pos + 8
                file_size = f.seek(0, os.SEEK_END)
                data_bytes = max(0, file_size - data_start)
                data_bytes = min(data_bytes - data_bytes % block_align, 0xFFFFFFFF - data_start)
                data_bytes -= data_bytes % block_align
                f.seek(pos + 4)
                f.write(struct.pack("<I", data_bytes))
                f.seek(_RIFF_SIZE_OFFSET)
                f.write(struct.pack("<I", data_start - 8 + data_bytes))
                if data_start + data_bytes < file_size:
                    f.truncate(data_start + data_bytes)
                return data_bytes / block_align / sample_rate
            pos += 8 + size + (size & 1)
        raise RecordingError(f"{path}: no data chunk in the first 4096 bytes")
