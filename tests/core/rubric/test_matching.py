"""Phrase matching: normalisation, exact, fuzzy homophones, regex, digits, spans, fillers."""

from __future__ import annotations

import pytest

from core.rubric.fillers import count_fillers
from core.rubric.matching import (
    PhraseMatcher,
    allowed_edits,
    find_phrases,
    near_misses,
    sounds_close,
    text_tokens,
    tokenize,
)

FORBIDDEN = ["不知道", "不清楚", "不明白", "那你想好了再打来吧", "你这话什么意思"]


def texts(found: list) -> list[str]:
    return [m.text for m in found]


@pytest.mark.parametrize(
    "text",
    ["我这边也不知道。", "我这边也不知倒。", "部知道", "我也不晓得，不知到啊", "我也不，知道"],
)
def test_fuzzy_homophones_of_a_forbidden_phrase(text: str) -> None:
    assert [m.phrase for m in find_phrases(text, ["不知道"])] == ["不知道"]


@pytest.mark.parametrize(
    "text",
    [
        "我知道了",  # the negation differs
        "你要知道",
        "我明白您的意思",
        "我跟您说清楚",
        "这个我很清楚",
        "您不太清楚的话我再说一遍",  # an insertion inside a 3-syllable phrase
        "不知",
    ],
)
def test_near_misses_do_not_fire(text: str) -> None:
    assert find_phrases(text, FORBIDDEN) == []


def test_two_syllable_phrase_needs_the_same_pinyin() -> None:
    assert find_phrases("你好，请问有什么可以帮您", ["您好"]) == []
    assert texts(find_phrases("您好，请问", ["您好"])) == ["您好"]
    assert texts(find_phrases("宁好", ["您好"])) == []  # ning != nin


@pytest.mark.parametrize(
    ("a", "b", "close"),
    [("道", "等", True), ("协", "息", True), ("歉", "险", True), ("好", "的", False),
     ("您", "公", False), ("歉", "单", False), ("A", "的", True)],
)  # fmt: skip
def test_sounds_close_shares_an_initial_or_a_final(a: str, b: str, close: bool) -> None:
    assert sounds_close(tokenize(a, "zh")[0], tokenize(b, "zh")[0]) is close


def test_a_near_miss_of_a_short_phrase_must_sound_close() -> None:
    """Half a two-character phrase may differ only by a close sound; longer phrases may
    differ in any one character, the rest of the phrase anchoring it."""
    assert [m.text for m in near_misses("我要找消息", ["消协"])] == ["消息"]
    assert near_misses("您的订单", ["您好"]) == []  # de is nothing like hao
    assert near_misses("保单号码", ["抱歉"]) == []
    assert [m.text for m in near_misses("真是不好衣服", ["不好意思"])] == ["不好衣服"]
    assert [m.text for m in near_misses("我不知等", ["不知道"])] == ["不知等"]


def test_long_phrases_tolerate_one_or_two_edits() -> None:
    assert allowed_edits(3, True) == 0 and allowed_edits(4, True) == 1
    assert allowed_edits(8, True) == 2 and allowed_edits(2, False) == 0
    m = find_phrases("那你想好了再打过来吧", FORBIDDEN)
    assert [(x.phrase, x.edits) for x in m] == [("那你想好了再打来吧", 1)]
    assert texts(find_phrases("你这是什么意思", FORBIDDEN)) == ["你这是什么意思"]
    # the first syllable is an anchor: 您 is not 你
    assert find_phrases("您这话什么意思", FORBIDDEN) == []


def test_exact_mode_wants_the_same_characters() -> None:
    assert find_phrases("我这边也不知倒", ["不知道"], "exact") == []
    assert texts(find_phrases("我这边也不知道", ["不知道"], "exact")) == ["不知道"]
    # punctuation, spaces, width and traditional characters do not matter
    assert texts(find_phrases("不 知，道", ["不知道"], "exact")) == ["不 知，道"]
    assert texts(find_phrases("感謝您的來電", ["感谢您的来电"], "exact")) == ["感謝您的來電"]


@pytest.mark.parametrize(
    "text", ["我就打12315", "我就打一二三一五", "我就打幺二三幺五", "打１２３１５"]
)
def test_digits_match_both_ways(text: str) -> None:
    assert [m.phrase for m in find_phrases(text, ["12315"], "exact")] == ["12315"]
    assert [m.phrase for m in find_phrases(text, ["一二三一五"], "fuzzy")] == ["一二三一五"]


def test_spans_are_offsets_in_the_original_text() -> None:
    text = "快递具体哪天能到，我这边也不知道，您自己问问快递员吧。"
    (m,) = find_phrases(text, FORBIDDEN)
    assert (m.start, m.end) == (13, 16) and text[m.start : m.end] == "不知道"


def test_regex_mode_is_case_insensitive_over_simplified_text() -> None:
    (m,) = find_phrases("我要投訴你們", [r"投诉|曝光"], "regex")
    assert m.text == "投訴"
    assert texts(find_phrases("Call the FCC now", [r"\bfcc\b"], "regex", "en")) == ["FCC"]


def test_overlapping_matches_keep_the_earliest() -> None:
    found = find_phrases("我真的不知道不清楚", ["不知道", "知道不清", "不清楚"], "exact")
    assert texts(found) == ["不知道", "不清楚"]


def test_english_words_contractions_and_stems() -> None:
    assert texts(find_phrases("Sorry, I don't know.", ["I don't know"], "fuzzy", "en")) == [
        "I don't know"
    ]
    assert texts(find_phrases("I do not know that", ["I don't know"], "exact", "en")) == [
        "I do not know"
    ]
    # a word inserted inside a 4-word phrase is one edit
    assert texts(find_phrases("I don't really know", ["I don't know"], "fuzzy", "en")) == [
        "I don't really know"
    ]
    # dropping the negation is never an edit
    assert find_phrases("I do know that", ["I don't know"], "fuzzy", "en") == []
    assert texts(find_phrases("Thanks for calling!", ["thank you for calling"], "fuzzy", "en")) == [
        "Thanks for calling"
    ]
    assert texts(find_phrases("we refunded it", ["refund"], "fuzzy", "en")) == ["refunded"]
    assert find_phrases("we refunded it", ["refund"], "exact", "en") == []
    # words match whole: "hell" is not in "hello"
    assert find_phrases("hello there", ["hell"], "fuzzy", "en") == []


def test_english_digits_and_number_words() -> None:
    for text in ("call 12315", "call one two three one five", "call 1 2 3 1 5"):
        assert len(find_phrases(text, ["12315"], "exact", "en")) == 1


def test_tokens_keep_latin_words_whole_in_chinese() -> None:
    toks = tokenize("我的WiFi坏了", "zh")
    assert [t.text for t in toks] == ["我", "的", "wifi", "坏", "了"]
    assert texts(find_phrases("我的WIFI坏了", ["wifi"], "exact")) == ["WIFI"]


def test_bad_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown match mode"):
        PhraseMatcher(["a"], "loose")


def test_fillers_interjections_count_everywhere() -> None:
    found = count_fillers("啊，好的呀，嗯，我看一下啊。", ["啊", "呀", "嗯"], "zh")
    assert [m.phrase for m in found] == ["啊", "呀", "嗯", "啊"]


def test_filler_words_that_are_also_words_count_when_standalone() -> None:
    text = "这个，我帮您查一下这个月的账单，这个这个问题 这个 马上好"
    found = count_fillers(text, ["这个"], "zh")
    # standalone at the start, repeated twice, standalone between spaces; not 这个月
    assert len(found) == 4
    assert all(text[m.start : m.end] == "这个" for m in found)
    assert count_fillers("这个问题我帮您看", ["这个"], "zh") == []


def test_clause_opening_filler_before_a_pronoun_counts_without_a_comma() -> None:
    assert [m.phrase for m in count_fillers("这个我帮您看一下", ["这个"], "zh")] == ["这个"]
    assert [m.phrase for m in count_fillers("好的，这个您稍等", ["这个"], "zh")] == ["这个"]
    # A demonstrative before a noun or a classifier is not a filler, nor one mid-clause.
    assert count_fillers("这个月的账单", ["这个"], "zh") == []
    assert count_fillers("我觉得这个我不清楚", ["这个"], "zh") == []


def test_english_fillers() -> None:
    text = "Um, I like it, like, you know, fine. You know what, uh, basically, yes. basically yes"
    found = count_fillers(text, ["um", "uh", "like", "you know", "basically"], "en")
    assert [m.text for m in found] == ["Um", "like", "you know", "uh", "basically"]


def test_numbers_match_exactly_even_in_fuzzy_mode() -> None:
    m = PhraseMatcher(["12315"], "fuzzy", "zh")
    assert m.search("我要打12315投诉你们") is not None
    assert m.search("我要打一二三一五") is not None
    assert m.search("尾号是12385") is None


def test_retroflex_and_flat_initials_match_but_other_sounds_do_not() -> None:
    m = PhraseMatcher(["不好意思"], "fuzzy", "zh")
    assert m.search("太不好意识了，给您添麻烦了") is not None  # s / sh
    assert PhraseMatcher(["投诉"], "fuzzy", "zh").search("我要投树") is not None  # s / sh
    assert m.search("不好意外") is None
    assert PhraseMatcher(["您好"], "fuzzy", "zh").search("宁好") is None  # nin is not ning


def test_a_text_seen_again_is_matched_from_what_was_kept() -> None:
    matcher = PhraseMatcher(["不知道", "投诉"], mode="fuzzy", language="zh")
    text = "这个我真的部知倒，我要投诉你们"
    first = matcher.find(text)
    tokens_before = text_tokens.cache_info()
    again = matcher.find(text)
    assert again == first and [m.phrase for m in first] == ["不知道", "投诉"]
    assert text_tokens.cache_info().misses == tokens_before.misses  # not tokenized again
    first.clear()  # what a caller does with its list does not reach what is kept
    assert matcher.find(text) == again


def test_kept_matches_belong_to_their_matcher() -> None:
    text = "我要投诉你们"
    assert PhraseMatcher(["投诉"], mode="exact", language="zh").find(text)
    assert PhraseMatcher(["退款"], mode="exact", language="zh").find(text) == []
    assert PhraseMatcher(["投 诉"], mode="regex", language="zh").find(text) == []
