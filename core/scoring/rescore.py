"""Scoring a stored call again with another rubric, without transcribing it again.

The transcript is stored with every call; the voice timelines (`core.storage.timelines`)
with every call scored since they were kept. For a call stored before, `derive_timelines`
computes them once from its recording with the pipeline's own segmentation (the same VAD,
levels and pitch over the same channels), which gives the voiced segments the call was
scored from; the caller keeps them (the admin web in a cache of its own, since it must not
write the calls database).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.audio.segmentation import MAX_UTTERANCE_S, MIN_SILENCE_S
from core.audio.wav import read_wav
from core.calls import CallResult, Speaker
from core.rubric.engine import evaluate
from core.rubric.schema import Rubric
from core.scoring.pipeline import legs_from_recording, segment_legs
from core.storage.evidence import StoredCall, evidence_of
from core.storage.timelines import CallTimelines


class NoRecordingError(ValueError):
    """The call has no timelines stored and its recording cannot be read."""


def recording_legs_of(meta: dict[str, Any]) -> tuple[str, Speaker]:
    """(agent channel, speaker of a mono file) as the call was scored: from its meta."""
    agent_channel = "right" if meta.get("agent_channel") == "right" else "left"
    mono: Speaker = "customer" if meta.get("mono_speaker") == "customer" else "agent"
    return agent_channel, mono


def derive_timelines(path: Path | str, meta: dict[str, Any], language: str) -> CallTimelines:
    """The voice timelines of a recorded call, computed from its audio as scoring does."""
    p = Path(path)
    if not p.is_file():
        raise NoRecordingError(f"the recording {p} is not there")
    try:
        recording = read_wav(p)
    except (OSError, ValueError) as exc:
        raise NoRecordingError(f"the recording {p} cannot be read: {exc}") from exc
    agent_channel, mono = recording_legs_of(meta)
    legs = legs_from_recording(recording, agent_channel=agent_channel, mono_speaker=mono)
    # The voiced segments and frame levels do not depend on the endpointer's settings.
    _, activity = segment_legs(legs, min_silence_s=MIN_SILENCE_S, max_utterance_s=MAX_UTTERANCE_S)
    duration = max(len(leg.audio) / leg.sample_rate for leg in legs)
    return CallTimelines(duration_s=duration, language=language, activity=activity)


def timelines_for(call: StoredCall) -> CallTimelines:
    """The call's stored timelines, else those derived from its recording."""
    if call.timelines is not None:
        return call.timelines
    if not call.recording_path:
        raise NoRecordingError(f"call {call.id} has no recording")
    return derive_timelines(call.recording_path, call.meta, call.language or "zh")


def rescore(rubric: Rubric, call: StoredCall, tl: CallTimelines | None = None,
            *, rubric_version: int | None = None) -> CallResult:
    """`call` scored with `rubric` on its stored transcript and `tl` (else its own
    timelines; without any, on the utterance spans, see `evidence_of`)."""
    return evaluate(rubric, evidence_of(call, tl), rubric_version=rubric_version)
