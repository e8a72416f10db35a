"""Hand-built call evidence for the rubric engine tests."""

from __future__ import annotations

from core.calls import CallEvidence, LegActivity, Segment, Utterance
from core.rubric.loading import load_rubric_text
from core.rubric.schema import Item

Line = tuple[str, float, float, str]


def utt(speaker: str, start: float, end: float, text: str = "", **kw: object) -> Utterance:
    return Utterance(speaker, start, end, text, **kw)  # type: ignore[arg-type]


def evidence(
    utterances: list[Utterance],
    duration_s: float | None = None,
    language: str = "zh",
    *,
    ended: bool = True,
    activity: dict[str, list[tuple[float, float]]] | None = None,
) -> CallEvidence:
    """Evidence whose voice activity is the utterance spans (or `activity` when given)."""
    dur = duration_s if duration_s is not None else max(u.end for u in utterances) + 1.0
    legs = {}
    for sp in ("agent", "customer"):
        spans = (
            activity[sp]
            if activity is not None and sp in activity
            else [(u.start, u.end) for u in utterances if u.speaker == sp]
        )
        legs[sp] = LegActivity(sp, [Segment(a, b) for a, b in spans], dur)
    return CallEvidence(dur, language, sorted(utterances, key=lambda u: u.start), legs, ended=ended)


def item(yaml_item: str, language: str = "zh") -> Item:
    """One item parsed from the YAML of an items entry (indented as a list element)."""
    text = f"format: 1\nid: t\nlanguage: {language}\npass_score: 60\nitems:\n{yaml_item}"
    return load_rubric_text(text).items[0]
