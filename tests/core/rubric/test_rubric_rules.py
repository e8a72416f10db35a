"""Every rubric kind on hand-built calls: a case where it fires and one where it must not."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from core.calls import SPEAKERS, CallEvidence, Finding, LegActivity, Segment, Utterance
from core.rubric.defaults import default_rubric
from core.rubric.emotion import confidence
from core.rubric.engine import evaluate, live_findings
from core.rubric.loading import load_rubric_file
from core.rubric.metrics import compute_metrics
from core.rubric.rules import (
    END_OF_CALL_KINDS,
    LIVE_KINDS,
    RULES,
    TIMELINE_LIVE_KINDS,
    UTTERANCE_KINDS,
    evaluate_items,
    run_item,
)
from core.rubric.schema import KINDS
from tests.core.rubric_fixtures import evidence, item, utt

FORBIDDEN = """\
  - id: forbidden_words
    name: 服务禁语
    kind: forbidden_phrase
    speaker: agent
    phrases: [不知道, 不清楚, 那你想好了再打来吧]
    severity: A
    deduct: 10
    alert: true
"""


def test_every_kind_has_a_rule_and_a_phase() -> None:
    assert set(RULES) == set(KINDS)
    assert {"required_phrase", "filler_words"} == END_OF_CALL_KINDS
    assert set(KINDS) == LIVE_KINDS | END_OF_CALL_KINDS
    assert UTTERANCE_KINDS <= LIVE_KINDS


def test_utterance_kinds_ignore_the_timeline_and_the_length_of_the_call() -> None:
    """The daemon leaves UTTERANCE_KINDS out when only a timeline grew: while the call goes
    on, each must give the same findings whatever the voice activity and the call's length."""
    builtin = default_rubric("zh")
    kinds = {i.kind for i in builtin.items}
    assert kinds >= UTTERANCE_KINDS  # every such kind is exercised below
    said = [
        utt("agent", 0.5, 4.0, "您好，很高兴为您服务"),
        utt("customer", 5.0, 11.0, "你们这是什么破服务！我要投诉，太过分了！", level_db=-12.0),
        utt("agent", 12.0, 16.0, "这个我也不知道，您问快递吧", level_db=-30.0),
        utt("customer", 17.0, 20.0, "我要找你们领导，我要去消协投诉", level_db=-13.0),
        utt("agent", 21.0, 23.0, "好的我帮您查一下", level_db=-30.0),
        utt("customer", 24.0, 25.0, "好", level_db=-25.0),
    ]
    # the same utterances over a longer timeline, with a long silence and an overtalk
    longer = {
        "agent": [(0.5, 2.0), (2.5, 4.0), (12.0, 16.0), (21.0, 23.0), (30.0, 31.0), (41.0, 43.5)],
        "customer": [(5.0, 11.0), (17.0, 20.0), (24.0, 25.0), (40.0, 44.0)],
    }
    fired: set[str] = set()
    for rubric_item in builtin.items:
        if rubric_item.kind not in UTTERANCE_KINDS:
            continue
        plain = run_item(rubric_item, evidence(said, 26.0, ended=False))
        grown = run_item(rubric_item, evidence(said, 60.0, ended=False, activity=longer))
        assert grown == plain, rubric_item.id
        fired |= {f.kind for f in plain}
    assert {"forbidden_phrase", "emotion", "trigger_response"} <= fired


def test_a_timeline_check_finds_what_a_check_with_every_metric_finds() -> None:
    """A timeline update's check leaves the per-utterance metrics out
    (`compute_metrics(utterances=False)`): the kinds it runs must not read them."""
    rng = random.Random(3)
    fired: Counter[str] = Counter()
    for lang in ("zh", "en"):
        rubric = default_rubric(lang)
        for _ in range(20):
            said, voiced = [], {}
            for sp in ("agent", "customer"):
                at, segs = rng.uniform(0, 2), []
                for _ in range(rng.randint(5, 40)):
                    length = rng.uniform(0.2, 4.0)
                    segs.append((at, at + length))
                    if rng.random() < 0.5:
                        said.append(utt(sp, at, at + length, rng.choice(TEXTS), level_db=-30.0))
                    at += length + rng.expovariate(0.4) - 0.3  # overlaps and long silences
                voiced[sp] = segs
            said.sort(key=lambda u: u.start)
            end = max(b for segs in voiced.values() for _, b in segs) + rng.uniform(0, 20)
            ev = evidence(said, end, lang, ended=False, activity=voiced)
            full = evaluate_items(rubric, ev, metrics=compute_metrics(ev),
                                  kinds=TIMELINE_LIVE_KINDS)  # fmt: skip
            assert live_findings(rubric, ev, timeline_only=True) == full
            fired.update(f.kind for f in full)
    assert set(fired) == TIMELINE_LIVE_KINDS  # both kinds found something

TEXTS = ("您好，很高兴为您服务", "请稍等，我帮您查一下", "好的", "嗯", "Please hold the line",
         "Thank you for calling", "I see")  # fmt: skip


# ---------------------------------------------------------------- forbidden_phrase


def test_forbidden_phrase_fires_with_phrase_span_and_fields() -> None:
    ev = evidence(
        [
            utt("agent", 0.0, 3.0, "您好，请问有什么可以帮您？"),
            utt("agent", 10.0, 16.0, "快递哪天到，我这边也不知倒，您问问快递员吧。"),
        ]
    )
    (f,) = run_item(item(FORBIDDEN), ev)
    assert (f.item_id, f.kind, f.speaker, f.severity, f.deduct, f.alert) == (
        "forbidden_words",
        "forbidden_phrase",
        "agent",
        "A",
        10,
        True,
    )
    assert f.name == "服务禁语" and f.evidence == "不知倒"
    # characters 10..13 of a 22-character utterance of 6 s
    assert f.start == pytest.approx(10.0 + 6 * 10 / 22)
    assert f.end == pytest.approx(10.0 + 6 * 13 / 22)
    assert f.detail["phrase"] == "不知道" and f.detail["utterance"] == 1


def test_forbidden_phrase_ignores_the_customer_and_near_misses() -> None:
    ev = evidence(
        [
            utt("customer", 0.0, 3.0, "宽带账号我不知道，号码我记不清楚了。"),
            utt("agent", 4.0, 8.0, "我明白，我知道了，这个我跟您说清楚。"),
        ]
    )
    assert run_item(item(FORBIDDEN), ev) == []


def test_disabled_item_never_fires() -> None:
    it = item(FORBIDDEN + "    enabled: false\n")
    ev = evidence([utt("agent", 0.0, 3.0, "我不知道")])
    assert run_item(it, ev) == []


# ---------------------------------------------------------------- required_phrase

GREETING = """\
  - id: greeting
    kind: required_phrase
    phrases: [您好, 很高兴为您服务]
    window: {first_s: 15}
    severity: B
    deduct: 5
"""
CLOSING = """\
  - id: closing
    kind: required_phrase
    phrases: [感谢您的来电, 再见]
    window: {last_s: 20}
    severity: C
    deduct: 5
"""


def test_required_phrase_missing_in_window_spans_the_window() -> None:
    ev = evidence(
        [utt("agent", 0.5, 3.0, "客服这边，你讲吧。"), utt("agent", 20.0, 23.0, "您好")],
        duration_s=60.0,
    )
    (f,) = run_item(item(GREETING), ev)
    assert (f.start, f.end, f.speaker) == (0.0, 15.0, "agent")
    assert f.detail["missing"] == ["您好", "很高兴为您服务"]
    assert f.evidence == "missing: 您好, 很高兴为您服务"


def test_required_phrase_present_in_window() -> None:
    ev = evidence([utt("agent", 0.5, 3.0, "您好，速联宽带。")], duration_s=60.0)
    assert run_item(item(GREETING), ev) == []


def test_closing_said_only_by_the_customer_is_missing() -> None:
    ev = evidence(
        [
            utt("agent", 40.0, 45.0, "行，就这样吧。"),
            utt("customer", 46.0, 48.0, "哦，那好吧，再见。"),
        ],
        duration_s=50.0,
    )
    (f,) = run_item(item(CLOSING), ev)
    assert (f.start, f.end) == (30.0, 50.0)
    ev.utterances.append(utt("agent", 48.2, 49.5, "感谢您的来电，再见。"))
    assert run_item(item(CLOSING), ev) == []


def test_closing_outside_the_last_window_does_not_count() -> None:
    ev = evidence([utt("agent", 5.0, 8.0, "再见")], duration_s=60.0)
    assert len(run_item(item(CLOSING), ev)) == 1


def test_required_phrase_waits_while_the_call_goes_on() -> None:
    ev = evidence([utt("agent", 0.5, 3.0, "客服这边。")], duration_s=10.0, ended=False)
    assert run_item(item(GREETING), ev) == []  # the window is still open
    ev.duration_s = 16.0
    assert len(run_item(item(GREETING), ev)) == 1  # the window has closed
    assert run_item(item(CLOSING), ev) == []  # only decided at the end


# ---------------------------------------------------------------- trigger_response

APOLOGY = """\
  - id: apology
    kind: trigger_response
    trigger: {speaker: customer, phrases: [太慢了, 怎么回事]}
    response: {speaker: agent, phrases: [抱歉, 对不起, 不好意思], within_turns: 2}
    severity: B
    deduct: 5
"""


def complaint_call(agent_lines: list[str], ended: bool = True):
    utts = [
        utt("agent", 0.0, 2.0, "您好"),
        utt("customer", 3.0, 6.0, "你们回个电话都要两三天，太慢了。"),
    ]
    t = 7.0
    for i, text in enumerate(agent_lines):
        utts.append(utt("agent", t, t + 2.0, text))
        utts.append(utt("customer", t + 3.0, t + 4.0, f"嗯{i}"))
        t += 5.0
    return evidence(utts, duration_s=t + 1.0, ended=ended)


def test_trigger_without_response_spans_the_turns_checked() -> None:
    ev = complaint_call(["我帮您查一下。", "已经登记了。", "对不起。"])
    (f,) = run_item(item(APOLOGY), ev)
    assert (f.start, f.end, f.speaker) == (3.0, 14.0, "agent")
    assert f.evidence == "你们回个电话都要两三天，太慢了。"
    assert f.detail["trigger_phrase"] == "太慢了"
    assert f.detail["turns_checked"] == [[2], [4]]


def test_trigger_answered_in_the_second_turn() -> None:
    ev = complaint_call(["我帮您查一下。", "实在不好意思，让您久等了。"])
    assert run_item(item(APOLOGY), ev) == []


def test_a_turn_is_a_run_of_utterances() -> None:
    ev = evidence(
        [
            utt("customer", 0.0, 2.0, "怎么回事？"),
            utt("agent", 3.0, 4.0, "我看一下。"),
            utt("agent", 4.5, 5.5, "系统在维护。"),
            utt("agent", 6.0, 7.0, "非常抱歉。"),  # still the agent's first turn
            utt("customer", 8.0, 9.0, "好吧"),
        ]
    )
    it = item(APOLOGY.replace("within_turns: 2", "within_turns: 1"))
    assert run_item(it, ev) == []


def test_apology_said_over_the_trigger_counts_after_it_began() -> None:
    ev = evidence(
        [
            utt("agent", 0.0, 6.0, "系统在维护，非常抱歉给您带来不便"),
            utt("customer", 2.0, 4.0, "怎么回事？"),
            utt("agent", 7.0, 8.0, "我帮您登记。"),
            utt("customer", 9.0, 10.0, "好"),
        ]
    )
    it = item(APOLOGY.replace("within_turns: 2", "within_turns: 1"))
    assert run_item(it, ev) == []


def test_call_ending_before_the_turns_spans_to_the_end() -> None:
    ev = complaint_call(["我帮您查一下。"])
    (f,) = run_item(item(APOLOGY), ev)
    assert (f.start, f.end) == (3.0, ev.duration_s)
    live = complaint_call(["我帮您查一下。"], ended=False)
    assert run_item(item(APOLOGY), live) == []  # still pending


def test_customer_trigger_said_by_the_agent_is_no_trigger() -> None:
    ev = evidence([utt("agent", 0.0, 2.0, "系统太慢了"), utt("customer", 3.0, 4.0, "哦")])
    assert run_item(item(APOLOGY), ev) == []


def test_two_triggers_in_one_turn_give_one_finding() -> None:
    ev = evidence(
        [
            utt("customer", 0.0, 2.0, "太慢了"),
            utt("customer", 2.5, 4.0, "到底怎么回事？"),
            utt("agent", 5.0, 6.0, "我查一下。"),
            utt("customer", 7.0, 8.0, "嗯"),
            utt("agent", 9.0, 10.0, "好了。"),
        ]
    )
    (f,) = run_item(item(APOLOGY), ev)
    assert (f.start, f.end) == (0.0, 10.0)


# ---------------------------------------------------------------- silence

SILENCE = """\
  - id: dead_air
    kind: silence
    min_s: 6
    severity: B
    deduct: 5
"""


def test_silence_fires_on_both_sides_silent() -> None:
    ev = evidence(
        [
            utt("customer", 0.0, 3.0, "尾号二三八五。"),
            utt("agent", 16.0, 18.0, "刚才系统反应比较慢，我接着帮您看。"),
            utt("customer", 19.0, 21.0, "好"),
        ]
    )
    (f,) = run_item(item(SILENCE), ev)
    assert (f.start, f.end, f.speaker) == (3.0, 16.0, "any")
    assert f.detail["duration_s"] == 13.0 and f.detail["resumed_by"] == "agent"


def test_silence_shorter_than_min_or_one_side_talking() -> None:
    ev = evidence(
        [
            utt("customer", 0.0, 3.0, "嗯"),
            utt("agent", 8.0, 9.0, "好"),
            utt("customer", 9.5, 20.0, "长"),
        ]
    )
    assert run_item(item(SILENCE), ev) == []


def test_silence_after_a_hold_announcement_is_excepted() -> None:
    ev = evidence(
        [
            utt("customer", 0.0, 3.0, "帮我查下"),
            utt("agent", 3.5, 6.0, "好的，请您稍等，我帮您查询。"),
            utt("agent", 20.0, 22.0, "感谢您的耐心等待。"),
        ]
    )
    assert run_item(item(SILENCE), ev) == []
    no_holds = item(SILENCE + "    hold_phrases: [请不要挂机]\n")
    assert len(run_item(no_holds, ev)) == 1


def test_english_hold_phrases() -> None:
    ev = evidence(
        [utt("agent", 0.0, 2.0, "One moment please."), utt("agent", 12.0, 14.0, "Thanks.")],
        language="en",
    )
    assert run_item(item(SILENCE, "en"), ev) == []


# ---------------------------------------------------------------- overtalk

OVERTALK = """\
  - id: overtalk
    kind: overtalk
    speaker: agent
    min_overlap_s: 1.0
    severity: C
    deduct: 3
"""


def test_agent_cutting_in_fires() -> None:
    ev = evidence(
        [
            utt("customer", 30.0, 40.8, "我家里老人孩子晚上都要上网你们得赶紧给我弄好。"),
            utt("agent", 38.2, 42.0, "我打断一下我这就帮您查。"),
        ]
    )
    (f,) = run_item(item(OVERTALK), ev)
    assert (f.start, f.end, f.speaker) == (38.2, 40.8, "agent")
    assert f.detail["overlap_s"] == pytest.approx(2.6)
    assert f.evidence == "我打断一下我这就帮您查。"


def test_customer_cutting_in_or_short_overlap_does_not_fire() -> None:
    ev = evidence(
        [
            utt("agent", 0.0, 6.0, "我给您介绍一下我们的套餐"),
            utt("customer", 3.0, 7.0, "我不需要"),  # the customer cut in
            utt("customer", 10.0, 14.0, "我说完了"),
            utt("agent", 13.5, 15.0, "好的"),  # 0.5 s overlap
        ]
    )
    assert run_item(item(OVERTALK), ev) == []
    anyone = item(OVERTALK.replace("speaker: agent", "speaker: any"))
    assert [f.speaker for f in run_item(anyone, ev)] == ["customer"]


# ---------------------------------------------------------------- speech_rate

PACE = """\
  - id: pace
    kind: speech_rate
    speaker: agent
    min_per_min: 100
    max_per_min: 330
    min_utterance_s: 2
    severity: C
    deduct: 3
"""


def test_speech_rate_too_fast_and_too_slow() -> None:
    fast = "麻烦您报一下办理宽带时登记的手机号码后四位"  # 21 chars
    ev = evidence(
        [
            utt("agent", 0.0, 3.0, fast),  # 420/min
            utt("agent", 4.0, 10.0, fast),  # 210/min
            utt("agent", 11.0, 14.0, "好的"),  # 40/min
            utt("agent", 15.0, 16.5, "好的好的好的好的好的好的"),  # short: not judged
        ]
    )
    fs = run_item(item(PACE), ev)
    assert [(f.start, f.detail["too"], f.detail["rate_per_min"]) for f in fs] == [
        (0.0, "fast", 420.0),
        (11.0, "slow", 40.0),
    ]


def test_speech_rate_uses_voiced_time() -> None:
    fast = "麻烦您报一下办理宽带时登记的手机号码后四位"
    ev = evidence([utt("agent", 0.0, 6.0, fast, voiced_s=3.0)])
    assert len(run_item(item(PACE), ev)) == 1
    ev = evidence([utt("agent", 0.0, 6.0, fast)])
    assert run_item(item(PACE), ev) == []


def test_speech_rate_in_words_for_english() -> None:
    it = item(PACE.replace("max_per_min: 330", "max_per_min: 200"), "en")
    words = " ".join(["word"] * 12)
    ev = evidence([utt("agent", 0.0, 3.0, words)], language="en")  # 240 words/min
    (f,) = run_item(it, ev)
    assert f.detail["unit"] == "words"


# ---------------------------------------------------------------- volume

VOLUME = """\
  - id: volume
    kind: volume
    speaker: agent
    rise_db: 6
    severity: B
    deduct: 5
"""


def test_volume_rise_over_the_speakers_median() -> None:
    levels = [-30.0, -29.5, -30.5, -17.0]
    ev = evidence(
        [utt("agent", i * 5.0, i * 5.0 + 3, "话", level_db=lv) for i, lv in enumerate(levels)]
        + [utt("customer", 30.0, 33.0, "话", level_db=-10.0)]
    )
    (f,) = run_item(item(VOLUME), ev)
    assert f.start == 15.0 and f.detail["rise_db"] == pytest.approx(
        12.75
    )  # over the median of all 4


def test_volume_needs_a_median_and_a_real_rise() -> None:
    two = evidence(
        [utt("agent", 0, 2, "a", level_db=-30.0), utt("agent", 3, 5, "b", level_db=-10.0)]
    )
    assert run_item(item(VOLUME), two) == []
    calm = evidence([utt("agent", i, i + 0.5, "a", level_db=-30.0 + i) for i in range(5)])
    assert run_item(item(VOLUME), calm) == []


# ---------------------------------------------------------------- filler_words

FILLERS = """\
  - id: fillers
    kind: filler_words
    speaker: agent
    phrases: [啊, 呀, 这个, 嗯]
    max_per_min: 6
    severity: C
    deduct: 2
"""


def test_fillers_rate_is_per_minute_of_the_speakers_talk_time() -> None:
    # A 5-minute call in which the agent talks for 90 s and says 10 fillers: 2 per minute of
    # call time, but 6.7 per minute of the agent's own speech, which is what is judged.
    lines = [utt("agent", 30.0 * k, 30.0 * k + 9.0, "这个，我帮您看一下呀。") for k in range(5)]
    lines += [utt("customer", 30.0 * k + 10.0, 30.0 * k + 28.0, "好的好的。") for k in range(5)]
    lines.append(utt("agent", 200.0, 245.0, "您的宽带账号已经绑定了您现在的手机号。"))
    ev = evidence(lines, duration_s=300.0)
    (f,) = run_item(item(FILLERS), ev)
    assert f.detail["count"] == 10 and f.detail["talk_s"] == 90.0
    assert f.detail["per_min_talk"] == 6.67 and f.detail["per_min_call"] == 2.0
    # The same fillers over 150 s of agent talk are 4 per minute: no finding.
    lines[-1] = utt("agent", 150.0, 255.0, "您的宽带账号已经绑定了您现在的手机号。")
    assert run_item(item(FILLERS), evidence(lines, duration_s=300.0)) == []


def test_fillers_above_the_rate_with_a_minute_of_talk_at_least() -> None:
    ev = evidence(
        [
            utt("agent", 5.0, 8.0, "嗯，这个，麻烦您报一下手机号码后四位呀。"),
            utt("customer", 9.0, 10.0, "啊啊啊啊啊啊"),
            utt("agent", 11.0, 14.0, "这个，我帮您看一下线路状态呀，这个，系统显示不在线。"),
            utt("agent", 20.0, 24.0, "请您先把光猫的电源拔掉，啊，等三十秒以后再插上。"),
        ],
        duration_s=60.0,
    )
    (f,) = run_item(item(FILLERS), ev)
    assert f.detail["count"] == 7 and f.detail["per_min_call"] == 7.0
    assert f.detail["by_phrase"] == {"啊": 1, "呀": 2, "这个": 3, "嗯": 1}
    assert (f.start, f.end) == (5.0, 24.0)
    assert f.evidence == "啊×1、呀×2、这个×3、嗯×1"


def test_few_fillers_and_demonstratives_do_not_fire() -> None:
    ev = evidence(
        [
            utt("agent", 5.0, 8.0, "请您提供一下订单号，或者下单时预留的手机号码呀。"),
            utt("agent", 9.0, 12.0, "这个月的账单我帮您查，这个问题马上处理。"),
        ],
        duration_s=60.0,
    )
    assert run_item(item(FILLERS), ev) == []


def test_fillers_are_decided_at_the_end() -> None:
    ev = evidence([utt("agent", 0.0, 5.0, "啊啊啊啊啊啊啊啊啊啊")], duration_s=60.0, ended=False)
    assert run_item(item(FILLERS), ev) == []


# ---------------------------------------------------------------- keyword_alert

RISK = """\
  - id: complaint_risk
    kind: keyword_alert
    speaker: customer
    phrases: [我要投诉, '12315', 曝光, 消协]
    severity: A
"""


def test_keyword_alert_always_alerts_and_deducts_only_when_set() -> None:
    ev = evidence(
        [
            utt("customer", 0.0, 5.0, "你们处理得太慢了，再拖下去我就打一二三一五。"),
            utt("agent", 6.0, 8.0, "您可以打12315反映。"),
        ]
    )
    (f,) = run_item(item(RISK), ev)
    assert (f.alert, f.deduct, f.evidence, f.speaker) == (True, 0, "一二三一五", "customer")
    it = item(RISK + "    deduct: 1\n")
    assert run_item(it, ev)[0].deduct == 1


def test_keyword_alert_quiet_call() -> None:
    ev = evidence([utt("customer", 0.0, 5.0, "好的，谢谢，再见。")])
    assert run_item(item(RISK), ev) == []


# ---------------------------------------------------------------- emotion

EMOTION = """\
  - id: customer_emotion
    kind: emotion
    speaker: customer
    severity: B
    deduct: 0
    alert: true
"""


def angry_call(text: str, rise_db: float = 0.0, pitch_hz: float = 220.0):
    calm = [
        utt("customer", i * 4.0, i * 4.0 + 3, "好的", level_db=-27.0, pitch_hz=220.0)
        for i in range(4)
    ]
    hot = utt("customer", 20.0, 24.0, text, level_db=-27.0 + rise_db, pitch_hz=pitch_hz)
    return evidence([*calm, hot])


def test_emotion_from_strong_words() -> None:
    (f,) = run_item(item(EMOTION), angry_call("你们这是骗子公司吧，太过分了！"))
    assert f.start == 20.0 and f.detail["confidence"] >= 0.6
    assert set(f.detail["words"]) == {"骗子", "太过分"}


def test_emotion_from_a_mild_word_and_the_voice() -> None:
    it = item(EMOTION)
    assert run_item(it, angry_call("怎么回事")) == []
    (f,) = run_item(it, angry_call("怎么回事", rise_db=9.0, pitch_hz=280.0))
    assert f.detail["level_rise_db"] == 9.0 and f.detail["pitch_rise_st"] > 4


def test_emotion_negated_or_calm_does_not_fire() -> None:
    it = item(EMOTION)
    assert run_item(it, angry_call("我不生气，您慢慢查")) == []
    assert run_item(it, angry_call("好的，谢谢")) == []


def test_emotion_confidence_combines_cues() -> None:
    strong, _ = confidence("太过分了", "zh", None, None)
    both, _ = confidence("太过分了！", "zh", 12.0, 5.0)
    voice, _ = confidence("好的", "zh", 12.0, 5.0)
    assert strong == pytest.approx(0.6)
    assert 0.6 < voice < 0.7 and both > 0.85
    en, detail = confidence("This is ridiculous, I'm not upset, I'm furious", "en", None, None)
    assert detail["words"] == ["ridiculous", "furious"] and en > 0.8


# ---------------------------------------------------------------- the labelled corpus

CORPUS_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "corpus"
TOLERANCE_S = 2.0
CALL_LEVEL_ITEMS = ("greeting", "closing")


def corpus_evidence(labels: dict[str, Any]) -> CallEvidence:
    """The reference transcript with the designed levels; voice activity = utterance spans."""
    utts = [
        Utterance(
            t["speaker"],
            t["start"],
            t["end"],
            t["text"],
            level_db=x["level_dbfs"],
            voiced_s=t["end"] - t["start"],
        )
        for t, x in zip(labels["transcript"], labels["utterances"], strict=True)
    ]
    dur = labels["duration_s"]
    activity: dict[str, LegActivity] = {
        sp: LegActivity(sp, [Segment(u.start, u.end) for u in utts if u.speaker == sp], dur)
        for sp in SPEAKERS
    }
    return CallEvidence(dur, "zh", utts, activity)


def _event_span(event: dict[str, Any]) -> tuple[float, float]:
    if "phrase_start_est" in event:
        return event["phrase_start_est"], event["phrase_end_est"]
    return event["start"], event["end"]


def _close(f: Finding, event: dict[str, Any]) -> bool:
    if f.item_id in CALL_LEVEL_ITEMS:
        return True
    start, end = _event_span(event)
    return abs(f.start - start) <= TOLERANCE_S and abs(f.end - end) <= TOLERANCE_S


def _check_details(f: Finding, e: dict[str, Any]) -> None:
    if e["item_id"] == "fillers":
        assert (f.detail["count"], f.detail["by_phrase"]) == (e["count"], e["by_phrase"])
        assert f.detail["utterances"] == e["utterances"]
    elif e["item_id"] == "pace":
        assert f.detail["rate_per_min"] == pytest.approx(e["rate_per_min"], abs=0.2)
    elif e["item_id"] == "overtalk":
        assert f.detail["overlap_s"] == pytest.approx(e["overlap_s"], abs=0.01)
    elif e["item_id"] == "dead_air":
        assert f.detail["duration_s"] == pytest.approx(e["duration_s"], abs=0.01)
    elif e["item_id"] == "apology":
        assert [t for (t,) in f.detail["turns_checked"]] == e["agent_turns_checked"]
        assert f.detail["trigger_phrase"] == e["trigger_phrase"]
    elif e["item_id"] in ("forbidden_words", "insult", "complaint_risk"):
        assert f.detail["phrase"] == e["phrase"] and f.detail["utterance"] == e["utterance"]
    elif e["item_id"] in CALL_LEVEL_ITEMS:
        assert f.detail["missing"] == e["missing"]
        assert (f.start, f.end) == pytest.approx((e["start"], e["end"]), abs=0.01)


def _decoy_fired(findings: list[Finding], decoy: dict[str, Any]) -> list[Finding]:
    kind = decoy["type"]
    if kind == "customer_says_agent_phrase":
        return [
            f
            for f in findings
            if f.item_id in ("forbidden_words", "insult")
            and f.start < decoy["end"]
            and f.end > decoy["start"]
        ]
    if kind == "complaint_trigger_answered":
        return [
            f
            for f in findings
            if f.item_id == "apology" and abs(f.start - decoy["start"]) <= TOLERANCE_S
        ]
    if kind == "fillers_below_threshold":
        return [f for f in findings if f.item_id == "fillers"]
    raise AssertionError(f"unknown decoy type {kind}")


@pytest.mark.corpus
def test_corpus_rubric_on_reference_transcripts_reproduces_the_labels() -> None:
    rubric = load_rubric_file(CORPUS_DIR / "rubric.yaml")
    tally: dict[str, Counter[str]] = {it.id: Counter() for it in rubric.items}
    problems: list[str] = []
    calls = sorted(CORPUS_DIR.glob("dev*.json"))
    assert calls, "no labelled calls"
    decoys = 0
    for path in calls:
        labels = json.loads(path.read_text(encoding="utf-8"))
        call = labels["call_id"]
        result = evaluate(rubric, corpus_evidence(labels))
        left = list(result.findings)
        for e in labels["events"]:
            match = next((f for f in left if f.item_id == e["item_id"] and _close(f, e)), None)
            if match is None:
                tally[e["item_id"]]["fn"] += 1
                problems.append(f"{call}: missed {e['item_id']} at {_event_span(e)}")
                continue
            left.remove(match)
            tally[e["item_id"]]["tp"] += 1
            _check_details(match, e)
        for f in left:
            tally[f.item_id]["fp"] += 1
            problems.append(f"{call}: extra {f.item_id} at {f.start:.1f}-{f.end:.1f}: {f.evidence}")
        for decoy in labels["non_events"]:
            decoys += 1
            for f in _decoy_fired(result.findings, decoy):
                problems.append(f"{call}: decoy {decoy['type']} fired {f.item_id}")
        for item_id in CALL_LEVEL_ITEMS:
            fired = any(f.item_id == item_id for f in result.findings)
            assert fired == (not labels["call_level"][item_id]), (call, item_id)
    assert problems == []
    for item_id, t in tally.items():
        found, missed, extra = t["tp"], t["fn"], t["fp"]
        assert found > 0, f"{item_id}: no labelled event in the corpus"
        assert found / (found + extra) == 1.0 and found / (found + missed) == 1.0, item_id
    assert sum(t["tp"] for t in tally.values()) == 44 and decoys == 21


def test_two_leg_kinds_yield_nothing_when_one_leg_was_recorded() -> None:
    lines = [utt("agent", 0.0, 3.0, "您好"), utt("agent", 15.0, 18.0, "请问还在吗")]
    both = evidence([*lines, utt("customer", 3.5, 4.0, "嗯")])
    assert [f.kind for f in run_item(item(SILENCE), both)] == ["silence"]
    one = evidence(lines)
    del one.activity["customer"]
    assert run_item(item(SILENCE), one) == []
