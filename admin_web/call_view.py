"""What the call page shows, computed from a stored call (`calls_data.get_call`).

Kept apart from the routes so that each piece can be tested on its own:

* `line_confidence`: how sure the speech recogniser was of a transcript line;
* `finding_evidence`: a readable sentence for a finding, built from its ``detail`` by one
  small function per rubric kind (the stored ``evidence`` string for kinds it does not
  know);
* `transcript_lines`, `timeline`, `score_breakdown`: the page's three views of the call.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _

from admin_web.i18n import fmt_clock, fmt_number, language
from core.calls import asr_confidence
from core.rubric.loading import load_rubric_text
from core.rubric.schema import Item, RubricError

# A line is "shaky" (worth checking against the audio) below this recogniser confidence...
SHAKY_CONFIDENCE = 0.5
# ...or when the recogniser thinks it more likely than this that the stretch is not speech.
SHAKY_NO_SPEECH_PROB = 0.5
# Timeline marks narrower than this share of the call are drawn at this width.
MIN_MARK_PCT = 0.3


# ---------------------------------------------------------------- transcript confidence


@dataclass(frozen=True)
class LineConfidence:
    """The recogniser's confidence in one transcript line.

    ``value`` is ``exp(avg_logprob)`` clamped to [0, 1]: the geometric mean of the
    probabilities Whisper gave the tokens it chose, so 1.0 is certain and 0.37 means it
    averaged e^-1 per token. None when the engine gave no log-probability.
    """

    value: float | None
    low_confidence: bool = False     # value < SHAKY_CONFIDENCE
    maybe_not_speech: bool = False   # no_speech_prob > SHAKY_NO_SPEECH_PROB

    @property
    def shaky(self) -> bool:
        return self.low_confidence or self.maybe_not_speech


def line_confidence(avg_logprob: float | None, no_speech_prob: float | None) -> LineConfidence:
    """How far to trust a transcript line, from the recogniser's own figures.

    `avg_logprob` is the mean log-probability of the line's tokens, `no_speech_prob` the
    probability that the audio held no speech. The confidence is ``exp(avg_logprob)``
    clamped to [0, 1]; the line is shaky when that is below `SHAKY_CONFIDENCE` or
    `no_speech_prob` is above `SHAKY_NO_SPEECH_PROB`.
    """
    value: float | None = None
    if avg_logprob is not None and math.isfinite(avg_logprob):
        value = asr_confidence(avg_logprob)
    elif avg_logprob is not None and avg_logprob == -math.inf:
        value = 0.0
    nsp = no_speech_prob if no_speech_prob is not None and math.isfinite(no_speech_prob) else 0.0
    return LineConfidence(
        value=value,
        low_confidence=value is not None and value < SHAKY_CONFIDENCE,
        maybe_not_speech=nsp > SHAKY_NO_SPEECH_PROB,
    )


@dataclass(frozen=True)
class TranscriptLine:
    seq: int
    speaker: str
    start: float
    end: float
    text: str
    confidence: LineConfidence
    decoded_text: str | None = None
    """What the recogniser wrote, where an audio check of a near-missed phrase changed it."""


def transcript_lines(utterances: Iterable[dict[str, Any]]) -> list[TranscriptLine]:
    return [
        TranscriptLine(
            seq=int(u["seq"]), speaker=str(u["speaker"]), start=float(u["start_s"]),
            end=float(u["end_s"]), text=str(u["text"]),
            confidence=line_confidence(u.get("avg_logprob"), u.get("no_speech_prob")),
            decoded_text=u.get("decoded_text"),
        )
        for u in utterances
    ]


# ---------------------------------------------------------------- evidence per kind


@dataclass
class EvidenceContext:
    """What a finding's sentence may need beyond its own detail."""

    items: dict[str, Item] = field(default_factory=dict)     # the rubric's items by id
    rate_unit: str = "chars"
    utterances: dict[int, str] = field(default_factory=dict)  # seq -> text


def _num(value: Any, digits: int = 1) -> str:
    try:
        return fmt_number(float(value), digits)
    except (TypeError, ValueError):
        return str(value)


def _join(phrases: Iterable[Any]) -> str:
    sep = "、" if language() == "zh" else ", "
    return sep.join(f"“{p}”" for p in phrases)


def _speaker(code: Any) -> str:
    return {"agent": _("the agent"), "customer": _("the customer")}.get(
        str(code), _("either side"))


def _phrase(f: dict[str, Any], ctx: EvidenceContext) -> str:
    d = f["detail"]
    phrase = d["phrase"]
    heard = d.get("matched") or f.get("evidence") or ""
    edits = d.get("edits")
    fuzzy = bool(edits) or bool(d.get("fuzzy")) or (heard and heard != phrase)
    if not fuzzy:
        return _("Said “%(phrase)s”", phrase=phrase)
    if edits:
        return _("Close match for “%(phrase)s”: the transcript says “%(heard)s” "
                 "(%(edits)s differences)", phrase=phrase, heard=heard, edits=edits)
    return _("Close match for “%(phrase)s”: the transcript says “%(heard)s”",
             phrase=phrase, heard=heard)


def _required(f: dict[str, Any], ctx: EvidenceContext) -> str:
    d = f["detail"]
    missing = d["missing"]
    window = d.get("window") or {}
    if "start" in window and "end" in window:
        return _("None of %(phrases)s was said between %(start)s and %(end)s",
                 phrases=_join(missing), start=fmt_clock(window["start"]),
                 end=fmt_clock(window["end"]))
    return _("None of %(phrases)s was said in the call", phrases=_join(missing))


def _trigger(f: dict[str, Any], ctx: EvidenceContext) -> str:
    d = f["detail"]
    return _("After %(speaker)s said “%(trigger)s”, none of %(phrases)s came within "
             "%(turns)s turns", speaker=_speaker(d.get("trigger_speaker")),
             trigger=d["trigger_phrase"], phrases=_join(d.get("missing") or []),
             turns=d.get("within_turns", "?"))


def _silence(f: dict[str, Any], ctx: EvidenceContext) -> str:
    d = f["detail"]
    seconds = _num(d.get("duration_s", float(f["end_s"]) - float(f["start_s"])))
    by = d.get("resumed_by")
    if by == "agent":
        return _("Silence of %(seconds)s s; the agent spoke next", seconds=seconds)
    if by == "customer":
        return _("Silence of %(seconds)s s; the customer spoke next", seconds=seconds)
    return _("Silence of %(seconds)s s", seconds=seconds)


def _overtalk(f: dict[str, Any], ctx: EvidenceContext) -> str:
    d = f["detail"]
    seconds = _num(d.get("overlap_s", float(f["end_s"]) - float(f["start_s"])))
    if d.get("other_speaker") == "customer":
        return _("Talked over the customer for %(seconds)s s", seconds=seconds)
    if d.get("other_speaker") == "agent":
        return _("Talked over the agent for %(seconds)s s", seconds=seconds)
    return _("Both sides talked at once for %(seconds)s s", seconds=seconds)


def _rate_unit(unit: str) -> str:
    return _("words per minute") if unit == "words" else _("characters per minute")


def _speech_rate(f: dict[str, Any], ctx: EvidenceContext) -> str:
    d = f["detail"]
    rate = _num(d["rate_per_min"], 0)
    unit = _rate_unit(str(d.get("unit") or ctx.rate_unit))
    item = ctx.items.get(str(f["item_id"]))
    lo = item.min_per_min if item else None
    hi = item.max_per_min if item else None
    if lo is not None and hi is not None:
        allowed = f"{_num(lo, 0)}–{_num(hi, 0)}"
    elif hi is not None:
        allowed = "≤ " + _num(hi, 0)
    elif lo is not None:
        allowed = "≥ " + _num(lo, 0)
    else:
        allowed = ""
    if d.get("too") == "slow":
        if allowed:
            return _("Too slow: %(rate)s %(unit)s (allowed %(allowed)s)",
                     rate=rate, unit=unit, allowed=allowed)
        return _("Too slow: %(rate)s %(unit)s", rate=rate, unit=unit)
    if allowed:
        return _("Too fast: %(rate)s %(unit)s (allowed %(allowed)s)",
                 rate=rate, unit=unit, allowed=allowed)
    return _("Too fast: %(rate)s %(unit)s", rate=rate, unit=unit)


def _volume(f: dict[str, Any], ctx: EvidenceContext) -> str:
    d = f["detail"]
    rise = d["rise_db"] if "rise_db" in d else d["level_rel_db"]
    median = d.get("median_level_db")
    if median is not None:
        return _("%(rise)s dB louder than the speaker’s median level (%(median)s dB)",
                 rise=_num(rise), median=_num(median))
    return _("%(rise)s dB louder than the speaker’s median level", rise=_num(rise))


def _fillers(f: dict[str, Any], ctx: EvidenceContext) -> str:
    d = f["detail"]
    by_phrase = d["by_phrase"]
    sep = "、" if language() == "zh" else ", "
    listed = sep.join(f"{p}×{n}" for p, n in by_phrase.items())
    item = ctx.items.get(str(f["item_id"]))
    rate = _num(d.get("per_min_talk"))
    if item is not None and item.max_per_min is not None:
        return _("%(count)s filler words (%(listed)s): %(rate)s per minute of talk, "
                 "allowed %(allowed)s", count=d.get("count", "?"), listed=listed, rate=rate,
                 allowed=_num(item.max_per_min, 0 if float(item.max_per_min).is_integer() else 1))
    return _("%(count)s filler words (%(listed)s): %(rate)s per minute of talk",
             count=d.get("count", "?"), listed=listed, rate=rate)


def _emotion(f: dict[str, Any], ctx: EvidenceContext) -> str:
    d = f["detail"]
    parts = [_("Sounds upset (confidence %(percent)s%%)",
               percent=_num(100.0 * float(d["confidence"]), 0))]
    if d.get("words"):
        parts.append(_("cue words: %(words)s", words=_join(d["words"])))
    if d.get("level_rise_db") is not None:
        parts.append(_("voice %(db)s dB louder than usual", db=_num(d["level_rise_db"])))
    return ("；" if language() == "zh" else "; ").join(parts)


EVIDENCE_BY_KIND: dict[str, Callable[[dict[str, Any], EvidenceContext], str]] = {
    "forbidden_phrase": _phrase,
    "keyword_alert": _phrase,
    "required_phrase": _required,
    "trigger_response": _trigger,
    "silence": _silence,
    "overtalk": _overtalk,
    "speech_rate": _speech_rate,
    "volume": _volume,
    "filler_words": _fillers,
    "emotion": _emotion,
}


def finding_evidence(finding: dict[str, Any], ctx: EvidenceContext | None = None) -> str:
    """A readable, translated sentence saying what the finding found.

    Falls back to the stored ``evidence`` string for kinds without a function here, or
    when the detail lacks what the kind's function needs.
    """
    ctx = ctx or EvidenceContext()
    explain = EVIDENCE_BY_KIND.get(str(finding.get("kind")))
    if explain is None or not isinstance(finding.get("detail"), dict):
        return str(finding.get("evidence") or "")
    try:
        return explain(finding, ctx)
    except (KeyError, TypeError, ValueError):
        return str(finding.get("evidence") or "")


def finding_context(finding: dict[str, Any], ctx: EvidenceContext) -> str:
    """The words the finding is about (its utterance, or what broke the silence), if known."""
    d = finding.get("detail") or {}
    for key in ("utterance_text", "resume_text", "other_text"):
        if d.get(key):
            return str(d[key])
    index = d.get("utterance")
    if isinstance(index, int) and finding.get("kind") not in ("required_phrase",):
        return ctx.utterances.get(index, "")
    return ""


@functools.lru_cache(maxsize=32)
def rubric_items(yaml_text: str) -> dict[str, Item]:
    """The items of a stored rubric version by id; empty when it no longer loads."""
    try:
        return {item.id: item for item in load_rubric_text(yaml_text).items}
    except RubricError:
        return {}


# ---------------------------------------------------------------- timeline


@dataclass(frozen=True)
class Mark:
    kind: str            # 'finding' | 'silence' | 'overtalk'
    start: float
    end: float
    row: int             # stacked so that marks of one lane do not overlap
    left_pct: float
    width_pct: float
    label: str
    severity: str = ""
    seq: int | None = None


def _runs(values: Any) -> list[tuple[float, float]]:
    """Silence/overtalk runs as stored: ``[start, end]`` pairs or ``{"start", "end"}`` dicts."""
    out = []
    for v in values or []:
        try:
            if isinstance(v, dict):
                out.append((float(v["start"]), float(v["end"])))
            else:
                out.append((float(v[0]), float(v[1])))
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    return out


def _stack(spans: list[tuple[float, float]]) -> list[int]:
    """A row for each span (in the given order) so that spans in one row do not overlap."""
    row_ends: list[float] = []
    rows: list[int] = []
    for start, end in spans:
        for i, last_end in enumerate(row_ends):
            if start >= last_end:
                row_ends[i] = end
                rows.append(i)
                break
        else:
            row_ends.append(end)
            rows.append(len(row_ends) - 1)
    return rows


def _pct(start: float, end: float, duration: float) -> tuple[float, float]:
    left = min(100.0, max(0.0, 100.0 * start / duration))
    width = max(MIN_MARK_PCT, min(100.0 - left, 100.0 * (end - start) / duration))
    return round(left, 3), round(width, 3)


@dataclass(frozen=True)
class Lane:
    kind: str
    rows: int
    marks: list[Mark]


def timeline(call: dict[str, Any], duration: float) -> list[Lane]:
    """Three lanes of marks: findings (by severity), silence runs, overtalk runs."""
    duration = max(duration, 0.001)
    metrics = call.get("metrics") or {}
    lanes = []
    findings = sorted(call.get("findings") or [], key=lambda f: (f["start_s"], f["seq"]))
    rows = _stack([(float(f["start_s"]), float(f["end_s"])) for f in findings])
    marks = []
    for f, row in zip(findings, rows, strict=True):
        left, width = _pct(float(f["start_s"]), float(f["end_s"]), duration)
        marks.append(Mark("finding", float(f["start_s"]), float(f["end_s"]), row, left, width,
                          str(f.get("name") or f["item_id"]), str(f["severity"]),
                          int(f["seq"])))
    lanes.append(Lane("finding", max(rows, default=0) + 1, marks))
    for kind in ("silence", "overtalk"):
        spans = sorted(_runs(metrics.get(kind)))
        rows = _stack(spans)
        label = _("Silence") if kind == "silence" else _("Overtalk")
        marks = [Mark(kind, s, e, row, *_pct(s, e, duration), label=label)
                 for (s, e), row in zip(spans, rows, strict=True)]
        lanes.append(Lane(kind, max(rows, default=0) + 1, marks))
    return lanes


def call_duration(call: dict[str, Any]) -> float:
    """The call's length: as stored, else as measured, else to the end of its last line."""
    for value in (call.get("duration_s"), (call.get("metrics") or {}).get("duration_s")):
        if value:
            return float(value)
    ends = [float(u["end_s"]) for u in call.get("utterances") or []]
    return max(ends, default=0.0)


# ---------------------------------------------------------------- score breakdown


@dataclass
class ItemView:
    item_id: str
    name: str
    hits: int
    deducted: float
    capped: bool
    findings: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CategoryView:
    category_id: str
    name: str
    deducted: float | None
    remaining: float | None
    items: list[ItemView] = field(default_factory=list)


def score_breakdown(call: dict[str, Any], ctx: EvidenceContext) -> list[CategoryView]:
    """Categories as scored (name, deducted, remaining), each with its items and findings.

    Each finding dict gains ``text`` (from `finding_evidence`) and ``context``.
    """
    scoring = call.get("scoring") or {}
    cats: dict[str, CategoryView] = {}
    for cid, c in (scoring.get("categories") or {}).items():
        cats[str(cid)] = CategoryView(str(cid), str(c.get("name") or cid), c.get("deducted"),
                                      c.get("remaining"))
    items_scored = scoring.get("items") or {}
    items: dict[str, ItemView] = {}
    for f in call.get("findings") or []:
        f = {**f, "text": finding_evidence(f, ctx), "context": finding_context(f, ctx)}
        iid = str(f["item_id"])
        item = items.get(iid)
        if item is None:
            scored = items_scored.get(iid) or {}
            item = ItemView(iid, str(f.get("name") or iid), int(scored.get("hits", 0)),
                            float(scored.get("deducted", 0.0)), bool(scored.get("capped")))
            items[iid] = item
            cid = str(f.get("category") or "")
            if cid not in cats:
                cats[cid] = CategoryView(cid, cid or _("Other"), None, None)
            cats[cid].items.append(item)
        item.findings.append(f)
    for item in items.values():
        item.hits = item.hits or len(item.findings)
        if not item.deducted:
            item.deducted = sum(float(f["deduct"]) for f in item.findings)
    return list(cats.values())


STATUS_NAMES: dict[str, Callable[[], str]] = {
    "live": lambda: _("Live"),
    "recorded": lambda: _("Recorded"),
    "scoring": lambda: _("Scoring"),
    "scored": lambda: _("Machine-scored"),
    "interrupted": lambda: _("Interrupted, recovered"),
    "failed": lambda: _("Failed to score"),
}


def status_name(status: str) -> str:
    name = STATUS_NAMES.get(status)
    return name() if name else status
