"""The jitter buffer: order, duplicates, loss, late packets, SSRC changes, timestamp jumps."""

from __future__ import annotations

import pytest

from telephony.jitter import (
    ACCEPTED,
    DUPLICATE,
    LATE,
    STRAY,
    Frame,
    JitterBuffer,
    uint16_delta,
    uint32_delta,
)

FRAME = 160  # 20 ms at 8 kHz
SSRC = 0x11223344


def put(jb: JitterBuffer, seq: int, ts: int, arrival: float, *, ssrc: int = SSRC,
        marker: bool = False, pt: int = 0) -> int:
    payload = bytes([seq & 0xFF]) * FRAME
    return jb.put(ssrc, seq & 0xFFFF, ts & 0xFFFFFFFF, marker, pt, payload, FRAME, arrival)


def stream(jb: JitterBuffer, seqs: list[int], *, seq0: int = 1000, ts0: int = 50_000,
           t0: float = 0.0, ssrc: int = SSRC) -> list[Frame]:
    """Put packets ``seq0 + i`` for i in ``seqs`` (in that arrival order), then flush."""
    out: list[Frame] = []
    for n, i in enumerate(seqs):
        put(jb, seq0 + i, ts0 + i * FRAME, t0 + n * 0.02, ssrc=ssrc)
        out += jb.drain()
    jb.flush()
    return out + jb.drain()


def test_wrap_helpers():
    assert uint16_delta(2, 65534) == 4
    assert uint16_delta(65534, 2) == -4
    assert uint32_delta(5, 0xFFFFFFFF) == 6
    assert uint32_delta(0xFFFFFFF0, 0x10) == -0x20


def test_in_order_stream_keeps_positions():
    jb = JitterBuffer(depth_ms=60)
    frames = stream(jb, list(range(10)))
    assert [f.position for f in frames] == [i * FRAME for i in range(10)]
    assert [f.lost for f in frames] == [0] * 10
    assert jb.stats.received == 10 and jb.stats.lost == 0


def test_release_waits_for_depth():
    jb = JitterBuffer(depth_ms=60)
    for i in range(3):
        put(jb, i, i * FRAME, 0.0)
    assert jb.drain() == []  # 40 ms of media buffered, less than 60 ms
    put(jb, 3, 3 * FRAME, 0.0)
    assert [f.seq for f in jb.drain()] == [0]
    assert jb.buffered == 3


def test_release_by_arrival_clock():
    jb = JitterBuffer(depth_ms=60)
    put(jb, 0, 0, 10.0)
    assert jb.drain() == []
    jb.tick(10.05)
    assert jb.drain() == []
    jb.tick(10.06)
    assert [f.seq for f in jb.drain()] == [0]


def test_reordering_is_undone():
    jb = JitterBuffer(depth_ms=60)
    frames = stream(jb, [0, 2, 1, 3, 5, 4, 6, 7])
    assert [f.seq - frames[0].seq for f in frames] == list(range(8))
    assert [f.position for f in frames] == [i * FRAME for i in range(8)]
    assert jb.stats.lost == 0 and jb.stats.late == 0


def test_duplicates_dropped_before_and_after_release():
    jb = JitterBuffer(depth_ms=40)
    assert put(jb, 0, 0, 0.0) == ACCEPTED
    assert put(jb, 0, 0, 0.01) == DUPLICATE  # still buffered
    for i in range(1, 6):
        put(jb, i, i * FRAME, i * 0.02)
    assert put(jb, 1, FRAME, 0.2) == DUPLICATE  # released already
    jb.flush()
    frames = jb.drain()
    assert len(frames) == 6
    assert jb.stats.duplicates == 2


def test_loss_is_one_frame_covering_the_gap():
    jb = JitterBuffer(depth_ms=60)
    frames = stream(jb, [0, 1, 4, 5, 6, 7, 8])
    loss = [f for f in frames if f.lost]
    assert len(loss) == 1
    assert loss[0].lost == 2
    assert loss[0].position == 2 * FRAME and loss[0].samples == 2 * FRAME
    assert jb.stats.lost == 2
    assert [f.position for f in frames if not f.lost] == [i * FRAME for i in (0, 1, 4, 5, 6, 7, 8)]


def test_packet_after_its_turn_is_late():
    jb = JitterBuffer(depth_ms=40)
    for i in [0, 1, 3, 4, 5, 6]:
        put(jb, i, i * FRAME, i * 0.02)
    assert put(jb, 2, 2 * FRAME, 0.2) == LATE
    jb.flush()
    assert jb.stats.late == 1 and jb.stats.lost == 1


def test_earlier_packet_before_first_release_is_accepted():
    jb = JitterBuffer(depth_ms=60)
    put(jb, 11, 11 * FRAME, 0.0)
    put(jb, 10, 10 * FRAME, 0.001)
    jb.flush()
    frames = jb.drain()
    assert [f.seq for f in frames] == [10, 11]
    assert [f.position for f in frames] == [0, FRAME]


def test_sequence_wrap():
    jb = JitterBuffer(depth_ms=60)
    frames = stream(jb, list(range(10)), seq0=65530, ts0=0xFFFFFF00)
    assert len(frames) == 10 and not any(f.lost for f in frames)
    assert [f.position for f in frames] == [i * FRAME for i in range(10)]


def test_silence_suppression_gap_is_not_loss():
    jb = JitterBuffer(depth_ms=60)
    for i in range(5):
        put(jb, i, i * FRAME, i * 0.02)
    # 2 s of silence: the timestamps move on, the sequence numbers do not.
    for i in range(5, 10):
        put(jb, i, i * FRAME + 16000, 2.0 + i * 0.02, marker=(i == 5))
    jb.flush()
    frames = jb.drain()
    assert jb.stats.lost == 0 and jb.stats.resyncs == 0
    assert jb.stats.talkspurts == 1
    assert frames[5].position == 5 * FRAME + 16000


def test_ssrc_change_resyncs_by_arrival_time():
    jb = JitterBuffer(depth_ms=60)
    for i in range(5):
        put(jb, i, i * FRAME, 1.0 + i * 0.02)
    # A new source 0.5 s after the last packet, with unrelated numbers.
    for i in range(5):
        put(jb, 30000 + i, 9_000_000 + i * FRAME, 1.58 + i * 0.02, ssrc=0xBEEF)
    jb.flush()
    frames = jb.drain()
    assert jb.stats.ssrc_changes == 1 and jb.stats.lost == 0
    assert [f.position for f in frames[:5]] == [i * FRAME for i in range(5)]
    # Last old packet at 80 ms (640) arrived at 1.08 s; the new one at 1.58 s: 0.5 s later.
    assert frames[5].position == 4 * FRAME + 4000
    assert [f.position - frames[5].position for f in frames[5:]] == [i * FRAME for i in range(5)]


def test_old_ssrc_after_change_is_dropped():
    jb = JitterBuffer(depth_ms=0)
    put(jb, 1, 0, 0.0)
    put(jb, 500, 0, 0.02, ssrc=7)
    assert put(jb, 2, FRAME, 0.03) == STRAY
    assert jb.stats.late == 1
    # Half a second after the new source fell silent, the old one is taken back.
    assert put(jb, 3, 2 * FRAME, 0.6) == ACCEPTED
    assert jb.stats.ssrc_changes == 2


def test_timestamp_jump_resyncs():
    jb = JitterBuffer(depth_ms=60)
    for i in range(5):
        put(jb, i, i * FRAME, i * 0.02)
    # Consecutive sequence numbers, but the timestamp leaps 1 hour ahead after 20 ms.
    for i in range(5, 10):
        put(jb, i, i * FRAME + 8000 * 3600, i * 0.02)
    jb.flush()
    frames = jb.drain()
    assert jb.stats.resyncs == 1 and jb.stats.lost == 0
    assert [f.position for f in frames] == [i * FRAME for i in range(10)]


def test_backward_timestamp_jump_resyncs():
    jb = JitterBuffer(depth_ms=60)
    for i in range(5):
        put(jb, i, 800_000 + i * FRAME, i * 0.02)
    for i in range(5, 10):
        put(jb, i, i * FRAME, i * 0.02)
    jb.flush()
    frames = jb.drain()
    assert jb.stats.resyncs == 1
    assert [f.position for f in frames] == [i * FRAME for i in range(10)]


def test_sequence_restart_needs_two_packets():
    jb = JitterBuffer(depth_ms=0)
    for i in range(3):
        put(jb, 100 + i, i * FRAME, i * 0.02)
    assert put(jb, 40000, 3 * FRAME, 0.06) == STRAY
    assert put(jb, 40001, 4 * FRAME, 0.08) == ACCEPTED
    assert put(jb, 40002, 5 * FRAME, 0.10) == ACCEPTED
    jb.flush()
    frames = jb.drain()
    assert [f.position for f in frames] == [0, FRAME, 2 * FRAME, 4 * FRAME, 5 * FRAME]
    assert jb.stats.lost == 0


def test_resync_next_after_pause_is_not_loss():
    jb = JitterBuffer(depth_ms=60)
    for i in range(5):
        put(jb, i, i * FRAME, i * 0.02)
    jb.resync_next()
    # The sender went on while we ignored it: 100 packets skipped, 2 s later.
    for i in range(105, 110):
        put(jb, i, i * FRAME, i * 0.02)
    jb.flush()
    frames = jb.drain()
    assert jb.stats.lost == 0 and jb.stats.resyncs == 1
    assert frames[5].position == 4 * FRAME + 101 * FRAME


def test_buffer_bound_forces_release():
    jb = JitterBuffer(depth_ms=10_000, max_packets=8)
    for i in range(20):
        put(jb, i, i * FRAME, 0.0)
    assert jb.buffered < 8
    assert len(jb.drain()) == 13


def test_bad_arguments():
    with pytest.raises(ValueError, match="clock_rate"):
        JitterBuffer(clock_rate=0)
    with pytest.raises(ValueError, match="depth_ms"):
        JitterBuffer(depth_ms=-1)
