"""Scoring: deductions, caps, fatal items, pass mark, categories, A/B/C counts, engine output."""

from __future__ import annotations

import json

import pytest

from core.calls import Finding
from core.rubric.engine import evaluate, live_findings
from core.rubric.loading import load_rubric_text
from core.rubric.scoring import score_findings
from tests.core.rubric_fixtures import evidence, utt

RUBRIC = load_rubric_text(
    """\
format: 1
id: s
language: zh
pass_score: 80
total: 100
categories:
  - {id: etiquette, name: 服务礼仪}
  - {id: compliance, name: 服务规范}
items:
  - {id: ban, category: compliance, kind: forbidden_phrase, phrases: [不知道], severity: A,
     deduct: 10, max_deduct: 15}
  - {id: hi, category: etiquette, kind: required_phrase, phrases: [您好], severity: C, deduct: 5,
     window: {first_s: 10}}
  - {id: insult, category: compliance, kind: forbidden_phrase, phrases: [神经病], severity: A,
     fatal: true, alert: true}
  - {id: risk, kind: keyword_alert, speaker: customer, phrases: [投诉], severity: A}
"""
)


def finding(item_id: str, start: float, deduct: float = 0.0, severity: str = "A") -> Finding:
    return Finding(item_id, "forbidden_phrase", "agent", start, start + 1, "x", severity, deduct)


def test_caps_apply_in_time_order_and_rewrite_the_deduction() -> None:
    sheet = score_findings(RUBRIC, [finding("ban", t, 10) for t in (30.0, 10.0, 20.0)])
    assert [(f.start, f.deduct) for f in sheet.findings] == [(10.0, 10), (20.0, 5), (30.0, 0)]
    assert sheet.findings[1].detail["nominal_deduct"] == 10
    assert (sheet.deducted, sheet.score, sheet.passed, sheet.fatal) == (15, 85, True, False)
    assert sheet.items["ban"].capped and sheet.items["ban"].hits == 3
    assert sum(f.deduct for f in sheet.findings) == sheet.deducted


def test_pass_mark_is_inclusive() -> None:
    sheet = score_findings(RUBRIC, [finding("ban", 1.0), finding("hi", 0.0), finding("ban", 2.0)])
    assert (sheet.score, sheet.passed) == (80, True)  # 15 + 5 deducted
    sheet = score_findings(
        RUBRIC, [finding("ban", 1.0), finding("hi", 0.0), finding("ban", 2.0), finding("hi", 3.0)]
    )
    assert (sheet.score, sheet.passed) == (75, False)


def test_fatal_item_scores_zero_and_fails() -> None:
    sheet = score_findings(RUBRIC, [finding("insult", 5.0)])
    assert (sheet.score, sheet.passed, sheet.fatal) == (0, False, True)


def test_score_floor_is_zero() -> None:
    rubric = load_rubric_text(
        "format: 1\nid: f\nlanguage: zh\npass_score: 1\ntotal: 10\nitems:\n"
        "  - {id: a, kind: forbidden_phrase, phrases: [x], severity: B, deduct: 7}\n"
    )
    sheet = score_findings(rubric, [finding("a", 1.0), finding("a", 2.0)])
    assert (sheet.deducted, sheet.score) == (14, 0)


def test_categories_and_severity_counts() -> None:
    sheet = score_findings(
        RUBRIC,
        [finding("ban", 1.0), finding("hi", 0.0, severity="C"), finding("risk", 4.0)],
    )
    cats = sheet.categories
    assert (cats["compliance"].deducted, cats["compliance"].remaining) == (10, 90)
    assert (cats["etiquette"].deducted, cats["etiquette"].remaining) == (5, 95)
    assert cats["compliance"].name == "服务规范" and cats["compliance"].findings == 1
    assert sheet.category_scores() == {"etiquette": 95, "compliance": 90}
    # the alert-only keyword finding is not an agent problem
    assert sheet.severity_counts == {"A": 1, "B": 0, "C": 1}


def test_evaluate_builds_the_call_result() -> None:
    ev = evidence(
        [
            utt("agent", 0.5, 3.0, "客服这边"),
            utt("customer", 4.0, 7.0, "我要投诉你们"),
            utt("agent", 8.0, 11.0, "我不知道"),
        ]
    )
    result = evaluate(RUBRIC, ev, rubric_version=3)
    assert [f.item_id for f in result.findings] == ["hi", "risk", "ban"]
    assert (result.score, result.passed, result.fatal, result.rubric_version) == (
        85,
        True,
        False,
        3,
    )
    assert result.category_scores == {"etiquette": 95, "compliance": 90}
    assert result.scoring["severity_counts"] == {"A": 1, "B": 0, "C": 1}
    assert result.metrics["talk_time_s"] == {"agent": 5.5, "customer": 3.0}
    data = result.to_json()
    json.dumps(data, ensure_ascii=False)
    assert data["findings"][1]["alert"] is True and data["findings"][1]["deduct"] == 0
    assert data["transcript"][2] == {
        "speaker": "agent",
        "start": 8.0,
        "end": 11.0,
        "text": "我不知道",
    }


def test_fatal_call_result() -> None:
    ev = evidence([utt("agent", 0.5, 3.0, "您好"), utt("agent", 5.0, 7.0, "你是不是神经病")])
    result = evaluate(RUBRIC, ev)
    assert (result.score, result.passed, result.fatal) == (0, False, True)


def test_live_findings_leave_end_of_call_kinds_out() -> None:
    ev = evidence(
        [utt("agent", 0.5, 3.0, "客服这边"), utt("agent", 12.0, 14.0, "我不知道")], ended=False
    )
    assert [f.item_id for f in live_findings(RUBRIC, ev)] == ["ban"]


@pytest.mark.parametrize("total", [100, 50])
def test_clean_call_keeps_the_total(total: int) -> None:
    rubric = load_rubric_text(
        f"format: 1\nid: c\nlanguage: zh\npass_score: 40\ntotal: {total}\nitems:\n"
        "  - {id: a, kind: forbidden_phrase, phrases: [不知道], severity: B, deduct: 7}\n"
    )
    result = evaluate(rubric, evidence([utt("agent", 0.0, 1.0, "您好")]))
    assert (result.score, result.passed, result.findings) == (total, True, [])


def test_an_empty_call_scores_without_errors() -> None:
    from core.calls import CallEvidence

    result = evaluate(RUBRIC, CallEvidence(30.0, "zh", [], {}))
    assert [f.item_id for f in result.findings] == ["hi"]
    assert result.metrics["talk_time_s"] == {"agent": 0.0, "customer": 0.0}
