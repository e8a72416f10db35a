"""Helpers shared by the rules: findings, phrase times inside utterances, turns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.calls import CallEvidence, Finding, Utterance
from core.rubric.matching import Match, get_matcher
from core.rubric.schema import DEFAULT_MATCH, Item


@dataclass(frozen=True)
class Turn:
    """A maximal run of consecutive utterances (in start order) of one speaker."""

    speaker: str
    indices: tuple[int, ...]  # into evidence.utterances
    start: float
    end: float


@dataclass(frozen=True)
class PhraseHit:
    """A phrase found in one utterance, with its estimated time."""

    index: int
    utterance: Utterance
    match: Match
    start: float
    end: float


def make_finding(
    item: Item,
    *,
    speaker: str,
    start: float,
    end: float,
    evidence: str,
    detail: dict[str, Any] | None = None,
    alert: bool | None = None,
    confidence: float | None = None,
) -> Finding:
    return Finding(
        item_id=item.id,
        kind=item.kind,
        speaker=speaker,
        start=start,
        end=max(start, end),
        evidence=evidence,
        severity=item.severity,
        deduct=item.deduct,
        name=item.label,
        category=item.category,
        alert=item.alert if alert is None else alert,
        detail=detail or {},
        confidence=confidence,
    )


def order(evidence: CallEvidence) -> list[int]:
    """Indices of the utterances in start order (the evidence is usually sorted already)."""
    utts = evidence.utterances
    return sorted(range(len(utts)), key=lambda i: (utts[i].start, utts[i].end))


def turns(evidence: CallEvidence) -> list[Turn]:
    out: list[Turn] = []
    run: list[int] = []
    utts = evidence.utterances
    for i in order(evidence):
        if run and utts[run[-1]].speaker != utts[i].speaker:
            out.append(_turn(evidence, run))
            run = []
        run.append(i)
    if run:
        out.append(_turn(evidence, run))
    return out


def _turn(evidence: CallEvidence, run: list[int]) -> Turn:
    utts = evidence.utterances
    return Turn(
        speaker=utts[run[0]].speaker,
        indices=tuple(run),
        start=utts[run[0]].start,
        end=max(utts[i].end for i in run),
    )


def phrase_time(u: Utterance, m: Match) -> tuple[float, float]:
    """Where the matched characters fall inside the utterance, by character position."""
    n = max(1, len(u.text))
    dur = max(0.0, u.duration)
    return u.start + dur * m.start / n, u.start + dur * m.end / n


def phrase_hits(
    evidence: CallEvidence,
    speaker: str,
    phrases: tuple[str, ...],
    match: str | None,
    indices: list[int] | None = None,
) -> list[PhraseHit]:
    """Every phrase occurrence in the utterances of `speaker` (or in `indices`)."""
    matcher = get_matcher(phrases, match or DEFAULT_MATCH, evidence.language)
    utts = evidence.utterances
    pool = order(evidence) if indices is None else indices
    hits = []
    for i in pool:
        u = utts[i]
        if speaker != "any" and u.speaker != speaker:
            continue
        for m in matcher.find(u.text):
            start, end = phrase_time(u, m)
            hits.append(PhraseHit(i, u, m, start, end))
    return hits


def utterance_detail(evidence: CallEvidence, index: int) -> dict[str, Any]:
    u = evidence.utterances[index]
    return {
        "utterance": index,
        "utterance_text": u.text,
        "utterance_start": round(u.start, 3),
        "utterance_end": round(u.end, 3),
    }
