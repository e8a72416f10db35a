"""The receive path of one call leg (RTP, RFC 3550; the packet format is `telephony.rtp_packet`).

:class:`RtpLeg` is everything one leg
does with its datagrams, independent of where they come from (a socket, a capture, a pcap
file): parse, drop and count what is malformed or of an unknown payload type, measure the
interarrival jitter, reorder through a :class:`~telephony.jitter.JitterBuffer`, decode
G.711, conceal loss, fill comfort noise, collect DTMF events (RFC 4733) and write the audio
into the call's recording at the position its RTP timestamp gives.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from kernels import rtp_round as lane
from kernels.g711 import alaw_decode, ulaw_decode
from telephony.jitter import DEFAULT_DEPTH_MS, Frame, JitterBuffer
from telephony.recorder import CallRecorder
from telephony.rtp_packet import HEADER, RTP_HEADER_BYTES, RtpParseError, parse_rtp

logger = logging.getLogger(__name__)

CLOCK_RATE_HZ = 8000
CONCEAL_MAX_MS = 60
DECODE_BATCH_FRAMES = 10  # contiguous frames decoded and written in one go (200 ms of 20 ms)
FEED_BATCH_PACKETS = 10  # datagrams queued, then taken in one go (200 ms of a 20 ms stream)
CN_MAX_FILL_S = 30.0
CN_SILENT_LEVEL_DBOV = 90
RTCP_MUX_PT_RANGE = range(72, 77)  # RTCP packet types 200-204 read as RTP (RFC 5761)
DTMF_EVENTS = "0123456789*#ABCD"
STATIC_PAYLOADS = {0: "PCMU", 8: "PCMA", 13: "CN"}

KIND_PCMU = 0
KIND_PCMA = 1
KIND_EVENT = 2
KIND_CN = 3
_KIND_BY_NAME = {
    "pcmu": KIND_PCMU,
    "pcma": KIND_PCMA,
    "telephone-event": KIND_EVENT,
    "cn": KIND_CN,
}

_EVENT = struct.Struct("!BBH")


@dataclass(frozen=True)
class DtmfEvent:
    """One telephone-event (RFC 4733): a key pressed on the leg."""

    digit: str
    start_s: float  # on the recording's timeline
    duration_s: float
    volume_dbm0: int  # a negative level; 0 when the sender left it out
    ended: bool  # False when the end packets never arrived


@dataclass
class LegStats:
    """What happened on one leg.

    ``received`` counts well-formed packets of a known payload type (duplicates and late
    ones included); ``lost`` the sequence numbers that never came in time; ``concealed``
    the frames filled by fading out the previous frame; ``jitter_ms`` is the RFC 3550
    interarrival jitter.
    """

    received: int = 0
    lost: int = 0
    concealed: int = 0
    late: int = 0
    duplicates: int = 0
    malformed: int = 0
    unknown_payload: int = 0
    jitter_ms: float = 0.0
    dtmf: list[DtmfEvent] = field(default_factory=list)
    comfort_noise: int = 0
    ssrc_changes: int = 0
    resyncs: int = 0
    dropped_paused: int = 0
    rtcp_muxed: int = 0


AudioSink = Callable[[int, np.ndarray], None]


def _decode(kind: int, codes: np.ndarray) -> np.ndarray:
    """G.711 codes of ``kind`` (KIND_PCMU or KIND_PCMA) as 16-bit PCM."""
    return ulaw_decode(codes) if kind == KIND_PCMU else alaw_decode(codes)


class LaneArrays(Protocol):
    """The arrays of the receive thread's compiled lanes (`telephony.lanes.LaneRows`)."""

    state: np.ndarray
    times: np.ndarray
    codes: np.ndarray


class RtpLeg:
    """The receive path of one leg: feed it datagrams, it writes ``channel`` of the recording.

    ``payload_map`` maps negotiated payload types to encoding names (``PCMU``, ``PCMA``,
    ``telephone-event``, ``CN``); the static types 0, 8 and 13 are known unless remapped.
    Audio of other encodings is counted as ``unknown_payload`` and dropped.
    ``on_audio(position, pcm)`` receives the decoded audio too, in order, as it is released.

    :meth:`feed` queues each datagram with its arrival time and takes the queue in one go
    once ``feed_batch`` are waiting: a leg's datagrams are then parsed and reordered back to
    back, while its state is in the CPU's caches, instead of one at a time between every
    other leg's (the receive thread serves hundreds). The jitter buffer sees the same
    datagrams and arrival times in the same order, so it decides the same; only the audio
    comes out up to ``feed_batch - 1`` packets later. Released frames are decoded and
    written once per batch taken, ``decode_batch_frames`` at most at a time (fewer, larger
    NumPy calls). :meth:`tick`, :meth:`flush`, pausing and :attr:`stats` take what is
    queued first.
    """

    def __init__(
        self,
        channel: int,
        payload_map: dict[int, str],
        recorder: CallRecorder | None,
        clock_rate: int = CLOCK_RATE_HZ,
        *,
        depth_ms: int = DEFAULT_DEPTH_MS,
        on_audio: AudioSink | None = None,
        decode_batch_frames: int = DECODE_BATCH_FRAMES,
        feed_batch: int = FEED_BATCH_PACKETS,
        seed: int = 0,
    ) -> None:
        if recorder is not None and recorder.sample_rate != clock_rate:
            raise ValueError(
                f"the recording runs at {recorder.sample_rate} Hz but the leg at {clock_rate} Hz;"
                " make the recorder with the leg's clock rate"
            )
        self.channel = channel
        self.clock_rate = clock_rate
        self.recorder = recorder
        self.on_audio = on_audio
        self.last_packet_s: float | None = None
        self.jitter_buffer = JitterBuffer(clock_rate, depth_ms)
        self._kinds = self._payload_kinds(payload_map)
        self._paused = False
        self._offset: int | None = None
        self._malformed = 0
        self._unknown = 0
        self._received = 0
        self._concealed = 0
        self._cn_packets = 0
        self._dropped_paused = 0
        self._rtcp = 0
        self._jitter = 0.0
        self._jitter_ssrc = -1
        self._prev_ts = 0
        self._prev_arrival = 0.0
        self._last_payload: bytes | None = None
        self._last_kind = KIND_PCMU
        self._batch = bytearray()
        self._batch_pos = 0
        self._batch_kind = KIND_PCMU
        self._batch_frames = 0
        self._batch_limit = max(1, decode_batch_frames)
        self._queue: list[tuple[bytes, float]] = []
        self._queue_limit = max(1, feed_batch)
        self._cn_from: int | None = None
        self._cn_amplitude = 0.0
        self._rng = np.random.default_rng(seed)
        self._dtmf: list[DtmfEvent] = []
        self._dtmf_open: tuple[int, int, int, int, int] | None = None  # ts, event, pos, dur, vol
        self._dtmf_done: tuple[int, int] | None = None  # ts, event of the last reported
        # The last audio frame processed: (extended seq, timestamp, samples, position, pt).
        self._last_frame: tuple[int, int, int, int, int] | None = None
        self._lanes: LaneArrays | None = None  # the receive thread's compiled lane, if any
        self._row = -1

    @staticmethod
    def _payload_kinds(payload_map: dict[int, str]) -> dict[int, int]:
        kinds: dict[int, int] = {}
        for pt, name in {**STATIC_PAYLOADS, **payload_map}.items():
            kind = _KIND_BY_NAME.get(name.split("/")[0].strip().lower())
            if kind is not None and 0 <= pt <= 127:
                kinds[pt] = kind
        return kinds

    # ------------------------------------------------------------------ public

    @property
    def paused(self) -> bool:
        return self._paused

    @paused.setter
    def paused(self, value: bool) -> None:
        """While paused (hold, recording paused) packets are counted and dropped."""
        self._take_queued()  # they came before the change
        if value and not self._paused:
            self.jitter_buffer.resync_next()
            self._process(self.jitter_buffer.drain())
            self._flush_batch()
        self._paused = bool(value)

    @property
    def stats(self) -> LegStats:
        self._take_queued()
        jb = self.jitter_buffer.stats
        return LegStats(
            received=self._received,
            lost=jb.lost,
            concealed=self._concealed,
            late=jb.late,
            duplicates=jb.duplicates,
            malformed=self._malformed,
            unknown_payload=self._unknown,
            jitter_ms=1000.0 * self._jitter / self.clock_rate,
            dtmf=list(self._dtmf),
            comfort_noise=self._cn_packets,
            ssrc_changes=jb.ssrc_changes,
            resyncs=jb.resyncs,
            dropped_paused=self._dropped_paused,
            rtcp_muxed=self._rtcp,
        )

    @property
    def dtmf(self) -> list[DtmfEvent]:
        self._take_queued()
        return list(self._dtmf)

    @property
    def counts_taken(self) -> dict[str, int]:
        """Packet counts of the datagrams taken so far (not those still queued): received,
        lost, late, duplicates, malformed, unknown_payload. Unlike :attr:`stats` it takes
        nothing from the queue, so another thread may read it while the leg is fed (each
        figure is read once, and may lag the feeding thread by a few packets)."""
        jb = self.jitter_buffer.stats
        return {
            "received": self._received, "lost": jb.lost, "late": jb.late,
            "duplicates": jb.duplicates, "malformed": self._malformed,
            "unknown_payload": self._unknown,
        }  # fmt: skip

    @property
    def datagrams_arrived(self) -> int:
        """:attr:`packets_seen` and the datagrams still queued: it moves with each arrival
        (read by another thread while the leg is fed, it may lag by a packet)."""
        return self.packets_seen + len(self._queue)

    @property
    def packets_seen(self) -> int:
        """Datagrams taken so far that show the stream is alive: RTP of a known payload
        type (paused or not) and malformed ones; not those still queued. Cheap (no side
        effect): read every second per leg."""
        seen = self._received + self._dropped_paused + self._malformed
        lanes, row = self._lanes, self._row
        if lanes is not None and row >= 0:
            seen += int(lanes.state[row, lane.TAKEN])
        return seen

    def feed(self, datagram: bytes, arrival_s: float) -> None:
        """Take one datagram received at ``arrival_s`` (seconds, any monotonic clock).

        It is queued; every ``feed_batch`` datagrams the queue is taken in one go.
        """
        if self._offset is None or self._queue_limit == 1 or self._lanes is not None:
            # Until its first packet places the leg on the recording's timeline, take each
            # at once: the legs of a call line up by which packet came first. A leg on a
            # compiled lane gets here only with what the lane did not take: rare, and
            # taken at once after what the lane took.
            self._take_lane()
            self._take(datagram, arrival_s)
            jb = self.jitter_buffer
            if jb._ready:
                self._process(jb.drain())
            return
        queue = self._queue
        queue.append((datagram, arrival_s))
        if len(queue) >= self._queue_limit:
            self._take_queued()

    def _take_queued(self) -> None:
        """Parse, reorder, decode and write what is queued, then hand the audio on."""
        self._take_lane()
        queue = self._queue
        if not queue:
            return
        self._queue = []
        error: Exception | None = None
        take = self._take
        for datagram, arrival_s in queue:
            try:
                take(datagram, arrival_s)
            except Exception as exc:  # the datagrams after it are still taken
                error = error or exc
        # The frames the jitter buffer released meanwhile, in order: their processing
        # depends only on the frames before them, so once per batch is the same.
        self._process(self.jitter_buffer.drain())
        self._flush_batch()
        if error is not None:
            raise error

    def _take(self, datagram: bytes, arrival_s: float) -> None:
        if len(datagram) < RTP_HEADER_BYTES:
            self._malformed += 1
            return
        b0, b1, seq, ts, ssrc = HEADER.unpack_from(datagram)
        if b0 == 0x80:  # version 2, no padding, extension or CSRC: the common case
            payload = datagram[RTP_HEADER_BYTES:]
        else:
            try:
                payload = parse_rtp(datagram).payload
            except RtpParseError as exc:
                self._malformed += 1
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("leg %d: dropped a datagram: %s", self.channel, exc)
                return
        pt = b1 & 0x7F
        kind = self._kinds.get(pt)
        if kind is None:
            if pt in RTCP_MUX_PT_RANGE:
                self._rtcp += 1
            else:
                self._unknown += 1
            return
        self.last_packet_s = arrival_s
        if self._paused:
            self._dropped_paused += 1
            return
        self._received += 1
        if self._offset is None:
            self._offset = 0 if self.recorder is None else self.recorder.sample_at(arrival_s)
        if kind != KIND_EVENT:
            if ssrc == self._jitter_ssrc:
                # RFC 3550 A.8; uint32_delta(ts, self._prev_ts) written out.
                d = (arrival_s - self._prev_arrival) * self.clock_rate - (
                    ((ts - self._prev_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                )
                self._jitter += (abs(d) - self._jitter) / 16.0
            else:
                self._jitter_ssrc = ssrc
            self._prev_ts = ts
            self._prev_arrival = arrival_s
        samples = len(payload) if kind <= KIND_PCMA else 0
        self.jitter_buffer.put(ssrc, seq, ts, b1 & 0x80 != 0, pt, payload, samples, arrival_s)

    def tick(self, now_s: float) -> None:
        """Release audio that waited long enough by the arrival clock (call every ~20 ms).

        A leg whose compiled lane is still open has nothing queued, held back or pending
        on its Python side: the tick takes the lane's audio and leaves the lane open,
        instead of closing it and building its row again (:meth:`resume_lane`)."""
        if self._lanes is not None and self._take_lane(keep_open=True):
            self.jitter_buffer.tick(now_s)
            return
        self._take_queued()
        self.jitter_buffer.tick(now_s)
        self._process(self.jitter_buffer.drain())
        self._flush_batch()
        if self._lanes is not None:
            self.resume_lane()

    def flush(self) -> None:
        """Release and record everything buffered (end of call)."""
        self._take_queued()
        self.jitter_buffer.flush()
        self._process(self.jitter_buffer.drain())
        self._flush_batch()
        self._close_dtmf()
        self._cn_from = None

    # ------------------------------------------------------------------ the compiled lane

    def attach_lane(self, lanes: LaneArrays, row: int) -> None:
        """Let the receive thread's compiled round take this leg's in-order audio
        (`kernels.rtp_round`), in row ``row`` of ``lanes``. The lane opens once the stream
        runs straight (:meth:`resume_lane`); the receive thread's lock guards it as it
        guards the leg."""
        self._take_queued()
        self._lanes = lanes
        self._row = row
        lanes.state[row, :] = 0
        lanes.times[row, :] = 0.0

    def detach_lane(self) -> None:
        """Take what the lane holds and leave it: the leg is Python's alone again."""
        self._take_lane()
        self._lanes = None
        self._row = -1

    def resume_lane(self) -> bool:
        """Open the lane if the stream runs straight: nothing queued, held back or
        pending, the last packet taken an audio frame of this stream, not paused, no
        comfort noise to fill. Returns whether it is open."""
        lanes = self._lanes
        if lanes is None:
            return False
        row = self._row
        state, times = lanes.state, lanes.times
        row_now = state[row].tolist()
        if row_now[lane.ON]:
            return True
        if row_now[lane.TAKEN]:  # what a round took before it closed the lane comes first
            self._take_lane()
        jb = self.jitter_buffer
        if self._paused or self._offset is None or self._cn_from is not None or self._queue:
            return False
        if not jb.release_in_order():
            return False
        self._process(jb.drain())
        self._flush_batch()
        last = self._last_frame
        if last is None:
            return False
        ssrc, highest, anchor_ts, anchor_arrival, newest_arrival, jump = jb.lane_anchor()
        ext, ts, samples, position, pt = last
        if ext != highest or ts != anchor_ts or samples <= 0 or ssrc != self._jitter_ssrc:
            return False
        if self._kinds.get(pt, -1) > KIND_PCMA:
            return False
        # Each row written in one go (a NumPy item assignment costs as much as the row).
        row_state = [0] * lane.STATE_COLUMNS
        row_state[lane.PT] = pt
        row_state[lane.SSRC] = ssrc
        row_state[lane.SEQ] = (ext + 1) & 0xFFFF
        row_state[lane.TS] = (ts + samples) & 0xFFFFFFFF
        row_state[lane.POS] = row_state[lane.RUN_POS] = position + samples
        row_state[lane.EXT] = ext
        row_state[lane.LAST_TS] = ts
        row_state[lane.LAST_LEN] = samples
        row_state[lane.PREV_TS] = self._prev_ts
        row_times = [0.0] * lane.TIME_COLUMNS
        row_times[lane.ANCHOR_ARRIVAL] = anchor_arrival
        row_times[lane.NEWEST_ARRIVAL] = newest_arrival
        row_times[lane.PREV_ARRIVAL] = self._prev_arrival
        row_times[lane.JITTER] = self._jitter
        row_times[lane.JUMP_S] = jump
        row_times[lane.RATE] = float(self.clock_rate)
        times[row] = row_times
        row_state[lane.ON] = 1  # the whole row at once: the lane opens with it
        state[row] = row_state
        return True

    def _take_lane(self, *, keep_open: bool = False) -> bool:
        """Close the lane (unless ``keep_open``) and take over what it took: the audio is
        decoded and written, the jitter buffer and the counts move on as if each packet
        had come this way. Returns whether the lane was open and is left open."""
        lanes = self._lanes
        if lanes is None:
            return False
        row = self._row
        state = lanes.state
        row_state = state[row].tolist()
        left_open = keep_open and row_state[lane.ON] == 1
        if row_state[lane.ON] and not keep_open:
            state[row, lane.ON] = 0
        taken = row_state[lane.TAKEN]  # the round may have closed the lane, leaving these
        if not taken:
            return left_open
        state[row, lane.PENDING : lane.TAKEN + 1] = 0
        row_times = lanes.times[row].tolist()
        pending = row_state[lane.PENDING]
        ext = row_state[lane.EXT]
        ts = row_state[lane.LAST_TS]
        size = row_state[lane.LAST_LEN]
        pt = row_state[lane.PT]
        run_pos = row_state[lane.RUN_POS]
        arrival = row_times[lane.ANCHOR_ARRIVAL]
        codes = lanes.codes[row, :pending].copy()
        self._received += taken
        self.last_packet_s = arrival
        self._jitter = row_times[lane.JITTER]
        self._prev_ts = row_state[lane.PREV_TS]
        self._prev_arrival = row_times[lane.PREV_ARRIVAL]
        end = run_pos + pending
        self.jitter_buffer.took_in_order(ext, taken, ts, arrival,
                                         row_times[lane.NEWEST_ARRIVAL], end)  # fmt: skip
        kind = self._kinds[pt]
        self._last_payload = codes[pending - size :].tobytes()
        self._last_kind = kind
        self._last_frame = (ext, ts, size, end - size, pt)
        pcm = _decode(kind, codes)
        self._emit(pcm, run_pos)
        return left_open

    # ------------------------------------------------------------------ frames

    def _process(self, frames: list[Frame]) -> None:
        kinds = self._kinds
        for f in frames:
            if f.lost:
                self._flush_batch()
                self._conceal(f)
                continue
            if self._cn_from is not None:
                self._fill_noise(f.position)
            kind = kinds[f.payload_type]
            if kind <= KIND_PCMA:
                if self._batch and (
                    kind != self._batch_kind or f.position != self._batch_pos + len(self._batch)
                ):
                    self._flush_batch()
                batch = self._batch
                if not batch:
                    self._batch_pos = f.position
                    self._batch_kind = kind
                batch += f.payload  # G.711: one byte per sample
                self._last_payload = f.payload
                self._last_kind = kind
                self._last_frame = (f.seq, f.timestamp, f.samples, f.position, f.payload_type)
                self._batch_frames += 1
                if self._batch_frames >= self._batch_limit:
                    self._flush_batch()
            elif kind == KIND_EVENT:
                self._flush_batch()
                self._event(f)
            else:
                self._flush_batch()
                self._comfort_noise(f)

    def _flush_batch(self) -> None:
        """Decode and write the frames gathered so far."""
        batch = self._batch
        if not batch:
            return
        self._batch = bytearray()
        self._batch_frames = 0
        codes = np.frombuffer(batch, dtype=np.uint8)
        pcm = _decode(self._batch_kind, codes)
        self._emit(pcm, self._batch_pos)

    def _emit(self, pcm: np.ndarray, position: int) -> None:
        at = position + (self._offset or 0)
        if self.recorder is not None and not self.recorder.closed:
            self.recorder.write(self.channel, pcm, at)
        if self.on_audio is not None:
            self.on_audio(at, pcm)

    def _conceal(self, f: Frame) -> None:
        """Fade the last frame out over the gap (at most CONCEAL_MAX_MS), then silence."""
        payload = self._last_payload
        if self._cn_from is not None or not payload or f.samples <= 0:
            return
        codes = np.frombuffer(payload, dtype=np.uint8)
        last = _decode(self._last_kind, codes)
        frame_len = len(last)
        n = min(f.samples, f.lost * frame_len, self.clock_rate * CONCEAL_MAX_MS // 1000)
        if n <= 0:
            return
        reps = -(-n // frame_len)
        fade = np.linspace(1.0, 0.0, n + 1, dtype=np.float32)[1:]
        pcm = (np.tile(last, reps)[:n] * fade).astype(np.int16)
        self._concealed += reps
        self._last_payload = None
        self._emit(pcm, f.position)

    def _comfort_noise(self, f: Frame) -> None:
        self._cn_packets += 1
        if f.payload:
            level = f.payload[0] & 0x7F
            self._cn_amplitude = (
                0.0 if level >= CN_SILENT_LEVEL_DBOV else 32767.0 * 10.0 ** (-level / 20.0)
            )
        self._cn_from = f.position
        self._last_payload = None

    def _fill_noise(self, until: int) -> None:
        start = self._cn_from
        self._cn_from = None
        if start is None or self._cn_amplitude < 1.0:
            return
        n = min(until - start, int(CN_MAX_FILL_S * self.clock_rate))
        if n <= 0:
            return
        noise = self._rng.standard_normal(n) * self._cn_amplitude
        np.clip(noise, -32768, 32767, out=noise)
        self._emit(noise.astype(np.int16), start)

    # ------------------------------------------------------------------ DTMF

    def _event(self, f: Frame) -> None:
        if len(f.payload) < _EVENT.size:
            self._malformed += 1
            return
        event, flags, duration = _EVENT.unpack_from(f.payload)
        key = (f.timestamp, event)
        opened = self._dtmf_open
        if opened is not None and (opened[0], opened[1]) != key:
            self._close_dtmf()
            opened = None
        if key == self._dtmf_done:
            return  # a retransmitted end packet
        if flags & 0x80:
            self._dtmf_open = None
            self._dtmf_done = key
            self._record_dtmf(event, f.position, duration, flags & 0x3F, ended=True)
        elif opened is None:
            self._dtmf_open = (f.timestamp, event, f.position, duration, flags & 0x3F)
        elif duration > opened[3]:
            self._dtmf_open = (opened[0], event, opened[2], duration, flags & 0x3F)

    def _close_dtmf(self) -> None:
        opened = self._dtmf_open
        if opened is None:
            return
        self._dtmf_open = None
        self._dtmf_done = (opened[0], opened[1])
        self._record_dtmf(opened[1], opened[2], opened[3], opened[4], ended=False)

    def _record_dtmf(
        self, event: int, position: int, duration: int, volume: int, *, ended: bool
    ) -> None:
        digit = DTMF_EVENTS[event] if event < len(DTMF_EVENTS) else f"event-{event}"
        start = (position + (self._offset or 0)) / self.clock_rate
        self._dtmf.append(
            DtmfEvent(
                digit=digit,
                start_s=start,
                duration_s=duration / self.clock_rate,
                volume_dbm0=-volume,
                ended=ended,
            )
        )

