"""The rubric editor's form: a rubric's YAML mapping to form values, and the posted form back.

The form covers every field of the rubric file format (../shared/design/RUBRIC.md and
`core.rubric.schema`): the rubric's own fields, its categories, and per item the common
fields and the parameters of every kind. Each item carries the inputs of all kinds; the page
shows those of the item's kind (static/js/rubrics.js), and only those are saved.

Values go both ways unchanged where they can: an empty input leaves the field out of the
YAML (so the format's default applies); a number that does not read as one is kept as text,
so that the validator names the field. Saving the form writes the YAML anew
(`dump_rubric_data`), in the order of the format's own example.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from flask_babel import lazy_gettext as _l

from core.rubric.schema import (
    COMMON_FIELDS,
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_MIN_UTTERANCE_S,
    FORMAT_VERSION,
    KIND_PARAMS,
    KINDS,
)

Values = dict[str, str]


@dataclass(frozen=True)
class Field:
    """One input of an item: its form name, the YAML field it edits, the kinds that have it."""

    name: str
    yaml_key: str
    kinds: tuple[str, ...]
    label: Any
    widget: str  # text, number, lines, select, check, window
    choices: tuple[tuple[str, Any], ...] = ()
    hint: Any = ""
    placeholder: str = ""

    @property
    def kinds_attr(self) -> str:
        return " ".join(self.kinds)


def _kinds_with(param: str) -> tuple[str, ...]:
    return tuple(k for k in KINDS if param in KIND_PARAMS[k])


def kind_names() -> dict[str, str]:
    return {
        "forbidden_phrase": str(_l("Forbidden phrase")),
        "required_phrase": str(_l("Required phrase")),
        "trigger_response": str(_l("Trigger and response")),
        "silence": str(_l("Silence")),
        "overtalk": str(_l("Overtalk")),
        "speech_rate": str(_l("Speech rate")),
        "volume": str(_l("Volume")),
        "filler_words": str(_l("Filler words")),
        "keyword_alert": str(_l("Keyword alert")),
        "emotion": str(_l("Emotion")),
    }


def kind_hints() -> dict[str, str]:
    """What each kind finds (RUBRIC.md's table), shown under the kind's select."""
    return {
        "forbidden_phrase": str(_l("The speaker says one of the phrases.")),
        "required_phrase": str(_l("The speaker must say one of the phrases, in the window "
                                  "if one is given; a finding is raised when it is missing.")),
        "trigger_response": str(_l("After the trigger, the responder must answer with one of "
                                   "the phrases within the given turns.")),
        "silence": str(_l("Both sides are silent at least this long (hold announcements "
                          "excepted).")),
        "overtalk": str(_l("The speaker starts talking while the other side talks, and both "
                           "talk together at least this long.")),
        "speech_rate": str(_l("The speaker's rate per utterance (characters per minute in "
                              "Chinese, words in English) is outside the range.")),
        "volume": str(_l("An utterance is louder than the speaker's own median level by at "
                         "least this much.")),
        "filler_words": str(_l("The speaker uses filler words more often than allowed.")),
        "keyword_alert": str(_l("The speaker says a phrase that needs attention; it deducts "
                                "only when a deduction is given.")),
        "emotion": str(_l("The speaker is angry or upset (from words and voice).")),
    }


def _speakers(with_any: bool = True) -> tuple[tuple[str, Any], ...]:
    out: tuple[tuple[str, Any], ...] = (("agent", _l("Agent")), ("customer", _l("Customer")))
    return out + ((("any", _l("Either")),) if with_any else ())


def item_fields() -> tuple[Field, ...]:
    """The kind parameters of an item, in the order the editor shows them."""
    default = ("", _l("Default"))
    speaker_kinds = _kinds_with("speaker")
    return (
        Field("speaker", "speaker", speaker_kinds, _l("Speaker"), "select",
              (default, *_speakers()),
              hint=_l("Default: the agent; the customer for emotion; either for keyword "
                      "alerts.")),
        Field("phrases", "phrases", _kinds_with("phrases"), _l("Phrases, one per line"),
              "lines"),
        Field("match", "match", _kinds_with("match"), _l("Matching"), "select",
              (("", _l("Default (fuzzy)")), ("exact", _l("Exact")),
               ("fuzzy", _l("Fuzzy: tolerates ASR homophones")),
               ("regex", _l("Regular expression")))),
        Field("window", "window", _kinds_with("window"), _l("Where in the call"), "window",
              (("", _l("Anywhere in the call")), ("first_s", _l("In the first seconds")),
               ("last_s", _l("In the last seconds")))),
        Field("trigger_speaker", "trigger", ("trigger_response",), _l("Trigger: who says it"),
              "select", (("", "—"), *_speakers())),
        Field("trigger_phrases", "trigger", ("trigger_response",),
              _l("Trigger phrases, one per line"), "lines"),
        Field("response_speaker", "response", ("trigger_response",),
              _l("Response: who must answer"), "select", (("", "—"), *_speakers(False))),
        Field("response_phrases", "response", ("trigger_response",),
              _l("Response phrases, one per line"), "lines"),
        Field("within_turns", "response", ("trigger_response",),
              _l("Within how many of the responder's turns"), "number", placeholder="2"),
        Field("min_s", "min_s", ("silence",), _l("Shortest silence, in seconds"), "number"),
        Field("hold_phrases", "hold_phrases", ("silence",),
              _l("Hold announcements, one per line"), "lines",
              hint=_l("A silence after one of these is not counted. Empty: the built-in list "
                      "of the rubric's language.")),
        Field("min_overlap_s", "min_overlap_s", ("overtalk",),
              _l("Shortest overlap, in seconds"), "number"),
        Field("min_per_min", "min_per_min", ("speech_rate",), _l("Lowest rate per minute"),
              "number"),
        Field("rate_max_per_min", "max_per_min", ("speech_rate",),
              _l("Highest rate per minute"), "number"),
        Field("min_utterance_s", "min_utterance_s", ("speech_rate",),
              _l("Shortest utterance measured, in seconds"), "number",
              placeholder=f"{DEFAULT_MIN_UTTERANCE_S:g}"),
        Field("rise_db", "rise_db", ("volume",),
              _l("Rise above the speaker's median, in dB"), "number"),
        Field("filler_max_per_min", "max_per_min", ("filler_words",),
              _l("Most filler words per minute"), "number"),
        Field("min_confidence", "min_confidence", ("emotion",),
              _l("Lowest confidence, 0 to 1"), "number",
              placeholder=f"{DEFAULT_MIN_CONFIDENCE:g}"),
    )


def error_keys(prefix: str, f: Field) -> list[str]:
    """The keys problems are placed at (admin_web.rubric_errors) for this input of the item
    whose keys start with `prefix` (``items-3``)."""
    if f.name == "trigger_speaker":
        names = ["trigger", f.name]  # the trigger as a whole, then its speaker
    elif f.name == "response_speaker":
        names = ["response", f.name]
    elif f.name in ("trigger_phrases", "response_phrases", "within_turns"):
        names = [f.name]
    else:
        names = [f.yaml_key]
    return [f"{prefix}-{n}" for n in names]


def severity_choices() -> tuple[tuple[str, Any], ...]:
    return (("A", _l("A (serious)")), ("B", _l("B")), ("C", _l("C (minor)")))


# ---------------------------------------------------------------- YAML data -> form


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | dict):
        return yaml.safe_dump(value, allow_unicode=True, default_flow_style=True).strip()
    return str(value)


def _lines(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(_text(v) for v in value)
    return _text(value)


def _check(value: Any, default: bool) -> str:
    if value is None:
        return "1" if default else ""
    return "1" if value is True or (not isinstance(value, bool) and bool(value)) else ""


def item_values(raw: Any) -> Values:
    """Form values of one item of the YAML (anything: the YAML may be wrong)."""
    data: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    out: Values = {
        "id": _text(data.get("id")), "name": _text(data.get("name")),
        "kind": _text(data.get("kind")), "category": _text(data.get("category")),
        "severity": _text(data.get("severity")), "deduct": _text(data.get("deduct")),
        "max_deduct": _text(data.get("max_deduct")),
        "fatal": _check(data.get("fatal"), False), "alert": _check(data.get("alert"), False),
        "enabled": _check(data.get("enabled"), True),
        "speaker": _text(data.get("speaker")), "phrases": _lines(data.get("phrases")),
        "match": _text(data.get("match")), "min_s": _text(data.get("min_s")),
        "hold_phrases": _lines(data.get("hold_phrases")),
        "min_overlap_s": _text(data.get("min_overlap_s")),
        "min_per_min": _text(data.get("min_per_min")), "rise_db": _text(data.get("rise_db")),
        "min_utterance_s": _text(data.get("min_utterance_s")),
        "min_confidence": _text(data.get("min_confidence")),
    }  # fmt: skip
    out["rate_max_per_min"] = out["filler_max_per_min"] = _text(data.get("max_per_min"))
    window = data.get("window")
    out["window_mode"], out["window_s"] = "", ""
    if isinstance(window, dict):
        for mode in ("first_s", "last_s"):
            if mode in window:
                out["window_mode"], out["window_s"] = mode, _text(window[mode])
                break
    for side in ("trigger", "response"):
        part = data.get(side)
        part = part if isinstance(part, dict) else {}
        out[f"{side}_speaker"] = _text(part.get("speaker"))
        out[f"{side}_phrases"] = _lines(part.get("phrases"))
    response = data.get("response")
    out["within_turns"] = _text(response.get("within_turns")) if isinstance(response,
                                                                           dict) else ""
    known = set(COMMON_FIELDS) | {p for params in KIND_PARAMS.values() for p in params}
    out["_unknown"] = ", ".join(str(k) for k in data if k not in known)
    return out


@dataclass
class EditorForm:
    """What the editor's form shows: the rubric's fields, categories and items."""

    top: Values
    categories: list[Values]
    items: list[Values]
    readable: bool = True
    """False when the YAML is not a rubric-shaped mapping: only the YAML view can show it."""


def form_from_data(data: Any) -> EditorForm:
    if not isinstance(data, dict):
        return EditorForm(top={}, categories=[], items=[], readable=False)
    top = {k: _text(data.get(k)) for k in ("id", "name", "language", "pass_score", "total")}
    top["format"] = _text(data.get("format", FORMAT_VERSION))
    raw_categories = data.get("categories")
    categories = [
        {"id": _text(c.get("id")), "name": _text(c.get("name"))} if isinstance(c, dict)
        else {"id": _text(c), "name": ""}
        for c in (raw_categories if isinstance(raw_categories, list) else [])
    ]
    raw_items = data.get("items")
    items = [item_values(raw) for raw in (raw_items if isinstance(raw_items, list) else [])]
    readable = isinstance(raw_items, list | None) and isinstance(raw_categories, list | None)
    return EditorForm(top=top, categories=categories, items=items, readable=readable)


# ---------------------------------------------------------------- form -> YAML data

NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _number(text: str) -> Any:
    """A number from an input; text that is not one stays text (the validator names it)."""
    t = text.strip()
    if not t:
        return None
    if NUMBER_RE.match(t):
        value = float(t)
        return int(value) if value.is_integer() and "e" not in t.lower() else value
    return t


def _phrase_list(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is None or value == "" or value == []:
        return
    out[key] = value


Getter = Callable[[str], str]


def _kind_params(kind: str, get: Getter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for param in KIND_PARAMS[kind]:
        if param == "speaker":
            _put(out, "speaker", get("speaker"))
        elif param == "phrases":
            _put(out, "phrases", _phrase_list(get("phrases")))
        elif param == "match":
            _put(out, "match", get("match"))
        elif param == "window":
            mode = get("window_mode")
            if mode in ("first_s", "last_s"):
                out["window"] = {mode: _number(get("window_s"))}
        elif param in ("trigger", "response"):
            part: dict[str, Any] = {}
            _put(part, "speaker", get(f"{param}_speaker"))
            _put(part, "phrases", _phrase_list(get(f"{param}_phrases")))
            if param == "response":
                _put(part, "within_turns", _number(get("within_turns")))
            out[param] = part
        elif param == "hold_phrases":
            _put(out, "hold_phrases", _phrase_list(get("hold_phrases")))
        elif param == "max_per_min":
            name = "rate_max_per_min" if kind == "speech_rate" else "filler_max_per_min"
            _put(out, "max_per_min", _number(get(name)))
        else:
            _put(out, param, _number(get(param)))
    return out


def item_data(get: Getter) -> dict[str, Any]:
    """One item's YAML mapping from its form values (``get(name)``: '' when absent)."""
    out: dict[str, Any] = {}
    _put(out, "id", get("id").strip())
    _put(out, "name", get("name").strip())
    _put(out, "category", get("category"))
    kind = get("kind")
    _put(out, "kind", kind)
    if kind in KIND_PARAMS:
        out.update(_kind_params(kind, get))
    _put(out, "severity", get("severity"))
    _put(out, "deduct", _number(get("deduct")))
    _put(out, "max_deduct", _number(get("max_deduct")))
    if get("fatal"):
        out["fatal"] = True
    if get("alert"):
        out["alert"] = True
    if not get("enabled"):
        out["enabled"] = False
    return out


INDEX_RE = re.compile(r"^(items|categories)-(\d+)-")


def _indices(form: Mapping[str, Any], part: str) -> list[int]:
    found = set()
    for key in form:
        m = INDEX_RE.match(key)
        if m and m.group(1) == part:
            found.add(int(m.group(2)))
    return sorted(found)


def data_from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The rubric's YAML mapping from the posted editor form (a request's ``form``)."""

    def value(key: str) -> str:
        v = form.get(key)
        return "" if v is None else str(v)

    out: dict[str, Any] = {"format": FORMAT_VERSION}
    _put(out, "id", value("top-id").strip())
    _put(out, "name", value("top-name").strip())
    _put(out, "language", value("top-language").strip())
    _put(out, "pass_score", _number(value("top-pass_score")))
    _put(out, "total", _number(value("top-total")))
    categories = []
    for i in _indices(form, "categories"):
        cid, cname = value(f"categories-{i}-id").strip(), value(f"categories-{i}-name").strip()
        if cid or cname:
            entry: dict[str, Any] = {}
            _put(entry, "id", cid)
            _put(entry, "name", cname)
            categories.append(entry)
    if categories:
        out["categories"] = categories
    def item_getter(i: int) -> Getter:
        return lambda name: value(f"items-{i}-{name}")

    out["items"] = [item_data(item_getter(i)) for i in _indices(form, "items")]
    return out


class _Dumper(yaml.SafeDumper):
    """Indents lists under their key (``items:`` then ``  - id: ...``), as RUBRIC.md does."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


class _Flow(list[Any]):
    """A list written on one line: ``[a, b]``."""


class _FlowMap(dict[str, Any]):
    """A mapping written on one line: ``{first_s: 15}``."""


_Dumper.add_representer(
    _Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
_Dumper.add_representer(
    _FlowMap, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))


def _styled(value: Any, key: str = "") -> Any:
    """Lists of plain values, windows and categories on one line; everything else in blocks
    (an item is never squeezed onto one line)."""
    if isinstance(value, dict):
        out = {k: _styled(v, str(k)) for k, v in value.items()}
        simple = all(not isinstance(v, dict | list) for v in value.values())
        return _FlowMap(out) if key in ("window", "categories") and simple else out
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return _Flow(value)
        return [_styled(v, key) for v in value]
    return value


def dump_rubric_data(data: Mapping[str, Any], header: str = "") -> str:
    """YAML text of a rubric mapping: block style, short lists and mappings on one line,
    after `header` (comment lines kept from the text the form was made from)."""
    text: str = yaml.dump(
        _styled(dict(data)), Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100,
        default_flow_style=False,
    )
    return header + text


def leading_comments(text: str) -> str:
    """The comment lines a YAML text starts with (a file's header), with their newlines."""
    lines = []
    for line in text.splitlines(keepends=True):
        if not line.lstrip().startswith("#") and line.strip():
            break
        lines.append(line if line.endswith("\n") else line + "\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return "".join(lines)


def blank_item(index: int, language: str) -> dict[str, Any]:
    """A new item to start from (a forbidden phrase; the admin changes the kind)."""
    return {"id": f"item-{index + 1}", "kind": "forbidden_phrase", "speaker": "agent",
            "phrases": ["不知道"] if language.startswith("zh") else ["I don't know"],
            "severity": "B", "deduct": 5}


def starter_rubric(language: str) -> dict[str, Any]:
    """A new rubric to start from: one required greeting."""
    zh = language.startswith("zh")
    return {
        "format": FORMAT_VERSION, "id": "new-rubric",
        "name": "新质检规则" if zh else "New rubric", "language": "zh" if zh else "en",
        "pass_score": 80, "total": 100,
        "items": [{
            "id": "greeting", "name": "开头语" if zh else "Greeting", "kind": "required_phrase",
            "speaker": "agent", "phrases": ["您好"] if zh else ["hello", "good morning"],
            "window": {"first_s": 15}, "severity": "B", "deduct": 5,
        }],
    }  # fmt: skip


def apply_action(data: dict[str, Any], action: str) -> bool:
    """Add, remove or move an item or category of the form's data; False if not such an action.

    Actions: ``add_item``, ``add_category``, ``remove_item:N``, ``remove_category:N``,
    ``up:N``, ``down:N`` (N counts from 0).
    """
    items = data.setdefault("items", [])
    if action == "add_item":
        items.append(blank_item(len(items), str(data.get("language", "zh"))))
        return True
    if action == "add_category":
        data.setdefault("categories", []).append({"id": "", "name": ""})
        return True
    name, _sep, arg = action.partition(":")
    if not arg.isdigit():
        return False
    n = int(arg)
    if name == "remove_item" and n < len(items):
        del items[n]
    elif name == "remove_category" and n < len(data.get("categories", [])):
        del data["categories"][n]
    elif name == "up" and 0 < n < len(items):
        items[n - 1], items[n] = items[n], items[n - 1]
    elif name == "down" and n + 1 < len(items):
        items[n], items[n + 1] = items[n + 1], items[n]
    else:
        return False
    return True
