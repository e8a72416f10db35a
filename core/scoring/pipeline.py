"""Offline scoring of one recorded call: audio -> utterances -> text -> findings -> score.

The same stages the live daemon runs per leg, applied to a whole file: segment each leg with
the streaming VAD endpointer, transcribe all utterances of both legs in batches, evaluate
the rubric, and hand back what storage needs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.asr.types import AsrRequest, CandidateFinder, Transcriber
from core.audio.segmentation import MAX_UTTERANCE_S, MIN_SILENCE_S, segment_leg
from core.audio.wav import Recording
from core.calls import CallEvidence, CallResult, LegActivity, Speaker, Utterance
from core.rubric.engine import evaluate
from core.rubric.phrase_checks import candidate_finder
from core.rubric.redaction import CallRedactor, TimeSpan
from core.rubric.schema import Rubric
from kernels.resample import downsample_16k_to_8k, upsample_8k_to_16k

logger = logging.getLogger(__name__)

ASR_SAMPLE_RATE = 16000
VAD_SAMPLE_RATE = 8000

ProgressFn = Callable[[int, int], None]


@dataclass
class LegInput:
    """One leg of a call: who speaks on it and its audio (float32, [-1, 1])."""

    speaker: Speaker
    audio: np.ndarray
    sample_rate: int


@dataclass
class ScoredCall:
    result: CallResult
    evidence: CallEvidence
    dropped: list[tuple[Utterance, str]] = field(default_factory=list)
    redacted: list[TimeSpan] = field(default_factory=list)
    """Where the numbers masked in the transcript were said (to silence in the recording)."""


def legs_from_recording(
    recording: Recording, *, agent_channel: str = "left", mono_speaker: Speaker | None = None
) -> list[LegInput]:
    """Assign the recording's channels to agent and customer."""
    rate = recording.sample_rate
    if len(recording.channels) == 1:
        if mono_speaker is None:
            raise ValueError(
                "the recording is mono: say whose voice it is with --speaker agent|customer"
            )
        return [LegInput(mono_speaker, recording.channels[0], rate)]
    left, right = recording.channels
    agent, customer = (left, right) if agent_channel == "left" else (right, left)
    return [LegInput("agent", agent, rate), LegInput("customer", customer, rate)]


def _to_8k(audio: np.ndarray, rate: int) -> np.ndarray:
    if rate == VAD_SAMPLE_RATE:
        return audio
    # 16 kHz -> 8 kHz for the VAD only, as the live legs do; ASR keeps the 16 kHz original.
    return downsample_16k_to_8k(np.ascontiguousarray(audio, dtype=np.float32))


def asr_cut(audio: np.ndarray, rate: int, start_s: float, end_s: float) -> np.ndarray:
    """The 16 kHz audio the ASR gets for the span ``start_s``-``end_s`` of a leg at ``rate``.

    8 kHz audio is cut at 8 kHz and the cut alone is upsampled, as a live leg does
    (`core.live.leg.LiveLeg`): a call scored offline from its recording gives the ASR the
    very samples it was given live, so borderline decisions (a phrase check near its
    margin) come out the same both ways. 16 kHz audio is cut as it is.
    """
    if rate == ASR_SAMPLE_RATE:
        s = max(0, int(start_s * ASR_SAMPLE_RATE))
        return audio[s : min(len(audio), int(end_s * ASR_SAMPLE_RATE))]
    a = max(0, round(start_s * VAD_SAMPLE_RATE))
    b = min(len(audio), round(end_s * VAD_SAMPLE_RATE))
    if b <= a:
        return np.zeros(0, dtype=np.float32)
    return upsample_8k_to_16k(np.ascontiguousarray(audio[a:b], dtype=np.float32))


def segment_legs(
    legs: list[LegInput], *, min_silence_s: float, max_utterance_s: float
) -> tuple[list[Utterance], dict[str, LegActivity]]:
    utterances: list[Utterance] = []
    activity: dict[str, LegActivity] = {}
    for leg in legs:
        audio8 = _to_8k(leg.audio, leg.sample_rate)
        utts, act = segment_leg(
            audio8,
            leg.speaker,
            VAD_SAMPLE_RATE,
            min_silence_s=min_silence_s,
            max_utterance_s=max_utterance_s,
        )
        utterances.extend(utts)
        activity[leg.speaker] = act
    utterances.sort(key=lambda u: (u.start, u.speaker))
    return utterances, activity


def transcribe_utterances(
    engine: Transcriber,
    legs: list[LegInput],
    utterances: list[Utterance],
    *,
    language: str,
    batch_size: int,
    progress: ProgressFn | None = None,
    candidates: Mapping[str, CandidateFinder | None] | None = None,
) -> tuple[list[Utterance], list[tuple[Utterance, str]]]:
    """Fill in the text of each utterance; return the kept ones and the dropped ones.

    ``candidates``: per speaker, the near-missed phrases to check against the audio
    (`core.rubric.phrase_checks.candidate_finder`).
    """
    by_speaker = {leg.speaker: leg for leg in legs}
    finders = candidates or {}
    requests = []
    for i, utt in enumerate(utterances):
        leg = by_speaker[utt.speaker]
        audio = asr_cut(leg.audio, leg.sample_rate, utt.start, utt.end)
        requests.append(
            AsrRequest(id=str(i), audio=audio, language=language,
                       candidates=finders.get(utt.speaker))
        )  # fmt: skip
    kept: list[Utterance] = []
    dropped: list[tuple[Utterance, str]] = []
    done = 0
    if batch_size < 1:  # 0: the engine's own batch size
        batch_size = int(getattr(engine, "max_batch_size", 0) or 8)
    for b in range(0, len(requests), batch_size):
        batch = requests[b : b + batch_size]
        for req, res in zip(batch, engine.transcribe_batch(batch), strict=True):
            utt = utterances[int(req.id)]
            utt.avg_logprob = res.avg_logprob
            utt.no_speech_prob = res.no_speech_prob
            if res.dropped_reason or not res.text.strip():
                dropped.append((utt, res.dropped_reason or "empty"))
                continue
            utt.text = res.text
            utt.checks = list(res.checks)
            utt.decoded_text = res.decoded_text
            kept.append(utt)
        done += len(batch)
        if progress is not None:
            progress(done, len(requests))
    return kept, dropped


def score_legs(
    engine: Transcriber,
    rubric: Rubric,
    legs: list[LegInput],
    *,
    rubric_version: int | None = None,
    language: str | None = None,
    min_silence_s: float = MIN_SILENCE_S,
    max_utterance_s: float = MAX_UTTERANCE_S,
    batch_size: int = 8,
    progress: ProgressFn | None = None,
    redactor: CallRedactor | None = None,
) -> ScoredCall:
    """Run segmentation, ASR and the rubric over the legs of one call; with ``redactor``,
    mask the numbers it finds once the rubric has read the text."""
    duration = max(len(leg.audio) / leg.sample_rate for leg in legs)
    lang = language or rubric.language
    utterances, activity = segment_legs(
        legs, min_silence_s=min_silence_s, max_utterance_s=max_utterance_s
    )
    finders: dict[str, CandidateFinder | None] = {
        leg.speaker: candidate_finder(rubric, leg.speaker) for leg in legs
    }
    kept, dropped = transcribe_utterances(
        engine, legs, utterances, language=lang, batch_size=batch_size, progress=progress,
        candidates=finders,
    )  # fmt: skip
    evidence = CallEvidence(duration_s=duration, language=lang, utterances=kept, activity=activity)
    result = evaluate(rubric, evidence, rubric_version=rubric_version)
    if redactor is None or not redactor.enabled:
        return ScoredCall(result=result, evidence=evidence, dropped=dropped)
    result = redactor.result(result)
    dropped = [(redactor.utterance_scrubbed(u), why) for u, why in dropped]
    return ScoredCall(result=result, evidence=result.evidence or evidence, dropped=dropped,
                      redacted=redactor.spans)


def describe_legs(legs: list[LegInput]) -> str:
    return ", ".join(f"{leg.speaker} {len(leg.audio) / leg.sample_rate:.1f} s" for leg in legs)


def recording_suffix(path: Path) -> str:
    return path.suffix.lower() or ".wav"
