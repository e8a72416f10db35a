"""A live call whose customer reads a card number: the events and rows carry the mask, and
the spool recording is silenced where it was said as soon as the line is transcribed, before
the call ends. The ASR is scripted (it answers every customer line with the number); the
legs, recorder, rules thread, writer and SQLite are the real ones."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.asr.types import AsrRequest, AsrResult
from core.audio.samples import SAMPLE_CALLS, render
from core.audio.wav import read_wav
from core.config import load_settings
from core.live.call import CallSetup
from core.live.engine import LiveEngine
from core.live.events import TranscriptLine
from core.storage import repository
from core.storage.db import open_db

SAID = "卡号是四一一一，一一一一，一一一一，一一一一"
CALL = next(c for c in SAMPLE_CALLS if c.name == "en-complaint-rude")


class CardAsr:
    def transcribe_batch(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
        return [AsrResult(id=r.id, text=SAID if "/customer/" in r.id else "您好",
                          language="zh") for r in requests]  # fmt: skip


def test_live_card_number_masked_and_silenced_before_the_end(tmp_path: Path) -> None:
    config = load_settings(overrides={"data_dir": str(tmp_path), "rubric": "default-zh"},
                           environ={})  # fmt: skip
    engine = LiveEngine(config, lambda: CardAsr())  # type: ignore[arg-type,return-value]
    engine.start()
    agent, customer, _ = render(CALL)
    pcm = [np.clip(x * 32768.0, -32768, 32767).astype(np.int16) for x in (agent, customer)]
    try:
        call = engine.open_call(CallSetup(source="grpc", agent_id="R1"), subscribe=True)
        for i in range(0, len(pcm[0]), 800):
            engine.feed(call, "agent", pcm[0][i : i + 800])
            engine.feed(call, "customer", pcm[1][i : i + 800])
        lines: list[TranscriptLine] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
                not ln.partial and ln.utterance.speaker == "customer" for ln in lines):
            event = call.subscription.get(timeout=1.0)
            if event is not None and event.kind == "transcript":
                lines.append(event.data)
        said = [ln.utterance for ln in lines if ln.utterance.speaker == "customer"
                and not ln.partial]  # fmt: skip
        assert said, lines
        assert all("一一一一" not in ln.utterance.text for ln in lines), lines
        # Still live: the spool already holds silence where the number was said (read past
        # its header, whose sizes the recorder rewrites once a second).
        spool = np.fromfile(call.recording_path, dtype="<i2", offset=44).reshape(-1, 2)[:, 1]
        first = said[0]
        region = spool[int(first.start * 8000) : int(first.end * 8000)]
        assert len(region) > 800 and not region.any()
        assert np.abs(pcm[1][int(first.start * 8000) : int(first.end * 8000)]).max() > 1000
        engine.end_call(call, "bye")
        assert engine.wait_calls(30), engine.counters
    finally:
        engine.shutdown(10)
    db = open_db(config.db_path)
    row = repository.get_call(db, call.call_id)
    assert row is not None
    texts = [u["text"] for u in row["utterances"] if u["speaker"] == "customer"]
    assert texts and all(t == "卡号是[卡号]" for t in texts), texts
    assert row["meta"]["redaction"]["kinds"] == ["card"]
    filed = read_wav(row["recording_path"]).channels[1]
    assert not filed[int(first.start * 8000) : int(first.end * 8000)].any()
