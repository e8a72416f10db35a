"""Validation of a parsed rubric file (format 1) into the dataclasses of `core.rubric.schema`.

Every problem is collected with where it is (``items[3] (id=pace): max_per_min: ...``) and
raised together in one `RubricError`; the rules on required fields and defaults are listed
in the docstring of `core.rubric.schema`.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Any

from core.config import REDACTION_KINDS
from core.rubric.schema import (
    CATEGORY_FIELDS,
    COMMON_FIELDS,
    DEFAULT_MATCH,
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_MIN_UTTERANCE_S,
    DEFAULT_SPEAKER,
    DEFAULT_TOTAL,
    FORMAT_VERSION,
    ID_PATTERN,
    KIND_PARAMS,
    KINDS,
    MATCH_MODES,
    REDACTION_FIELDS,
    RESPONSE_FIELDS,
    SEVERITIES,
    SPEAKER_VALUES,
    TOP_FIELDS,
    TRIGGER_FIELDS,
    TURN_SPEAKERS,
    WINDOW_FIELDS,
    Category,
    Item,
    Response,
    Rubric,
    RubricError,
    Trigger,
    Window,
)


class RubricValidator:
    """Collects every problem of a parsed rubric, then builds it or raises `RubricError`."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, where: str, name: str, message: str) -> None:
        self.problems.append(f"{where}{name}: {message}" if where else f"{name}: {message}")

    def unknown(self, where: str, data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
        for key in data:
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]}?)" if close else ""
            self.problem(where, str(key), f"unknown field{hint}")

    # -- scalar readers: each returns None (and records a problem) when the value is bad

    def number(
        self,
        where: str,
        data: Mapping[str, Any],
        name: str,
        *,
        required: bool,
        default: float | None = None,
        positive: bool = False,
    ) -> float | None:
        if name not in data:
            if required:
                self.problem(where, name, "missing (required)")
            return default
        value = data[name]
        bad = (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
            or (positive and value == 0)
        )
        if bad:
            self.problem(
                where, name, "must be a number > 0" if positive else "must be a number >= 0"
            )
            return None
        return float(value)

    def boolean(self, where: str, data: Mapping[str, Any], name: str, default: bool) -> bool:
        value = data.get(name, default)
        if not isinstance(value, bool):
            self.problem(where, name, "must be true or false")
            return default
        return value

    def string(
        self, where: str, data: Mapping[str, Any], name: str, *, required: bool
    ) -> str | None:
        if name not in data:
            if required:
                self.problem(where, name, "missing (required)")
            return None
        value = data[name]
        if not isinstance(value, str) or not value.strip():
            self.problem(where, name, "must be a non-empty string")
            return None
        return value

    def choice(
        self,
        where: str,
        data: Mapping[str, Any],
        name: str,
        choices: tuple[str, ...],
        default: str | None,
    ) -> str | None:
        if name not in data:
            if default is None:
                self.problem(where, name, "missing (required)")
            return default
        value = data[name]
        if value not in choices:
            self.problem(where, name, f"must be one of {', '.join(choices)} (got {value!r})")
            return None
        return str(value)

    def phrases(
        self, where: str, data: Mapping[str, Any], name: str, *, mode: str | None, required: bool
    ) -> tuple[str, ...] | None:
        if name not in data:
            if required:
                self.problem(where, name, "missing (required)")
            return None
        value = data[name]
        if not isinstance(value, list) or not value:
            self.problem(where, name, "must be a non-empty list of phrases")
            return None
        out: list[str] = []
        for i, phrase in enumerate(value):
            if isinstance(phrase, int | float) and not isinstance(phrase, bool):
                self.problem(where, f"{name}[{i}]", f"must be a string (quote numbers: '{phrase}')")
                continue
            if not isinstance(phrase, str) or not phrase.strip():
                self.problem(where, f"{name}[{i}]", "must be a non-empty string")
                continue
            if mode == "regex":
                try:
                    re.compile(phrase)
                except re.error as exc:
                    self.problem(where, f"{name}[{i}]", f"not a valid regular expression: {exc}")
                    continue
            out.append(phrase)
        return tuple(out)

    # -- structures

    def rubric(self, data: Any) -> Rubric:
        if not isinstance(data, dict):
            raise RubricError(["the rubric must be a YAML mapping (format, id, items, ...)"])
        self.unknown("", data, TOP_FIELDS)
        if "format" not in data:
            self.problem("", "format", "missing (required; this loader reads format 1)")
        elif data["format"] != FORMAT_VERSION or isinstance(data["format"], bool):
            self.problem("", "format", f"must be 1 (got {data['format']!r})")
        rid = self.string("", data, "id", required=True)
        if rid is not None and not ID_PATTERN.match(rid):
            self.problem("", "id", f"must match [a-z0-9_-]+ (got {rid!r})")
        name = self.string("", data, "name", required=False)
        language = self.string("", data, "language", required=True)
        total = self.number("", data, "total", required=False, default=DEFAULT_TOTAL, positive=True)
        pass_score = self.number("", data, "pass_score", required=True)
        if total is not None and pass_score is not None and pass_score > total:
            self.problem("", "pass_score", f"must be a number <= total ({total:g})")
        categories = self.categories(data.get("categories"))
        redaction = self.redaction(data.get("redaction")) if "redaction" in data else None
        category_ids = {c.id for c in categories}
        items: list[Item] = []
        raw_items = data.get("items")
        if "items" not in data:
            self.problem("", "items", "missing (required)")
        elif not isinstance(raw_items, list) or not raw_items:
            self.problem("", "items", "must be a non-empty list of items")
        else:
            seen: dict[str, int] = {}
            for i, raw in enumerate(raw_items):
                item = self.item(i, raw, category_ids)
                raw_id = raw.get("id") if isinstance(raw, dict) else None
                if isinstance(raw_id, str):
                    if raw_id in seen:
                        self.problem(
                            f"items[{i}] (id={raw_id}): ",
                            "id",
                            f"duplicate of items[{seen[raw_id]}]",
                        )
                    else:
                        seen[raw_id] = i
                if item is not None:
                    items.append(item)
        if self.problems:
            raise RubricError(self.problems)
        assert rid is not None and language is not None and pass_score is not None
        return Rubric(
            format=FORMAT_VERSION,
            id=rid,
            name=name or rid,
            language=language,
            pass_score=pass_score,
            total=total if total is not None else DEFAULT_TOTAL,
            categories=categories,
            items=tuple(items),
            redaction=redaction,
        )

    def redaction(self, raw: Any) -> tuple[str, ...] | None:
        if not isinstance(raw, dict):
            self.problem("", "redaction", "must be a mapping {kinds: [...]}")
            return None
        self.unknown("redaction: ", raw, REDACTION_FIELDS)
        kinds = raw.get("kinds")
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            self.problem("redaction: ", "kinds", f"must be a list of {', '.join(REDACTION_KINDS)}"
                         " (empty: redact nothing)")
            return None
        bad = [k for k in kinds if k not in REDACTION_KINDS]
        if bad:
            self.problem("redaction: ", "kinds",
                         f"unknown kind {bad[0]!r} (kinds: {', '.join(REDACTION_KINDS)})")
            return None
        return tuple(dict.fromkeys(kinds))

    def categories(self, raw: Any) -> tuple[Category, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.problem("", "categories", "must be a list of {id, name}")
            return ()
        out: list[Category] = []
        for i, entry in enumerate(raw):
            where = f"categories[{i}]: "
            if not isinstance(entry, dict):
                self.problems.append(f"categories[{i}]: must be a mapping {{id, name}}")
                continue
            self.unknown(where, entry, CATEGORY_FIELDS)
            cid = self.string(where, entry, "id", required=True)
            cname = self.string(where, entry, "name", required=False)
            if cid is None:
                continue
            if not ID_PATTERN.match(cid):
                self.problem(where, "id", f"must match [a-z0-9_-]+ (got {cid!r})")
            if any(c.id == cid for c in out):
                self.problem(where, "id", f"duplicate category {cid!r}")
                continue
            out.append(Category(id=cid, name=cname or cid))
        return tuple(out)

    def item(self, index: int, raw: Any, category_ids: set[str]) -> Item | None:
        if not isinstance(raw, dict):
            self.problems.append(f"items[{index}]: must be a mapping")
            return None
        raw_id = raw.get("id")
        where = (
            f"items[{index}] (id={raw_id}): " if isinstance(raw_id, str) else f"items[{index}]: "
        )
        before = len(self.problems)
        iid = self.string(where, raw, "id", required=True)
        if iid is not None and not ID_PATTERN.match(iid):
            self.problem(where, "id", f"must match [a-z0-9_-]+ (got {iid!r})")
        kind = raw.get("kind")
        if "kind" not in raw:
            self.problem(where, "kind", "missing (required)")
            kind = None
        elif kind not in KINDS:
            close = difflib.get_close_matches(str(kind), KINDS, n=1, cutoff=0.7)
            hint = f" (did you mean {close[0]}?)" if close else ""
            self.problem(where, "kind", f"unknown kind {kind!r}{hint}; known: {', '.join(KINDS)}")
            kind = None
        params = KIND_PARAMS[kind] if kind else {}
        if kind:
            for key in raw:
                if key in COMMON_FIELDS or key in params:
                    continue
                if any(key in p for p in KIND_PARAMS.values()):
                    self.problem(where, str(key), f"not a parameter of kind {kind}")
                else:
                    allowed = COMMON_FIELDS + tuple(params)
                    self.unknown(where, {key: None}, allowed)

        name = self.string(where, raw, "name", required=False)
        category = self.string(where, raw, "category", required=False)
        if category is not None and category not in category_ids:
            known = ", ".join(sorted(category_ids)) or "none defined"
            self.problem(where, "category", f"no category {category!r} (categories: {known})")
        severity = self.choice(where, raw, "severity", SEVERITIES, None)
        fatal = self.boolean(where, raw, "fatal", False)
        deduct_required = kind != "keyword_alert" and not fatal
        deduct = self.number(where, raw, "deduct", required=deduct_required, default=0.0)
        max_deduct = self.number(where, raw, "max_deduct", required=False)
        alert = self.boolean(where, raw, "alert", False)
        enabled = self.boolean(where, raw, "enabled", True)

        values: dict[str, Any] = {}
        if kind:
            values = self.kind_params(where, kind, raw)
        if len(self.problems) > before or iid is None or kind is None or severity is None:
            return None
        return Item(
            id=iid,
            kind=kind,
            name=name or iid,
            category=category,
            severity=severity,
            deduct=deduct if deduct is not None else 0.0,
            max_deduct=max_deduct,
            fatal=fatal,
            alert=alert,
            enabled=enabled,
            **values,
        )

    def kind_params(self, where: str, kind: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        params = KIND_PARAMS[kind]
        out: dict[str, Any] = {}
        if "speaker" in params:
            out["speaker"] = self.choice(
                where, raw, "speaker", SPEAKER_VALUES, DEFAULT_SPEAKER.get(kind, "agent")
            )
        if "match" in params:
            out["match"] = self.choice(where, raw, "match", MATCH_MODES, DEFAULT_MATCH)
        mode = out.get("match")
        if "phrases" in params:
            out["phrases"] = (
                self.phrases(where, raw, "phrases", mode=mode, required=params["phrases"]) or ()
            )
        if kind == "required_phrase" and "window" in raw:
            out["window"] = self.window(where, raw["window"])
        if kind == "trigger_response":
            out["trigger"] = (
                self.trigger(where, raw.get("trigger"), mode) if "trigger" in raw else None
            )
            out["response"] = (
                self.response(where, raw.get("response"), mode) if "response" in raw else None
            )
            for name in ("trigger", "response"):
                if name not in raw:
                    self.problem(where, name, "missing (required)")
        if kind == "silence":
            out["min_s"] = self.number(where, raw, "min_s", required=True, positive=True)
            if "hold_phrases" in raw:
                out["hold_phrases"] = self.phrases(
                    where, raw, "hold_phrases", mode=None, required=False
                )
        if kind == "overtalk":
            out["min_overlap_s"] = self.number(where, raw, "min_overlap_s", required=True)
        if kind == "speech_rate":
            lo = self.number(where, raw, "min_per_min", required=False)
            hi = self.number(where, raw, "max_per_min", required=False, positive=True)
            if "min_per_min" not in raw and "max_per_min" not in raw:
                self.problem(
                    where, "max_per_min", "missing (give min_per_min, max_per_min or both)"
                )
            if lo is not None and hi is not None and hi <= lo:
                self.problem(where, "max_per_min", "must be a number > min_per_min")
            out["min_per_min"] = lo
            out["max_per_min"] = hi
            out["min_utterance_s"] = self.number(
                where, raw, "min_utterance_s", required=False, default=DEFAULT_MIN_UTTERANCE_S
            )
        if kind == "volume":
            out["rise_db"] = self.number(where, raw, "rise_db", required=True, positive=True)
        if kind == "filler_words":
            out["max_per_min"] = self.number(where, raw, "max_per_min", required=True)
        if kind == "emotion":
            conf = self.number(
                where, raw, "min_confidence", required=False, default=DEFAULT_MIN_CONFIDENCE
            )
            if conf is not None and conf > 1:
                self.problem(where, "min_confidence", "must be a number between 0 and 1")
            out["min_confidence"] = conf
        return out

    def window(self, where: str, raw: Any) -> Window | None:
        if not isinstance(raw, dict):
            self.problem(where, "window", "must be a mapping {first_s: N} or {last_s: N}")
            return None
        sub = where + "window."
        self.unknown(sub, raw, WINDOW_FIELDS)
        present = [k for k in WINDOW_FIELDS if k in raw]
        if len(present) != 1:
            self.problem(where, "window", "must hold exactly one of first_s, last_s")
            return None
        value = self.number(sub, raw, present[0], required=True, positive=True)
        if value is None:
            return None
        return Window(first_s=value) if present[0] == "first_s" else Window(last_s=value)

    def trigger(self, where: str, raw: Any, mode: str | None) -> Trigger | None:
        if not isinstance(raw, dict):
            self.problem(where, "trigger", "must be a mapping {speaker, phrases}")
            return None
        sub = where + "trigger."
        self.unknown(sub, raw, TRIGGER_FIELDS)
        speaker = self.choice(sub, raw, "speaker", SPEAKER_VALUES, None)
        phrases = self.phrases(sub, raw, "phrases", mode=mode, required=True)
        if speaker is None or not phrases:
            return None
        return Trigger(speaker=speaker, phrases=phrases)

    def response(self, where: str, raw: Any, mode: str | None) -> Response | None:
        if not isinstance(raw, dict):
            self.problem(where, "response", "must be a mapping {speaker, phrases, within_turns}")
            return None
        sub = where + "response."
        self.unknown(sub, raw, RESPONSE_FIELDS)
        speaker = self.choice(sub, raw, "speaker", TURN_SPEAKERS, None)
        phrases = self.phrases(sub, raw, "phrases", mode=mode, required=True)
        turns = raw.get("within_turns")
        if "within_turns" not in raw:
            self.problem(sub, "within_turns", "missing (required)")
            turns = None
        elif isinstance(turns, bool) or not isinstance(turns, int) or turns < 1:
            self.problem(sub, "within_turns", "must be a whole number >= 1")
            turns = None
        if speaker is None or not phrases or turns is None:
            return None
        return Response(speaker=speaker, phrases=phrases, within_turns=turns)
