"""A stop under overload: within the grace period the calls nearest to being done are
finished first, the rest are marked for the next start at once, and no ASR worker is left
inside the model.

A scripted ASR that takes a time in proportion to the audio stands in for Whisper (its speed is what
matters here); the legs, scheduler, rules, writer and SQLite are the real ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.asr.types import AsrRequest, AsrResult
from core.audio.samples import SAMPLE_CALLS, render
from core.config import load_settings
from core.live.call import CallSetup
from core.live.engine import LiveEngine
from core.storage.db import open_db

BILLING = next(c for c in SAMPLE_CALLS if c.name == "en-clean-billing")
RATE_HZ = 8000
CHUNK = RATE_HZ // 10
TIMELINE_S = 12.0
LENGTHS_S = (3.0, 5.0, 8.0, 10.0, 12.0)
EARLIER_S = 4.0
GRACE_S = 2.5


class PacedAsr:
    """Answers each batch, once the gate is open, after a time in proportion to its audio
    (``cost`` seconds per second of audio)."""

    def __init__(self, cost: float) -> None:
        self.cost = cost
        self.gate = threading.Event()
        self.inside = 0
        self.lock = threading.Lock()

    def transcribe_batch(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
        self.gate.wait(60)
        with self.lock:
            self.inside += 1
        time.sleep(self.cost * sum(len(r.audio) for r in requests) / 16000)
        with self.lock:
            self.inside -= 1
        return [AsrResult(id=r.id, text="thank you for calling", language="en") for r in requests]


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 32768.0, -32768, 32767).astype(np.int16)


def test_a_stop_under_overload_finishes_the_calls_nearest_to_done(tmp_path: Path) -> None:
    config = load_settings(overrides={"data_dir": str(tmp_path), "rubric": "default-en"},
                           environ={}).replace(asr_batch_size=1)  # fmt: skip
    asr = PacedAsr(0.25)
    engine = LiveEngine(config, lambda: asr)  # type: ignore[arg-type]
    engine.start()
    agent, customer, _ = render(BILLING)
    agent16, customer16 = _int16(agent), _int16(customer)
    # Calls that started at different times and are all still going at the stop, fed in
    # turns as live lines are; and one that ended a while before the stop.
    calls = [engine.open_call(CallSetup(source="grpc", agent_id=f"S{n}")) for n in range(5)]
    earlier = engine.open_call(CallSetup(source="grpc", agent_id="E1"))
    starts = [int((TIMELINE_S - length) * RATE_HZ) for length in LENGTHS_S]
    for at in range(0, int(TIMELINE_S * RATE_HZ), CHUNK):
        for call, start in zip(calls, starts, strict=True):
            if at >= start:
                i = at - start
                engine.feed(call, "agent", agent16[i : i + CHUNK])
                engine.feed(call, "customer", customer16[i : i + CHUNK])
        if at < EARLIER_S * RATE_HZ:
            engine.feed(earlier, "agent", agent16[at : at + CHUNK])
            engine.feed(earlier, "customer", customer16[at : at + CHUNK])
        elif at == EARLIER_S * RATE_HZ:
            engine.end_call(earlier, "bye")
    engine.end_all()  # the stop: every call ends, their last utterances are queued
    backlog_s = engine.scheduler.backlog_audio_s
    started = time.monotonic()
    asr.gate.set()  # the box was overloaded: nothing was transcribed until now
    left = engine.shutdown(GRACE_S)
    took = time.monotonic() - started
    assert backlog_s * asr.cost > 2 * GRACE_S  # far more work than the grace allows
    assert took < GRACE_S + 15 * asr.cost + 0.5  # one utterance in flight, then the rest is marked
    assert asr.inside == 0  # no worker is left inside the model
    db = open_db(tmp_path / "callqa.db")
    status = {row[0]: row[1] for row in db.execute("SELECT id, status FROM calls")}
    db.close()
    assert status[earlier.call_id] == "scored"
    scored = [n for n, call in enumerate(calls) if status[call.call_id] == "scored"]
    # The calls with the least left to do are finished; the others wait for the next start.
    assert len(scored) >= 2 and scored == list(range(len(scored))), (scored, status)
    assert {status[c.call_id] for c in calls[len(scored) :]} == {"ending"}
    assert sorted(left) == sorted(c.call_id for c in calls[len(scored) :])
