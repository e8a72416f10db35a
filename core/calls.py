"""The data a scored call is made of: utterances, voice activity, findings, results.

These plain dataclasses are the contract between the stages of the pipeline
(segmentation -> ASR -> metrics -> rubric engine -> storage) and the JSON output
described in RUBRIC.md ("Findings"). Times are seconds from the start of the call.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np

Speaker = Literal["agent", "customer"]
SPEAKERS: tuple[Speaker, Speaker] = ("agent", "customer")


@dataclass(frozen=True)
class Segment:
    """A stretch of time on one leg, e.g. a run of voiced frames."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def asr_confidence(avg_logprob: float | None) -> float | None:
    """A line's ASR confidence, 0..1: exp of its average token log-probability."""
    return None if avg_logprob is None else min(1.0, math.exp(avg_logprob))


@dataclass(frozen=True)
class PhraseCheck:
    """A near-missed rubric phrase checked against the audio of its utterance.

    `heard` is what was decoded at [start, end) of the decoded text; `gain` the
    log-probability (nats, summed over the utterance's tokens) of the text with the phrase
    put in, minus that of the decoded text, both scored by the model on the same audio
    (forced decoding). `accepted` when the gain is within the engine's verify margin; an
    accepted phrase stands at `at` in the utterance's final text.
    """

    phrase: str
    heard: str
    start: int
    end: int
    gain: float
    accepted: bool
    at: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "phrase": self.phrase,
            "heard": self.heard,
            "gain": round(self.gain, 2),
            "accepted": self.accepted,
        }
        if self.at is not None:
            out["at"] = self.at
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PhraseCheck:
        return cls(
            phrase=str(data["phrase"]), heard=str(data["heard"]), start=0, end=0,
            gain=float(data["gain"]), accepted=bool(data["accepted"]), at=data.get("at"),
        )  # fmt: skip


@dataclass
class Utterance:
    """One utterance of one speaker, with its text and acoustic measurements.

    `level_db` is the active-speech RMS level of the utterance in dBFS (voiced frames only);
    `voiced_s` the voiced time inside the utterance, used for speech rate;
    `pitch_hz` the median F0 of voiced frames (0 when none was found).
    """

    speaker: Speaker
    start: float
    end: float
    text: str = ""
    level_db: float | None = None
    voiced_s: float | None = None
    pitch_hz: float | None = None
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    checks: list[PhraseCheck] = field(default_factory=list)
    """Near-missed rubric phrases checked against the audio (accepted ones are in `text`)."""
    decoded_text: str | None = None
    """The text as decoded, where accepted checks changed `text`."""

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def confidence(self) -> float | None:
        """The recogniser's confidence in the text, 0..1: exp of the average token
        log-probability (None where the text did not come from the recogniser)."""
        return asr_confidence(self.avg_logprob)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "speaker": self.speaker,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "text": self.text,
        }
        if self.confidence is not None:
            out["confidence"] = round(self.confidence, 3)
        if self.checks:
            out["checks"] = [c.to_json() for c in self.checks]
        if self.decoded_text is not None:
            out["decoded_text"] = self.decoded_text
        return out


@dataclass
class LegActivity:
    """Voice activity of one leg: voiced segments, and the per-frame levels they came from.

    The frame arrays are kept where the whole leg was analysed at once (offline scoring),
    None where it was not (live legs keep only what they still need).
    """

    speaker: Speaker
    voiced: list[Segment]
    duration_s: float
    frame_s: float | None = field(default=None, compare=False)
    """Length of one frame of `levels_db` and `pitch_hz`, seconds."""
    levels_db: np.ndarray | None = field(default=None, compare=False, repr=False)
    """RMS level of each frame, dBFS."""
    pitch_hz: np.ndarray | None = field(default=None, compare=False, repr=False)
    """Pitch of each speech-like frame, Hz; 0 where there is none."""


@dataclass
class CallEvidence:
    """Everything the rubric engine looks at for one call."""

    duration_s: float
    language: str
    utterances: list[Utterance]
    activity: dict[str, LegActivity]
    # False while the call is still going on (the live daemon re-evaluates a growing
    # evidence): rules then hold back what only the end of the call can decide.
    ended: bool = True
    voiced_kept: dict[str, list[Segment]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )
    """Each leg's voiced segments in time order, once asked (`core.rubric.metrics.
    voiced_segments`): one check asks several times. An evidence is not changed once made."""

    def of(self, speaker: str) -> list[Utterance]:
        """Utterances of `speaker` ("agent", "customer" or "any"), in start order."""
        if speaker == "any":
            return list(self.utterances)
        return [u for u in self.utterances if u.speaker == speaker]


@dataclass
class Finding:
    """One problem found in a call by one rubric item (see RUBRIC.md, "Findings")."""

    item_id: str
    kind: str
    speaker: str
    start: float
    end: float
    evidence: str
    severity: str
    deduct: float
    name: str = ""
    category: str | None = None
    alert: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    confidence: float | None = None
    """How sure the finding is, 0..1 (core.rubric.confidence); None where not judged."""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["start"] = round(self.start, 3)
        out["end"] = round(self.end, 3)
        if not self.detail:
            out.pop("detail")
        return out


@dataclass
class CallResult:
    """The outcome of scoring one call against one rubric."""

    rubric_id: str
    rubric_version: int | None
    score: float
    passed: bool
    fatal: bool
    findings: list[Finding]
    transcript: list[Utterance]
    metrics: dict[str, Any]
    category_scores: dict[str, float] = field(default_factory=dict)
    # Breakdown of the score: points deducted in all, per category and per item, and the
    # A/B/C counts of the findings that deduct (see core.rubric.scoring.ScoreSheet).
    scoring: dict[str, Any] = field(default_factory=dict)
    # What the call was scored from; storage keeps its voice timelines with the call, so that
    # a draft rubric can score the call again without its audio. None when not known.
    evidence: CallEvidence | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "rubric_id": self.rubric_id,
            "rubric_version": self.rubric_version,
            "score": self.score,
            "passed": self.passed,
            "fatal": self.fatal,
            "category_scores": self.category_scores,
            **({"scoring": self.scoring} if self.scoring else {}),
            "findings": [f.to_json() for f in self.findings],
            "transcript": [u.to_json() for u in self.transcript],
            "metrics": self.metrics,
        }
