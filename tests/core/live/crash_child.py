"""A live engine killed with SIGKILL in the middle of filing a call (run as a child process).

``python -m tests.core.live.crash_child DATA_DIR`` opens two calls on a live engine whose
ASR is scripted (the model is not under test), feeds one six seconds of a rude call until its
alert is raised and the other 0.6 s, prints the two call ids as JSON, ends the long call and
kills itself with SIGKILL at the first database write of its filing, as a power cut there
would. The short call is still live at the kill.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.asr.types import AsrRequest, AsrResult
from core.audio.samples import SAMPLE_CALLS, render
from core.config import load_settings
from core.live.call import CallSetup
from core.live.engine import LiveEngine
from core.storage import repository

RUDE = next(c for c in SAMPLE_CALLS if c.name == "en-complaint-rude")
RATE_HZ = 8000
LONG_S = 6.0
SHORT_S = 0.6


class ScriptedAsr:
    """Answers every utterance with one rude line."""

    def __init__(self, text: str = "I don't know. That is not my problem.") -> None:
        self.text = text
        self.lock = threading.Lock()
        self.batches: list[list[str]] = []

    def transcribe_batch(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
        with self.lock:
            self.batches.append([r.id for r in requests])
        return [AsrResult(id=r.id, text=self.text, language="en") for r in requests]


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 32768.0, -32768, 32767).astype(np.int16)


def _kill_here(*_: Any, **__: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(data_dir: str) -> int:
    config = load_settings(overrides={"data_dir": data_dir, "rubric": "default-en"}, environ={})
    engine = LiveEngine(config, ScriptedAsr)
    engine.start()
    alerts = engine.hub.subscribe(lambda e: e.kind == "alert")
    agent, customer, _ = render(RUDE)
    agent16, customer16 = _int16(agent), _int16(customer)
    long_call = engine.open_call(CallSetup(source="grpc", agent_id="K1"))
    short_call = engine.open_call(CallSetup(source="grpc", agent_id="K2"))
    step = RATE_HZ // 50
    for i in range(0, int(LONG_S * RATE_HZ), step):
        engine.feed(long_call, "agent", agent16[i : i + step])
        engine.feed(long_call, "customer", customer16[i : i + step])
    for i in range(0, int(SHORT_S * RATE_HZ), step):
        engine.feed(short_call, "agent", agent16[i : i + step])
        engine.feed(short_call, "customer", customer16[i : i + step])
    if alerts.get(30.0) is None:
        print("no alert was raised", file=sys.stderr)
        return 2
    engine.writer.submit(lambda db: None).result()  # what was queued before is written
    for name in ("save_scored_call", "update_call"):
        setattr(repository, name, _kill_here)
    print(json.dumps({"long": long_call.call_id, "short": short_call.call_id}), flush=True)
    engine.end_call(long_call, "bye")
    time.sleep(30.0)
    print("the end-of-call write never came", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
