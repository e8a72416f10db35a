"""Jitter buffer: RTP packets in arrival order in, frames in media order out.

The buffer maps each packet onto a continuous timeline of sample positions (the leg's
timeline) and releases it once it is ``depth_ms`` old, either in media time (a packet with
a timestamp ``depth_ms`` later has arrived) or in arrival time (``depth_ms`` have passed
since it arrived). Meanwhile it restores the sending order, drops duplicates, counts
packets that come after their turn as late and reports missing sequence numbers as one
*loss* frame for the receiver to conceal.

Streams do not always run straight: the source may change (a new SSRC after a transfer or
a media server switch), restart its sequence numbers or jump its timestamps (after hold or
a re-anchor). Each such break starts a new *epoch*: what is buffered is released, and the
new stream is placed after the old one by arrival time, so the timeline keeps wall-clock
timing across the break. Silence suppression (a timestamp gap with consecutive sequence
numbers, usually with the marker bit set on the next talkspurt) is not loss: the frames
keep their positions and the gap stays a gap.

Only plain Python containers are used: one dict of buffered frames, one list ring of
recently seen sequence numbers, a few integers.
"""

from __future__ import annotations

from dataclasses import dataclass

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
DEFAULT_DEPTH_MS = 60
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MAX_BUFFERED_PACKETS = 256
TS_JUMP_S = 2.0
SSRC_STRAY_S = 0.5
SEEN_RING = 256  # recently seen sequence numbers kept for duplicate detection

ACCEPTED = 0
DUPLICATE = 1
LATE = 2
STRAY = 3


def uint16_delta(a: int, b: int) -> int:
    """Signed difference ``a - b`` of two 16-bit sequence numbers (wrap aware)."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def uint32_delta(a: int, b: int) -> int:
    """Signed difference ``a - b`` of two 32-bit RTP timestamps (wrap aware).

    The per-packet paths below write this expression out in place of the call.
    """
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


@dataclass(slots=True)
class Frame:
    """One packet on its way through the buffer, or one run of lost packets.

    ``position`` is set on release: the sample index on the leg's timeline where the frame
    starts. A loss frame has an empty payload, ``lost`` > 0 packets and ``samples`` equal to
    the gap it stands for (from the end of the previous frame to the next one).
    """

    seq: int
    timestamp: int
    payload_type: int
    payload: bytes
    samples: int
    marker: bool
    arrival_s: float
    position: int = 0
    lost: int = 0


@dataclass
class JitterStats:
    """Counters of one buffer since it was made."""

    received: int = 0
    duplicates: int = 0
    late: int = 0
    lost: int = 0
    ssrc_changes: int = 0
    resyncs: int = 0
    talkspurts: int = 0


class JitterBuffer:
    """Reorders one leg's packets and releases them ``depth_ms`` later, in order.

    Call :meth:`put` for every packet, then :meth:`drain` for what became ready;
    :meth:`tick` releases by the arrival clock when packets stop coming and :meth:`flush`
    releases everything (end of call, pause).
    """

    def __init__(
        self,
        clock_rate: int = 8000,
        depth_ms: int = DEFAULT_DEPTH_MS,
        *,
        max_packets: int = MAX_BUFFERED_PACKETS,
        ts_jump_s: float | None = TS_JUMP_S,
    ) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock_rate must be positive, got {clock_rate}")
        if depth_ms < 0:
            raise ValueError(f"depth_ms must be 0 or more, got {depth_ms}")
        self.clock_rate = clock_rate
        self.depth_ms = depth_ms
        self.stats = JitterStats()
        self._depth = clock_rate * depth_ms // 1000
        self._depth_s = depth_ms / 1000.0
        self._max_packets = max(1, max_packets)
        self._jump = None if ts_jump_s is None else float(ts_jump_s)
        self._slots: dict[int, Frame] = {}
        self._ready: list[Frame] = []
        self._seen = [-1] * SEEN_RING
        self._ssrc: int | None = None
        self._prev_ssrc: int | None = None
        self._bad_seq = -1
        self._force_resync = False
        self._highest = 0  # extended sequence number of the newest packet
        self._next = 0  # extended sequence number to release next
        self._epoch_ts = 0
        self._epoch_pos = 0
        self._emitted = False  # something of this epoch was released
        self._anchor_ts = 0  # newest timestamp seen in this epoch
        self._anchor_arrival = 0.0
        self._newest_arrival = 0.0
        self._ssrc_arrival = 0.0  # newest arrival of the current source
        self._out_end = 0  # timeline end of the last released frame

    @property
    def ssrc(self) -> int | None:
        return self._ssrc

    @property
    def buffered(self) -> int:
        return len(self._slots)

    @property
    def end_position(self) -> int:
        """Timeline position just after the last released frame."""
        return self._out_end

    def position_of(self, timestamp: int) -> int:
        """Where an RTP timestamp of the current epoch falls on the timeline."""
        return self._epoch_pos + uint32_delta(timestamp, self._epoch_ts)

    # ------------------------------------------------------------------ input

    def put(
        self,
        ssrc: int,
        seq: int,
        timestamp: int,
        marker: bool,
        payload_type: int,
        payload: bytes,
        samples: int,
        arrival_s: float,
    ) -> int:
        """Take one packet; returns ACCEPTED, DUPLICATE, LATE or STRAY (dropped)."""
        if ssrc != self._ssrc:
            if self._ssrc is None:
                self._start_epoch(ssrc, seq, timestamp, arrival_s, first=True)
            elif ssrc == self._prev_ssrc and arrival_s - self._ssrc_arrival < SSRC_STRAY_S:
                self.stats.late += 1  # the old source, still trickling in: not a switch back
                return STRAY
            else:
                self.stats.ssrc_changes += 1
                self._prev_ssrc = self._ssrc
                self._resync(ssrc, seq, timestamp, arrival_s)
        elif self._force_resync:
            self._force_resync = False
            self._resync(ssrc, seq, timestamp, arrival_s)
        d = ((seq - self._highest + 0x8000) & 0xFFFF) - 0x8000
        if d > MAX_DROPOUT or d < -MAX_MISORDER:
            if seq != self._bad_seq:
                self._bad_seq = (seq + 1) & 0xFFFF
                self.stats.late += 1
                return STRAY
            self._resync(ssrc, seq, timestamp, arrival_s)  # two in a row: the source restarted
            d = 0
        ext = self._highest + d
        if arrival_s > self._newest_arrival:
            self._newest_arrival = arrival_s
        if arrival_s > self._ssrc_arrival:
            self._ssrc_arrival = arrival_s
        if d > 0:
            jump = self._jump
            # A timestamp jump: media time and arrival time since the newest packet
            # disagree by more than ts_jump_s (written out: this runs per packet).
            if jump is not None and abs(
                (((timestamp - self._anchor_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000)
                / self.clock_rate - (arrival_s - self._anchor_arrival)
            ) > jump:  # fmt: skip
                self._resync(ssrc, seq, timestamp, arrival_s)
                ext = self._highest
            else:
                self._highest = ext
            if marker:
                self.stats.talkspurts += 1
        elif ext < self._next:
            if self._seen[ext % SEEN_RING] == ext:
                self.stats.duplicates += 1
                return DUPLICATE
            if self._emitted:
                self.stats.late += 1
                return LATE
            self._next = ext  # an earlier packet before anything was released: start there
            if uint32_delta(timestamp, self._epoch_ts) < 0:
                self._epoch_ts = timestamp
        elif ext in self._slots or self._seen[ext % SEEN_RING] == ext:
            self.stats.duplicates += 1
            return DUPLICATE
        elif d == 0 and marker:
            self.stats.talkspurts += 1
        self._seen[ext % SEEN_RING] = ext
        self._slots[ext] = Frame(ext, timestamp, payload_type, payload, samples, marker, arrival_s)
        self.stats.received += 1
        if 0 < ((timestamp - self._anchor_ts) & 0xFFFFFFFF) < 0x80000000:
            self._anchor_ts = timestamp
            self._anchor_arrival = arrival_s
        self._release()
        return ACCEPTED

    def drain(self) -> list[Frame]:
        """Frames released since the last call, in media order."""
        ready = self._ready
        if ready:
            self._ready = []
        return ready

    def tick(self, now_s: float) -> None:
        """Release what has waited ``depth_ms`` by the arrival clock ``now_s``."""
        if now_s > self._newest_arrival:
            self._newest_arrival = now_s
        if self._slots:
            self._release()

    def resync_next(self) -> None:
        """Place the next packet by arrival time, as the first of a new epoch.

        For a stream that resumes after a pause, whatever its sequence numbers and
        timestamps did meanwhile: packets the receiver dropped on purpose are not loss.
        """
        self.flush()
        if self._ssrc is not None:
            self._force_resync = True

    def flush(self) -> None:
        """Release everything buffered, concealing the gaps between."""
        slots = self._slots
        while slots:
            frame = slots.pop(self._next, None)
            if frame is None:
                first = min(slots)
                self._emit_loss(first - self._next, slots[first])
                self._next = first
                continue
            self._next += 1
            self._emit(frame)

    # ------------------------------------------------------------------ a compiled lane

    def release_in_order(self) -> bool:
        """Release what is held if it follows on from the last frame released without a
        gap (nothing earlier could then still come in time: releasing it now changes
        nothing); returns whether nothing is held any more and the stream is steady (a
        source known, no new epoch asked for), so that the next packets may be taken in
        order elsewhere (:meth:`took_in_order`)."""
        if self._ssrc is None or self._force_resync:
            return False
        slots = self._slots
        if slots:
            if len(slots) != self._highest - self._next + 1 or self._next not in slots:
                return False
            self.flush()
        return True

    def lane_anchor(self) -> tuple[int, int, int, float, float, float]:
        """(ssrc, extended sequence number and timestamp of the newest packet, its
        arrival, the newest arrival, the timestamp-jump limit in seconds or -1)."""
        assert self._ssrc is not None
        jump = -1.0 if self._jump is None else self._jump
        return (self._ssrc, self._highest, self._anchor_ts, self._anchor_arrival,
                self._newest_arrival, jump)  # fmt: skip

    def took_in_order(
        self, last_seq: int, count: int, last_ts: int, last_arrival: float,
        newest_arrival: float, end_position: int,
    ) -> None:  # fmt: skip
        """``count`` packets after the newest, up to extended sequence number ``last_seq``,
        were taken and released in order elsewhere (a compiled lane, after
        :meth:`release_in_order`): move on as if they had been put here and released."""
        seen = self._seen
        for ext in range(max(last_seq - count, last_seq - SEEN_RING) + 1, last_seq + 1):
            seen[ext % SEEN_RING] = ext
        self.stats.received += count
        self._highest = last_seq
        self._next = last_seq + 1
        self._anchor_ts = last_ts
        self._anchor_arrival = last_arrival
        if newest_arrival > self._newest_arrival:
            self._newest_arrival = newest_arrival
        if last_arrival > self._ssrc_arrival:
            self._ssrc_arrival = last_arrival
        if end_position > self._out_end:
            self._out_end = end_position
        self._emitted = True

    # ------------------------------------------------------------------ internals

    def _due(self, frame: Frame) -> bool:
        """Whether a frame has waited ``depth_ms`` (media time or arrival time)."""
        age = (self._anchor_ts - frame.timestamp) & 0xFFFFFFFF
        return (
            self._depth <= age < 0x80000000
            or self._newest_arrival - frame.arrival_s >= self._depth_s
            or len(self._slots) >= self._max_packets
        )

    def _release(self) -> None:
        slots = self._slots
        while slots:
            nxt = self._next
            frame = slots.get(nxt)
            if frame is None:
                first = slots[min(slots)]
                if not self._due(first):
                    return
                self._emit_loss(first.seq - nxt, first)
                self._next = first.seq
                continue
            # _due(frame) and _emit(frame), written out: this runs for every packet.
            ts = frame.timestamp
            age = (self._anchor_ts - ts) & 0xFFFFFFFF
            if not (
                self._depth <= age < 0x80000000
                or self._newest_arrival - frame.arrival_s >= self._depth_s
                or len(slots) >= self._max_packets
            ):
                return
            del slots[nxt]
            self._next = nxt + 1
            pos = self._epoch_pos + ((ts - self._epoch_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            frame.position = pos
            end = pos + frame.samples
            if end > self._out_end:
                self._out_end = end
            self._emitted = True
            self._ready.append(frame)

    def _emit(self, frame: Frame) -> None:
        pos = self._epoch_pos + ((frame.timestamp - self._epoch_ts + 0x80000000) & 0xFFFFFFFF)
        pos -= 0x80000000
        frame.position = pos
        end = pos + frame.samples
        if end > self._out_end:
            self._out_end = end
        self._emitted = True
        self._ready.append(frame)

    def _emit_loss(self, count: int, following: Frame) -> None:
        start = self._out_end
        gap = self._epoch_pos + uint32_delta(following.timestamp, self._epoch_ts) - start
        self.stats.lost += count
        loss = Frame(self._next, 0, -1, b"", max(gap, 0), False, following.arrival_s, start, count)
        self._ready.append(loss)

    def _resync(self, ssrc: int, seq: int, timestamp: int, arrival_s: float) -> None:
        """Close the current epoch and start a new one at this packet, by arrival time."""
        self.flush()
        anchor_pos = self._epoch_pos + uint32_delta(self._anchor_ts, self._epoch_ts)
        start = anchor_pos + round((arrival_s - self._anchor_arrival) * self.clock_rate)
        self.stats.resyncs += 1
        self._start_epoch(ssrc, seq, timestamp, arrival_s, first=False)
        self._epoch_pos = max(start, self._out_end)

    def _start_epoch(
        self, ssrc: int, seq: int, timestamp: int, arrival_s: float, *, first: bool
    ) -> None:
        self._ssrc = ssrc
        self._bad_seq = -1
        base = (self._highest + SEQ_MOD + 1) & ~0xFFFF if not first else 0
        self._highest = base + seq
        self._next = self._highest
        self._seen = [-1] * SEEN_RING
        self._epoch_ts = timestamp
        self._epoch_pos = 0
        self._emitted = False
        self._anchor_ts = timestamp
        self._anchor_arrival = arrival_s
        self._ssrc_arrival = arrival_s
        if arrival_s > self._newest_arrival:
            self._newest_arrival = arrival_s
