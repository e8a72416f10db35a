"""Metrics on a small hand-built timeline: talk time, silence, overtalk, rates, levels."""

from __future__ import annotations

import json

import pytest

from core.rubric.metrics import (
    compute_metrics,
    overtalk_runs,
    silence_runs,
    speech_units,
    talk_time,
)
from tests.core.rubric_fixtures import evidence, utt


def timeline(ended: bool = True):
    return evidence(
        [
            utt(
                "agent",
                0.5,
                4.5,
                "您好，很高兴为您服务。",
                level_db=-30.0,
                voiced_s=3.0,
                pitch_hz=200,
            ),
            utt("customer", 4.0, 10.0, "我的网断了三天了", level_db=-27.0),
            utt("agent", 8.0, 12.0, "我打断一下，我帮您查。", level_db=-29.0, pitch_hz=200),
            utt("customer", 20.0, 22.0, "喂？", level_db=-27.0),
            utt("agent", 22.5, 25.0, "系统规定就是这样的！", level_db=-18.0, pitch_hz=300),
        ],
        duration_s=30.0,
        ended=ended,
    )


def test_talk_time_per_side() -> None:
    assert talk_time(timeline()) == pytest.approx({"agent": 10.5, "customer": 8.0})


def test_silence_runs_between_speech_only() -> None:
    ev = timeline()
    runs = silence_runs(ev, 3.0)
    assert [(r.start, r.end, r.after, r.resumed_by) for r in runs] == [
        (12.0, 20.0, "agent", "customer")
    ]
    # all gaps; the leading 0.5 s and the trailing 5 s of an ended call are not silences
    assert [(r.start, r.end) for r in silence_runs(ev)] == [(12.0, 20.0), (22.0, 22.5)]
    # while the call goes on, the trailing silence is dead air in progress
    live = silence_runs(timeline(ended=False), 3.0)
    assert [(r.start, r.end) for r in live] == [(12.0, 20.0), (25.0, 30.0)]


def test_overtalk_runs_with_who_started() -> None:
    runs = overtalk_runs(timeline())
    got = [(r.start, r.end, r.starter, r.other, round(r.overlap_s, 3)) for r in runs]
    assert got == [(4.0, 4.5, "customer", "agent", 0.5), (8.0, 10.0, "agent", "customer", 2.0)]


def test_overtalk_joins_vad_fragments_into_spurts() -> None:
    ev = evidence(
        [utt("customer", 7.0, 10.2, "我家的网一直断"), utt("agent", 8.0, 10.5, "我打断一下")],
        activity={"agent": [(8.0, 8.6), (8.7, 9.3), (9.4, 10.5)], "customer": [(7.0, 10.2)]},
    )
    (run,) = overtalk_runs(ev)
    assert (run.starter, run.start, run.end) == ("agent", 8.0, 10.2)
    assert run.overlap_s == pytest.approx(2.2)


def test_overtalk_started_together_is_nobodys() -> None:
    ev = evidence([utt("customer", 1.0, 3.0, "喂"), utt("agent", 1.0, 2.0, "您好")])
    assert [r.starter for r in overtalk_runs(ev)] == ["both"]


def test_per_utterance_rate_level_and_pitch() -> None:
    m = compute_metrics(timeline())
    u0, _, u2, _, u4 = m.utterances
    assert u0.units == 9 and u0.speech_s == 3.0  # voiced time when known
    assert u0.rate_per_min == pytest.approx(180.0)
    assert u2.speech_s == 4.0 and u2.rate_per_min == pytest.approx(9 * 15.0)
    assert m.median_level_db == {"agent": -29.0, "customer": None}  # 2 customer utterances
    assert (u0.level_rel_db, u2.level_rel_db, u4.level_rel_db) == (-1.0, 0.0, 11.0)
    assert u4.pitch_rel_st == pytest.approx(7.02, abs=0.01)
    assert m.utterances[1].level_rel_db is None


def test_speech_units() -> None:
    assert speech_units("我就打12315，好吗？", "zh") == 10
    assert speech_units("I don't know, call 911.", "en") == 5
    assert speech_units("", "en") == 0


def test_metrics_are_json() -> None:
    data = compute_metrics(timeline(), silence_min_s=5.0).to_json()
    json.dumps(data)
    assert data["talk_time_s"] == {"agent": 10.5, "customer": 8.0}
    assert data["silence"] == [{"start": 12.0, "end": 20.0, "duration_s": 8.0}]
    assert [o["starter"] for o in data["overtalk"]] == ["customer", "agent"]
    assert data["rate_unit"] == "chars" and data["silence_threshold_s"] == 5.0
    assert data["utterances"][0]["rate_per_min"] == 180.0


def test_activity_falls_back_to_utterances() -> None:
    ev = timeline()
    ev.activity = {}
    assert talk_time(ev) == pytest.approx({"agent": 10.5, "customer": 8.0})
