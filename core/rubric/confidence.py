"""How sure a finding is, 0..1, from how it was found (see README, "Confidence").

Three things make a finding doubtful, and each gives a factor; a finding's confidence is
their product:

* **The line.** Text findings rest on what the recogniser heard: `Utterance.confidence`,
  exp of the average token log-probability (a clean line reads about 0.8-0.95, a noisy
  misheard one 0.4-0.6). Lines with no such figure (text given, not recognised) count 1.
* **The match.** A phrase found as written counts 1; found by sound (a homophone, 不知倒 for
  不知道) `HOMOPHONE`; found with token edits `HOMOPHONE` less `PER_EDIT` per edit; put in
  by an acoustic check of a near miss (`core.calls.PhraseCheck`) `VERIFIED_BASE` up to
  `VERIFIED_BASE + VERIFIED_SPAN` as the audio's support nears that of the decoded text.
* **The margin.** A finding on a measured value (silence, overtalk, speech rate, volume,
  filler rate) is a coin toss at its threshold and sure once the value is past the
  threshold by half the threshold again: 0.5 + 0.5 * min(1, excess / (threshold * 0.5)).

A finding for what was *not* said (a required phrase, a trigger's response) is as sure as
the lines that were searched, less where one of them held a near miss of a missing phrase
that the audio check rejected (the phrase may still have been said).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from core.calls import PhraseCheck, Utterance
from core.rubric.matching import Match, simplified_view

HOMOPHONE = 0.9
PER_EDIT = 0.15
VERIFIED_BASE = 0.5
VERIFIED_SPAN = 0.4
GAIN_SCALE_NATS = 4.0
"""A check's gain (nats) is turned into support as exp(gain / GAIN_SCALE_NATS)."""
FULL_MARGIN = 0.5
"""A measured value this far past its threshold, relative to it, is a sure finding."""
NO_SPEECH = 0.95
"""An absence finding over a stretch where the speaker said nothing at all."""


def line_confidence(u: Utterance) -> float:
    conf = u.confidence
    return 1.0 if conf is None else conf


def _support(check: PhraseCheck) -> float:
    return math.exp(min(check.gain, 0.0) / GAIN_SCALE_NATS)


def verified_check(u: Utterance, match: Match) -> PhraseCheck | None:
    """The accepted acoustic check that put `match`'s phrase in the utterance's text."""
    for check in u.checks:
        if not check.accepted or check.at is None:
            continue
        if check.at < match.end and match.start < check.at + len(check.phrase):
            return check
    return None


def match_kind(u: Utterance, match: Match, mode: str) -> str:
    """How a phrase was found: exact, regex, homophone, fuzzy (with edits) or verified."""
    if verified_check(u, match) is not None:
        return "verified"
    if mode == "regex":
        return "regex"
    if match.edits:
        return "fuzzy"
    written = "".join(simplified_view(match.phrase)[0].split())
    heard = "".join(simplified_view(match.text)[0].split())
    return "exact" if written == heard else "homophone"


def phrase_confidence(u: Utterance, match: Match, mode: str) -> tuple[float, str]:
    """A phrase finding's confidence and how its phrase was found."""
    kind = match_kind(u, match, mode)
    if kind == "verified":
        check = verified_check(u, match)
        assert check is not None
        factor = VERIFIED_BASE + VERIFIED_SPAN * _support(check)
    elif kind == "homophone":
        factor = HOMOPHONE
    elif kind == "fuzzy":
        factor = max(0.3, HOMOPHONE - PER_EDIT * match.edits)
    else:
        factor = 1.0
    return _clip(line_confidence(u) * factor), kind


def absence_confidence(searched: Sequence[Utterance], phrases: Iterable[str]) -> float:
    """How sure it is that none of `phrases` was said in the `searched` lines."""
    if not searched:
        return NO_SPEECH
    wanted = set(phrases)
    conf = sum(line_confidence(u) for u in searched) / len(searched)
    for u in searched:
        for check in u.checks:
            if not check.accepted and check.phrase in wanted:
                conf *= 1.0 - 0.5 * _support(check)
    return _clip(conf)


def margin_confidence(value: float, threshold: float) -> float:
    """A measured value past its threshold (value above it): 0.5 at it, 1 well past it."""
    scale = abs(threshold) * FULL_MARGIN
    if scale <= 0:
        return 1.0
    return _clip(0.5 + 0.5 * min(1.0, max(0.0, value - threshold) / scale))


def mean_line_confidence(lines: Iterable[Utterance]) -> float:
    values = [line_confidence(u) for u in lines]
    return sum(values) / len(values) if values else 1.0


def _clip(x: float) -> float:
    return round(min(1.0, max(0.0, x)), 3)
