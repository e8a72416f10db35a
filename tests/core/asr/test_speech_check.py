"""The speech check with the real Silero model on onnxruntime: labelled corpus speech passes,
generated noise, music, tones and DTMF are dropped, a batch reads each utterance as if it
were alone, and the engine drops what the check finds no speech in."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from core.asr import silero_model
from core.asr.engine import AsrEngine
from core.asr.silero_model import silero_model_path
from core.asr.speech_check import WINDOW_S, SpeechCheck
from core.asr.types import AsrOptions, AsrRequest
from core.audio.line_sounds import line_sounds
from core.audio.wav import read_wav
from kernels.resample import upsample_8k_to_16k

CALLS = ("dev001", "dev004")  # dev001 has background noise, dev004 none


def to_16k(audio8: np.ndarray) -> np.ndarray:
    return upsample_8k_to_16k(np.ascontiguousarray(audio8, dtype=np.float32))


@pytest.fixture(scope="module")
def check() -> SpeechCheck:
    return SpeechCheck(silero_model_path())


@pytest.fixture(scope="module")
def speech(corpus_dir: Path) -> list[np.ndarray]:
    """Labelled utterances of both speakers, the shortest of each call among them."""
    cuts = []
    for call in CALLS:
        labels = json.loads((corpus_dir / f"{call}.json").read_text(encoding="utf-8"))
        rec = read_wav(corpus_dir / f"{call}.wav")
        channels = dict(zip(("agent", "customer"), rec.channels, strict=True))
        spans = sorted(labels["transcript"], key=lambda u: u["end"] - u["start"])
        for u in spans[:2] + spans[-1:] + labels["transcript"][:3]:
            a = channels[u["speaker"]]
            cuts.append(to_16k(a[int(u["start"] * 8000) : int(u["end"] * 8000)]))
    return cuts


@pytest.fixture(scope="module")
def not_speech() -> dict[str, np.ndarray]:
    return {name: to_16k(audio) for name, audio in line_sounds(2.0).items()}


@pytest.mark.corpus
def test_speech_passes_and_line_sounds_are_dropped(
    check: SpeechCheck, speech: list[np.ndarray], not_speech: dict[str, np.ndarray]
) -> None:
    verdicts = check.check([*speech, *not_speech.values()])
    heard = verdicts[: len(speech)]
    assert all(v.speech for v in heard), [v.speech_s for v in heard]
    dropped = dict(zip(not_speech, verdicts[len(speech) :], strict=True))
    assert not any(v.speech for v in dropped.values()), {
        name: v.speech_s for name, v in dropped.items() if v.speech
    }
    # Speech is decided within its first second; what is dropped was read to its end.
    assert all(v.read_s <= 1.0 for v in heard)
    for name, verdict in dropped.items():
        assert verdict.read_s == pytest.approx(len(not_speech[name]) / 16000, abs=WINDOW_S)
    stats = check.stats
    assert stats.dropped == len(not_speech) and stats.utterances == len(verdicts)
    assert stats.dropped_audio_s == pytest.approx(sum(len(a) for a in not_speech.values()) / 16000)


@pytest.mark.corpus
def test_a_batch_reads_each_utterance_as_if_alone(
    check: SpeechCheck, speech: list[np.ndarray], not_speech: dict[str, np.ndarray]
) -> None:
    utterances = [*speech[:5], *not_speech.values()]  # lengths from 0.5 s to several
    together = check.probabilities(utterances)
    for audio, probs in zip(utterances, together, strict=True):
        alone = check.probabilities([audio])[0]
        assert len(probs) == len(alone) == -(-(len(audio) // 2) // 256)
        np.testing.assert_allclose(probs, alone, atol=1e-5)
    assert [v.speech for v in check.check(utterances)] == [
        check.check([a])[0].speech for a in utterances
    ]
    # The state is the utterance's own: reversing the batch changes nothing.
    backwards = check.probabilities(utterances[::-1])[::-1]
    for a, b in zip(together, backwards, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_the_threshold_decides(check: SpeechCheck, not_speech: dict[str, np.ndarray]) -> None:
    music = not_speech["hold_music"]
    assert not check.check([music])[0].speech
    # The lowest threshold at which just enough of its windows count as speech.
    edge = float(np.sort(check.probabilities([music])[0])[-check.min_windows])
    assert edge < check.threshold
    assert SpeechCheck(silero_model_path(), threshold=edge).check([music])[0].speech
    assert not SpeechCheck(silero_model_path(), threshold=edge + 1e-4).check([music])[0].speech
    with pytest.raises(ValueError, match="threshold"):
        SpeechCheck(silero_model_path(), threshold=1.0)


@pytest.mark.model
@pytest.mark.corpus
def test_the_engine_drops_what_holds_no_speech(
    base_model_dir: Path, speech: list[np.ndarray], not_speech: dict[str, np.ndarray]
) -> None:
    options = AsrOptions(device="cpu", cpu_threads=2, speech_check=True, beam_size=1)
    engine = AsrEngine(base_model_dir, options)
    assert engine.speech_check is not None and engine.speech_check.provider == (
        "CPUExecutionProvider"
    )
    requests = [
        AsrRequest("speech", speech[-1]),
        AsrRequest("music", not_speech["hold_music"]),
        AsrRequest("dtmf", not_speech["dtmf"]),
    ]
    results = {r.id: r for r in engine.transcribe_batch(requests)}
    assert results["speech"].text and not results["speech"].filtered
    for name in ("music", "dtmf"):
        assert results[name].filtered and results[name].filter_reason == "not_speech"
        assert results[name].text == ""
    assert engine.stats.filtered.get("not_speech") == 2
    assert engine.speech_check.stats.dropped == 2


@pytest.mark.model
def test_without_its_model_the_engine_says_so_and_transcribes_everything(
    base_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setattr(silero_model, "default_model_dir", lambda: tmp_path)
    options = AsrOptions(device="cpu", cpu_threads=2, speech_check=True)
    with caplog.at_level(logging.ERROR, logger="core.asr.engine"):
        engine = AsrEngine(base_model_dir, options)
    assert engine.speech_check is None
    assert "the speech check is off" in caplog.text and "scripts/setup" in caplog.text
