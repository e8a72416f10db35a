"""A listener's tap on a live call (core.live.listening): never blocks the ingest, loses its
own oldest audio when it reads too slowly, and ends with the call."""

from __future__ import annotations

import threading
import time

import numpy as np

from core.live.listening import AudioTap


def _pcm(value: int, n: int = 160) -> np.ndarray:
    return np.full(n, value, np.int16)


def test_pieces_of_the_tapped_legs_come_in_order_with_their_arrival() -> None:
    tap = AudioTap(frozenset({"agent"}), 8000)
    tap.offer("agent", 0, _pcm(1), 10.0)
    tap.offer("customer", 0, _pcm(2), 10.0)  # not tapped
    tap.offer("agent", 160, _pcm(3), 10.02)
    first, second = tap.get(0.1), tap.get(0.1)
    assert first is not None and second is not None
    assert (first.position, int(first.pcm[0]), first.arrived_wall) == (0, 1, 10.0)
    assert (second.position, int(second.pcm[0])) == (160, 3)
    assert tap.get(0.01) is None and not tap.closed
    assert tap.samples_sent == 320


def test_a_slow_listener_loses_its_oldest_audio_counted() -> None:
    tap = AudioTap(frozenset({"agent"}), 8000, queue_s=0.1)  # holds 800 samples
    started = time.monotonic()
    for i in range(10):
        tap.offer("agent", i * 160, _pcm(i), 1.0)
    assert time.monotonic() - started < 0.1  # offering never waits for the listener
    first = tap.get(0.1)
    assert first is not None
    assert first.position == 5 * 160 and first.dropped_before == 5 * 160
    assert tap.samples_dropped == 5 * 160
    nxt = tap.get(0.1)
    assert nxt is not None and nxt.dropped_before == 0


def test_closing_wakes_a_waiting_listener_and_drains_what_is_left() -> None:
    tap = AudioTap(frozenset({"agent", "customer"}), 8000)
    tap.offer("customer", 0, _pcm(7), 1.0)
    tap.close()
    tap.offer("agent", 0, _pcm(8), 1.0)  # after the end: ignored
    left = tap.get(0.1)
    assert left is not None and left.speaker == "customer"
    waiting = AudioTap(frozenset({"agent"}), 8000)
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(waiting.get(5.0)))
    reader.start()
    time.sleep(0.05)
    started = time.monotonic()
    waiting.close()
    reader.join(2.0)
    assert got == [None] and time.monotonic() - started < 1.0
    assert tap.get(0.01) is None
