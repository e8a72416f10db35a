"""The DSP charged on the thread that hosts it: a sample of the blocks, counted in full."""

from __future__ import annotations

import threading
import time

import pytest

from core import stage_cpu
from core.stage_cpu import charge, name_thread

# A pair of stages no code of the daemon charges (it moves DSP off receive threads), so that
# threads left running by other tests in this process cannot add to what is measured.
HOST, STAGE = "grpc", "rules"


def _moved() -> float:
    with stage_cpu._lock:
        return stage_cpu._moved.get((HOST, STAGE), 0.0)


def _charged_on_a_thread(blocks: int, every: int, work: int) -> tuple[float, float]:
    """(CPU seconds the blocks used, CPU seconds moved): ``blocks`` blocks of ``work`` loop
    turns (2,000: about 0.1 ms) under ``charge(STAGE, every)`` on a thread named ``HOST``.
    What is measured around a block also holds the charge's own reads of the clock (a few
    microseconds), which the charge does not count."""
    result: list[float] = []

    def run() -> None:
        name_thread(HOST)
        used = 0.0
        for _ in range(blocks):
            started = time.thread_time()
            with charge(STAGE, every):
                x = 0
                for i in range(work):
                    x += i * i
            used += time.thread_time() - started
        result.append(used)

    before = _moved()
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result[0], _moved() - before


def test_every_block_timed_moves_its_cpu() -> None:
    used, moved = _charged_on_a_thread(200, every=1, work=10_000)  # blocks of 0.5 ms
    assert moved == pytest.approx(used, rel=0.05)


def test_a_sample_of_the_blocks_counts_the_same_on_average() -> None:
    # 4,000 blocks of 0.15 ms, one in 8 timed: the count timed is 500 +- 22, so within 20 %
    # is 4.5 standard deviations.
    used, moved = _charged_on_a_thread(4000, every=8, work=3000)
    assert moved == pytest.approx(used, rel=0.2)
    assert moved > 0
