"""A rubric text seen lately is parsed once: call set-ups resolve their rubric each time."""

from __future__ import annotations

import pytest

from core.rubric import loading
from core.rubric.defaults import builtin_rubrics
from core.rubric.schema import RubricError


def test_the_same_text_is_parsed_once_and_gives_the_same_rubric(monkeypatch):
    text = builtin_rubrics()["default-zh"] + "\n# a text no other test uses\n"
    parsed: list[str] = []
    real = loading.yaml.safe_load
    monkeypatch.setattr(loading.yaml, "safe_load", lambda t: parsed.append(t) or real(t))
    first = loading.load_rubric_text(text)
    again = loading.load_rubric_text(text)
    assert again is first
    assert parsed == [text]
    assert first.id == "default-zh" and first.items


def test_a_bad_text_is_refused_every_time():
    bad = "id: x\nitems: [\n"
    for _ in range(2):
        with pytest.raises(RubricError, match="not valid YAML"):
            loading.load_rubric_text(bad)
