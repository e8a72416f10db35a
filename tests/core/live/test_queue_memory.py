"""The ASR queue under overload: what is spilled to disk is no longer held in memory, and
the parts of utterances of calls that have ended leave the queue.

The model is blocked (a scripted ASR that waits on an event) so that everything queues; the
legs, endpointer, scheduler and spool are the real ones. Memory is measured as the bytes of
audio the queued jobs still reach, not as the process's RSS.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FunctionType, MethodType, ModuleType

import numpy as np
import pytest

from core.asr.types import AsrRequest, AsrResult
from core.audio.samples import SAMPLE_CALLS, render
from core.config import load_settings
from core.live.call import CallSetup, LiveCall
from core.live.engine import LiveEngine
from core.live.scheduler import PRIORITY_PARTIAL, AsrScheduler

RUDE = next(c for c in SAMPLE_CALLS if c.name == "en-complaint-rude")
MEMORY_S = 8.0
BYTES_PER_S = 16000 * 4  # float32 at 16 kHz


class BlockedAsr:
    """Holds every batch until released, then answers each utterance with one line."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def transcribe_batch(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
        self.release.wait(60)
        return [AsrResult(id=r.id, text="hello there", language="en") for r in requests]


def retained_audio_bytes(scheduler: AsrScheduler) -> int:
    """Bytes of the numpy arrays the queued jobs reach (their audio and their context), not
    going into the calls they belong to or the callbacks."""
    seen: set[int] = set()
    total = 0
    stack: list[object] = [item[-1] for item in list(scheduler._heap)]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            total += obj.nbytes
            continue
        if isinstance(obj, LiveCall | type | ModuleType | FunctionType | MethodType):
            continue
        stack.extend(gc.get_referents(obj))
    return total


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 32768.0, -32768, 32767).astype(np.int16)


def test_the_queue_holds_no_more_audio_in_memory_than_the_setting(tmp_path: Path) -> None:
    config = load_settings(overrides={"data_dir": str(tmp_path), "rubric": "default-en"},
                           environ={}).replace(asr_batch_size=1,
                                               asr_queue_memory_s=MEMORY_S)  # fmt: skip
    asr = BlockedAsr()
    engine = LiveEngine(config, lambda: asr)  # type: ignore[arg-type]
    engine.start()
    agent, customer, _ = render(RUDE)
    agent16, customer16 = _int16(agent), _int16(customer)
    try:
        calls = [engine.open_call(CallSetup(source="grpc", agent_id=f"M{n}")) for n in range(2)]
        for call in calls:
            for i in range(0, len(agent16), 800):
                engine.feed(call, "agent", agent16[i : i + 800])
                engine.feed(call, "customer", customer16[i : i + 800])
        sched = engine.scheduler
        queued_s = sched.backlog_audio_s
        assert sched.stats.spooled > 10 and queued_s > 4 * MEMORY_S
        retained = retained_audio_bytes(sched)
        # Whatever went to disk is let go of: memory follows asr_queue_memory_s.
        assert 0 < retained <= MEMORY_S * BYTES_PER_S, (retained, queued_s)
        # A second name for every spilled file shows what stays on the disk once it is gone.
        links = tmp_path / "links"
        links.mkdir()
        for spilled in (tmp_path / "spool" / "asr-queue").glob("*.f32"):
            os.link(spilled, links / spilled.name)
        assert any(np.fromfile(f, np.float32).any() for f in links.iterdir())

        parts = [j for *_, j in sched._heap if j.priority == PRIORITY_PARTIAL]
        assert parts, "the long turns of the call were not handed out in parts"
        for call in calls:
            engine.end_call(call, "bye")
        # The parts of utterances of ended calls no longer count in the backlog.
        left = [j for *_, j in sched._heap if j.priority == PRIORITY_PARTIAL]
        assert left == []
        assert sched.backlog == len(sched._heap) + 1  # the finished ones, and one in flight
        assert sched.backlog_audio_s == pytest.approx(
            sum(j.audio_s for *_, j in sched._heap), abs=1e-6
        )
        asr.release.set()
        assert engine.wait_calls(60), engine.counters
    finally:
        asr.release.set()
        engine.shutdown(10)
    assert not list((tmp_path / "spool" / "asr-queue").glob("*.f32"))
    # Each was zeroed before it was deleted (read by a worker, or dropped as a stale part).
    assert not any(np.fromfile(f, np.float32).any() for f in links.iterdir())
