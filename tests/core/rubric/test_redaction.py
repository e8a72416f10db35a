"""Numbers found and masked in transcripts: the checks, spoken digits, numbers split over
two utterances, and the numbers a call center says that are not sensitive."""

from __future__ import annotations

import pytest

from core.calls import CallResult, Finding, PhraseCheck, Utterance
from core.config import ConfigError, Settings
from core.rubric.loading import load_rubric_text
from core.rubric.redaction import (
    KINDS,
    MASKS_ZH,
    CallRedactor,
    apply_masks,
    classify,
    find_spans,
    id_number_ok,
    kinds_for,
    luhn_ok,
)
from core.rubric.schema import rubric_to_dict
from core.rubric.validate import RubricError

ALL = frozenset(KINDS)
CARD = "4111111111111111"          # a Luhn-valid test card number
ID = "11010519491231002X"          # GB 11643 example, check digit X


def masked(text: str, kinds: frozenset[str] = ALL) -> str:
    return apply_masks(text, find_spans(text, kinds), MASKS_ZH)


def test_luhn_and_id_check_digit() -> None:
    assert luhn_ok(CARD) and luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112")
    assert id_number_ok(ID) and id_number_ok("110105194912310021".replace("0021", "002X"))
    assert not id_number_ok("110105194912310023")    # wrong check digit
    assert not id_number_ok("110105194913310026")    # month 13
    assert classify(CARD) == "card"
    assert classify(CARD[:-1] + "2", {"card"}) is None  # fails Luhn, no account kind
    assert classify(CARD[:-1] + "2") == "bank_account"
    assert classify(ID) == "id_number"
    assert classify("13812345678") == "mobile" and classify("12812345678") is None
    assert classify("01012345678") == "landline" and classify("075512345678") == "landline"


@pytest.mark.parametrize(("text", "want"), [
    ("我的卡号是4111 1111 1111 1111", "我的卡号是[卡号]"),
    ("卡号是四幺幺幺，幺幺幺幺，嗯，一一一一 一一一一。", "卡号是[卡号]。"),
    ("身份证是一一零一零五一九四九一二三一零零二X", "身份证是[身份证号]"),
    ("手机一三八，那个，一二三四，五六七八，好的", "手机[手机号]，好的"),
    ("座机是010-12345678", "座机是[电话号码]"),
    ("号码是 1 3 8 1 2 3 4 5 6 7 8 对吧", "号码是 [手机号] 对吧"),
    ("账号六二一七零零零零一二三四五六七八九零一", "账号[账号]"),
    ("四一一一一一一一11111111", "[卡号]"),              # Arabic and Chinese mixed
])
def test_numbers_masked(text: str, want: str) -> None:
    assert masked(text) == want


@pytest.mark.parametrize("text", [
    "手机尾号是零零九三。", "尾号 0374", "你们再拖我就打12315。", "二零二五年九月三日下的单",
    "您好，一零二六号很高兴为您服务", "一千兆套餐每月一百二十九元", "退款12000元已经到账",
    "装机地址是幸福小区三栋两单元五零二", "你们回个电话都要两三天", "订单 2025 0903 下的",
    "2025-09-03 10:30:15 下的单", "热线400-820-8820",
])
def test_numbers_that_are_not_sensitive_kept(text: str) -> None:
    assert masked(text) == text


def test_kinds_chosen_per_box_and_rubric() -> None:
    assert masked(f"卡号{CARD}", frozenset({"mobile"})) == f"卡号{CARD}"
    assert kinds_for(None, "card,mobile") == {"card", "mobile"}
    assert kinds_for((), "card") == frozenset()
    assert kinds_for(("card",), "none") == {"card"}
    with pytest.raises(ConfigError, match="redaction_kinds"):
        Settings(redaction_kinds="card,passport")


RUBRIC = """format: 1
id: r
language: zh
pass_score: 60
items:
  - {id: hello, kind: required_phrase, speaker: agent, phrases: [您好], severity: C, deduct: 5}
"""


def test_rubric_key_is_optional_and_checked() -> None:
    assert load_rubric_text(RUBRIC).redaction is None
    rubric = load_rubric_text(RUBRIC + "redaction: {kinds: [card, id_number]}\n")
    assert rubric.redaction == ("card", "id_number")
    assert rubric_to_dict(rubric)["redaction"] == {"kinds": ["card", "id_number"]}
    assert "redaction" not in rubric_to_dict(load_rubric_text(RUBRIC))
    with pytest.raises(RubricError, match="unknown kind 'passport'"):
        load_rubric_text(RUBRIC + "redaction: {kinds: [passport]}\n")
    with pytest.raises(RubricError, match="redaction"):
        load_rubric_text(RUBRIC + "redaction: [card]\n")


def _utt(speaker: str, start: float, text: str, **kw: object) -> Utterance:
    return Utterance(speaker, start, start + 2.0, text, **kw)  # type: ignore[arg-type]


def test_number_split_over_two_utterances_of_one_leg() -> None:
    utts = [_utt("customer", 0.0, "卡号是四一一一，一一一一"), _utt("agent", 2.5, "嗯，您说"),
            _utt("customer", 3.0, "一一一一，一一一一。")]
    red = CallRedactor(ALL).transcript(utts)
    assert [u.text for u in red] == ["卡号是[卡号]", "嗯，您说", "[卡号]。"]
    assert utts[0].text == "卡号是四一一一，一一一一"        # the input is not changed


def test_split_number_not_joined_across_legs_or_after_the_carry() -> None:
    across = [_utt("customer", 0.0, "卡号四一一一一一一一"), _utt("agent", 3.0, "一一一一一一一一")]
    assert [u.text for u in CallRedactor(ALL).transcript(across)] == [a.text for a in across]
    late = [_utt("customer", 0.0, "四一一一一一一一"), _utt("customer", 30.0, "一一一一一一一一")]
    assert [u.text for u in CallRedactor(ALL, carry_s=8).transcript(late)] == [
        "四一一一一一一一", "一一一一一一一一"]


def test_live_lines_hold_an_open_run_back_and_keep_the_carry() -> None:
    red = CallRedactor(ALL)
    first = red.utterance(_utt("customer", 0.0, "卡号是四一一一，一一一一"), live=True)
    assert first.text == "卡号是[数字]"                  # may go on in the next line
    part = red.utterance(_utt("customer", 3.0, "一一一一"), live=True, part=True)
    assert part.text == "[账号]"                         # 12 digits so far, with the carry
    second = red.utterance(_utt("customer", 3.0, "一一一一，一一一一。"), live=True)
    assert second.text == "[卡号]。"
    assert red.utterance(_utt("customer", 9.0, "尾号零零九三"), live=True).text == "尾号零零九三"


def test_result_findings_checks_and_decoded_text_scrubbed() -> None:
    utt = _utt("customer", 0.0, f"卡号{CARD}好的", decoded_text=f"卡号{CARD}号的",
               checks=[PhraseCheck("好的", "号的", 18, 20, -1.0, True, at=18)])
    finding = Finding("kw", "keyword_alert", "customer", 0.0, 2.0, f"{CARD[:8]}", "B", 0.0,
                      detail={"heard": [CARD]})
    result = CallResult("r", 1, 90.0, True, False, [finding], [utt], {})
    red = CallRedactor(ALL)
    out = red.result(result)
    assert out.transcript[0].text == "卡号[卡号]好的"
    assert out.transcript[0].decoded_text == "卡号[卡号]号的"
    assert out.transcript[0].checks[0].at == len("卡号[卡号]")
    assert out.findings[0].evidence == "[卡号]" and out.findings[0].detail == {"heard": ["[卡号]"]}
    assert [(s.speaker, s.start, s.kind) for s in red.spans] == [("customer", 0.0, "card")]
    assert CARD not in str(out.to_json())


def test_nothing_masked_when_no_kinds() -> None:
    red = CallRedactor(frozenset())
    utt = _utt("customer", 0.0, f"卡号{CARD}")
    assert red.utterance(utt).text == utt.text and not red.spans


def test_scrub_masks_quoted_pieces_of_a_number_but_not_short_figures() -> None:
    red = CallRedactor(ALL)
    red.transcript([_utt("customer", 0.0, "手机13842012345")])
    assert red.scrub("您是一三八四二零一二吗") == "您是[手机号]吗"        # 8 of its digits
    assert red.scrub("420 chars/min (fast)") == "420 chars/min (fast)"
    assert red.scrub("尾号2345") == "尾号2345"                       # four, as PCI allows
