"""The listener's jitter buffer (core.cli.playout) on a clock the test drives."""

from __future__ import annotations

import numpy as np

from core.cli.playout import Frame, PlayoutBuffer

RATE = 8000
N = 160  # one 20 ms frame


def _ramp(start: int, n: int, step: int = 1) -> np.ndarray:
    return ((np.arange(start, start + n) * step) % 30000).astype(np.int16)


def _drain(buf: PlayoutBuffer, now: float, until: float, step: float = 0.005) -> list[Frame]:
    """Ask for frames from `now` to `until`, as a player would."""
    out: list[Frame] = []
    t = now
    while t <= until:
        item = buf.next_frame(t)
        if isinstance(item, Frame):
            out.append(item)
            continue
        if item is None:
            break
        t += min(item, step)
    return out


def test_waits_for_the_target_then_plays_both_legs_in_position_order() -> None:
    buf = PlayoutBuffer(RATE, ("agent", "customer"), target_s=0.1)
    agent, customer = _ramp(0, 4 * N), _ramp(0, 4 * N, step=3)
    # pieces of 2 frames, the customer's second piece before its first
    buf.put("agent", 0, agent[: 2 * N], 100.0, now=0.0)
    buf.put("customer", 2 * N, customer[2 * N :], 100.1, now=0.01)
    buf.put("customer", 0, customer[: 2 * N], 100.0, now=0.02)
    buf.put("agent", 2 * N, agent[2 * N :], 100.1, now=0.03)
    first = buf.next_frame(0.05)
    assert first == 0.05 or (isinstance(first, float) and abs(first - 0.05) < 1e-9)
    buf.finish()
    frames = _drain(buf, 0.1, 1.0)
    pcm = np.concatenate([f.pcm for f in frames])
    assert pcm.shape == (4 * N, 2)
    assert np.array_equal(pcm[:, 0], agent) and np.array_equal(pcm[:, 1], customer)
    assert frames[0].arrived_wall == 100.0 and frames[-1].arrived_wall == 100.1
    assert buf.next_frame(2.0) is None


def test_a_late_leg_is_waited_for_until_its_turn_then_dropped() -> None:
    buf = PlayoutBuffer(RATE, ("agent", "customer"), target_s=0.05)
    buf.put("agent", 0, _ramp(0, 3 * N), 1.0, now=0.0)
    buf.put("customer", 0, _ramp(0, N), 1.0, now=0.0)
    # at 0.05 playback starts: frame 0 is complete, frame 1 waits for the customer
    frame0 = buf.next_frame(0.05)
    assert isinstance(frame0, Frame)
    wait = buf.next_frame(0.05)
    assert isinstance(wait, float) and abs(wait - 0.02) < 1e-9
    # its turn passes: played with silence for the customer
    frame1 = buf.next_frame(0.071)
    assert isinstance(frame1, Frame)
    assert np.array_equal(frame1.pcm[:, 0], _ramp(N, N)) and not frame1.pcm[:, 1].any()
    buf.put("customer", N, _ramp(N, 2 * N), 1.0, now=0.08)  # half of it is too late
    assert buf.late_samples == N
    frame2 = buf.next_frame(0.09)
    assert isinstance(frame2, Frame)
    assert np.array_equal(frame2.pcm[:, 1], _ramp(2 * N, N))


def test_a_pause_plays_silence_without_skipping_audio() -> None:
    buf = PlayoutBuffer(RATE, ("agent",), target_s=0.04)
    buf.put("agent", 0, _ramp(0, N), 1.0, now=0.0)
    frames = _drain(buf, 0.0, 0.2)  # the frame, then silence while nothing comes
    assert isinstance(frames[0], Frame) and frames[0].arrived_wall == 1.0
    silent = [f for f in frames[1:] if f.arrived_wall is None]
    assert silent and buf.silence_frames == len(silent)
    buf.put("agent", N, _ramp(N, N), 1.3, now=0.3)  # it goes on where it stopped
    nxt = buf.next_frame(0.3)
    assert isinstance(nxt, Frame) and np.array_equal(nxt.pcm[:, 0], _ramp(N, N))
    assert buf.late_samples == 0 and buf.skipped_samples == 0


def test_old_audio_is_skipped_to_bound_the_latency() -> None:
    buf = PlayoutBuffer(RATE, ("agent",), target_s=0.1, max_s=0.3)
    buf.put("agent", 0, _ramp(0, 40 * N), 1.0, now=0.0)  # 0.8 s at once
    first = buf.next_frame(0.5)  # the sound card was late to start: 0.5 s after arrival
    assert isinstance(first, Frame)
    assert buf.skipped_samples == 40 * N - 800  # keeps 0.1 s behind the newest audio
    assert np.array_equal(first.pcm[:, 0], _ramp(40 * N - 800, N))


def test_mix_puts_both_legs_in_one_channel() -> None:
    buf = PlayoutBuffer(RATE, ("agent", "customer"), mix=True, target_s=0.0)
    buf.put("agent", 0, np.full(N, 30000, np.int16), 1.0, now=0.0)
    buf.put("customer", 0, np.full(N, 10, np.int16), 1.0, now=0.0)
    frame = buf.next_frame(0.0)
    assert isinstance(frame, Frame) and frame.pcm.shape == (N, 1)
    assert int(frame.pcm[0, 0]) == 30010
    buf2 = PlayoutBuffer(RATE, ("agent", "customer"), mix=True, target_s=0.0)
    buf2.put("agent", 0, np.full(N, 30000, np.int16), 1.0, now=0.0)
    buf2.put("customer", 0, np.full(N, 30000, np.int16), 1.0, now=0.0)
    clipped = buf2.next_frame(0.0)
    assert isinstance(clipped, Frame) and int(clipped.pcm[0, 0]) == 32767
