"""Which rubric phrases to check against the audio when the transcript nearly holds them.

A recogniser's best guess can miss a phrase by one sound (不知道 heard as 不知等). For each
speaker, `candidate_finder` gives the recogniser a function that finds such near misses
(`core.rubric.matching.near_misses`) of every phrase the rubric listens for on that speaker's
lines: forbidden phrases and keyword alerts (their presence raises a finding), required
phrases and trigger responses (their absence does), and triggers. Items matched exactly or
by regular expression are left out: their authors asked for the words as written.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

from core.rubric.matching import NearMiss, near_misses
from core.rubric.schema import DEFAULT_MATCH, Item, Rubric

PHRASE_KINDS = frozenset({"forbidden_phrase", "keyword_alert", "required_phrase"})
DEFAULT_SPEAKER = {"forbidden_phrase": "any", "keyword_alert": "any", "required_phrase": "agent"}


def _listened_for(item: Item) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(speaker, phrases) pairs that `item` looks for."""
    if item.kind in PHRASE_KINDS:
        yield item.speaker or DEFAULT_SPEAKER[item.kind], item.phrases
    elif item.kind == "trigger_response" and item.trigger and item.response:
        yield item.trigger.speaker, item.trigger.phrases
        yield item.response.speaker, item.response.phrases


def checked_phrases(rubric: Rubric, speaker: str) -> tuple[str, ...]:
    """The phrases of `rubric` whose near misses on `speaker`'s lines are worth a check."""
    found: dict[str, None] = {}
    for item in rubric.items:
        if not item.enabled or (item.match or DEFAULT_MATCH) != "fuzzy":
            continue
        for who, phrases in _listened_for(item):
            if who in (speaker, "any"):
                found.update(dict.fromkeys(phrases))
    return tuple(found)


def candidate_finder(rubric: Rubric, speaker: str) -> Callable[[str], list[NearMiss]] | None:
    """A function from decoded text to the near misses to check, or None when none can be."""
    phrases = checked_phrases(rubric, speaker)
    if not phrases:
        return None
    return functools.partial(near_misses, phrases=phrases, language=rubric.language)
