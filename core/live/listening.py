"""Listening in on a live call (监听): a copy of its decoded audio for each listener.

The ingest thread that feeds a leg (:meth:`core.live.engine.LiveEngine.feed`) offers every
piece of audio to the call's taps. A tap keeps it in a bounded queue for its listener (the
gRPC ``ListenCall`` stream) and never blocks the ingest: a listener that falls behind loses
its own oldest audio, counted, and the call loses nothing. Ending the call closes its taps.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from core.calls import Speaker
from core.live.call import LiveCall

TAP_QUEUE_S = 2.0
"""Audio a tap holds for a listener that reads too slowly, before it drops the oldest."""


@dataclass(frozen=True)
class HeardAudio:
    """One piece of one leg's audio, as the engine took it from the ingest."""

    speaker: Speaker
    position: int
    """Index of the first sample in the leg's timeline (samples at the call's rate)."""
    pcm: np.ndarray
    """Mono int16 samples."""
    arrived_wall: float
    """``time.time()`` when the engine took the audio from the ingest."""
    dropped_before: int = 0
    """Samples of this leg the listener lost just before this piece (it read too slowly)."""


class AudioTap:
    """The audio of some legs of one call, queued for one listener.

    ``offer`` runs on ingest threads and returns at once; ``get`` runs on the listener's
    thread and waits up to its timeout for the next piece.
    """

    def __init__(
        self, legs: frozenset[Speaker], sample_rate: int, queue_s: float = TAP_QUEUE_S
    ) -> None:
        self.legs = legs
        self.sample_rate = sample_rate
        self._limit = int(queue_s * sample_rate) * max(1, len(legs))
        self._queue: deque[HeardAudio] = deque()
        self._queued = 0
        self._dropped: dict[Speaker, int] = {}
        self._cond = threading.Condition()
        self._closed = False
        self.samples_sent = 0
        """Samples handed to the listener so far, all its legs together."""
        self.samples_dropped = 0
        """Samples this listener lost because it read too slowly, all its legs together."""

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, speaker: Speaker, position: int, pcm16: np.ndarray, arrived: float) -> None:
        if speaker not in self.legs or self._closed or not len(pcm16):
            return
        piece = HeardAudio(speaker, position, np.array(pcm16, dtype=np.int16), arrived)
        with self._cond:
            self._queue.append(piece)
            self._queued += len(piece.pcm)
            while self._queued > self._limit and len(self._queue) > 1:
                old = self._queue.popleft()
                self._queued -= len(old.pcm)
                self._dropped[old.speaker] = self._dropped.get(old.speaker, 0) + len(old.pcm)
                self.samples_dropped += len(old.pcm)
            self._cond.notify()

    def get(self, timeout_s: float) -> HeardAudio | None:
        """The next piece, or None when none came within ``timeout_s`` or the tap is closed
        and empty."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self._queue:
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    return None
                self._cond.wait(left)
            piece = self._queue.popleft()
            self._queued -= len(piece.pcm)
            dropped = self._dropped.pop(piece.speaker, 0)
        self.samples_sent += len(piece.pcm)
        if dropped:
            piece = HeardAudio(piece.speaker, piece.position, piece.pcm, piece.arrived_wall,
                               dropped)  # fmt: skip
        return piece

    def close(self) -> None:
        """No more audio comes (the call ended, or the listener left)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def attach(call: LiveCall, tap: AudioTap) -> bool:
    """Start offering the call's audio to ``tap``; False when the call has ended."""
    with call.ingest_lock:
        if call.ended:
            return False
        call.taps = (*call.taps, tap)
    return True


def detach(call: LiveCall, tap: AudioTap) -> None:
    """Stop offering the call's audio to ``tap``, and close it."""
    with call.ingest_lock:
        call.taps = tuple(t for t in call.taps if t is not tap)
    tap.close()
