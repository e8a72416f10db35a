"""Near-missed rubric phrases checked against the audio, and confidences, with the real model.

Audio is cut from the labelled corpora (test fixtures, never shipped). The check must put in
a phrase that was said but misheard, leave out one that was not said, and the live path
must find what offline scoring finds on the same call.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from core.asr.engine import AsrEngine
from core.asr.types import AsrOptions, AsrRequest
from core.audio.wav import read_wav
from core.config import load_settings
from core.live.call import CallSetup
from core.live.engine import LiveEngine
from core.rubric.loading import load_rubric_file
from core.rubric.matching import near_misses
from core.scoring.pipeline import legs_from_recording, score_legs
from core.storage import repository
from core.storage.db import open_db
from kernels.resample import upsample_8k_to_16k

pytestmark = [pytest.mark.model, pytest.mark.corpus]


@pytest.fixture(scope="module")
def engine(base_model_dir: Path) -> AsrEngine:
    return AsrEngine(base_model_dir, AsrOptions())


def _cut(wav: Path, channel: int, start: float, end: float) -> np.ndarray:
    rec = read_wav(wav)
    x = np.ascontiguousarray(rec.channels[channel][int(start * 8000) : int(end * 8000)])
    return upsample_8k_to_16k(x.astype(np.float32))


def _event(corpus: Path, call: str, item: str) -> dict:
    labels = json.loads((corpus / f"{call}.json").read_text(encoding="utf-8"))
    return next(e for e in labels["events"] if e["item_id"] == item)


def test_a_said_phrase_that_was_misheard_is_put_in(engine: AsrEngine, corpus_b_dir: Path) -> None:
    # The agent says 不知道 (a forbidden phrase); the model writes 不知等.
    ev = _event(corpus_b_dir, "ho031", "forbidden_words")
    audio = _cut(corpus_b_dir / "ho031.wav", 0, ev["start"], ev["end"])
    finder = functools.partial(near_misses, phrases=("不知道", "不清楚"), language="zh")
    plain = engine.transcribe_batch([AsrRequest("0", audio, "zh")])[0]
    checked = engine.transcribe_batch([AsrRequest("0", audio, "zh", candidates=finder)])[0]
    assert "不知道" not in plain.text and near_misses(plain.text, ["不知道"]), plain.text
    assert "不知道" in checked.text, checked
    assert checked.decoded_text == plain.text
    accepted = [c for c in checked.checks if c.accepted]
    assert [c.phrase for c in accepted] == ["不知道"]
    assert checked.text[accepted[0].at : accepted[0].at + 3] == "不知道"
    assert -engine.options.verify_margin <= accepted[0].gain


def test_a_phrase_that_was_not_said_stays_out(engine: AsrEngine, corpus_b_dir: Path) -> None:
    # The customer says 还没消息 ("no news yet"); 消协 (the consumer council) is a near miss
    # by sound, and the audio must not make it so.
    labels = json.loads((corpus_b_dir / "ho001.json").read_text(encoding="utf-8"))
    line = next(u for u in labels["transcript"] if "还没消息" in u["text"])
    audio = _cut(corpus_b_dir / "ho001.wav", 1, line["start"], line["end"])
    finder = functools.partial(near_misses, phrases=("消协", "我要投诉"), language="zh")
    result = engine.transcribe_batch([AsrRequest("0", audio, "zh", candidates=finder)])[0]
    assert "消息" in result.text and "消协" not in result.text, result
    assert result.decoded_text is None
    assert result.checks and not any(c.accepted for c in result.checks)
    assert all(c.gain < -engine.options.verify_margin for c in result.checks)


def test_checks_off_leave_the_text_as_decoded(base_model_dir: Path, corpus_b_dir: Path) -> None:
    off = AsrEngine(base_model_dir, AsrOptions(verify_margin=0.0))
    ev = _event(corpus_b_dir, "ho031", "forbidden_words")
    audio = _cut(corpus_b_dir / "ho031.wav", 0, ev["start"], ev["end"])
    finder = functools.partial(near_misses, phrases=("不知道",), language="zh")
    result = off.transcribe_batch([AsrRequest("0", audio, "zh", candidates=finder)])[0]
    assert "不知道" not in result.text and not result.checks


def test_a_clean_line_is_surer_than_a_noisy_misheard_one(
    engine: AsrEngine, corpus_dir: Path
) -> None:
    labels = json.loads((corpus_dir / "dev001.json").read_text(encoding="utf-8"))
    line = max((u for u in labels["transcript"] if u["speaker"] == "agent"),
               key=lambda u: u["end"] - u["start"])  # fmt: skip
    clean = _cut(corpus_dir / "dev001.wav", 0, line["start"], line["end"])
    rng = np.random.default_rng(7)
    rms = float(np.sqrt(np.mean(clean**2)))
    noisy = (clean + rng.normal(0.0, rms * 1.4, clean.shape)).astype(np.float32)
    a, b = engine.transcribe_batch([AsrRequest("c", clean, "zh"), AsrRequest("n", noisy, "zh")])
    assert np.exp(a.avg_logprob) > np.exp(b.avg_logprob) + 0.1, (a, b)


def test_live_and_offline_find_the_same_on_the_same_call(
    tmp_path: Path, engine: AsrEngine, model_data_dir: Path, corpus_b_dir: Path
) -> None:
    rubric_path = corpus_b_dir / "rubric.yaml"
    rec = read_wav(corpus_b_dir / "ho031.wav")
    offline = score_legs(engine, load_rubric_file(rubric_path), legs_from_recording(rec))
    config = load_settings(overrides={"data_dir": str(tmp_path), "rubric": str(rubric_path)},
                           environ={})  # fmt: skip
    live = LiveEngine(config, lambda: engine)
    live.start()
    try:
        call = live.open_call(CallSetup(source="grpc", agent_id="A03"))
        pcm = [np.clip(ch * 32768.0, -32768, 32767).astype(np.int16) for ch in rec.channels]
        for i in range(0, len(pcm[0]), 1600):
            live.feed(call, "agent", pcm[0][i : i + 1600])
            live.feed(call, "customer", pcm[1][i : i + 1600])
        live.end_call(call, "end")
        assert live.wait_calls(300), live.counters
    finally:
        live.shutdown(10)
    stored = repository.get_call(open_db(tmp_path / "callqa.db"), call.call_id)
    assert stored is not None and stored["status"] == "scored", stored

    def key(item: str, start: float) -> tuple[str, int]:
        return item, round(start)

    found_live = sorted(key(f["item_id"], f["start_s"]) for f in stored["findings"])
    found_offline = sorted(key(f.item_id, f.start) for f in offline.result.findings)
    assert found_live == found_offline
    # the misheard forbidden phrase is found both ways, by the audio check
    forbidden = [f for f in stored["findings"] if f["item_id"] == "forbidden_words"]
    assert forbidden and forbidden[0]["detail"]["match"] == "verified"
    assert 0.0 < forbidden[0]["confidence"] < 1.0
    assert all(f["confidence"] is not None for f in stored["findings"])
