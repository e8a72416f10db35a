"""The compiled receive lane (`kernels.rtp_round`, `telephony.lanes`) against the Python path.

The same datagrams at the same arrival times go once through `RtpLeg.feed` alone and once
through real UDP sockets read by `LaneRows.receive` (the lane takes the in-order audio, the
rest goes to the leg's Python path): the audio on the timeline, every count, the jitter and
the DTMF must be the same, over streams with loss, reordering, duplicates, silence
suppression, a source change, a restart, a long pause, DTMF, comfort noise, a codec change
and malformed datagrams.
"""

from __future__ import annotations

import itertools
import random
import socket
import struct
import time

import numpy as np
import pytest

from kernels.rtp_round import MAX_DATAGRAM
from telephony.jitter import JitterBuffer
from telephony.lanes import CODES_PER_ROW, LaneRows
from telephony.media import ReceiveThread
from telephony.rtp import RtpLeg
from telephony.rtp_packet import RtpPacket

PAYLOADS = {0: "PCMU", 8: "PCMA", 13: "CN", 101: "telephone-event"}
ROUND_S = 0.02
TICK_S = 0.2


def _stream(seed: int, packets: int = 600) -> list[tuple[float, bytes]]:
    """(arrival, datagram) of one leg, in arrival order, with every kind of disorder."""
    rng = random.Random(seed)
    out: list[tuple[float, bytes]] = []
    ssrc, seq, ts, t = rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32), 1.0
    pt = 0

    def send(p: RtpPacket, at: float) -> None:
        out.append((at, p.serialize()))

    i = 0
    while i < packets:
        i += 1
        r = rng.random()
        payload = bytes(rng.getrandbits(8) for _ in range(160))
        packet = RtpPacket(payload_type=pt, sequence_number=seq, timestamp=ts, ssrc=ssrc,
                           payload=payload)
        at = t + rng.uniform(0.0, 0.004)
        if r < 0.03:
            pass  # lost
        elif r < 0.06:
            send(packet, at)
            send(packet, at + 0.001)  # duplicate
        elif r < 0.09:
            # reordered: the next packet first
            nxt = RtpPacket(payload_type=pt, sequence_number=(seq + 1) & 0xFFFF,
                            timestamp=(ts + 160) & 0xFFFFFFFF, ssrc=ssrc,
                            payload=bytes(160))  # fmt: skip
            send(nxt, at)
            send(packet, at + 0.015)
            seq, ts, t = (seq + 1) & 0xFFFF, (ts + 160) & 0xFFFFFFFF, t + 0.02
        elif r < 0.10:
            # silence suppressed for a second: the talkspurt restarts with the marker
            ts, t = (ts + 8000) & 0xFFFFFFFF, t + 1.0
            packet = RtpPacket(payload_type=pt, sequence_number=seq, timestamp=ts, ssrc=ssrc,
                               marker=True, payload=payload)  # fmt: skip
            send(packet, t)
        elif r < 0.105:
            ssrc, seq, ts = rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32)
            continue
        elif r < 0.11:
            t += 3.0  # a long pause with the timestamps running on: a jump
            send(packet, t)
        elif r < 0.12:
            for k, end in ((0, False), (1, False), (2, True)):  # one key, three packets
                ev = RtpPacket(payload_type=101, sequence_number=(seq + k) & 0xFFFF,
                               timestamp=ts, ssrc=ssrc, marker=k == 0,
                               payload=struct.pack("!BBH", 5, 0x80 * end | 10, 160 * (k + 1)))
                send(ev, t + 0.02 * k)
            seq, ts, t = (seq + 3) & 0xFFFF, (ts + 480) & 0xFFFFFFFF, t + 0.06
            continue
        elif r < 0.125:
            send(RtpPacket(payload_type=13, sequence_number=seq, timestamp=ts, ssrc=ssrc,
                           payload=bytes([40])), at)  # fmt: skip
            ts, t = (ts + 4000) & 0xFFFFFFFF, t + 0.5
        elif r < 0.13:
            send(packet, at)
            out.append((at, b"\x80\x00\x01"))  # malformed
        elif r < 0.132:
            pt = 8 if pt == 0 else 0  # the codec changes
            send(packet, at)
        else:
            send(packet, at)
        seq, ts, t = (seq + 1) & 0xFFFF, (ts + 160) & 0xFFFFFFFF, t + 0.02
    out.sort(key=lambda item: item[0])
    return out


class _Timeline:
    """The audio a leg hands on, laid out by position (later writes win, as in a recording)."""

    def __init__(self) -> None:
        self.pcm = np.zeros(0, np.int16)
        self.calls = 0

    def __call__(self, position: int, pcm: np.ndarray) -> None:
        self.calls += 1
        end = position + len(pcm)
        if end > len(self.pcm):
            self.pcm = np.concatenate([self.pcm, np.zeros(end - len(self.pcm), np.int16)])
        self.pcm[position:end] = pcm


def _rounds(stream: list[tuple[float, bytes]]) -> list[tuple[float, list[bytes]]]:
    """The datagrams grouped into receive rounds: each round at the end of its 20 ms."""
    rounds: list[tuple[float, list[bytes]]] = []
    for at, data in stream:
        when = (int(at / ROUND_S) + 1) * ROUND_S
        if rounds and abs(rounds[-1][0] - when) < 1e-9:
            rounds[-1][1].append(data)
        else:
            rounds.append((when, [data]))
    return rounds


def _python_path(rounds: list[tuple[float, list[bytes]]]) -> tuple[RtpLeg, _Timeline]:
    timeline = _Timeline()
    leg = RtpLeg(0, PAYLOADS, None, on_audio=timeline)
    next_tick = rounds[0][0] + TICK_S
    for when, datagrams in rounds:
        for data in datagrams:
            leg.feed(data, when)
        if when >= next_tick:
            next_tick = when + TICK_S
            leg.tick(when)
    leg.flush()
    return leg, timeline


def _lane_path(
    rounds: list[tuple[float, list[bytes]]], codes_per_row: int = CODES_PER_ROW,
) -> tuple[RtpLeg, _Timeline, int, int]:
    timeline = _Timeline()
    leg = RtpLeg(0, PAYLOADS, None, on_audio=timeline)
    lanes = LaneRows(rows=1, codes_per_row=codes_per_row)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    read = slow = 0
    try:
        lanes.attach(rx.fileno(), leg)
        fds = np.array([rx.fileno()], np.int32)
        next_tick = rounds[0][0] + TICK_S
        for when, datagrams in rounds:
            for data in datagrams:
                tx.sendto(data, rx.getsockname())
            deadline = time.monotonic() + 5
            got = 0
            while got < len(datagrams) and time.monotonic() < deadline:
                result = lanes.receive(fds, when, 64)
                assert result.errors == 0 and len(result.others) == 0
                got += result.datagrams
                slow += result.slow
                if not result.datagrams:  # the lane is full: the leg's tick takes it
                    leg.tick(when)
            assert got == len(datagrams)
            read += got
            if when >= next_tick:
                next_tick = when + TICK_S
                leg.tick(when)
        lanes.detach(rx.fileno())
        leg.flush()
    finally:
        rx.close()
        tx.close()
    return leg, timeline, read, slow


@pytest.mark.parametrize(("seed", "codes_per_row"), [
    *((seed, CODES_PER_ROW) for seed in range(6)),
    *((seed, MAX_DATAGRAM + 320) for seed in range(3)),  # a lane with room for 3 packets
])  # fmt: skip
def test_the_lane_hands_on_what_the_python_path_does(seed: int, codes_per_row: int) -> None:
    rounds = _rounds(_stream(seed))
    py_leg, py_audio = _python_path(rounds)
    lane_leg, lane_audio, read, slow = _lane_path(rounds, codes_per_row)
    assert read == sum(len(d) for _, d in rounds)
    assert 0 < slow < read * 0.4, (slow, read)  # the lane took most, not all
    assert lane_audio.pcm.tobytes() == py_audio.pcm.tobytes()
    py, lane = py_leg.stats, lane_leg.stats
    assert lane == py
    assert py.received > 400 and py.lost > 0 and py.duplicates > 0 and py.dtmf
    assert py.resyncs > 0 and py.comfort_noise > 0 and py.malformed > 0


def test_a_steady_stream_goes_through_the_lane_alone() -> None:
    rng = random.Random(1)
    ssrc, seq, ts = 7, 65000, 2**32 - 800  # both wrap during the stream
    stream = []
    for i in range(300):
        p = RtpPacket(payload_type=0, sequence_number=(seq + i) & 0xFFFF,
                      timestamp=(ts + 160 * i) & 0xFFFFFFFF, ssrc=ssrc,
                      payload=bytes(rng.getrandbits(8) for _ in range(160)))  # fmt: skip
        stream.append((1.0 + 0.02 * i + rng.uniform(0, 0.003), p.serialize()))
    rounds = _rounds(stream)
    py_leg, py_audio = _python_path(rounds)
    lane_leg, lane_audio, read, slow = _lane_path(rounds)
    assert read == 300 and slow == 1  # only the first packet, which places the leg
    assert lane_audio.pcm.tobytes() == py_audio.pcm.tobytes()
    assert len(lane_audio.pcm) == 300 * 160
    assert lane_leg.stats == py_leg.stats
    # Handed on in large pieces, once a tick (the Python path: every 10 packets at most).
    assert lane_audio.calls <= 6.0 / TICK_S + 2 and py_audio.calls >= 30


def test_a_tick_leaves_an_open_lane_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """A steady stream's lane opens once: each tick takes its audio and leaves it open,
    rather than closing it and building its row again from the jitter buffer."""
    opened = []
    anchor = JitterBuffer.lane_anchor

    def counted(self: JitterBuffer) -> tuple[int, int, int, float, float, float]:
        opened.append(1)
        return anchor(self)

    monkeypatch.setattr(JitterBuffer, "lane_anchor", counted)
    stream = [(1.0 + 0.02 * i, RtpPacket(payload_type=0, sequence_number=i, timestamp=160 * i,
                                         ssrc=3, payload=bytes([i % 199]) * 160).serialize())
              for i in range(200)]  # fmt: skip
    rounds = _rounds(stream)
    lane_leg, lane_audio, read, slow = _lane_path(rounds)
    assert read == 200 and slow == 1
    assert lane_audio.calls >= 15  # audio handed on at every tick
    assert len(opened) == 1
    py_leg, py_audio = _python_path(rounds)
    assert lane_audio.pcm.tobytes() == py_audio.pcm.tobytes()
    assert lane_leg.stats == py_leg.stats


def test_a_full_lane_leaves_the_datagrams_in_the_socket() -> None:
    """A lane with room for 4 packets: the rest waits in the socket, not on the Python path,
    until the leg's tick takes the lane's audio; the audio is the Python path's."""
    stream = [(1.0 + 0.02 * i, RtpPacket(payload_type=0, sequence_number=i, timestamp=160 * i,
                                         ssrc=9, payload=bytes([i % 251]) * 160).serialize())
              for i in range(40)]  # fmt: skip
    # The first packet places the leg; then 39 at once, as a stalled thread finds them.
    rounds = [(2.0, [stream[0][1]]), (2.02, [data for _, data in stream[1:]])]
    py_leg, py_audio = _python_path(rounds)
    lane_leg, lane_audio, read, slow = _lane_path(rounds, codes_per_row=MAX_DATAGRAM + 480)
    assert read == 40 and slow == 1  # the first packet only
    assert lane_audio.pcm.tobytes() == py_audio.pcm.tobytes()
    assert lane_leg.stats == py_leg.stats
    assert lane_audio.calls >= 40 // 4 - 1  # taken four packets at a time


def test_rows_grow_and_come_back() -> None:
    lanes = LaneRows(rows=2)
    legs = [RtpLeg(i, PAYLOADS, None) for i in range(5)]
    rows = [lanes.attach(100 + i, leg) for i, leg in enumerate(legs)]
    assert sorted(rows) == list(range(5)) and lanes.rows >= 5
    lanes.detach(102)
    assert lanes.attach(5000, RtpLeg(9, PAYLOADS, None)) == rows[2]  # a freed row, a big fd
    assert lanes.row_of_fd[5000] == rows[2] and lanes.row_of_fd[102] == -1


def test_the_receive_thread_records_through_its_lanes() -> None:
    """End to end on the thread: 4 legs of steady 20 ms RTP, paced, all audio handed on."""
    thread = ReceiveThread()
    timelines = [_Timeline() for _ in range(4)]
    legs = [RtpLeg(i, PAYLOADS, None, on_audio=timelines[i]) for i in range(4)]
    ports = [thread.add("127.0.0.1", 0, leg) for leg in legs]
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(100):
            for k, port in enumerate(ports):
                p = RtpPacket(payload_type=0, sequence_number=i, timestamp=160 * i,
                              ssrc=k + 1, payload=bytes([k + 1]) * 160)  # fmt: skip
                tx.sendto(p.serialize(), ("127.0.0.1", port))
            time.sleep(0.004)
        deadline = time.monotonic() + 5
        while thread.datagrams < 400 and time.monotonic() < deadline:
            time.sleep(0.01)
        thread.remove(*ports)
        for leg in legs:
            leg.flush()
    finally:
        thread.close()
        tx.close()
    assert thread.datagrams == 400 and thread.errors == 0
    for k, (leg, timeline) in enumerate(zip(legs, timelines, strict=True)):
        assert leg.stats.received == 100 and leg.stats.lost == 0
        codes = np.full(100 * 160, k + 1, np.uint8)
        from kernels.g711 import ulaw_decode

        assert timeline.pcm.tobytes() == ulaw_decode(codes).tobytes()


def test_a_socket_drained_on_removal_goes_through_the_lane() -> None:
    """A leg that ends with a backlog in its socket (199 packets, four lanes' worth) takes
    it through the lane, its tick emptying the lane between rounds: the same audio and
    counts as the Python path, and only the first packet on that path."""
    stream = [(1.0 + 0.02 * i, RtpPacket(payload_type=8, sequence_number=i, timestamp=160 * i,
                                         ssrc=5, payload=bytes([i % 199]) * 160).serialize())
              for i in range(200)]  # fmt: skip
    py_leg, py_audio = _python_path([(1.0, [data for _, data in stream])])
    timeline = _Timeline()
    leg = RtpLeg(0, PAYLOADS, None, on_audio=timeline)
    lanes = LaneRows(rows=1, codes_per_row=50 * 160)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    fed = []
    real_feed = leg.feed
    leg.feed = lambda data, at: (fed.append(data), real_feed(data, at))  # type: ignore[method-assign]
    try:
        lanes.attach(rx.fileno(), leg)
        tx.sendto(stream[0][1], rx.getsockname())  # the first packet places the leg
        time.sleep(0.01)
        assert lanes.receive(np.array([rx.fileno()], np.int32), 1.0, 16).datagrams == 1
        leg.tick(1.0)
        for _, data in stream[1:]:
            tx.sendto(data, rx.getsockname())
        time.sleep(0.05)
        assert lanes.drain(rx.fileno(), 1.0, 4096) == 199
        lanes.detach(rx.fileno())
        leg.flush()
        with pytest.raises(BlockingIOError):
            rx.recv(2048)  # nothing left behind
    finally:
        rx.close()
        tx.close()
    assert len(fed) == 1
    assert timeline.pcm.tobytes() == py_audio.pcm.tobytes()
    assert leg.stats == py_leg.stats and leg.stats.received == 200


def test_a_burst_of_removals_leaves_the_other_legs_served() -> None:
    """Ports removed with ``remove_soon`` are closed a few at a time (about
    ``REMOVE_BUDGET_S`` a round), while the legs that go on are still read between them;
    every removal completes."""
    thread = ReceiveThread()
    slow_removals = 40
    legs = [RtpLeg(i, PAYLOADS, None) for i in range(slow_removals + 1)]
    ports = [thread.add("127.0.0.1", 0, leg) for leg in legs]
    kept = legs[-1]
    real_tick = RtpLeg.tick

    def slow_tick(self: RtpLeg, now: float) -> None:  # a leg that ends costs 1 ms here
        if self is not kept:
            time.sleep(0.001)
        real_tick(self, now)

    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        RtpLeg.tick = slow_tick  # type: ignore[method-assign]
        futures = [thread.remove_soon(port) for port in ports[:-1]]
        done_in_round: list[int] = []
        for future in futures:
            future.add_done_callback(lambda _: done_in_round.append(thread.rounds))
        for i in range(60):
            p = RtpPacket(payload_type=0, sequence_number=i, timestamp=160 * i, ssrc=3,
                          payload=bytes([7]) * 160)  # fmt: skip
            tx.sendto(p.serialize(), ("127.0.0.1", ports[-1]))
            time.sleep(0.002)
        for future in futures:
            future.result(timeout=5)
        deadline = time.monotonic() + 5
        while thread.datagrams < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        RtpLeg.tick = real_tick  # type: ignore[method-assign]
        thread.close()
        tx.close()
    assert thread.datagrams == 60 and thread.ports == 0
    # 40 removals of over 1 ms each, about 5 ms of them a round: not all in one round.
    assert len(done_in_round) == slow_removals and len(set(done_in_round)) >= 4


def test_a_busy_thread_ticks_its_legs_less_often() -> None:
    """Up to ``busy_tick_legs`` legs each is ticked every ``tick_s``; past it, every
    ``busy_tick_s`` (a tick's cost per leg then decides how many the thread keeps up with)."""

    class Ticked:
        def __init__(self) -> None:
            self.times: list[float] = []

        def feed(self, datagram: bytes, arrival_s: float) -> None:
            pass

        def tick(self, now: float) -> None:
            self.times.append(now)

    def periods(legs: int) -> tuple[float, float]:
        thread = ReceiveThread(poll_s=0.005, tick_s=0.05, busy_tick_s=0.15, busy_tick_legs=3)
        receivers = [Ticked() for _ in range(legs)]
        try:
            for receiver in receivers:
                thread.add("127.0.0.1", 0, receiver)  # type: ignore[arg-type]
            time.sleep(1.5)
            period = thread.tick_period_s
        finally:
            thread.close()
        gaps = [b - a for r in receivers for a, b in itertools.pairwise(r.times[1:])]
        return period, float(np.median(gaps))

    period, gap = periods(3)
    assert period == 0.05 and 0.04 < gap < 0.08
    period, gap = periods(4)
    assert period == 0.15 and 0.13 < gap < 0.2
