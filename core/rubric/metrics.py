"""Acoustic and timing metrics of one call, computed from its `CallEvidence`.

What the rules and the report use: talk time per side, silence runs (both legs silent),
overtalk runs (both legs voiced, with who started), and per utterance its speech rate and
its level and pitch relative to the speaker's own median.

Voice activity comes from `CallEvidence.activity` (the VAD's voiced segments per leg); a leg
without activity falls back to its utterance spans. A leg's voiced segments separated by
less than `SPURT_BRIDGE_S` are joined into one talk spurt before overlaps are measured, so
that the VAD's pauses between words do not split one interruption into short pieces.
"""

from __future__ import annotations

import functools
import math
import operator
import statistics
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.calls import SPEAKERS, CallEvidence, Segment, Utterance

SILENCE_REPORT_MIN_S = 3.0  # silence runs at least this long are listed in the metrics
SPURT_BRIDGE_S = 0.25  # voiced segments of one leg closer than this form one talk spurt
MIN_UTTERANCES_FOR_MEDIAN = 3  # fewer utterances: no level/pitch relative to a median
TIE_S = 0.01  # two spurts starting within this of each other started together
_START = operator.attrgetter("start")
RATE_UNITS = {"chars": "characters per minute", "words": "words per minute"}
CHAR_RATE_LANGUAGES = frozenset({"zh", "yue", "cmn", "wuu", "nan", "hak", "ja"})


@dataclass(frozen=True)
class SilenceRun:
    """Both legs silent from `start` to `end`; `after` is who spoke last before it."""

    start: float
    end: float
    after: str | None = None
    resumed_by: str | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class OvertalkRun:
    """Both legs voiced from `start` to `end`.

    `starter` began talking while `other` was talking (its spurt began later), at
    `start`; "both" when the two spurts began together.
    """

    start: float
    end: float
    starter: str
    other: str
    other_start: float

    @property
    def overlap_s(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class UtteranceMetrics:
    """Per utterance: speech time, rate, and level/pitch relative to the speaker's median."""

    index: int
    speaker: str
    start: float
    end: float
    speech_s: float
    units: int
    rate_per_min: float | None
    level_db: float | None
    level_rel_db: float | None
    pitch_hz: float | None
    pitch_rel_st: float | None


@dataclass(frozen=True)
class CallMetrics:
    duration_s: float
    rate_unit: str
    talk_time_s: dict[str, float]
    silence_threshold_s: float
    silence: tuple[SilenceRun, ...]
    overtalk: tuple[OvertalkRun, ...]
    utterances: tuple[UtteranceMetrics, ...]
    median_level_db: dict[str, float | None]
    median_pitch_hz: dict[str, float | None]

    def of(self, speaker: str) -> list[UtteranceMetrics]:
        return [u for u in self.utterances if speaker == "any" or u.speaker == speaker]

    def to_json(self) -> dict[str, Any]:
        def r(x: float | None, nd: int = 3) -> float | None:
            return None if x is None else round(x, nd)

        return {
            "duration_s": r(self.duration_s),
            "talk_time_s": {k: round(v, 3) for k, v in self.talk_time_s.items()},
            "silence_threshold_s": self.silence_threshold_s,
            "silence": [
                {"start": r(s.start), "end": r(s.end), "duration_s": r(s.duration)}
                for s in self.silence
                if s.duration >= self.silence_threshold_s
            ],
            "overtalk": [
                {
                    "start": r(o.start),
                    "end": r(o.end),
                    "overlap_s": r(o.overlap_s),
                    "starter": o.starter,
                }
                for o in self.overtalk
            ],
            "rate_unit": self.rate_unit,
            "median_level_db": {k: r(v, 2) for k, v in self.median_level_db.items()},
            "median_pitch_hz": {k: r(v, 1) for k, v in self.median_pitch_hz.items()},
            "utterances": [
                {
                    "i": u.index,
                    "speaker": u.speaker,
                    "speech_s": r(u.speech_s),
                    "units": u.units,
                    "rate_per_min": r(u.rate_per_min, 1),
                    "level_rel_db": r(u.level_rel_db, 2),
                    "pitch_rel_st": r(u.pitch_rel_st, 2),
                }
                for u in self.utterances
            ],
        }


# ---------------------------------------------------------------- pieces


def rate_unit(language: str) -> str:
    """ "chars" for languages written without spaces (zh, ja), "words" otherwise."""
    return "chars" if language.lower().split("-")[0] in CHAR_RATE_LANGUAGES else "words"


@functools.lru_cache(maxsize=8192)
def speech_units(text: str, language: str) -> int:
    """Characters (CJK characters and digits) or words in `text`, for speech rate (kept for
    texts seen again: the live daemon measures every utterance on each update of a call)."""
    if rate_unit(language) == "chars":
        return sum(1 for c in text if _is_cjk(c) or unicodedata.category(c) == "Nd")
    words = 0
    in_word = False
    for c in text:
        cat = unicodedata.category(c)
        part = cat[0] in "LNM" or (in_word and c in "'’-")
        if part and not in_word:
            words += 1
        in_word = part
    return words


def _is_cjk(c: str) -> bool:
    cp = ord(c)
    return 0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0xF900 <= cp <= 0xFAFF


def speech_time(u: Utterance) -> float:
    """The utterance's own speech time: its voiced time when known, else its duration."""
    if u.voiced_s is not None and u.voiced_s > 0:
        return u.voiced_s
    return max(0.0, u.duration)


def voiced_segments(evidence: CallEvidence, speaker: str) -> list[Segment]:
    """A leg's voiced segments in time order (its utterance spans when no activity is known).

    Kept on the evidence once made (``evidence.voiced_kept``): callers must not change it."""
    kept = evidence.voiced_kept.get(speaker)
    if kept is not None:
        return kept
    leg = evidence.activity.get(speaker)
    if leg is not None:
        segs = [s for s in leg.voiced if s.end > s.start]
    else:
        segs = [Segment(u.start, u.end) for u in evidence.utterances
                if u.speaker == speaker and u.end > u.start]  # fmt: skip
    segs.sort(key=_START)
    evidence.voiced_kept[speaker] = segs
    return segs


def merge(segments: Sequence[Segment], bridge_s: float = 0.0) -> list[Segment]:
    """Union of segments, also joining those separated by at most `bridge_s`."""
    out: list[Segment] = []
    for s in sorted(segments, key=_START):
        if out and s.start <= out[-1].end + bridge_s:
            if s.end > out[-1].end:
                out[-1] = Segment(out[-1].start, s.end)
        else:
            out.append(s)
    return out


def talk_time(evidence: CallEvidence) -> dict[str, float]:
    return {sp: sum(s.duration for s in merge(voiced_segments(evidence, sp))) for sp in SPEAKERS}


def silence_runs(evidence: CallEvidence, min_s: float = 0.0) -> list[SilenceRun]:
    """Stretches of at least `min_s` with neither leg voiced, between two stretches of speech.

    Silence before the first speech is never counted (ringing, connecting). Silence after
    the last speech counts only while the call goes on (`evidence.ended` false): then it is
    dead air in progress; once the call has ended it is the hang-up.
    """
    spans: list[tuple[Segment, str]] = []
    for leg in SPEAKERS:
        spans.extend((s, leg) for s in voiced_segments(evidence, leg))
    spans.sort(key=lambda x: x[0].start)
    runs: list[SilenceRun] = []
    end = -math.inf
    last_speaker: str | None = None
    for seg, sp in spans:
        if end > -math.inf and seg.start - end >= min_s and seg.start > end:
            runs.append(SilenceRun(end, seg.start, last_speaker, sp))
        if seg.end >= end:
            end = seg.end
            last_speaker = sp
    trailing = evidence.duration_s - end
    if not evidence.ended and end > -math.inf and trailing >= min_s and trailing > 0:
        runs.append(SilenceRun(end, evidence.duration_s, last_speaker, None))
    return runs


def overtalk_runs(evidence: CallEvidence) -> list[OvertalkRun]:
    """Every stretch where both legs talk, with who started talking over the other."""
    a_spurts = merge(voiced_segments(evidence, "agent"), SPURT_BRIDGE_S)
    c_spurts = merge(voiced_segments(evidence, "customer"), SPURT_BRIDGE_S)
    runs: list[OvertalkRun] = []
    j = 0
    for a in a_spurts:
        while j < len(c_spurts) and c_spurts[j].end <= a.start:
            j += 1
        k = j
        while k < len(c_spurts) and c_spurts[k].start < a.end:
            c = c_spurts[k]
            start, end = max(a.start, c.start), min(a.end, c.end)
            if end > start:
                if abs(a.start - c.start) <= TIE_S:
                    runs.append(OvertalkRun(start, end, "both", "both", c.start))
                elif a.start > c.start:
                    runs.append(OvertalkRun(start, end, "agent", "customer", c.start))
                else:
                    runs.append(OvertalkRun(start, end, "customer", "agent", a.start))
            k += 1
    runs.sort(key=lambda r: r.start)
    return runs


def _median(values: list[float]) -> float | None:
    if len(values) < MIN_UTTERANCES_FOR_MEDIAN:
        return None
    return float(statistics.median(values))


def utterance_metrics(
    evidence: CallEvidence,
) -> tuple[list[UtteranceMetrics], dict[str, float | None], dict[str, float | None]]:
    """Per-utterance metrics, and each speaker's median level (dBFS) and pitch (Hz)."""
    lang = evidence.language
    med_level: dict[str, float | None] = {}
    med_pitch: dict[str, float | None] = {}
    for sp in SPEAKERS:
        utts = [u for u in evidence.utterances if u.speaker == sp]
        med_level[sp] = _median([u.level_db for u in utts if u.level_db is not None])
        med_pitch[sp] = _median([u.pitch_hz for u in utts if u.pitch_hz])
    out = []
    for i, u in enumerate(evidence.utterances):
        speech = speech_time(u)
        units = speech_units(u.text, lang)
        rate = units * 60.0 / speech if speech > 0 else None
        ml = med_level.get(u.speaker)
        mp = med_pitch.get(u.speaker)
        level_rel = u.level_db - ml if u.level_db is not None and ml is not None else None
        pitch_rel = 12.0 * math.log2(u.pitch_hz / mp) if u.pitch_hz and mp else None
        out.append(
            UtteranceMetrics(
                index=i,
                speaker=u.speaker,
                start=u.start,
                end=u.end,
                speech_s=speech,
                units=units,
                rate_per_min=rate,
                level_db=u.level_db,
                level_rel_db=level_rel,
                pitch_hz=u.pitch_hz,
                pitch_rel_st=pitch_rel,
            )
        )
    return out, med_level, med_pitch


def compute_metrics(
    evidence: CallEvidence, *, silence_min_s: float = SILENCE_REPORT_MIN_S,
    utterances: bool = True,
) -> CallMetrics:  # fmt: skip
    """All metrics of the call; silence runs shorter than `silence_min_s` are not reported
    by `to_json` (the rules ask `silence_runs` with their own threshold).

    ``utterances=False`` leaves out the per-utterance metrics and the speakers' medians
    (empty, None): for a check of the kinds that read only the timelines (silence,
    overtalk), which the live daemon runs each time a leg's timeline grows."""
    if utterances:
        utts, med_level, med_pitch = utterance_metrics(evidence)
    else:
        utts, med_level, med_pitch = [], dict.fromkeys(SPEAKERS), dict.fromkeys(SPEAKERS)
    return CallMetrics(
        duration_s=evidence.duration_s,
        rate_unit=rate_unit(evidence.language),
        talk_time_s=talk_time(evidence),
        silence_threshold_s=silence_min_s,
        silence=tuple(silence_runs(evidence)),
        overtalk=tuple(overtalk_runs(evidence)),
        utterances=tuple(utts),
        median_level_db=med_level,
        median_pitch_hz=med_pitch,
    )
