"""A rubric's validation problems, placed at the form field they concern, in the user's language.

`core.rubric.validate` reports every problem as one line that names where it is::

    items[3] (id=pace): max_per_min: must be a number > min_per_min
    items[0] (id=thanks): trigger.phrases[1]: must be a string (quote numbers: '12315')
    categories[1]: id: duplicate category 'risk'
    pass_score: must be a number <= total (100)

`place` reads that back into a `Problem` (which part of the editor, which item or category,
which form field) and `translate` words the message in the user's language, keeping the raw
text when a message is not one it knows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from flask_babel import gettext as _

WHERE_RE = re.compile(
    r"^(?P<scope>items|categories)\[(?P<index>\d+)\](?: \(id=.*?\))?: (?P<rest>.*)$", re.S
)
FIELD_RE = re.compile(
    r"^(?:(?P<sub>window|trigger|response)\.)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:\[(?P<pos>\d+)\])?: (?P<message>.*)$",
    re.S,
)

# Form fields of the editor (admin_web.rubric_form) that a problem may be placed at.
TOP_FIELDS = ("format", "id", "name", "language", "pass_score", "total")
CATEGORY_FIELDS = ("id", "name")
ITEM_FIELDS = (
    "id", "name", "category", "kind", "speaker", "phrases", "match", "window", "trigger",
    "response", "min_s", "hold_phrases", "min_overlap_s", "min_per_min", "max_per_min",
    "min_utterance_s", "rise_db", "min_confidence", "severity", "deduct", "max_deduct",
    "fatal", "alert", "enabled",
)
SUB_FIELDS = {
    ("trigger", "speaker"): "trigger_speaker",
    ("trigger", "phrases"): "trigger_phrases",
    ("response", "speaker"): "response_speaker",
    ("response", "phrases"): "response_phrases",
    ("response", "within_turns"): "within_turns",
}


@dataclass(frozen=True)
class Problem:
    """One problem: where it goes in the editor, and its message (translated and raw).

    ``scope`` is ``top`` (the rubric's own fields), ``category``, ``item`` or ``general``
    (the rubric as a whole: YAML syntax, the item list); ``field`` is the form field's name
    inside its scope, or None for the item or category as a whole.
    """

    scope: str
    index: int | None
    field: str | None
    message: str
    raw: str

    @property
    def key(self) -> str:
        """The key the editor's template looks problems up by (see `Problems.at`)."""
        if self.scope == "general":
            return "general"
        if self.scope == "top":
            return f"top-{self.field}"
        prefix = f"{'items' if self.scope == 'item' else 'categories'}-{self.index}"
        return f"{prefix}-{self.field}" if self.field else prefix


@dataclass
class Problems:
    """Every problem of a rubric, by the key of the place it is shown at."""

    items: list[Problem] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def at(self, key: str) -> list[str]:
        return [p.message for p in self.items if p.key == key]

    def under(self, prefix: str) -> bool:
        """Whether any problem is at this item or category or one of its fields."""
        return any(p.key == prefix or p.key.startswith(prefix + "-") for p in self.items)

    def raw(self) -> list[str]:
        return [p.raw for p in self.items]


def place(raw: str) -> Problem:
    """Where one problem line of `RubricError.problems` belongs, with its translated message."""
    scope, index, rest = "top", None, raw
    where = WHERE_RE.match(raw)
    if where:
        scope = "item" if where["scope"] == "items" else "category"
        index, rest = int(where["index"]), where["rest"]
    found = FIELD_RE.match(rest)
    if not found:
        # "items[3]: must be a mapping", "not valid YAML: ...", "the rubric must be ..."
        if scope == "top":
            return Problem("general", None, None, translate(rest), raw)
        return Problem(scope, index, None, translate(rest), raw)
    sub, name, message = found["sub"], found["name"], translate(found["message"])
    if found["pos"] is not None:
        message = _("Line %(n)s: %(problem)s", n=int(found["pos"]) + 1, problem=message)
    form_field: str | None = name
    if sub:
        form_field = SUB_FIELDS.get((sub, name), sub)
        if (sub, name) not in SUB_FIELDS and name not in ("first_s", "last_s"):
            message = f"{sub}.{name}: {message}"  # an unknown field inside it
    known = {"top": TOP_FIELDS, "category": CATEGORY_FIELDS, "item": ITEM_FIELDS}[scope]
    if form_field not in known and form_field not in SUB_FIELDS.values():
        # An unknown field, or one the form does not have: shown with its name, at the item
        # (or category, or at the top of the editor).
        message = f"{name}: {message}"
        if scope == "top":
            if name in ("categories", "items"):
                return Problem("general", None, None, f"{_field_label(name)}: "
                               f"{translate(found['message'])}", raw)
            return Problem("general", None, None, message, raw)
        return Problem(scope, index, None, message, raw)
    if scope == "item" and form_field in ITEM_FIELDS and _not_of_kind(found["message"]):
        return Problem(scope, index, None, f"{name}: {message}", raw)
    return Problem(scope, index, form_field, message, raw)


def place_all(problems: Iterable[str]) -> Problems:
    return Problems([place(p) for p in problems])


def _not_of_kind(message: str) -> bool:
    return message.startswith("not a parameter of kind ")


def _field_label(name: str) -> str:
    return {"categories": _("Categories"), "items": _("Items")}.get(name, name)


def _choices(text: str) -> str:
    return "、".join(c.strip() for c in text.split(",")) if _is_zh() else text


def _is_zh() -> bool:
    from admin_web.i18n import language

    try:
        return language() == "zh"
    except RuntimeError:  # outside a request
        return False


Translator = Callable[[re.Match[str]], str]

PATTERNS: tuple[tuple[str, Translator], ...] = (
    (r"missing \(required\)", lambda m: _("Required: fill this in.")),
    (r"missing \(required; this loader reads format 1\)",
     lambda m: _("Required: the format of the file (1).")),
    (r"missing \(give min_per_min, max_per_min or both\)",
     lambda m: _("Give the lowest rate, the highest rate or both.")),
    (r"must be a number > 0", lambda m: _("Must be a number greater than 0.")),
    (r"must be a number >= 0", lambda m: _("Must be a number, 0 or more.")),
    (r"must be a number <= total \((?P<total>[^)]*)\)",
     lambda m: _("Must not be more than the total score (%(total)s).", total=m["total"])),
    (r"must be a number > min_per_min",
     lambda m: _("Must be greater than the lowest rate.")),
    (r"must be a number between 0 and 1", lambda m: _("Must be a number from 0 to 1.")),
    (r"must be a whole number >= 1", lambda m: _("Must be a whole number, 1 or more.")),
    (r"must be true or false", lambda m: _("Must be true or false.")),
    (r"must be a non-empty string", lambda m: _("Must not be empty.")),
    (r"must be one of (?P<choices>.*) \(got (?P<got>.*)\)",
     lambda m: _("Must be one of %(choices)s (it is %(got)s).", choices=_choices(m["choices"]),
                 got=m["got"])),
    (r"must be a non-empty list of phrases",
     lambda m: _("Give at least one phrase, one per line.")),
    (r"must be a non-empty list of items", lambda m: _("The rubric needs at least one item.")),
    (r"must be a string \(quote numbers: '(?P<value>.*)'\)",
     lambda m: _("Must be text: in YAML, put numbers in quotes ('%(value)s').",
                 value=m["value"])),
    (r"not a valid regular expression: (?P<reason>.*)",
     lambda m: _("Not a valid regular expression: %(reason)s", reason=m["reason"])),
    (r"unknown field \(did you mean (?P<name>[^?]*)\?\)",
     lambda m: _("Unknown field (did you mean %(name)s?).", name=m["name"])),
    (r"unknown field", lambda m: _("Unknown field.")),
    (r"must match \[a-z0-9_-\]\+ \(got (?P<got>.*)\)",
     lambda m: _("Use only lowercase letters, digits, “-” and “_” (it is %(got)s).",
                 got=m["got"])),
    (r"must be a list of \{id, name\}",
     lambda m: _("Must be a list of categories, each with an id and a name.")),
    (r"must be a mapping \{id, name\}",
     lambda m: _("Must be a category with an id and a name.")),
    (r"duplicate category (?P<id>.*)",
     lambda m: _("Category %(id)s is defined twice.", id=m["id"])),
    (r"duplicate of items\[(?P<n>\d+)\]",
     lambda m: _("Item %(n)s already has this id.", n=int(m["n"]) + 1)),
    (r"unknown kind (?P<kind>.*?)(?: \(did you mean (?P<hint>[^?]*)\?\))?; known: (?P<known>.*)",
     lambda m: (_("Unknown kind %(kind)s (did you mean %(hint)s?).", kind=m["kind"],
                  hint=m["hint"]) if m["hint"] else
                _("Unknown kind %(kind)s.", kind=m["kind"]))),
    (r"not a parameter of kind (?P<kind>\S+)",
     lambda m: _("Not a field of the kind %(kind)s: remove it.", kind=m["kind"])),
    (r"no category (?P<id>.*) \(categories: none defined\)",
     lambda m: _("There is no category %(id)s: no category is defined.", id=m["id"])),
    (r"no category (?P<id>.*) \(categories: (?P<known>.*)\)",
     lambda m: _("There is no category %(id)s (categories: %(known)s).", id=m["id"],
                 known=_choices(m["known"]))),
    (r"must be a mapping \{first_s: N\} or \{last_s: N\}",
     lambda m: _("Must say where: the first or the last seconds of the call.")),
    (r"must hold exactly one of first_s, last_s",
     lambda m: _("Give either the first or the last seconds of the call, not both.")),
    (r"must be a mapping \{speaker, phrases\}",
     lambda m: _("The trigger needs a speaker and phrases.")),
    (r"must be a mapping \{speaker, phrases, within_turns\}",
     lambda m: _("The response needs a speaker, phrases and a number of turns.")),
    (r"must be 1 \(got (?P<got>.*)\)",
     lambda m: _("Must be 1: this box reads rubric format 1 (the file says %(got)s).",
                 got=m["got"])),
    (r"must be a mapping", lambda m: _("Must be a set of fields (a YAML mapping).")),
    (r"not valid YAML: (?P<reason>.*)",
     lambda m: _("This is not valid YAML: %(reason)s", reason=m["reason"])),
    (r"the rubric must be a YAML mapping.*",
     lambda m: _("The rubric must be a YAML mapping (format, id, items, ...).")),
)
COMPILED = tuple((re.compile(p, re.S), f) for p, f in PATTERNS)


def translate(message: str) -> str:
    """A validation message in the user's language; unknown messages stay as they are."""
    for pattern, words in COMPILED:
        found = pattern.fullmatch(message)
        if found:
            return words(found)
    return message
