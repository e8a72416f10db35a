"""The RTP sender: one thread that sends every call's packets on absolute monotonic
deadlines (`MediaSender`), the per-stream and per-call state it works on, and its
statistics (`SenderStats`)."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import secrets
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from telephony.simulator.constants import (
    EARLY_S,
    FRAME_SAMPLES,
    LATE_THRESHOLD_S,
    PACKET_S,
    SAMPLE_RATE_HZ,
)

logger = logging.getLogger(__name__)

_RTP_HEADER = struct.Struct("!BBHII")
_RTP_HEADER_BYTES = _RTP_HEADER.size


@dataclass
class SenderStats:
    """The RTP sender thread over one run.

    `cpu_s` is that thread's CPU time; `stream_seconds` the seconds of audio sent summed over
    streams (two per call). Lateness is measured against each packet's deadline when it is
    sent: `max_late_s`, `mean_late_s`, and `late_packets` later than `late_threshold_s`.
    """

    packets: int = 0
    send_errors: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    stream_seconds: float = 0.0
    wakeups: int = 0
    max_late_s: float = 0.0
    mean_late_s: float = 0.0
    late_packets: int = 0
    late_threshold_s: float = LATE_THRESHOLD_S

    @property
    def cpu_per_stream_second(self) -> float:
        """CPU seconds spent per second of one stream's audio (0 when nothing was sent)."""
        return self.cpu_s / self.stream_seconds if self.stream_seconds else 0.0

    @property
    def cpu_per_packet_s(self) -> float:
        return self.cpu_s / self.packets if self.packets else 0.0


class _Leg:
    """One RTP stream of a call, as the sender thread sees it."""

    __slots__ = (
        "buf", "dest", "n_packets", "n_samples", "payload", "pt", "role", "sent", "seq0",
        "sock", "ssrc", "ts0", "view",
    )  # fmt: skip

    def __init__(self, role: str, sock: socket.socket, payload: memoryview, pt: int) -> None:
        self.role = role
        self.sock = sock
        self.dest: tuple[str, int] = ("", 0)
        self.payload = payload
        self.n_samples = len(payload)
        self.n_packets = -(-self.n_samples // FRAME_SAMPLES)
        self.pt = pt
        self.ssrc = secrets.randbits(32)
        self.seq0 = secrets.randbits(16)
        self.ts0 = secrets.randbits(32)
        self.buf = bytearray(_RTP_HEADER_BYTES + FRAME_SAMPLES)
        self.view = memoryview(self.buf)
        self.sent = 0


class _MediaCall:
    """The media of one call: its legs, the next packet index and the first packet's times."""

    __slots__ = (
        "cancelled", "first_mono", "first_wall", "last_mono", "legs", "n_packets", "next_k",
        "on_done", "send_errors", "t0",
    )  # fmt: skip

    def __init__(self, legs: list[_Leg], on_done: Callable[[], None]) -> None:
        self.legs = legs
        self.n_packets = max(leg.n_packets for leg in legs)
        self.next_k = 0
        self.t0 = 0.0
        self.first_wall: float | None = None
        self.first_mono: float | None = None
        self.last_mono: float | None = None
        self.send_errors = 0
        self.cancelled = False
        self.on_done = on_done


class MediaSender:
    """One thread that sends the RTP of every call on absolute monotonic deadlines.

    `add` hands it a call's media (from any thread); the first packet leaves at once and
    packet k at `t0 + k * PACKET_S`, where t0 is when the first one left. The sender owns
    the legs' sockets from then on: after the last packet (or after `cancel`, or `stop`) it
    closes them and calls the call's `on_done` in the sender thread.
    """

    def __init__(self, early_s: float = EARLY_S, late_threshold_s: float = LATE_THRESHOLD_S):
        self.early_s = early_s
        self.late_threshold_s = late_threshold_s
        self._incoming: deque[_MediaCall] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="callqa-rtp-sender", daemon=True)
        self.stats = SenderStats(late_threshold_s=late_threshold_s)
        self._late_sum = 0.0
        self._late_count = 0
        self._samples = 0
        self._heap: list[tuple[float, int, _MediaCall]] = []

    def start(self) -> None:
        self._thread.start()

    def add(self, call: _MediaCall) -> None:
        if self._stopping:
            self._done(call)
            return
        self._incoming.append(call)
        self._wake.set()

    def cancel(self, call: _MediaCall) -> None:
        """Stop sending a call's packets; its `on_done` still comes."""
        call.cancelled = True
        self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> SenderStats:
        """Stop the thread (calls still running are cut short) and return its statistics."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return self.stats

    def _run(self) -> None:
        cpu0 = time.thread_time()
        wall0 = time.monotonic()
        try:
            self._loop()
        except Exception:  # a bug here must not leave the calls waiting forever
            logger.exception("the RTP sender failed")
        finally:
            self.stats.cpu_s = time.thread_time() - cpu0
            self.stats.wall_s = time.monotonic() - wall0
            self.stats.mean_late_s = self._late_sum / self._late_count if self._late_count else 0
            self.stats.stream_seconds = self._samples / SAMPLE_RATE_HZ
            self._finish_all()

    def _finish_all(self) -> None:
        while self._incoming:
            self._done(self._incoming.popleft())
        for _, _, call in self._heap:
            self._done(call)
        self._heap.clear()

    def _done(self, call: _MediaCall) -> None:
        """The sender is done with a call: it closes the call's sockets, then says so."""
        for leg in call.legs:
            with contextlib.suppress(OSError):
                leg.sock.close()
        try:
            call.on_done()
        except Exception:
            logger.exception("an RTP call-done callback failed")

    def _loop(self) -> None:
        monotonic = time.monotonic
        sleep = time.sleep
        heap = self._heap
        order = itertools.count()
        incoming = self._incoming
        wake = self._wake
        early = self.early_s
        stats = self.stats
        while not self._stopping:
            while incoming:
                heapq.heappush(heap, (monotonic(), next(order), incoming.popleft()))
            if not heap:
                wake.wait()
                wake.clear()
                continue
            now = monotonic()
            wait = heap[0][0] - now
            if wait > early:
                # A plain sleep costs less than waiting on the event; calls added meanwhile
                # start when it ends (their first packet's time is taken when it is sent).
                sleep(wait)
                continue
            stats.wakeups += 1
            horizon = now + early
            while heap and heap[0][0] <= horizon:
                due, tie, call = heapq.heappop(heap)
                if call.cancelled:
                    self._done(call)
                    continue
                self._send(call, due, monotonic())
                if call.next_k < call.n_packets:
                    heapq.heappush(heap, (call.t0 + call.next_k * PACKET_S, tie, call))
                else:
                    self._done(call)

    def _send(self, call: _MediaCall, due: float, now: float) -> None:
        """Send packet `call.next_k` of every leg that still has audio."""
        k = call.next_k
        stats = self.stats
        if k == 0:
            call.first_wall = time.time()
            call.first_mono = now = time.monotonic()
            call.t0 = now
        else:
            late = now - due
            if late > 0.0:
                self._late_sum += late
                if late > stats.max_late_s:
                    stats.max_late_s = late
                if late > self.late_threshold_s:
                    stats.late_packets += 1
            self._late_count += 1
        offset = k * FRAME_SAMPLES
        pack_into = _RTP_HEADER.pack_into
        for leg in call.legs:
            if k >= leg.n_packets:
                continue
            n = leg.n_samples - offset
            if n > FRAME_SAMPLES:
                n = FRAME_SAMPLES
            marker = 0x80 if k == 0 else 0
            pack_into(
                leg.buf, 0, 0x80, marker | leg.pt, (leg.seq0 + k) & 0xFFFF,
                (leg.ts0 + offset) & 0xFFFFFFFF, leg.ssrc,
            )  # fmt: skip
            end = _RTP_HEADER_BYTES + n
            leg.buf[_RTP_HEADER_BYTES:end] = leg.payload[offset : offset + n]
            try:
                leg.sock.sendto(leg.buf if n == FRAME_SAMPLES else leg.view[:end], leg.dest)
            except OSError:
                call.send_errors += 1
                stats.send_errors += 1
                continue
            leg.sent += 1
            stats.packets += 1
            self._samples += n
        call.last_mono = time.monotonic()
        call.next_k = k + 1
