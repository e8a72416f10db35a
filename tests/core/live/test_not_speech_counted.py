"""A live call whose customer leg carries hold music and DTMF: the speech check's drops are
counted for the call (its stored row) and for the box (the engine's counters), and the
agent's speech still reaches the transcript.

The real Silero check decides; a scripted line stands in for Whisper's text of what passes
(Whisper is not under test here). VAD, endpointer, scheduler, rules, writer and SQLite are
the real ones.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.asr.silero_model import silero_model_path
from core.asr.speech_check import SpeechCheck
from core.asr.types import AsrRequest, AsrResult
from core.audio import line_sounds
from core.audio.samples import SAMPLE_CALLS, render
from core.config import load_settings
from core.live.call import CallSetup
from core.live.engine import LiveEngine
from core.storage import repository
from core.storage.db import open_db

RUDE = next(c for c in SAMPLE_CALLS if c.name == "en-complaint-rude")
TEXT = "I don't know. That is not my problem."


class CheckedScriptedAsr:
    """The engine's order of work: the speech check over the batch, then text for the rest."""

    def __init__(self) -> None:
        self.check = SpeechCheck(silero_model_path())
        self.lock = threading.Lock()
        self.dropped_finals = 0

    def transcribe_batch(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
        verdicts = self.check.check([r.audio for r in requests])
        results = []
        for request, verdict in zip(requests, verdicts, strict=True):
            if verdict.speech:
                results.append(AsrResult(id=request.id, text=TEXT, language="en"))
                continue
            with self.lock:
                self.dropped_finals += not request.id.endswith("p")
            results.append(AsrResult(id=request.id, text="", language="en", filtered=True,
                                     filter_reason="not_speech"))  # fmt: skip
        return results


def customer_leg(samples: int) -> np.ndarray:
    """Hold music and DTMF, each followed by a second of silence, for ``samples`` samples."""
    gap = np.zeros(line_sounds.SAMPLE_RATE_HZ, dtype=np.float32)
    pieces = [line_sounds.hold_music(3.0), gap, line_sounds.dtmf("4711#"), gap]
    leg = np.tile(np.concatenate(pieces), samples // sum(len(p) for p in pieces) + 1)
    return leg[:samples]


def test_dropped_utterances_are_counted_per_call_and_for_the_box(tmp_path: Path) -> None:
    agent, _, _ = render(RUDE)
    customer = customer_leg(len(agent))
    config = load_settings(overrides={"data_dir": str(tmp_path), "rubric": "default-en"},
                           environ={})  # fmt: skip
    asr = CheckedScriptedAsr()
    engine = LiveEngine(config, lambda: asr)  # type: ignore[arg-type]
    engine.start()
    try:
        call = engine.open_call(CallSetup(source="grpc", agent_id="A1"))
        for i in range(0, len(agent), 800):
            for speaker, leg in (("agent", agent), ("customer", customer)):
                pcm = np.clip(leg[i : i + 800] * 32768.0, -32768, 32767).astype(np.int16)
                engine.feed(call, speaker, pcm)
        engine.end_call(call, "end")
        assert engine.wait_calls(60), engine.counters
    finally:
        engine.shutdown(10)
    stored = repository.get_call(open_db(tmp_path / "callqa.db"), call.call_id)
    assert stored is not None and stored["status"] == "scored", stored
    counted = stored["meta"]["live"]["not_speech_utterances"]
    assert counted == asr.dropped_finals == engine.counters["not_speech_utterances"] >= 3
    assert stored["meta"]["live"]["dropped_utterances"] >= counted
    speakers = {u["speaker"] for u in stored["utterances"]}
    assert speakers == {"agent"}, stored["utterances"]
