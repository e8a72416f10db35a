"""Rules over timing and sound: silence, overtalk, speech rate, volume.

Pure functions of (item, evidence, metrics) -> findings, like the phrase rules.
"""

from __future__ import annotations

from core.calls import CallEvidence, Finding
from core.rubric.base import make_finding, order
from core.rubric.confidence import margin_confidence
from core.rubric.matching import get_matcher, is_cjk_language
from core.rubric.metrics import CallMetrics, silence_runs
from core.rubric.schema import Item

# Announcements after which a silence is a hold, not dead air (silence.hold_phrases).
HOLD_PHRASES_ZH = (
    "请稍等",
    "稍等一下",
    "请您稍等",
    "请稍候",
    "请您稍候",
    "请不要挂机",
    "请别挂机",
    "请勿挂机",
)
HOLD_PHRASES_EN = (
    "please hold",
    "hold on",
    "one moment",
    "just a moment",
    "give me a moment",
    "bear with me",
    "put you on hold",
    "hold the line",
)
HOLD_LOOKBACK_S = 1.5  # the hold announcement's utterance ends at most this before the silence


def default_hold_phrases(language: str) -> tuple[str, ...]:
    return HOLD_PHRASES_ZH if is_cjk_language(language) else HOLD_PHRASES_EN


def silence(item: Item, evidence: CallEvidence, metrics: CallMetrics) -> list[Finding]:
    """Both sides silent for at least `min_s`, unless the agent announced a hold just before.

    "Just before": the agent utterance that ends last before the silence begins (no more
    than `HOLD_LOOKBACK_S` earlier) contains a hold phrase. Leading silence is never
    counted; trailing silence only while the call goes on (see `core.rubric.metrics.silence_runs`).
    """
    if item.min_s is None:
        return []
    holds = (
        item.hold_phrases
        if item.hold_phrases is not None
        else default_hold_phrases(evidence.language)
    )
    matcher = get_matcher(tuple(holds), "fuzzy", evidence.language) if holds else None
    utts = evidence.utterances
    out = []
    for run in silence_runs(evidence, item.min_s):
        if matcher is not None:
            before = [
                i
                for i in order(evidence)
                if utts[i].speaker == "agent" and utts[i].end <= run.start + 0.05
            ]
            if before:
                last = utts[before[-1]]
                if run.start - last.end <= HOLD_LOOKBACK_S and matcher.search(last.text):
                    continue
        resumed = [i for i in order(evidence) if utts[i].start >= run.end - 0.05]
        detail: dict[str, object] = {"duration_s": round(run.duration, 3)}
        if run.resumed_by:
            detail["resumed_by"] = run.resumed_by
        if resumed:
            detail["resume_text"] = utts[resumed[0]].text
        out.append(
            make_finding(
                item,
                speaker="any",
                start=run.start,
                end=run.end,
                evidence=f"silence {run.duration:.1f} s",
                detail=detail,
                confidence=margin_confidence(run.duration, item.min_s),
            )
        )
    return out


def overtalk(item: Item, evidence: CallEvidence, metrics: CallMetrics) -> list[Finding]:
    """`speaker` starts talking while the other side talks, both for >= `min_overlap_s`.

    The finding spans the moment the speaker cut in to the end of the overlap.
    """
    if item.min_overlap_s is None:
        return []
    speaker = item.speaker or "agent"
    utts = evidence.utterances
    out = []
    for run in metrics.overtalk:
        if run.starter == "both" or (speaker != "any" and run.starter != speaker):
            continue
        if run.overlap_s < item.min_overlap_s:
            continue
        mine = _utterance_at(evidence, run.starter, run.start)
        other = _utterance_at(evidence, run.other, run.start)
        detail: dict[str, object] = {
            "overlap_s": round(run.overlap_s, 3),
            "other_speaker": run.other,
            "other_start": round(run.other_start, 3),
        }
        if mine is not None:
            detail["utterance"] = mine
        if other is not None:
            detail["other_text"] = utts[other].text
        out.append(
            make_finding(
                item,
                speaker=run.starter,
                start=run.start,
                end=run.end,
                evidence=utts[mine].text if mine is not None else f"overlap {run.overlap_s:.1f} s",
                detail=detail,
                confidence=margin_confidence(run.overlap_s, item.min_overlap_s),
            )
        )
    return out


def _utterance_at(evidence: CallEvidence, speaker: str, t: float) -> int | None:
    """The utterance of `speaker` under way at time `t` (or the nearest one starting after)."""
    best: int | None = None
    best_d = float("inf")
    for i, u in enumerate(evidence.utterances):
        if u.speaker != speaker:
            continue
        if u.start - 0.05 <= t < u.end:
            return i
        d = abs(u.start - t)
        if d < best_d and d <= 1.0:
            best, best_d = i, d
    return best


def speech_rate(item: Item, evidence: CallEvidence, metrics: CallMetrics) -> list[Finding]:
    """Per utterance of >= `min_utterance_s` of speech: rate outside [min, max] per minute."""
    speaker = item.speaker or "agent"
    min_s = item.min_utterance_s or 0.0
    unit = metrics.rate_unit
    out = []
    for um in metrics.of(speaker):
        rate = um.rate_per_min
        if rate is None or um.speech_s < min_s or um.units == 0:
            continue
        too_fast = item.max_per_min is not None and rate > item.max_per_min
        too_slow = item.min_per_min is not None and rate < item.min_per_min
        if not (too_fast or too_slow):
            continue
        u = evidence.utterances[um.index]
        out.append(
            make_finding(
                item,
                speaker=u.speaker,
                start=u.start,
                end=u.end,
                evidence=f"{rate:.0f} {unit}/min ({'fast' if too_fast else 'slow'}): {u.text}",
                detail={
                    "utterance": um.index,
                    "rate_per_min": round(rate, 1),
                    "unit": unit,
                    "units": um.units,
                    "speech_s": round(um.speech_s, 3),
                    "too": "fast" if too_fast else "slow",
                },
                confidence=_rate_confidence(item, rate, too_fast),
            )
        )
    return out


def _rate_confidence(item: Item, rate: float, too_fast: bool) -> float:
    if too_fast and item.max_per_min is not None:
        return margin_confidence(rate, item.max_per_min)
    if item.min_per_min is not None and rate > 0:
        # too slow: how many times slower than the floor, on the same scale as too fast
        return margin_confidence(item.min_per_min / rate * item.min_per_min, item.min_per_min)
    return 1.0


def volume(item: Item, evidence: CallEvidence, metrics: CallMetrics) -> list[Finding]:
    """An utterance at least `rise_db` louder than the speaker's median utterance level.

    The median is over all that speaker's utterances with a level; with fewer than
    `core.rubric.metrics.MIN_UTTERANCES_FOR_MEDIAN` of them there is no median and no finding.
    """
    if item.rise_db is None:
        return []
    speaker = item.speaker or "agent"
    out = []
    for um in metrics.of(speaker):
        if um.level_rel_db is None or um.level_rel_db < item.rise_db:
            continue
        u = evidence.utterances[um.index]
        out.append(
            make_finding(
                item,
                speaker=u.speaker,
                start=u.start,
                end=u.end,
                evidence=f"+{um.level_rel_db:.1f} dB: {u.text}",
                detail={
                    "utterance": um.index,
                    "rise_db": round(um.level_rel_db, 2),
                    "level_db": um.level_db,
                    "median_level_db": metrics.median_level_db.get(u.speaker),
                },
                confidence=margin_confidence(um.level_rel_db, item.rise_db),
            )
        )
    return out
