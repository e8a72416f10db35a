"""The demo's sample calls: made by espeak-ng and sox, and scored as their scripts say."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.audio.samples import SAMPLE_CALLS, SampleCall, make_samples, render
from core.audio.wav import read_wav
from core.config import load_settings
from core.rubric.defaults import builtin_rubrics
from core.rubric.loading import load_rubric_text
from core.scoring.pipeline import legs_from_recording, score_legs
from core.scoring.recording import get_engine

CALLS = {call.name: call for call in SAMPLE_CALLS}


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("samples")
    paths = make_samples(out)
    assert [p.name for p in paths] == [f"{c.name}.wav" for c in SAMPLE_CALLS]
    return out


def test_both_languages_and_a_clean_and_a_bad_call_each() -> None:
    for rubric in ("default-en", "default-zh"):
        calls = [c for c in SAMPLE_CALLS if c.rubric == rubric]
        assert any(not c.expected_items for c in calls), rubric
        assert any(c.expected_items for c in calls), rubric


@pytest.mark.parametrize("name", CALLS)
def test_expected_items_are_items_of_the_rubric(name: str) -> None:
    call = CALLS[name]
    rubric = load_rubric_text(builtin_rubrics()[call.rubric])
    assert rubric.language == call.language
    assert set(call.expected_items) <= {item.id for item in rubric.items}
    assert len(set(call.expected_items)) == len(call.expected_items)
    voices = {call.voice_of(line).name for line in call.lines}
    if call.language == "zh":
        # the plain cmn voice reads the pinyin it makes as English; see core.audio.samples
        assert all(v.startswith("cmn-latn-pinyin") for v in voices), voices
    else:
        assert all(v.startswith("en") for v in voices), voices


def test_files_and_their_json(sample_dir: Path) -> None:
    for call in SAMPLE_CALLS:
        recording = read_wav(sample_dir / f"{call.name}.wav")
        assert recording.sample_rate == 8000 and len(recording.channels) == 2
        assert recording.encoding == "mulaw"
        meta = json.loads((sample_dir / f"{call.name}.json").read_text(encoding="utf-8"))
        assert meta["rubric"] == call.rubric and meta["language"] == call.language
        assert meta["expected_items"] == list(call.expected_items)
        assert [row["text"] for row in meta["script"]] == [line.text for line in call.lines]
        assert meta["script"][-1]["end"] < recording.duration_s


def test_render_is_repeatable() -> None:
    """The same script always gives the same samples (sox must not dither at random)."""
    call = CALLS["zh-complaint-rude"]
    first, second = render(call), render(call)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


def _seconds(row: dict[str, object], key: str) -> float:
    value = row[key]
    assert isinstance(value, float)
    return value


def test_talking_over_keeps_the_next_line_after_both() -> None:
    """A negative gap starts a line before the other side ends; the next line waits for both."""
    call = CALLS["zh-complaint-rude"]
    script = render(call)[2]
    ends = [_seconds(row, "end") for row in script]
    cut_in = [i for i, line in enumerate(call.lines) if line.gap_s < 0]
    assert cut_in, "the rude Mandarin call has the agent cut in"
    for i in range(1, len(script)):
        start = _seconds(script[i], "start")
        if i in cut_in:
            assert start < ends[i - 1]
        else:
            assert start == pytest.approx(max(ends[:i]) + call.lines[i].gap_s, abs=2e-3)


@pytest.mark.model
@pytest.mark.parametrize("name", CALLS)
def test_pipeline_finds_exactly_the_expected_items(
    name: str, sample_dir: Path, model_data_dir: Path
) -> None:
    """Render, read back as `callqa demo` does, score offline with the real model."""
    call: SampleCall = CALLS[name]
    config = load_settings(None, {"data_dir": str(model_data_dir)}, environ={})
    recording = read_wav(sample_dir / f"{call.name}.wav")
    scored = score_legs(
        get_engine(config),
        load_rubric_text(builtin_rubrics()[call.rubric]),
        legs_from_recording(recording, agent_channel="left"),
        min_silence_s=config.min_silence_s,
        max_utterance_s=config.max_utterance_s,
        batch_size=config.asr_batch_size,
    )
    found = {f.item_id for f in scored.result.findings}
    transcript = " / ".join(f"{u.speaker}: {u.text}" for u in scored.evidence.utterances)
    assert found == set(call.expected_items), transcript
