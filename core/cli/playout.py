"""The listener's jitter buffer: a live call's audio pieces in, short frames for the sound card out.

Pieces come over the network unevenly (one per 20 to 200 ms of audio, in bursts when the box
or the network is busy). Each carries its position in its leg's timeline; the buffer lays the
pieces of the legs it plays on one timeline and hands out frames from a playhead:

* playback starts ``target_s`` after the first piece came, so that the next ones have time to
  arrive;
* a frame goes out as soon as every leg has audio past it. A late leg is waited for until the
  frame's turn (the start time plus the audio time played since); then the frame goes out
  with what is there, silence for the rest, and what comes later for it is dropped;
* when nothing at all has come for the frame by its turn (the sender paused), silence goes out
  and the playhead waits: nothing is skipped, the latency grows by the pause;
* when the audio at the playhead came more than ``max_s`` ago (the sound card plays slower
  than the box sends, or a burst followed a pause), the playhead jumps to ``target_s`` behind
  the newest audio, so that the latency stays bounded.

Time is passed in (``now``, seconds of a monotonic clock), so tests drive it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FRAME_S = 0.02
TARGET_S = 0.1
"""Audio held before playback starts: the pieces' arrival may vary this much unheard."""
MAX_S = 0.35
"""Longest wait of audio in the buffer before the playhead jumps forward."""


@dataclass(frozen=True)
class Frame:
    pcm: np.ndarray
    """int16 samples, shape (frame samples, channels)."""
    arrived_wall: float | None
    """Earliest arrival stamp (the box's wall clock) of the audio in the frame; None when
    the frame is silence only."""


@dataclass
class _Piece:
    position: int
    pcm: np.ndarray
    arrived_wall: float
    received: float


class PlayoutBuffer:
    """See the module notes. ``put`` pieces, ``finish`` at the end, ``next_frame`` to play."""

    def __init__(
        self, sample_rate: int, legs: Sequence[str], *, mix: bool = False,
        target_s: float = TARGET_S, max_s: float = MAX_S, frame_s: float = FRAME_S,
    ) -> None:  # fmt: skip
        if not legs:
            raise ValueError("at least one leg to play")
        self.sample_rate = sample_rate
        self.legs = tuple(legs)
        self.mix = mix
        self.channels = 1 if mix else len(self.legs)
        self.frame = max(1, round(frame_s * sample_rate))
        self.target_s = target_s
        self.max_s = max_s
        self._pieces: dict[str, list[_Piece]] = {leg: [] for leg in self.legs}
        self._end: dict[str, int] = {leg: -1 for leg in self.legs}
        self._first_received: float | None = None
        self._finished = False
        self._head: int | None = None  # playhead, in samples of the legs' timeline
        self._t0 = 0.0  # when the audio played since the last anchor began
        self._played = 0  # samples played since the last anchor
        self.late_samples = 0
        """Samples that came after their turn had been played (dropped)."""
        self.skipped_samples = 0
        """Samples jumped over to keep the latency bounded."""
        self.silence_frames = 0
        """Frames of silence played because nothing had come for them."""

    # ---------------------------------------------------------------- input

    def put(self, leg: str, position: int, pcm: np.ndarray, arrived_wall: float,
            now: float) -> None:  # fmt: skip
        """A piece of one leg: mono int16 ``pcm`` starting at ``position`` (samples)."""
        if leg not in self._pieces or not len(pcm):
            return
        if self._first_received is None:
            self._first_received = now
        if self._head is not None and position < self._head:
            cut = min(len(pcm), self._head - position)
            self.late_samples += cut
            pcm, position = pcm[cut:], position + cut
            if not len(pcm):
                return
        pieces = self._pieces[leg]
        piece = _Piece(position, np.asarray(pcm, dtype=np.int16), arrived_wall, now)
        if pieces and position < pieces[-1].position:
            pieces.append(piece)
            pieces.sort(key=lambda p: p.position)
        else:
            pieces.append(piece)
        self._end[leg] = max(self._end[leg], position + len(pcm))

    def finish(self) -> None:
        """No more pieces come: what is buffered plays out without waiting."""
        self._finished = True

    @property
    def buffered(self) -> bool:
        return any(self._pieces.values())

    # ---------------------------------------------------------------- output

    def next_frame(self, now: float) -> Frame | float | None:
        """The next frame to play; else how long to wait (seconds) before asking again; None
        once finished and empty."""
        if self._head is None:
            if not self.buffered:
                return None if self._finished else self.frame / self.sample_rate
            assert self._first_received is not None
            start_at = self._first_received + self.target_s
            if not self._finished and now < start_at:
                return start_at - now
            self._head = min(p[0].position for p in self._pieces.values() if p)
            self._anchor(now)
        head = self._head
        if not self._finished:
            self._bound_latency(now)
            head = self._head
        newest = max(self._end.values())
        if self._finished and newest <= head:
            return None
        end = head + self.frame
        if not self._finished and not all(self._end[leg] >= end for leg in self.legs):
            due = self._t0 + self._played / self.sample_rate
            if now < due:
                return due - now
            if newest <= head:  # nothing came for this frame at all: wait, playing silence
                self.silence_frames += 1
                self._anchor(now, played=self.frame)
                return Frame(np.zeros((self.frame, self.channels), np.int16), None)
        return self._take(end)

    def _anchor(self, now: float, played: int = 0) -> None:
        self._t0, self._played = now, played

    def _bound_latency(self, now: float) -> None:
        assert self._head is not None
        oldest = min((p[0].received for p in self._pieces.values() if p), default=None)
        if oldest is None or now - oldest <= self.max_s:
            return
        newest = max(self._end.values())
        to = newest - round(self.target_s * self.sample_rate)
        if to <= self._head:
            return
        self.skipped_samples += to - self._head
        for leg in self.legs:
            self._drop_before(leg, to)
        self._head = to
        self._anchor(now)

    def _drop_before(self, leg: str, position: int) -> None:
        pieces = self._pieces[leg]
        while pieces and pieces[0].position + len(pieces[0].pcm) <= position:
            pieces.pop(0)
        if pieces and pieces[0].position < position:
            p = pieces[0]
            cut = position - p.position
            pieces[0] = _Piece(position, p.pcm[cut:], p.arrived_wall, p.received)

    def _take(self, end: int) -> Frame:
        assert self._head is not None
        head = self._head
        out = np.zeros((self.frame, len(self.legs)), np.int32)
        arrived: float | None = None
        for i, leg in enumerate(self.legs):
            for p in self._pieces[leg]:
                if p.position >= end:
                    break
                lo, hi = max(head, p.position), min(end, p.position + len(p.pcm))
                if lo < hi:
                    out[lo - head : hi - head, i] = p.pcm[lo - p.position : hi - p.position]
                    arrived = p.arrived_wall if arrived is None else min(arrived, p.arrived_wall)
            self._drop_before(leg, end)
        self._head = end
        self._played += self.frame
        if self.mix:
            out = out.sum(axis=1, keepdims=True)
        return Frame(np.clip(out, -32768, 32767).astype(np.int16), arrived)
