"""Card, ID, phone and account numbers found in transcripts, and masked.

A *digit run* is a stretch of text made of digits, written (0-9, full width) or spoken one
by one in Chinese (零〇一幺二两三四五六七八九), with at most ``MAX_GAP_CHARS`` of spaces,
punctuation or fillers (嗯, 啊, 那个...) between two digits. A run is cut into *groups* at
its gaps; the longest stretch of consecutive groups that reads as one of the kinds below is
a finding, and the search goes on after it:

* ``id_number``: a resident ID, 17 digits and a check digit (0-9 or X) that agrees with
  GB 11643, born on a real date from 1900 to today;
* ``card``: 13 to 19 digits that pass the Luhn check;
* ``mobile``: 11 digits, 1[3-9]..., optionally after 86;
* ``landline``: an area code (0 and 2 or 3 digits) and 7 or 8 digits;
* ``bank_account``: any other run of 12 digits or more (account numbers carry no check digit
  that holds across banks).

Shorter runs (a 4-digit tail 尾号0374, a 5-digit hotline 12315, a staff number) and numbers
read as quantities (二十四, 一千兆, 五十九元: 十百千万 end a run) are left alone. A number
split over two utterances of one speaker is found by reading the earlier one's end and the
later one's start as one text (`CallRedactor`). Each finding is replaced by its kind's mask.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from core.calls import CallResult, Finding, PhraseCheck, Utterance
from core.config import REDACTION_KINDS, Settings
from core.rubric.schema import Rubric
from core.text_norm import SPOKEN_DIGITS

KINDS = REDACTION_KINDS
MASKS_ZH = {"card": "[卡号]", "id_number": "[身份证号]", "mobile": "[手机号]",
            "landline": "[电话号码]", "bank_account": "[账号]", "digits": "[数字]"}  # fmt: skip
MASKS_EN = {"card": "[card]", "id_number": "[id number]", "mobile": "[mobile]",
            "landline": "[phone]", "bank_account": "[account]", "digits": "[digits]"}  # fmt: skip
MAX_GAP_CHARS = 5
OPEN_TAIL_DIGITS = 6
"""Live transcripts hold back a run of this many digits or more that ends an utterance
(it may go on in the next one) until the call's final pass."""

_DIGIT = {**{str(d): str(d) for d in range(10)}, **{chr(0xFF10 + d): str(d) for d in range(10)},
          **{c: str(d) for c, d in SPOKEN_DIGITS.items()}}  # fmt: skip
_CHECK_X = {"X", "x", "Ｘ", "ｘ"}
_GAP = re.compile(r"(?:[\s,，、.。;；\-－—_/·]|嗯|啊|呃|额|哦|噢|唔|诶|那个|这个|然后|就是)*")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def id_number_ok(value: str) -> bool:
    """A resident ID number: 17 digits, a plausible birth date and its GB 11643 check digit."""
    if len(value) != 18 or not value[:17].isdigit():
        return False
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    if born.year < 1900 or born > date.today():
        return False
    check = _ID_CHECK[sum(int(c) * w for c, w in zip(value[:17], _ID_WEIGHTS, strict=True)) % 11]
    return value[17].upper() == check


def classify(digits: str, kinds: Iterable[str] = KINDS) -> str | None:
    """The kind of sensitive number ``digits`` is (a whole run's digits), or None."""
    wanted = set(kinds)
    n = len(digits)
    if n == 18 and "id_number" in wanted and id_number_ok(digits):
        return "id_number"
    if not digits.isdigit():
        return None
    if 13 <= n <= 19 and "card" in wanted and luhn_ok(digits):
        return "card"
    if "mobile" in wanted and (
        (n == 11 and re.match(r"1[3-9]", digits)) or (n == 13 and re.match(r"861[3-9]", digits))
    ):
        return "mobile"
    if "landline" in wanted and 10 <= n <= 12 and re.match(r"0[1-9]", digits):
        return "landline"
    if "bank_account" in wanted and n >= 12:
        return "bank_account"
    return None


@dataclass(frozen=True)
class Span:
    """Characters [start, end) of a text that hold a number of ``kind``."""

    start: int
    end: int
    kind: str
    digits: str


@dataclass(frozen=True)
class _Group:
    start: int
    end: int
    digits: str


def digit_runs(text: str) -> list[list[_Group]]:
    """The digit runs of ``text``, each as its groups (digits with no gap between them)."""
    runs: list[list[_Group]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] not in _DIGIT:
            i += 1
            continue
        groups: list[_Group] = []
        while True:
            j = i
            digits: list[str] = []
            while j < n and (text[j] in _DIGIT or (text[j] in _CHECK_X and len(digits) == 17)):
                digits.append(_DIGIT.get(text[j], "X"))
                j += 1
            groups.append(_Group(i, j, "".join(digits)))
            gap = _GAP.match(text, j)
            k = gap.end() if gap else j
            if k < n and text[k] in _DIGIT and 0 < k - j <= MAX_GAP_CHARS:
                i = k
                continue
            i = j
            break
        runs.append(groups)
    return runs


def find_spans(text: str, kinds: Iterable[str] = KINDS) -> list[Span]:
    """The sensitive numbers in ``text``: the longest stretches of a run's groups that
    classify, left to right."""
    wanted = tuple(kinds)
    spans: list[Span] = []
    if not wanted:
        return spans
    for groups in digit_runs(text):
        i = 0
        while i < len(groups):
            for j in range(len(groups) - 1, i - 1, -1):
                digits = "".join(g.digits for g in groups[i : j + 1])
                kind = classify(digits, wanted)
                if kind is not None:
                    spans.append(Span(groups[i].start, groups[j].end, kind, digits))
                    i = j + 1
                    break
            else:
                i += 1
    return spans


def apply_masks(text: str, spans: list[Span], masks: dict[str, str]) -> str:
    out, pos = [], 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start < pos:
            continue
        out += [text[pos : span.start], masks[span.kind]]
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


def kinds_for(rubric_kinds: tuple[str, ...] | None, box_kinds: str) -> frozenset[str]:
    """What a call redacts: its rubric's ``redaction.kinds`` when set, else the box's
    ``redaction_kinds`` (comma-separated; ``none``: nothing)."""
    if rubric_kinds is not None:
        return frozenset(rubric_kinds)
    return frozenset(k.strip() for k in box_kinds.split(",") if k.strip() in KINDS)


def redactor_for(rubric: Rubric, settings: Settings) -> CallRedactor:
    """The redactor of one call scored against ``rubric`` on a box with ``settings``."""
    return CallRedactor(kinds_for(rubric.redaction, settings.redaction_kinds),
                        rubric.language, settings.redaction_carry_s)  # fmt: skip


@dataclass(frozen=True)
class TimeSpan:
    """Where a redacted number was said: the utterance's time on ``speaker``'s leg."""

    speaker: str
    start: float
    end: float
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {"speaker": self.speaker, "start": round(self.start, 3),
                "end": round(self.end, 3), "kind": self.kind}  # fmt: skip


@dataclass
class CallRedactor:
    """Redacts one call's utterances in order, carrying a leg's last utterance over to its
    next one (within ``carry_s``) so that a number split between them is found."""

    kinds: frozenset[str]
    language: str = "zh"
    carry_s: float = 8.0
    sensitive: dict[str, str] = field(default_factory=dict)
    """Digits of every number masked so far -> kind (to scrub other texts that quote it)."""
    spans: list[TimeSpan] = field(default_factory=list)
    _last: dict[str, tuple[Utterance, list[Span]]] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.kinds)

    @property
    def masks(self) -> dict[str, str]:
        return MASKS_ZH if self.language.startswith("zh") else MASKS_EN

    def fresh(self) -> CallRedactor:
        """A redactor for a new pass over the call that keeps what was found."""
        return CallRedactor(self.kinds, self.language, self.carry_s, dict(self.sensitive))

    def spans_of(
        self, utt: Utterance, *, remember: bool = True
    ) -> tuple[list[Span], list[Span] | None, Utterance | None]:
        """Spans of ``utt`` and, when a number runs on from the same leg's last utterance,
        that utterance's spans with it and that utterance (else None, None)."""
        spans = find_spans(utt.text, self.kinds)
        before = self._last.get(utt.speaker)
        grown: list[Span] | None = None
        prev: Utterance | None = None
        if before is not None and 0 <= utt.start - before[0].end <= self.carry_s:
            prev_spans = before[1]
            joined = before[0].text + "，" + utt.text
            cut = len(before[0].text) + 1
            across = [s for s in find_spans(joined, self.kinds) if s.start < cut <= s.end]
            if across:
                prev = before[0]
                first = min(s.start for s in across)
                grown = [p for p in prev_spans if p.end <= first]
                for s in across:
                    grown.append(Span(s.start, cut - 1, s.kind, s.digits))
                    spans = [x for x in spans if x.start >= s.end - cut]
                    spans.append(Span(0, s.end - cut, s.kind, s.digits))
        if remember:
            self._last[utt.speaker] = (utt, spans)
        for s in spans + (grown or []):
            self.sensitive[s.digits] = s.kind
        return spans, (grown if prev is not None else None), prev

    def utterance(self, utt: Utterance, *, live: bool = False, part: bool = False) -> Utterance:
        """``utt`` redacted (a copy; ``utt`` itself is not changed), the leg's carry moved on
        to it. ``live``: also mask a long run that ends the text, before the next utterance
        is known. ``part``: a part of an utterance still being said (the carry stays)."""
        if not self.enabled:
            return utt
        spans, grown, prev = self.spans_of(utt, remember=not part)
        if grown is not None and prev is not None and not part:
            self._note(prev, grown)
        if live:
            spans = spans + _open_tail(utt.text, spans)
        if not part:
            self._note(utt, spans)
        return self._apply(utt, spans)

    def _note(self, utt: Utterance, spans: list[Span]) -> None:
        for s in spans:
            if s.kind != "digits":
                self.spans.append(TimeSpan(utt.speaker, utt.start, utt.end, s.kind))

    def _apply(self, utt: Utterance, spans: list[Span]) -> Utterance:
        if not spans and not self.sensitive:
            return utt
        text = apply_masks(utt.text, spans, self.masks)
        checks = [self._check(c, utt.text, spans) for c in utt.checks]
        decoded = None if utt.decoded_text is None else self.scrub(utt.decoded_text)
        return dataclasses.replace(utt, text=text, checks=checks, decoded_text=decoded)

    def _check(self, check: PhraseCheck, text: str, spans: list[Span]) -> PhraseCheck:
        at = check.at
        if at is not None:
            at += sum(len(self.masks[s.kind]) - (s.end - s.start) for s in spans if s.end <= at)
        return dataclasses.replace(check, heard=self.scrub(check.heard), at=at)

    def transcript(self, utterances: list[Utterance]) -> list[Utterance]:
        """A whole transcript redacted, in order, a number split between two utterances of
        one leg masked in both."""
        if not self.enabled:
            return list(utterances)
        found: list[list[Span]] = []
        last_index: dict[str, int] = {}
        for i, utt in enumerate(utterances):
            spans, grown, _ = self.spans_of(utt)
            found.append(spans)
            j = last_index.get(utt.speaker)
            if grown is not None and j is not None:
                found[j] = grown
            last_index[utt.speaker] = i
        out = []
        for utt, spans in zip(utterances, found, strict=True):
            self._note(utt, spans)
            out.append(self._apply(utt, spans))
        return out

    def scrub(self, text: str) -> str:
        """Any other text (a finding's evidence, a heard phrase, a decoded line): numbers it
        holds, and any run of ``OPEN_TAIL_DIGITS`` digits or more taken from a number masked
        before (shorter pieces stay, as in live lines: 420 chars/min is not a phone number)."""
        if not self.enabled or not text:
            return text
        spans = find_spans(text, self.kinds)
        for groups in digit_runs(text):
            start, end = groups[0].start, groups[-1].end
            digits = "".join(g.digits for g in groups)
            if len(digits) < OPEN_TAIL_DIGITS or any(s.start < end and start < s.end
                                                     for s in spans):
                continue
            kind = next((k for d, k in self.sensitive.items() if digits in d), None)
            if kind is not None:
                spans.append(Span(start, end, kind, digits))
        return apply_masks(text, spans, self.masks)

    def finding(self, finding: Finding) -> Finding:
        if not self.enabled:
            return finding
        return dataclasses.replace(finding, evidence=self.scrub(finding.evidence),
                                   detail=self._scrub_value(finding.detail))  # fmt: skip

    def _scrub_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._scrub_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._scrub_value(v) for v in value)
        return value

    def result(self, result: CallResult) -> CallResult:
        """A scored call redacted: its transcript (one pass, in order), its findings and
        the utterances of its evidence. The time spans of this pass replace earlier ones."""
        if not self.enabled:
            return result
        final = self.fresh()
        transcript = final.transcript(sorted(result.transcript, key=lambda u: u.start))
        by_id = {id(raw): red for raw, red in
                 zip(sorted(result.transcript, key=lambda u: u.start), transcript, strict=True)}
        evidence = result.evidence
        if evidence is not None:
            utts = [by_id.get(id(u)) or final.utterance_scrubbed(u) for u in evidence.utterances]
            evidence = dataclasses.replace(evidence, utterances=utts)
        self.sensitive.update(final.sensitive)
        self.spans = merge_spans(final.spans)
        return dataclasses.replace(
            result, transcript=[by_id[id(u)] for u in result.transcript],
            findings=[final.finding(f) for f in result.findings], evidence=evidence,
        )  # fmt: skip

    def utterance_scrubbed(self, utt: Utterance) -> Utterance:
        return dataclasses.replace(utt, text=self.scrub(utt.text))


def _open_tail(text: str, spans: list[Span]) -> list[Span]:
    runs = digit_runs(text)
    if not runs:
        return []
    groups = runs[-1]
    start, end = groups[0].start, groups[-1].end
    digits = "".join(g.digits for g in groups)
    rest = _GAP.match(text, end)
    at_end = rest is not None and rest.end() == len(text)
    if not at_end or len(digits) < OPEN_TAIL_DIGITS or any(s.end > start for s in spans):
        return []
    return [Span(start, end, "digits", digits)]


def merge_spans(spans: list[TimeSpan]) -> list[TimeSpan]:
    """Time spans in order, one per utterance (the first kind named)."""
    seen: dict[tuple[str, float, float], TimeSpan] = {}
    for s in spans:
        seen.setdefault((s.speaker, s.start, s.end), s)
    return sorted(seen.values(), key=lambda s: (s.start, s.speaker))
