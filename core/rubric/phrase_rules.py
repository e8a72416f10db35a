"""Rules over what is said: forbidden, required and alert phrases, trigger/response, fillers.

Each rule is a pure function of (item, evidence, metrics) -> findings, so it can be run
again on a growing evidence while the call goes on; what only the end of the call can
decide waits for `evidence.ended`.
"""

from __future__ import annotations

from collections import Counter

from core.calls import CallEvidence, Finding
from core.rubric.base import (
    PhraseHit,
    Turn,
    make_finding,
    order,
    phrase_hits,
    turns,
    utterance_detail,
)
from core.rubric.confidence import (
    absence_confidence,
    margin_confidence,
    mean_line_confidence,
    phrase_confidence,
)
from core.rubric.fillers import count_fillers
from core.rubric.metrics import CallMetrics
from core.rubric.schema import DEFAULT_MATCH, Item


def _phrase_findings(
    item: Item, evidence: CallEvidence, *, alert: bool | None = None
) -> list[Finding]:
    out = []
    mode = item.match or DEFAULT_MATCH
    for hit in phrase_hits(evidence, item.speaker or "any", item.phrases, item.match):
        confidence, how = phrase_confidence(hit.utterance, hit.match, mode)
        detail = {"phrase": hit.match.phrase, "match": how,
                  **utterance_detail(evidence, hit.index)}  # fmt: skip
        if hit.match.edits:
            detail["edits"] = hit.match.edits
        out.append(
            make_finding(
                item,
                speaker=hit.utterance.speaker,
                start=hit.start,
                end=hit.end,
                evidence=hit.match.text,
                detail=detail,
                alert=alert,
                confidence=confidence,
            )
        )
    return out


def forbidden_phrase(item: Item, evidence: CallEvidence, metrics: CallMetrics) -> list[Finding]:
    """One finding per occurrence of a phrase; the span is the phrase's estimated time."""
    return _phrase_findings(item, evidence)


def keyword_alert(item: Item, evidence: CallEvidence, metrics: CallMetrics) -> list[Finding]:
    """Like forbidden_phrase, and always an alert; it deducts only `deduct` (0 by default)."""
    return _phrase_findings(item, evidence, alert=True)


def required_phrase(item: Item, evidence: CallEvidence, metrics: CallMetrics) -> list[Finding]:
    """A finding spanning the window when none of the phrases was said inside it.

    A phrase counts when its estimated time overlaps the window (for first_s: it starts
    before first_s; for last_s: it ends after duration - last_s). While the call goes on,
    a first_s window is decided once the call is longer than the window; other windows
    only at the end.
    """
    duration = evidence.duration_s
    window = item.window
    if window is not None and window.first_s is not None:
        lo, hi = 0.0, min(window.first_s, duration)
        if not evidence.ended and duration < window.first_s:
            return []
    elif window is not None and window.last_s is not None:
        lo, hi = max(0.0, duration - window.last_s), duration
        if not evidence.ended:
            return []
    else:
        lo, hi = 0.0, duration
        if not evidence.ended:
            return []
    speaker = item.speaker or "agent"
    for hit in phrase_hits(evidence, speaker, item.phrases, item.match):
        if hit.start < hi and hit.end > lo:
            return []
    said = [
        i
        for i in order(evidence)
        if evidence.utterances[i].start < hi
        and evidence.utterances[i].end > lo
        and (speaker == "any" or evidence.utterances[i].speaker == speaker)
    ]
    detail: dict[str, object] = {
        "missing": list(item.phrases),
        "window": {"start": round(lo, 3), "end": round(hi, 3)},
        "utterances": said,
    }
    searched = [evidence.utterances[i] for i in said]
    return [
        make_finding(
            item,
            speaker=speaker,
            start=lo,
            end=hi,
            evidence="missing: " + ", ".join(item.phrases),
            detail=detail,
            confidence=absence_confidence(searched, item.phrases),
        )
    ]


def trigger_response(item: Item, evidence: CallEvidence, metrics: CallMetrics) -> list[Finding]:
    """After each trigger, the responder must say a response phrase within N of their turns.

    The turns checked are the responder's first `within_turns` turns that begin after the
    trigger utterance begins; a responder utterance already under way when the trigger
    begins (overtalk) is checked too, for phrases said after the trigger began. The finding
    spans the trigger's start to the end of the last turn checked, or to the end of the
    call when it ended before the responder had taken all those turns (while the call goes
    on, such a trigger is still pending). Triggers whose checked turns are the same (several
    trigger utterances in one turn) give one finding, at the first of them.
    """
    trig, resp = item.trigger, item.response
    if trig is None or resp is None:
        return []
    utts = evidence.utterances
    all_turns = turns(evidence)
    out: list[Finding] = []
    seen_first_turns: set[int] = set()
    for hit in _first_hit_per_utterance(
        phrase_hits(evidence, trig.speaker, trig.phrases, item.match)
    ):
        t_utt = hit.utterance
        if t_utt.speaker == resp.speaker:
            continue
        later = [
            (k, t)
            for k, t in enumerate(all_turns)
            if t.speaker == resp.speaker and utts[t.indices[0]].start > t_utt.start
        ]
        checked: list[Turn] = [t for _, t in later[: resp.within_turns]]
        complete = len(checked) == resp.within_turns
        if complete and not evidence.ended:
            # the last checked turn may still grow: it is complete once the other side speaks
            last = checked[-1]
            complete = any(
                utts[i].start > utts[last.indices[-1]].start and utts[i].speaker != resp.speaker
                for i in range(len(utts))
            )
        key = later[0][0] if later else -1
        if key in seen_first_turns:
            continue
        ongoing = [
            i
            for i, u in enumerate(utts)
            if u.speaker == resp.speaker and u.start <= t_utt.start < u.end
        ]
        indices = ongoing + [i for t in checked for i in t.indices]
        answered = any(
            h.end > t_utt.start
            for h in phrase_hits(evidence, resp.speaker, resp.phrases, item.match, indices)
        )
        if answered:
            seen_first_turns.add(key)
            continue
        if not complete and not evidence.ended:
            continue
        seen_first_turns.add(key)
        end = checked[-1].end if complete else evidence.duration_s
        searched = [utts[i] for i in indices]
        trigger_conf, _ = phrase_confidence(t_utt, hit.match, item.match or DEFAULT_MATCH)
        out.append(
            make_finding(
                item,
                speaker=resp.speaker,
                start=t_utt.start,
                end=end,
                evidence=t_utt.text,
                detail={
                    "trigger_phrase": hit.match.phrase,
                    "trigger_speaker": t_utt.speaker,
                    "trigger_start": round(hit.start, 3),
                    "trigger_end": round(hit.end, 3),
                    "utterance": hit.index,
                    "within_turns": resp.within_turns,
                    "turns_checked": [list(t.indices) for t in checked],
                    "missing": list(resp.phrases),
                },
                confidence=round(trigger_conf * absence_confidence(searched, resp.phrases), 3),
            )
        )
    return out


def _first_hit_per_utterance(hits: list[PhraseHit]) -> list[PhraseHit]:
    out: list[PhraseHit] = []
    seen: set[int] = set()
    for h in hits:
        if h.index not in seen:
            seen.add(h.index)
            out.append(h)
    return out


FILLER_MIN_BASIS_S = 60.0  # filler rates are taken over at least this much talk time


def filler_words(item: Item, evidence: CallEvidence, metrics: CallMetrics) -> list[Finding]:
    """Fillers per minute of the speaker's own talk time above `max_per_min` (end of call).

    The rate is taken over the speaker's talk time (at least `FILLER_MIN_BASIS_S`), not the
    call's length, so that an agent who mostly listens is held to the same standard as one
    who talks throughout; the call-time rate is reported beside it. Counting follows
    `core.rubric.fillers.count_fillers`; the finding spans the first to the last utterance
    holding a filler.
    """
    if not evidence.ended or evidence.duration_s <= 0 or item.max_per_min is None:
        return []
    speaker = item.speaker or "agent"
    by_phrase: Counter[str] = Counter()
    holding: list[int] = []
    for i in order(evidence):
        u = evidence.utterances[i]
        if speaker != "any" and u.speaker != speaker:
            continue
        found = count_fillers(u.text, item.phrases, evidence.language)
        if found:
            holding.append(i)
            by_phrase.update(m.phrase for m in found)
    count = sum(by_phrase.values())
    if speaker == "any":
        talk_s = sum(metrics.talk_time_s.values())
    else:
        talk_s = metrics.talk_time_s.get(speaker, 0.0)
    per_min = count * 60.0 / max(talk_s, FILLER_MIN_BASIS_S)
    if per_min <= item.max_per_min or not holding:
        return []
    first, last = evidence.utterances[holding[0]], evidence.utterances[holding[-1]]
    used = [p for p in item.phrases if by_phrase.get(p)]
    return [
        make_finding(
            item,
            speaker=speaker,
            start=first.start,
            end=last.end,
            evidence="、".join(f"{p}×{by_phrase[p]}" for p in used),
            detail={
                "count": count,
                "by_phrase": {p: by_phrase[p] for p in used},
                "per_min_talk": round(per_min, 2),
                "talk_s": round(talk_s, 1),
                "per_min_call": round(count * 60.0 / evidence.duration_s, 2),
                "utterances": holding,
            },
            confidence=round(
                margin_confidence(per_min, item.max_per_min)
                * mean_line_confidence(evidence.utterances[i] for i in holding),
                3,
            ),
        )
    ]
