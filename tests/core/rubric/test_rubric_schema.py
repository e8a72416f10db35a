"""Rubric files (format 1): loading, defaults, round trips, and errors that name item and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.rubric.defaults import builtin_rubrics, default_rubric
from core.rubric.loading import load_rubric_file, load_rubric_text
from core.rubric.schema import RubricError, Window, dump_rubric

MINIMAL = """\
format: 1
id: mini
language: zh
pass_score: 80
items:
  - {id: ban, kind: forbidden_phrase, phrases: [不知道], severity: A, deduct: 10}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(RubricError) as info:
        load_rubric_text(text)
    return info.value.problems


def rubric_with(items: str, head: str = "") -> str:
    return f"format: 1\nid: r\nlanguage: zh\npass_score: 80\n{head}items:\n{items}"


def test_minimal_rubric_gets_documented_defaults() -> None:
    r = load_rubric_text(MINIMAL)
    assert (r.name, r.total, r.categories) == ("mini", 100.0, ())
    it = r.items[0]
    assert it.name == "ban" and it.category is None
    assert (it.enabled, it.fatal, it.alert, it.max_deduct) == (True, False, False, None)
    assert it.match == "fuzzy" and it.speaker == "agent"


def test_kind_defaults_for_speaker_and_parameters() -> None:
    r = load_rubric_text(
        rubric_with(
            "  - {id: k, kind: keyword_alert, phrases: [投诉], severity: A}\n"
            "  - {id: e, kind: emotion, severity: B, deduct: 0}\n"
            "  - {id: p, kind: speech_rate, max_per_min: 300, severity: C, deduct: 1}\n"
        )
    )
    k, e, p = r.items
    assert (k.speaker, k.deduct) == ("any", 0.0)
    assert (e.speaker, e.min_confidence) == ("customer", 0.6)
    assert (p.min_utterance_s, p.min_per_min, p.max_per_min) == (2.0, None, 300.0)


@pytest.mark.parametrize("text", [MINIMAL] + [v for _, v in sorted(builtin_rubrics().items())])
def test_dump_round_trips(text: str) -> None:
    r = load_rubric_text(text)
    assert load_rubric_text(dump_rubric(r)) == r


@pytest.mark.corpus
def test_corpus_rubric_loads_and_round_trips(corpus_dir: Path) -> None:
    r = load_rubric_file(corpus_dir / "rubric.yaml")
    assert [i.id for i in r.items][:2] == ["greeting", "closing"]
    assert r.item("greeting").window == Window(first_s=15)
    assert r.item("complaint_risk").phrases[1] == "12315"
    assert load_rubric_text(dump_rubric(r)) == r


def test_builtin_rubrics_validate() -> None:
    assert set(builtin_rubrics()) == {"default-zh", "default-en"}
    zh, en = default_rubric("zh"), default_rubric("en")
    assert (zh.id, zh.language, en.id, en.language) == ("default-zh", "zh", "default-en", "en")
    kinds = {i.kind for i in zh.items}
    assert kinds == {i.kind for i in en.items}
    assert len(kinds) == 10  # every kind of the format
    assert zh.item("insult").fatal and en.item("insult").fatal
    assert default_rubric("zh-CN").id == "default-zh"


def test_error_names_item_and_field() -> None:
    text = rubric_with(
        "  - {id: ok, kind: silence, min_s: 5, severity: B, deduct: 1}\n"
        "  - {id: x, kind: silence, min_s: 5, severity: B, deduct: 1}\n"
        "  - {id: y, kind: silence, min_s: 5, severity: B, deduct: 1}\n"
        "  - {id: pace, kind: speech_rate, min_per_min: 300, max_per_min: 200,"
        " severity: C, deduct: 1}\n"
    )
    assert problems(text) == ["items[3] (id=pace): max_per_min: must be a number > min_per_min"]


def test_all_problems_reported_together() -> None:
    text = """\
format: 2
id: Bad Id
language: zh
pass_score: 120
total: 100
colour: red
categories:
  - {id: etiquette, name: 服务礼仪}
items:
  - {id: a, kind: forbidden_phrase, phrases: [不知道, 12315], severity: D, dedcut: 3}
  - {id: a, kind: speech_rate, severity: A, deduct: -1, phrases: [x], max_per_min: 1}
  - {id: b, kind: trigger_response, severity: A, deduct: 1, category: nope,
     trigger: {speaker: boss, phrases: []}, response: {speaker: agent, phrases: [抱歉]}}
  - {id: c, kind: required_phrase, phrases: ['('], match: regex, severity: B, deduct: 1,
     window: {first_s: 10, last_s: 5}}
  - {id: d, kind: silense, severity: B, deduct: 1}
  - {id: e, kind: volume, speaker: supervisor, severity: B, deduct: 1}
"""
    got = problems(text)
    expected = [
        "colour: unknown field",
        "format: must be 1 (got 2)",
        "id: must match [a-z0-9_-]+ (got 'Bad Id')",
        "pass_score: must be a number <= total (100)",
        "items[0] (id=a): dedcut: unknown field (did you mean deduct?)",
        "items[0] (id=a): severity: must be one of A, B, C (got 'D')",
        "items[0] (id=a): deduct: missing (required)",
        "items[0] (id=a): phrases[1]: must be a string (quote numbers: '12315')",
        "items[1] (id=a): phrases: not a parameter of kind speech_rate",
        "items[1] (id=a): deduct: must be a number >= 0",
        "items[1] (id=a): id: duplicate of items[0]",
        "items[2] (id=b): category: no category 'nope' (categories: etiquette)",
        "items[2] (id=b): trigger.speaker: must be one of agent, customer, any (got 'boss')",
        "items[2] (id=b): trigger.phrases: must be a non-empty list of phrases",
        "items[2] (id=b): response.within_turns: missing (required)",
        "items[3] (id=c): window: must hold exactly one of first_s, last_s",
        "items[4] (id=d): kind: unknown kind 'silense' (did you mean silence?); known: "
        "forbidden_phrase, required_phrase, trigger_response, silence, overtalk, speech_rate, "
        "volume, filler_words, keyword_alert, emotion",
        "items[5] (id=e): speaker: must be one of agent, customer, any (got 'supervisor')",
        "items[5] (id=e): rise_db: missing (required)",
    ]
    regex_problem = [p for p in got if p.startswith("items[3] (id=c): phrases[0]: not a valid")]
    assert len(regex_problem) == 1
    assert [p for p in got if p not in regex_problem] == expected
    assert "items[1] (id=a): max_per_min" not in str(got)


def test_error_message_lists_problems() -> None:
    with pytest.raises(RubricError) as info:
        load_rubric_text(MINIMAL.replace("severity: A", "severity: Z"))
    assert isinstance(info.value, ValueError)
    assert "items[0] (id=ban): severity: must be one of A, B, C (got 'Z')" in str(info.value)


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        ("- [not, a, mapping]", "the rubric must be a YAML mapping (format, id, items, ...)"),
        ("format: 1\nid: a\nlanguage: zh\npass_score: 1\n", "items: missing (required)"),
        (
            "format: 1\nid: a\nlanguage: zh\npass_score: 1\nitems: []\n",
            "items: must be a non-empty list of items",
        ),
        (
            rubric_with("  - {id: s, kind: silence, min_s: 0, severity: B, deduct: 1}\n"),
            "items[0] (id=s): min_s: must be a number > 0",
        ),
        (
            rubric_with(
                "  - {id: s, kind: overtalk, min_overlap_s: yes, severity: B, deduct: 1}\n"
            ),
            "items[0] (id=s): min_overlap_s: must be a number >= 0",
        ),
        (
            rubric_with(
                "  - {id: s, kind: silence, min_s: 3, speaker: agent, severity: B, deduct: 1}\n"
            ),
            "items[0] (id=s): speaker: not a parameter of kind silence",
        ),
        (
            rubric_with("  - {id: s, kind: filler_words, phrases: [啊], severity: C, deduct: 1}\n"),
            "items[0] (id=s): max_per_min: missing (required)",
        ),
        (
            rubric_with(
                "  - {id: s, kind: forbidden_phrase, phrases: [a], match: loose, severity: C,"
                " deduct: 1}\n"
            ),
            "items[0] (id=s): match: must be one of exact, fuzzy, regex (got 'loose')",
        ),
        (
            rubric_with(
                "  - {id: s, kind: emotion, min_confidence: 1.5, severity: C, deduct: 1}\n"
            ),
            "items[0] (id=s): min_confidence: must be a number between 0 and 1",
        ),
        (
            rubric_with(
                "  - {id: s, kind: required_phrase, phrases: [a], severity: C, deduct: 1,"
                " window: {first_s: 10, middle_s: 3}}\n"
            ),
            "items[0] (id=s): window.middle_s: unknown field",
        ),
        (
            rubric_with(
                "  - {id: s, kind: trigger_response, severity: C, deduct: 1,"
                " trigger: {speaker: customer, phrases: [a]},"
                " response: {speaker: any, phrases: [b], within_turns: 0}}\n"
            ),
            "items[0] (id=s): response.within_turns: must be a whole number >= 1",
        ),
        (
            "format: 1\nid: a\nlanguage: zh\npass_score: 1\nitems: [{id: x}]\n",
            "items[0] (id=x): kind: missing (required)",
        ),
        ("format: 1\nid: a\nitems: [: bad", None),
    ],
)
def test_single_problems(yaml_text: str, problem: str | None) -> None:
    got = problems(yaml_text)
    if problem is None:
        assert got[0].startswith("not valid YAML")
    else:
        assert problem in got


def test_fatal_and_alert_items_need_no_deduct() -> None:
    r = load_rubric_text(
        rubric_with(
            "  - {id: f, kind: forbidden_phrase, phrases: [神经病], severity: A, fatal: true}\n"
        )
    )
    assert r.items[0].fatal and r.items[0].deduct == 0


def test_missing_file_is_a_rubric_error(tmp_path: Path) -> None:
    with pytest.raises(RubricError, match="cannot read"):
        load_rubric_file(tmp_path / "nope.yaml")
