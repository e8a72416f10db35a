"""RTP parsing and the per-leg receive path, down to the samples in the recording."""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from core.audio.wav import read_wav
from core.ports import free_port_range
from kernels.g711 import alaw_encode, ulaw_decode, ulaw_encode
from telephony.media import (
    LET_IN_EVERY,
    PortPoolExhausted,
    ReceiveThread,
    RtpPortPool,
    ThreadMediaStream,
)
from telephony.recorder import CallRecorder
from telephony.rtcp import RtcpParseError, RtcpStats, parse_rtcp
from telephony.rtp import RtpLeg
from telephony.rtp_packet import RtpPacket, RtpParseError, parse_rtp

FRAME = 160
SSRC = 0xCAFE0001
PAYLOADS = {0: "PCMU", 8: "PCMA", 101: "telephone-event", 13: "CN"}


def tone(n: int, freq: float = 440.0, amp: float = 8000.0) -> np.ndarray:
    return (np.sin(2 * np.pi * freq * np.arange(n) / 8000) * amp).astype(np.int16)


def packets(
    codes: np.ndarray, *, seq0: int = 500, ts0: int = 123_456, pt: int = 0, ssrc: int = SSRC
) -> list[bytes]:
    return [
        RtpPacket(
            pt,
            (seq0 + i) & 0xFFFF,
            ts0 + i * FRAME,
            ssrc,
            payload=codes[i * FRAME : (i + 1) * FRAME].tobytes(),
        ).serialize()
        for i in range(len(codes) // FRAME)
    ]


def record(tmp_path: Path, feed: list[tuple[bytes, float]], **kw) -> tuple[RtpLeg, np.ndarray]:
    rec = CallRecorder(tmp_path / "leg.wav")
    leg = RtpLeg(0, PAYLOADS, rec, **kw)
    for data, t in feed:
        leg.feed(data, t)
    leg.flush()
    rec.close()
    got = read_wav(tmp_path / "leg.wav").channels[0]
    return leg, np.round(got * 32768).astype(np.int32)


# ------------------------------------------------------------------ parsing


def test_parse_plain_packet():
    data = bytes.fromhex("80e1 0102 0000 0a0b 1122 3344") + b"\xff" * 160
    pkt = parse_rtp(data)
    assert (pkt.payload_type, pkt.marker, pkt.sequence_number) == (97, True, 0x0102)
    assert (pkt.timestamp, pkt.ssrc) == (0x0A0B, 0x11223344)
    assert pkt.payload == b"\xff" * 160 and pkt.csrc == [] and pkt.extension_profile is None


def test_round_trip_with_csrc_extension_and_padding():
    pkt = RtpPacket(
        8,
        65535,
        0xFFFFFFFF,
        7,
        True,
        b"\x01\x02\x03",
        csrc=[1, 2],
        extension_profile=0xBEDE,
        extension=b"\x10\xaa\x00\x00",
        padding_size=4,
    )
    data = pkt.serialize()
    assert len(data) == 12 + 8 + 8 + 3 + 4
    assert data[0] == 0x80 | 0x20 | 0x10 | 2
    assert parse_rtp(data) == pkt


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x00" + bytes(9), "RTP packet length is less than 12 bytes"),
        (b"\x40\x00" + bytes(10), "RTP packet has version 1, expected 2"),
        (b"\xa0\x00" + bytes(10) + b"\x00", "RTP packet has invalid padding length 0"),
        (b"\xa0\x00" + bytes(10) + b"\x05", "RTP packet has invalid padding length 5"),
        (b"\x82\x00" + bytes(10) + bytes(4), "RTP packet is shorter than its CSRC list"),
        (b"\x90\x00" + bytes(10) + b"\xbe", "RTP packet is shorter than its extension header"),
        (
            b"\x90\x00" + bytes(10) + b"\xbe\xde\x00\x02" + bytes(4),
            "RTP packet is shorter than its header extension",
        ),
    ],
)
def test_malformed_packets(data: bytes, message: str):
    with pytest.raises(RtpParseError) as info:
        parse_rtp(data)
    assert str(info.value) == message


# ------------------------------------------------------------------ the leg


def test_clean_stream_is_recorded_sample_exact(tmp_path: Path):
    sig = tone(8000)
    codes = ulaw_encode(sig)
    feed = [(p, i * 0.02) for i, p in enumerate(packets(codes))]
    leg, got = record(tmp_path, feed)
    assert np.array_equal(got, ulaw_decode(codes))
    stats = leg.stats
    assert (stats.received, stats.lost, stats.malformed, stats.duplicates) == (50, 0, 0, 0)
    assert stats.jitter_ms == pytest.approx(0.0, abs=1e-6)
    assert leg.last_packet_s == pytest.approx(0.98)


def test_alaw_and_extension_header(tmp_path: Path):
    sig = tone(1600)
    codes = alaw_encode(sig)
    feed = []
    for i in range(10):
        pkt = RtpPacket(
            8,
            i,
            i * FRAME,
            SSRC,
            payload=codes[i * FRAME : (i + 1) * FRAME].tobytes(),
            extension_profile=0xBEDE,
            extension=b"\x22\x01\x02\x03",
            padding_size=3,
        )
        feed.append((pkt.serialize(), i * 0.02))
    _, got = record(tmp_path, feed)
    assert np.abs(got - sig).max() < 300  # A-law step at 8000 is 256


def test_malformed_and_unknown_payload_counted_and_dropped(tmp_path: Path):
    codes = ulaw_encode(tone(1600))
    good = packets(codes)
    feed = [(p, i * 0.02) for i, p in enumerate(good)]
    feed.insert(3, (b"\x80\x00\x00", 0.05))  # too short
    feed.insert(5, (b"\x40" + good[0][1:], 0.07))  # wrong version
    feed.insert(7, (RtpPacket(96, 9999, 0, SSRC, payload=b"x" * 20).serialize(), 0.09))
    feed.insert(8, (RtpPacket(72, 1, 0, SSRC, marker=True).serialize(), 0.09))  # RTCP SR, muxed
    leg, got = record(tmp_path, feed)
    stats = leg.stats
    assert stats.malformed == 2 and stats.unknown_payload == 1 and stats.rtcp_muxed == 1
    assert stats.received == 10 and stats.lost == 0
    assert np.array_equal(got, ulaw_decode(codes))


def test_reordering_and_duplicates_keep_the_audio(tmp_path: Path):
    codes = ulaw_encode(tone(4000))
    pk = packets(codes)
    order = [0, 1, 3, 2, 4, 6, 5, 5, 7, 9, 8, *range(10, 25), 12]
    feed = [(pk[i], n * 0.02) for n, i in enumerate(order)]
    leg, got = record(tmp_path, feed)
    assert np.array_equal(got, ulaw_decode(codes))
    assert leg.stats.duplicates == 2 and leg.stats.lost == 0
    assert leg.stats.jitter_ms > 0


def test_loss_is_concealed_by_fading_the_last_frame(tmp_path: Path):
    codes = ulaw_encode(tone(8000))
    pk = packets(codes)
    kept = [i for i in range(50) if i not in (10, 30, 31, 32, 33, 34, 35)]
    feed = [(pk[i], i * 0.02) for i in kept]
    leg, got = record(tmp_path, feed)
    ref = ulaw_decode(codes).astype(np.int32)
    assert len(got) == 8000
    assert leg.stats.lost == 7
    # One lost frame: the previous frame faded from full level to zero.
    prev = ref[9 * FRAME : 10 * FRAME]
    fade = np.linspace(1, 0, FRAME + 1)[1:]
    assert np.abs(got[10 * FRAME : 11 * FRAME] - prev * fade).max() <= 1
    # Six lost frames: 60 ms of fade, then silence.
    assert np.abs(got[30 * FRAME : 33 * FRAME]).max() > 1000
    assert np.all(got[33 * FRAME : 36 * FRAME] == 0)
    assert leg.stats.concealed == 1 + 3
    kept_idx = np.concatenate([np.arange(i * FRAME, (i + 1) * FRAME) for i in kept])
    assert np.array_equal(got[kept_idx], ref[kept_idx])


def test_dtmf_events_deduplicated_and_not_audio(tmp_path: Path):
    codes = ulaw_encode(tone(800))
    feed = [(p, i * 0.02) for i, p in enumerate(packets(codes, seq0=0, ts0=0))]
    seq = 5
    t = 0.1
    ts_event = 5 * FRAME
    # Digit '5': 100 ms, updates every 20 ms, end packet sent three times (new seq each).
    for dur in (160, 320, 480, 640):
        body = struct.pack("!BBH", 5, 10, dur)
        feed.append(
            (RtpPacket(101, seq, ts_event, SSRC, marker=dur == 160, payload=body).serialize(), t)
        )
        seq += 1
        t += 0.02
    for _ in range(3):
        body = struct.pack("!BBH", 5, 0x80 | 10, 800)
        feed.append((RtpPacket(101, seq, ts_event, SSRC, payload=body).serialize(), t))
        seq += 1
    # Digit '#', end packet repeated with the same sequence number.
    ts_hash = ts_event + 1600
    body = struct.pack("!BBH", 11, 0x80 | 20, 400)
    for _ in range(3):
        feed.append((RtpPacket(101, seq, ts_hash, SSRC, payload=body).serialize(), t + 0.2))
    leg, got = record(tmp_path, feed)
    digits = [(e.digit, e.start_s, e.duration_s, e.volume_dbm0, e.ended) for e in leg.stats.dtmf]
    assert digits == [("5", 0.1, 0.1, -10, True), ("#", 0.3, 0.05, -20, True)]
    assert len(got) == 800  # events write no audio
    assert leg.stats.lost == 0


def test_dtmf_without_end_packet_is_closed_at_flush():
    leg = RtpLeg(0, PAYLOADS, None)
    for n, dur in enumerate((160, 320)):
        body = struct.pack("!BBH", 12, 5, dur)
        leg.feed(RtpPacket(101, n, 8000, SSRC, payload=body).serialize(), n * 0.02)
    assert leg.stats.dtmf == []
    leg.flush()
    assert [(e.digit, e.duration_s, e.ended) for e in leg.stats.dtmf] == [("A", 0.04, False)]


def test_comfort_noise_fills_the_silence_at_its_level(tmp_path: Path):
    codes = ulaw_encode(tone(800, amp=0))
    pk = packets(codes, seq0=0, ts0=0)
    feed = [(p, i * 0.02) for i, p in enumerate(pk)]
    # CN at -40 dBov, then 1 s without packets, then speech again.
    feed.append((RtpPacket(13, 5, 5 * FRAME, SSRC, payload=bytes([40])).serialize(), 0.1))
    later = packets(codes, seq0=6, ts0=5 * FRAME + 8000)
    feed += [(p, 1.1 + i * 0.02) for i, p in enumerate(later)]
    leg, got = record(tmp_path, feed)
    noise = got[5 * FRAME : 5 * FRAME + 8000]
    rms = np.sqrt(np.mean(noise.astype(np.float64) ** 2))
    assert rms == pytest.approx(32767 * 10 ** (-40 / 20), rel=0.1)
    assert leg.stats.comfort_noise == 1 and leg.stats.lost == 0
    assert len(got) == 5 * FRAME + 8000 + 800


def test_ssrc_change_and_timestamp_jump_keep_wall_clock_timing(tmp_path: Path):
    a = ulaw_encode(tone(1600, 300))
    b = ulaw_encode(tone(1600, 600))
    c = ulaw_encode(tone(1600, 900))
    feed = [(p, i * 0.02) for i, p in enumerate(packets(a, ts0=1000))]
    feed += [(p, 0.5 + i * 0.02) for i, p in enumerate(packets(b, ssrc=0x5555, ts0=77))]
    jumped = packets(c, seq0=510, ts0=4_000_000, ssrc=0x5555)
    feed += [(p, 0.7 + i * 0.02) for i, p in enumerate(jumped)]
    leg, got = record(tmp_path, feed)
    assert leg.stats.ssrc_changes == 1 and leg.stats.resyncs == 2 and leg.stats.lost == 0
    assert np.array_equal(got[:1600], ulaw_decode(a))
    assert np.all(got[1600:4000] == 0)
    assert np.array_equal(got[4000:5600], ulaw_decode(b))
    assert np.array_equal(got[5600:7200], ulaw_decode(c))


def test_paused_leg_drops_audio_and_resumes_by_arrival(tmp_path: Path):
    codes = ulaw_encode(tone(1600))
    pk = packets(codes, seq0=0, ts0=0)
    rec = CallRecorder(tmp_path / "p.wav")
    leg = RtpLeg(1, PAYLOADS, rec)
    for i in range(5):
        leg.feed(pk[i], i * 0.02)
    leg.paused = True
    assert leg.paused
    for i in range(5, 8):
        leg.feed(pk[i], i * 0.02)
    leg.paused = False
    for i in range(8, 10):
        leg.feed(pk[i], 1.0 + i * 0.02)
    leg.flush()
    rec.close()
    got = np.round(read_wav(tmp_path / "p.wav").channels[1] * 32768).astype(np.int32)
    ref = ulaw_decode(codes)
    assert leg.stats.dropped_paused == 3 and leg.stats.lost == 0
    assert np.array_equal(got[:800], ref[:800])
    start = 4 * FRAME + 8000 + 4 * FRAME  # anchor (packet 4 at 0.08 s) + 1.08 s
    assert np.array_equal(got[start : start + 320], ref[8 * FRAME : 10 * FRAME])
    assert leg.last_packet_s == pytest.approx(1.18)


def test_two_legs_line_up_by_first_arrival(tmp_path: Path):
    rec = CallRecorder(tmp_path / "call.wav")
    agent = RtpLeg(0, PAYLOADS, rec)
    customer = RtpLeg(1, PAYLOADS, rec)
    a = ulaw_encode(tone(800, 300))
    c = ulaw_encode(tone(800, 700))
    for i, p in enumerate(packets(a, ts0=9)):
        agent.feed(p, 100.0 + i * 0.02)
    for i, p in enumerate(packets(c, ts0=99999, ssrc=2)):
        customer.feed(p, 100.25 + i * 0.02)
    agent.flush()
    customer.flush()
    rec.close()
    got = read_wav(tmp_path / "call.wav")
    left = np.round(got.channels[0] * 32768).astype(np.int32)
    right = np.round(got.channels[1] * 32768).astype(np.int32)
    assert np.array_equal(left[:800], ulaw_decode(a))
    assert np.array_equal(right[2000:2800], ulaw_decode(c))
    assert np.all(right[:2000] == 0)


def test_datagrams_are_taken_ten_at_a_time_and_their_audio_handed_on_per_batch():
    seen: list[tuple[int, int]] = []
    leg = RtpLeg(0, {}, None, on_audio=lambda pos, pcm: seen.append((pos, len(pcm))))
    pk = packets(ulaw_encode(tone(25 * FRAME)), ts0=0)
    leg.feed(pk[0], 0.0)  # the first is taken at once: it places the leg on the timeline
    for i in range(1, 10):
        leg.feed(pk[i], i * 0.02)
    assert seen == [] and leg.packets_seen == 1  # nine queued
    leg.feed(pk[10], 0.2)
    # Ten taken: 11 in, 60 ms held by the jitter buffer: frames 0-7 handed on in one piece.
    assert seen == [(0, 8 * FRAME)] and leg.packets_seen == 11
    for i in range(11, 25):
        leg.feed(pk[i], i * 0.02)
    assert seen[1:] == [(8 * FRAME, 10 * FRAME)]
    assert leg.stats.received == 25  # statistics take the queue first
    leg.flush()  # the queue (frames to 21 released), then what the jitter buffer holds
    assert seen[2:] == [(18 * FRAME, 4 * FRAME), (22 * FRAME, 3 * FRAME)]


def _complex_feed() -> list[tuple[bytes, float]]:
    """Reordering, duplicates, loss, malformed datagrams, DTMF, comfort noise, a new SSRC
    and a timestamp jump, in one stream."""
    a = packets(ulaw_encode(tone(40 * FRAME, 300)), seq0=65530, ts0=4_294_000_000)
    order = [0, 1, 3, 2, 4, 6, 5, 5, 7, 9, 8, *range(10, 17), *range(20, 40), 12]
    feed = [(a[i], n * 0.02) for n, i in enumerate(order)]
    feed.insert(5, (b"\x80\x00\x00", 0.09))
    feed.insert(9, (RtpPacket(96, 3, 0, SSRC, payload=b"x" * 20).serialize(), 0.15))
    t = len(feed) * 0.02
    for n, dur in enumerate((160, 320, 480)):
        body = struct.pack("!BBH", 7, 0x80 if n == 2 else 0, dur)
        feed.append((RtpPacket(101, (65530 + 40 + n) & 0xFFFF, 4_294_000_000 + 37 * FRAME, SSRC,
                               payload=body).serialize(), t + n * 0.02))  # fmt: skip
    feed.append((RtpPacket(13, (65530 + 43) & 0xFFFF, 4_294_000_000 + 37 * FRAME + 480, SSRC,
                           payload=bytes([50])).serialize(), t + 0.06))  # fmt: skip
    b = packets(ulaw_encode(tone(30 * FRAME, 700)), ssrc=0x5555, ts0=77)
    feed += [(p, t + 0.6 + i * 0.02) for i, p in enumerate(b[:15])]
    feed += [
        (p, t + 0.9 + i * 0.02)
        for i, p in enumerate(
            packets(ulaw_encode(tone(15 * FRAME, 900)), ssrc=0x5555, seq0=515, ts0=4_000_000)
        )
    ]
    return feed


@pytest.mark.parametrize("feed_batch", [3, 10, 64])
def test_taking_datagrams_in_batches_decides_as_one_at_a_time(tmp_path: Path, feed_batch: int):
    feed = _complex_feed()
    (tmp_path / "one").mkdir()
    (tmp_path / "many").mkdir()
    one, got_one = record(tmp_path / "one", feed, feed_batch=1)
    many, got_many = record(tmp_path / "many", feed, feed_batch=feed_batch)
    assert np.array_equal(got_many, got_one) and len(got_one) > 40 * FRAME
    assert many.stats == one.stats
    stats = one.stats
    assert stats.duplicates == 2 and stats.lost == 3 and stats.malformed == 1
    assert stats.unknown_payload == 1 and stats.ssrc_changes == 1 and stats.resyncs == 2
    assert [e.digit for e in stats.dtmf] == ["7"] and stats.comfort_noise == 1


def test_legs_line_up_by_first_arrival_whichever_queue_is_taken_first(tmp_path: Path):
    """The agent starts first but sends five packets; the customer sends thirty from 50 ms
    on and fills its queue before the agent's is taken: the agent still sets the origin."""
    rec = CallRecorder(tmp_path / "call.wav")
    agent = RtpLeg(0, PAYLOADS, rec)
    customer = RtpLeg(1, PAYLOADS, rec)
    a = ulaw_encode(tone(5 * FRAME, 300))
    c = ulaw_encode(tone(30 * FRAME, 700))
    pa, pc = packets(a, ts0=9), packets(c, ts0=99999, ssrc=2)
    events = sorted([(10.0 + i * 0.02, 0, i) for i in range(5)]
                    + [(10.05 + i * 0.02, 1, i) for i in range(30)])  # fmt: skip
    for t, who, i in events:
        (agent.feed(pa[i], t) if who == 0 else customer.feed(pc[i], t))
    agent.flush()
    customer.flush()
    rec.close()
    got = np.round(np.asarray(read_wav(tmp_path / "call.wav").channels) * 32768).astype(np.int32)
    assert np.array_equal(got[0][: 5 * FRAME], ulaw_decode(a))
    assert np.array_equal(got[1][400 : 400 + 30 * FRAME], ulaw_decode(c))  # 50 ms later


def test_audio_sink_gets_batches_in_order_and_tick_releases_by_time():
    seen: list[tuple[int, int]] = []
    leg = RtpLeg(
        0,
        {},
        None,
        on_audio=lambda pos, pcm: seen.append((pos, len(pcm))),
        decode_batch_frames=5,
        feed_batch=1,
    )
    pk = packets(ulaw_encode(tone(2400)), ts0=0)
    for i, p in enumerate(pk[:12]):
        leg.feed(p, i * 0.02)
    # 12 packets in, 60 ms held by the jitter buffer: 9 released, one batch of 5 written.
    assert seen == [(0, 5 * FRAME)]
    leg.tick(0.22 + 0.06)  # the arrival clock moves on: everything is due, and written
    assert seen[1:] == [(5 * FRAME, 5 * FRAME), (10 * FRAME, 2 * FRAME)]
    for i, p in enumerate(pk[13:], start=13):  # packet 12 is lost
        leg.feed(p, i * 0.02)
    leg.flush()
    assert seen[3] == (12 * FRAME, FRAME)  # the concealment
    assert seen[4:] == [(13 * FRAME, 2 * FRAME)]


def test_batching_one_frame_at_a_time():
    seen: list[tuple[int, int]] = []
    leg = RtpLeg(
        0, {}, None, on_audio=lambda pos, pcm: seen.append((pos, len(pcm))), decode_batch_frames=1
    )
    for i, p in enumerate(packets(ulaw_encode(tone(800)), ts0=0)):
        leg.feed(p, i * 0.02)
    leg.flush()
    assert seen == [(i * FRAME, FRAME) for i in range(5)]


def test_clock_rate_must_match_the_recorder(tmp_path: Path):
    rec = CallRecorder(tmp_path / "x.wav", sample_rate=16000)
    with pytest.raises(ValueError, match="16000 Hz"):
        RtpLeg(0, {}, rec)
    rec.close()


# ------------------------------------------------------------------ sockets (telephony.media)


def test_port_pool_allocates_even_ports_and_says_when_exhausted():
    pool = RtpPortPool(20001, 20008)
    ports = [pool.allocate() for _ in range(3)]
    assert ports == [20002, 20004, 20006]
    with pytest.raises(PortPoolExhausted, match="all 3 RTP ports of 20001-20008 are in use"):
        pool.allocate()
    pool.release(20004)
    pool.release(20004)
    assert pool.allocate() == 20004 and pool.in_use == 3
    with pytest.raises(ValueError, match="no even port"):
        RtpPortPool(30000, 30000)


def _sender_report(ssrc: int, blocks: int = 1) -> bytes:
    body = struct.pack("!IIIIII", ssrc, 3_900_000_000, 1 << 31, 8000, 50, 8000)
    for _ in range(blocks):
        body += struct.pack("!IIIIII", 0xCAFE, (64 << 24) | 3, 1049, 40, 7, 9)
    return struct.pack("!BBH", 0x80 | blocks, 200, len(body) // 4) + body


def test_rtcp_parser_errors():
    stats = RtcpStats()
    with pytest.raises(RtcpParseError, match="less than 4 bytes"):
        parse_rtcp(b"\x80", stats)
    with pytest.raises(RtcpParseError, match="version 0"):
        parse_rtcp(bytes(8), stats)
    with pytest.raises(RtcpParseError, match="too short for its report blocks"):
        parse_rtcp(struct.pack("!BBHI", 0x82, 201, 1, 1), stats)
    parse_rtcp(struct.pack("!BBHI", 0x80, 201, 1, 1), stats)
    assert stats.receiver_reports == 1 and stats.packets == 1


def test_receive_thread_feeds_many_legs():
    legs = [RtpLeg(i, PAYLOADS, None) for i in range(4)]
    thread = ReceiveThread(poll_s=0.05)
    try:
        ports = [thread.add("127.0.0.1", 0, leg) for leg in legs]
        codes = ulaw_encode(tone(1600))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for p in packets(codes):
                for port in ports:
                    tx.sendto(p, ("127.0.0.1", port))
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            with thread.lock:
                if all(leg.stats.received == 10 for leg in legs):
                    break
            time.sleep(0.01)
        thread.remove(ports[0])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            tx.sendto(packets(codes, seq0=600)[0], ("127.0.0.1", ports[1]))
        time.sleep(0.1)
    finally:
        thread.close()
    assert [leg.stats.received for leg in legs] == [10, 11, 10, 10]
    assert thread.errors == 0


class _Arrivals:
    """A leg that keeps what it is fed: (sequence number, arrival time)."""

    channel = 0

    def __init__(self) -> None:
        self.got: list[tuple[int, float]] = []

    def feed(self, datagram: bytes, arrival_s: float) -> None:
        self.got.append((parse_rtp(datagram).sequence_number, arrival_s))


def _wait_for(predicate, lock, timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with lock:
            if predicate():
                return
        time.sleep(0.01)
    raise AssertionError("timed out")


def _between_rounds(thread: ReceiveThread) -> None:
    """Return just after the thread has served a round (it then sleeps its batch_s)."""
    waker = _Arrivals()
    port = thread.add("127.0.0.1", 0, waker)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.sendto(packets(ulaw_encode(tone(FRAME)), seq0=9)[0], ("127.0.0.1", port))
    _wait_for(lambda: waker.got, thread.lock)
    thread.remove(port)


def test_receive_thread_drains_a_socket_in_bursts_and_serves_every_port_each_round():
    flooded, quiet = _Arrivals(), _Arrivals()
    # Rounds 0.3 s apart: what is sent between two rounds waits for the next one.
    thread = ReceiveThread(batch_s=0.3, burst=4)
    try:
        ports = [thread.add("127.0.0.1", 0, leg) for leg in (flooded, quiet)]
        codes = ulaw_encode(tone(10 * FRAME))
        _between_rounds(thread)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for p in packets(codes, seq0=0):
                tx.sendto(p, ("127.0.0.1", ports[0]))
            tx.sendto(packets(codes, seq0=700)[0], ("127.0.0.1", ports[1]))
        _wait_for(lambda: len(flooded.got) == 10 and quiet.got, thread.lock)
    finally:
        thread.close()
    assert [seq for seq, _ in flooded.got] == list(range(10))  # in order, nothing lost
    rounds = sorted({t for _, t in flooded.got})
    # Four a round from the flooded port: rounds of 4, 4 and 2, one arrival time each.
    assert [sum(1 for _, t in flooded.got if t == r) for r in rounds] == [4, 4, 2]
    assert quiet.got[0][1] == rounds[0]  # the quiet port is served in the first round


def test_receive_thread_takes_one_datagram_a_round_by_default():
    leg = _Arrivals()
    thread = ReceiveThread(batch_s=0.05)
    try:
        port = thread.add("127.0.0.1", 0, leg)
        _between_rounds(thread)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for p in packets(ulaw_encode(tone(3 * FRAME)), seq0=0):
                tx.sendto(p, ("127.0.0.1", port))
        _wait_for(lambda: len(leg.got) == 3, thread.lock)
    finally:
        thread.close()
    assert [seq for seq, _ in leg.got] == [0, 1, 2]
    assert len({t for _, t in leg.got}) == 3  # a round each


def test_removing_a_port_takes_what_its_socket_still_holds():
    leg = _Arrivals()
    thread = ReceiveThread(batch_s=0.5)
    try:
        port = thread.add("127.0.0.1", 0, leg)
        _between_rounds(thread)  # the thread now sleeps for half a second
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for p in packets(ulaw_encode(tone(6 * FRAME)), seq0=0):
                tx.sendto(p, ("127.0.0.1", port))
        time.sleep(0.05)
        thread.remove(port)  # the call ends before the thread came round to them
        with thread.lock:
            assert [seq for seq, _ in leg.got] == list(range(6))
    finally:
        thread.close()
    assert thread.ports == 0 and thread.errors == 0


def test_receive_thread_ticks_its_legs_so_a_stream_that_stops_is_released():
    """Three packets, then nothing: fewer than a leg queues, and the jitter buffer holds the
    last ones. No other thread ticks the leg; the receive thread's own tick releases them."""
    audio: list[np.ndarray] = []
    leg = RtpLeg(0, PAYLOADS, None, on_audio=lambda at, pcm: audio.append(pcm))
    codes = ulaw_encode(tone(3 * FRAME))
    thread = ReceiveThread(tick_s=0.05)
    try:
        port = thread.add("127.0.0.1", 0, leg)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for p in packets(codes):
                tx.sendto(p, ("127.0.0.1", port))
        _wait_for(lambda: sum(len(a) for a in audio) == 3 * FRAME, thread.lock)
        thread.remove(port)
    finally:
        thread.close()
    assert np.array_equal(np.concatenate(audio), ulaw_decode(codes))
    assert thread.errors == 0


def test_receive_thread_lets_a_waiting_thread_take_its_lock_between_busy_rounds():
    """Rounds that each keep the lock for 20 ms, back to back: another thread still gets
    the lock after about a round, not after many."""

    class Slow(_Arrivals):
        def feed(self, datagram: bytes, arrival_s: float) -> None:
            time.sleep(0.02)  # a round's work, the lock held
            super().feed(datagram, arrival_s)

    legs = [Slow() for _ in range(4)]
    thread = ReceiveThread(batch_s=0.0)
    stop = False

    def flood(ports: list[int]) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            one = packets(ulaw_encode(tone(FRAME)))[0]
            while not stop:
                for port in ports:
                    tx.sendto(one, ("127.0.0.1", port))
                time.sleep(0.005)

    try:
        ports = [thread.add("127.0.0.1", 0, leg) for leg in legs]
        sender = threading.Thread(target=flood, args=(ports,))
        sender.start()
        try:
            _wait_for(lambda: all(leg.got for leg in legs), thread.lock)
            waits = []
            for _ in range(10):
                t0 = time.monotonic()
                with thread.lock:
                    waits.append(time.monotonic() - t0)
                time.sleep(0.01)
        finally:
            stop = True
            sender.join()
    finally:
        thread.close()
    # A round takes about 80 ms (four sockets ready, 20 ms each).
    assert max(waits) < 0.25, waits


def test_remove_soon_leaves_the_lock_to_the_receive_thread_and_feeds_what_was_left():
    """An event loop ending a call asks the thread to close its ports and does not wait
    for the lock: the future is done once the thread has fed what the socket still held
    and closed it."""
    leg = _Arrivals()
    thread = ReceiveThread(batch_s=0.0)
    try:
        port = thread.add("127.0.0.1", 0, leg)
        codes = ulaw_encode(tone(5 * FRAME))
        with thread.lock:  # a long round: the thread cannot read meanwhile
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                for p in packets(codes):
                    tx.sendto(p, ("127.0.0.1", port))
            done = thread.remove_soon(port)  # returns at once, the lock still held here
            assert not done.done()
        done.result(timeout=5)
        assert thread.ports == 0
        assert [seq for seq, _ in leg.got] == [parse_rtp(p).sequence_number
                                               for p in packets(codes)]  # fmt: skip
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            tx.sendto(packets(codes)[0], ("127.0.0.1", port))  # the port is closed
        time.sleep(0.05)
        assert len(leg.got) == 5
    finally:
        thread.close()
    after_close = thread.remove_soon(12345)  # a closed thread still answers
    assert after_close.done()


def test_a_thread_waiting_for_the_lock_gets_it_between_chunks_of_ticks():
    """Ticking a thousand legs is one long piece of work: a call that ends meanwhile (its
    sockets to remove) gets the lock between chunks of LET_IN_EVERY ticks, not only once
    every leg is ticked."""
    n_legs = 4 * LET_IN_EVERY + 1
    ready = threading.Event()
    ticked: set[int] = set()
    got_lock_after: list[int] = []

    def take_the_lock() -> None:
        with thread.lock:
            got_lock_after.append(len(ticked))

    class Ticking(_Arrivals):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

        def tick(self, now: float) -> None:
            if not ready.is_set() or self.index in ticked:
                return
            if not ticked:  # the first tick once all are in: another thread starts to wait
                threading.Thread(target=take_the_lock, daemon=True).start()
                deadline = time.monotonic() + 5
                while not thread.lock.waiting and time.monotonic() < deadline:
                    time.sleep(0.001)
            ticked.add(self.index)

    thread = ReceiveThread(tick_s=0.05)
    try:
        for i in range(n_legs):
            thread.add("127.0.0.1", 0, Ticking(i))
        ready.set()
        deadline = time.monotonic() + 10
        while not (got_lock_after and len(ticked) == n_legs) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        thread.close()
    assert len(ticked) == n_legs
    assert got_lock_after and got_lock_after[0] < n_legs, got_lock_after


def test_thread_media_stream_receives_rtp_and_rtcp_and_gives_its_ports_back(tmp_path: Path):
    codes = ulaw_encode(tone(1600))
    rec = CallRecorder(tmp_path / "t.wav")
    leg = RtpLeg(0, PAYLOADS, rec)
    port = free_port_range(2)[0]
    thread = ReceiveThread(poll_s=0.05)
    try:
        stream = ThreadMediaStream.open(thread, "127.0.0.1", port, leg)
        assert (stream.port, stream.rtcp_port) == (port, port + 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for p in packets(codes):
                tx.sendto(p, ("127.0.0.1", port))
            tx.sendto(b"\x80\x00", ("127.0.0.1", port))  # malformed RTP
            tx.sendto(_sender_report(0xABC) + struct.pack("!BBHI", 0x81, 203, 1, 0xABC),
                      ("127.0.0.1", port + 1))  # fmt: skip
            tx.sendto(b"\x80\xc9\x00\x07" + bytes(4), ("127.0.0.1", port + 1))  # malformed
        _wait_for(lambda: leg.stats.received == 10 and leg.stats.malformed == 1
                  and stream.rtcp.packets and stream.rtcp.malformed, thread.lock)  # fmt: skip
        stream.close()
        assert thread.ports == 0
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
        ):
            a.bind(("127.0.0.1", port))  # both ports are free again
            b.bind(("127.0.0.1", port + 1))
            with pytest.raises(OSError):  # the RTP port is taken
                ThreadMediaStream.open(thread, "127.0.0.1", port, leg)
        # RTCP's port taken: the open fails and leaves the RTP port free too.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
            b.bind(("127.0.0.1", port + 1))
            with pytest.raises(OSError):
                ThreadMediaStream.open(thread, "127.0.0.1", port, leg)
            assert thread.ports == 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind(("127.0.0.1", port))
    finally:
        thread.close()
    leg.flush()
    rec.close()
    got = np.round(read_wav(tmp_path / "t.wav").channels[0] * 32768).astype(np.int32)
    assert np.array_equal(got, ulaw_decode(codes))
    assert stream.rtcp.sender_reports == 1 and stream.rtcp.byes == 1
    assert stream.rtcp.malformed == 1
    sr = stream.rtcp.last_sender_report
    assert sr is not None and (sr.ssrc, sr.packet_count, sr.octet_count) == (0xABC, 50, 8000)
    assert sr.ntp_time == pytest.approx(3_900_000_000.5)
    block = stream.rtcp.reports[0xCAFE]
    assert (block.fraction_lost, block.cumulative_lost, block.jitter) == (0.25, 3, 40)
    assert thread.errors == 0
