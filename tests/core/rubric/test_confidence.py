"""Near misses of rubric phrases, and the confidence of findings (no model needed)."""

from __future__ import annotations

from core.calls import CallEvidence, PhraseCheck, Utterance
from core.rubric.confidence import absence_confidence, margin_confidence, phrase_confidence
from core.rubric.engine import evaluate
from core.rubric.loading import load_rubric_text
from core.rubric.matching import find_phrases, near_misses
from core.rubric.phrase_checks import checked_phrases

RUBRIC = """
format: 1
id: t
name: t
language: zh
pass_score: 60
items:
  - id: forbidden
    name: forbidden
    kind: forbidden_phrase
    speaker: agent
    phrases: [不知道]
    severity: B
    deduct: 5
  - id: greeting
    name: greeting
    kind: required_phrase
    speaker: agent
    phrases: [您好]
    window: {first_s: 15}
    severity: B
    deduct: 5
  - id: exact_only
    name: exact
    kind: keyword_alert
    speaker: customer
    match: exact
    phrases: [投诉]
    severity: C
  - id: volume
    name: volume
    kind: volume
    speaker: agent
    rise_db: 8
    severity: C
    deduct: 1
"""


def test_near_misses_are_one_sound_away_and_never_a_negation_or_a_number() -> None:
    assert [m.text for m in near_misses("我不知等啊", ["不知道"])] == ["不知等"]
    assert [m.text for m in near_misses("不好衣服让您着急了", ["不好意思"])] == ["不好衣服"]
    assert near_misses("我知道了", ["不知道"]) == []  # the negation is the difference
    assert near_misses("我不知道", ["不知道"]) == []  # a match is no near miss
    assert near_misses("打一二三八五", ["12315"]) == []  # a number is an identifier
    assert near_misses("完全不对劲", ["不知道"]) == []  # two sounds away


def test_checked_phrases_follow_speakers_and_leave_exact_items_out() -> None:
    rubric = load_rubric_text(RUBRIC)
    assert checked_phrases(rubric, "agent") == ("不知道", "您好")
    assert checked_phrases(rubric, "customer") == ()


def _line(text: str, logprob: float, checks: list[PhraseCheck] | None = None) -> Utterance:
    return Utterance("agent", 20.0, 23.0, text, avg_logprob=logprob, checks=checks or [])


def test_phrase_confidence_orders_exact_homophone_and_verified() -> None:
    clean = _line("我不知道", -0.1)
    homophone = _line("我不知倒", -0.1)
    verified = _line("我不知道", -0.5, [PhraseCheck("不知道", "不知等", 1, 4, -3.0, True, at=1)])
    confs = {}
    for name, u in (("exact", clean), ("homophone", homophone), ("verified", verified)):
        match = find_phrases(u.text, ["不知道"])[0]
        confs[name], how = phrase_confidence(u, match, "fuzzy")
        assert how == name
    assert 1.0 >= confs["exact"] > confs["homophone"] > confs["verified"] > 0.0


def test_absence_and_margin_confidence() -> None:
    sure = absence_confidence([_line("欢迎致电", -0.1)], ["您好"])
    doubt = absence_confidence(
        [_line("你好欢迎致电", -0.1, [PhraseCheck("您好", "你好", 0, 2, -4.5, False)])], ["您好"]
    )
    assert sure > doubt
    assert margin_confidence(8.0, 8.0) == 0.5
    assert 0.5 < margin_confidence(10.0, 8.0) < margin_confidence(12.0, 8.0) == 1.0


def test_every_finding_of_a_scored_call_carries_a_confidence() -> None:
    rubric = load_rubric_text(RUBRIC)
    utts = [_line("请问有什么可以帮您", -0.2), _line("这个我不知道", -0.3)]
    utts[1].start, utts[1].end = 30.0, 32.0
    result = evaluate(rubric, CallEvidence(60.0, "zh", utts, {}))
    assert {f.item_id for f in result.findings} == {"greeting", "forbidden"}
    assert all(f.confidence is not None and 0 < f.confidence <= 1 for f in result.findings)
    assert all("confidence" in f.to_json() for f in result.findings)
