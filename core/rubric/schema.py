"""The rubric file format, version 1 (RUBRIC.md): its fields, the dataclasses, dumping.

A rubric is loaded from YAML text (`core.rubric.loading`) and checked (`core.rubric.validate`)
into the frozen dataclasses defined here; every problem found is collected and raised
together as one `RubricError`, each problem naming where it is
(``items[3] (id=pace): max_per_min: must be a number > min_per_min``), so that a QA
administrator can fix a file in one pass. This module imports neither of the two.

Choices where RUBRIC.md is silent:

* Required at the top level: ``format`` (must be 1), ``id``, ``language``, ``pass_score``
  and ``items``. Defaults: ``name`` = the id, ``total`` = 100, ``categories`` = none.
* Required in every item: ``id``, ``kind``, ``severity`` and the parameters the kind's row in
  RUBRIC.md names (see `KIND_PARAMS`); ``deduct`` too, except for ``keyword_alert`` (which
  deducts only when ``deduct`` is set) and for fatal items (the call scores 0 anyway).
* Defaults: ``name`` = the id, ``category`` none, ``max_deduct`` none (no cap),
  ``fatal`` false, ``alert`` false, ``enabled`` true, ``match`` **fuzzy** (RUBRIC.md does not
  say; fuzzy tolerates ASR homophones, see core.rubric.matching), ``speaker`` ``agent``
  except ``keyword_alert`` (``any``) and ``emotion`` (``customer``); ``min_utterance_s`` 2,
  ``min_confidence`` 0.6; ``hold_phrases`` (silence, an addition) the language's built-in list.
* Unknown fields, and fields that are not a parameter of the item's kind, are errors naming
  the field (with a suggestion when it looks like a typo: ``dedcut``): a file written for a
  newer version of the format is refused rather than half understood.
* Phrases must be strings: YAML reads an unquoted 12315 as a number, so it is refused with
  a hint to quote it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

FORMAT_VERSION = 1
ID_PATTERN = re.compile(r"^[a-z0-9_-]+$")
SEVERITIES = ("A", "B", "C")
MATCH_MODES = ("exact", "fuzzy", "regex")
SPEAKER_VALUES = ("agent", "customer", "any")
TURN_SPEAKERS = ("agent", "customer")
DEFAULT_TOTAL = 100.0
DEFAULT_MATCH = "fuzzy"
DEFAULT_MIN_UTTERANCE_S = 2.0
DEFAULT_MIN_CONFIDENCE = 0.6

KINDS = (
    "forbidden_phrase",
    "required_phrase",
    "trigger_response",
    "silence",
    "overtalk",
    "speech_rate",
    "volume",
    "filler_words",
    "keyword_alert",
    "emotion",
)

COMMON_FIELDS = (
    "id",
    "name",
    "kind",
    "category",
    "severity",
    "deduct",
    "max_deduct",
    "fatal",
    "alert",
    "enabled",
)

# Per kind: its parameters, and whether each is required.
KIND_PARAMS: dict[str, dict[str, bool]] = {
    "forbidden_phrase": {"speaker": False, "phrases": True, "match": False},
    "required_phrase": {"speaker": False, "phrases": True, "match": False, "window": False},
    "trigger_response": {"trigger": True, "response": True, "match": False},
    "silence": {"min_s": True, "hold_phrases": False},
    "overtalk": {"speaker": False, "min_overlap_s": True},
    "speech_rate": {
        "speaker": False,
        "min_per_min": False,
        "max_per_min": False,
        "min_utterance_s": False,
    },
    "volume": {"speaker": False, "rise_db": True},
    "filler_words": {"speaker": False, "phrases": True, "max_per_min": True},
    "keyword_alert": {"speaker": False, "phrases": True, "match": False},
    "emotion": {"speaker": False, "min_confidence": False},
}

DEFAULT_SPEAKER = {"keyword_alert": "any", "emotion": "customer"}

TOP_FIELDS = ("format", "id", "name", "language", "pass_score", "total", "categories", "items",
              "redaction")
REDACTION_FIELDS = ("kinds",)
CATEGORY_FIELDS = ("id", "name")
WINDOW_FIELDS = ("first_s", "last_s")
TRIGGER_FIELDS = ("speaker", "phrases")
RESPONSE_FIELDS = ("speaker", "phrases", "within_turns")


class RubricError(ValueError):
    """A rubric that cannot be used; `problems` lists every problem found, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid rubric:\n  " + "\n  ".join(self.problems))


@dataclass(frozen=True)
class Category:
    id: str
    name: str


@dataclass(frozen=True)
class Window:
    """Where a required phrase must be said: in the first or in the last seconds of the call."""

    first_s: float | None = None
    last_s: float | None = None


@dataclass(frozen=True)
class Trigger:
    speaker: str
    phrases: tuple[str, ...]


@dataclass(frozen=True)
class Response:
    speaker: str
    phrases: tuple[str, ...]
    within_turns: int


@dataclass(frozen=True)
class Item:
    """One rubric item. Parameters that the item's kind does not use stay None or empty."""

    id: str
    kind: str
    severity: str
    name: str = ""
    category: str | None = None
    deduct: float = 0.0
    max_deduct: float | None = None
    fatal: bool = False
    alert: bool = False
    enabled: bool = True
    speaker: str | None = None
    phrases: tuple[str, ...] = ()
    match: str | None = None
    window: Window | None = None
    trigger: Trigger | None = None
    response: Response | None = None
    min_s: float | None = None
    hold_phrases: tuple[str, ...] | None = None
    min_overlap_s: float | None = None
    min_per_min: float | None = None
    max_per_min: float | None = None
    min_utterance_s: float | None = None
    rise_db: float | None = None
    min_confidence: float | None = None

    @property
    def label(self) -> str:
        return self.name or self.id


@dataclass(frozen=True)
class Rubric:
    id: str
    language: str
    pass_score: float
    items: tuple[Item, ...]
    name: str = ""
    total: float = DEFAULT_TOTAL
    categories: tuple[Category, ...] = ()
    format: int = FORMAT_VERSION
    redaction: tuple[str, ...] | None = None
    """The numbers this rubric's calls redact (core.rubric.redaction); None: the box's."""

    def item(self, item_id: str) -> Item:
        for it in self.items:
            if it.id == item_id:
                return it
        raise KeyError(item_id)

    def category(self, category_id: str | None) -> Category | None:
        for cat in self.categories:
            if cat.id == category_id:
                return cat
        return None


# ---------------------------------------------------------------- dumping


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def rubric_to_dict(rubric: Rubric) -> dict[str, Any]:
    """The rubric as the mapping of its YAML file (format 1), defaults written out."""
    out: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "id": rubric.id,
        "name": rubric.name,
        "language": rubric.language,
        "pass_score": _num(rubric.pass_score),
        "total": _num(rubric.total),
    }
    if rubric.categories:
        out["categories"] = [{"id": c.id, "name": c.name} for c in rubric.categories]
    out["items"] = [item_to_dict(it) for it in rubric.items]
    if rubric.redaction is not None:
        out["redaction"] = {"kinds": list(rubric.redaction)}
    return out


def item_to_dict(item: Item) -> dict[str, Any]:
    out: dict[str, Any] = {"id": item.id, "name": item.name}
    if item.category is not None:
        out["category"] = item.category
    out["kind"] = item.kind
    params = KIND_PARAMS[item.kind]
    for name in params:
        value = getattr(item, name)
        if value is None:
            continue
        if name == "window":
            assert isinstance(value, Window)
            out[name] = (
                {"first_s": _num(value.first_s)}
                if value.first_s is not None
                else {"last_s": _num(value.last_s or 0.0)}
            )
        elif name == "trigger":
            assert isinstance(value, Trigger)
            out[name] = {"speaker": value.speaker, "phrases": list(value.phrases)}
        elif name == "response":
            assert isinstance(value, Response)
            out[name] = {
                "speaker": value.speaker,
                "phrases": list(value.phrases),
                "within_turns": value.within_turns,
            }
        elif isinstance(value, tuple):
            out[name] = list(value)
        elif isinstance(value, float):
            out[name] = _num(value)
        else:
            out[name] = value
    out["severity"] = item.severity
    out["deduct"] = _num(item.deduct)
    if item.max_deduct is not None:
        out["max_deduct"] = _num(item.max_deduct)
    out["fatal"] = item.fatal
    out["alert"] = item.alert
    if not item.enabled:
        out["enabled"] = False
    return out


def dump_rubric(rubric: Rubric) -> str:
    """YAML text (format 1) that `core.rubric.loading.load_rubric_text` reads back into an
    equal `Rubric`."""
    text: str = yaml.safe_dump(
        rubric_to_dict(rubric), allow_unicode=True, sort_keys=False, width=100
    )
    return text
