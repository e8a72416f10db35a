"""The rule for each rubric kind, and running items over a call's evidence.

Every rule is a pure function ``(item, evidence, metrics) -> list[Finding]``: the live
daemon can run it again each time the evidence grows (with ``evidence.ended`` false), and
the end-of-call pass runs it once more with ``ended`` true.

`END_OF_CALL_KINDS` are the kinds that need the whole call (required phrases, filler
totals per minute of call): the daemon skips them while the call is live. The other kinds
can fire while the call goes on (`LIVE_KINDS`); trigger_response holds back a trigger until
the responder has taken its turns, silence reports dead air in progress. Of those,
`UTTERANCE_KINDS` read the utterances alone while the call goes on: when only a leg's
timeline has grown, the daemon runs just silence and overtalk again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from core.calls import SPEAKERS, CallEvidence, Finding
from core.rubric.emotion import emotion
from core.rubric.metrics import CallMetrics, compute_metrics
from core.rubric.phrase_rules import (
    filler_words,
    forbidden_phrase,
    keyword_alert,
    required_phrase,
    trigger_response,
)
from core.rubric.schema import KINDS, Item, Rubric
from core.rubric.timeline_rules import overtalk, silence, speech_rate, volume

logger = logging.getLogger(__name__)

RuleFn = Callable[[Item, CallEvidence, CallMetrics], list[Finding]]

RULES: dict[str, RuleFn] = {
    "forbidden_phrase": forbidden_phrase,
    "required_phrase": required_phrase,
    "trigger_response": trigger_response,
    "silence": silence,
    "overtalk": overtalk,
    "speech_rate": speech_rate,
    "volume": volume,
    "filler_words": filler_words,
    "keyword_alert": keyword_alert,
    "emotion": emotion,
}

END_OF_CALL_KINDS: frozenset[str] = frozenset({"required_phrase", "filler_words"})
# Kinds that compare the two legs' timelines: with one leg recorded (a mono recording, a
# PBX that forks one side) they cannot be judged, and yield nothing.
BOTH_LEG_KINDS: frozenset[str] = frozenset({"silence", "overtalk"})
LIVE_KINDS: frozenset[str] = frozenset(KINDS) - END_OF_CALL_KINDS
UTTERANCE_KINDS: frozenset[str] = frozenset(
    {"forbidden_phrase", "keyword_alert", "emotion", "trigger_response", "speech_rate", "volume"}
)
"""Live kinds whose findings while the call goes on (``ended`` false) follow from the
utterances alone (their text, times and levels): a voice timeline that grows, or a call
that goes on longer, cannot change them. (Once the call has ended, trigger_response spans a
trigger left unanswered to the end of the call.)"""
TIMELINE_LIVE_KINDS: frozenset[str] = LIVE_KINDS - UTTERANCE_KINDS
"""The live kinds a timeline update runs (silence, overtalk)."""

assert set(RULES) == set(KINDS), "every kind of the rubric format needs a rule"


def _leg_known(evidence: CallEvidence, speaker: str) -> bool:
    """Whether the call holds `speaker`'s leg: its voice activity, or else its utterances."""
    return speaker in evidence.activity or bool(evidence.of(speaker))


def run_item(
    item: Item, evidence: CallEvidence, metrics: CallMetrics | None = None
) -> list[Finding]:
    """The findings of one item (none when it is disabled), in time order."""
    if not item.enabled:
        return []
    if item.kind in BOTH_LEG_KINDS and not all(_leg_known(evidence, sp) for sp in SPEAKERS):
        return []
    m = metrics if metrics is not None else compute_metrics(evidence)
    findings = RULES[item.kind](item, evidence, m)
    findings.sort(key=lambda f: (f.start, f.end))
    return findings


def evaluate_items(
    rubric: Rubric,
    evidence: CallEvidence,
    *,
    metrics: CallMetrics | None = None,
    kinds: Iterable[str] | None = None,
) -> list[Finding]:
    """The findings of every enabled item (of `kinds`, when given), in time order."""
    m = metrics if metrics is not None else compute_metrics(evidence)
    wanted = frozenset(kinds) if kinds is not None else None
    out: list[Finding] = []
    for item in rubric.items:
        if wanted is not None and item.kind not in wanted:
            continue
        out.extend(run_item(item, evidence, m))
    out.sort(key=lambda f: (f.start, f.end, f.item_id))
    logger.debug("rubric %s: %d findings", rubric.id, len(out))
    return out
