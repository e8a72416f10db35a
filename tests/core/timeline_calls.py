"""Calls made for timeline tests: real stereo WAV files, segmented by the pipeline.

Each leg is speech-like harmonic bursts over faint noise; the pipeline's segmentation
(`segment_legs`) cuts it into utterances and voiced segments, and texts are given to the
utterances in place of ASR. `store_scored` scores such a call with a rubric and stores it
the way `callqa score` does, so that its findings are the rubric's own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from sqlite_utils import Database

from core.audio.wav import read_wav, write_wav_pcm16
from core.calls import CallEvidence
from core.rubric import Rubric, evaluate, load_rubric_text
from core.rubric.defaults import builtin_rubrics
from core.scoring.pipeline import legs_from_recording, segment_legs
from core.storage import repository

RATE = 8000
# (speaker, start s, end s, level dBFS): turns with a customer talking over the agent at
# 9 s, a 6 s dead air at 11 s and a loud agent turn at 17 s.
TURNS = (
    ("agent", 0.5, 3.0, -28.0), ("customer", 3.4, 6.0, -27.0), ("agent", 6.5, 10.0, -28.0),
    ("customer", 9.0, 11.0, -26.0), ("agent", 17.0, 20.0, -18.0), ("customer", 20.5, 23.0, -27.0),
    ("agent", 23.5, 27.0, -29.0), ("customer", 27.5, 30.0, -27.0), ("agent", 30.5, 34.0, -28.0),
)
TEXTS = {
    "agent": ["您好，很高兴为您服务，请问有什么可以帮您？", "这个我也不知道，您稍后再打来吧。",
              "您别着急，我马上帮您查一下订单的物流情况。", "已经帮您催促了，明天之内一定送到。",
              "感谢您的来电，祝您生活愉快，再见。"],
    "customer": ["我的快递到现在还没到，太慢了！", "你们怎么回事啊，我要投诉！",
                 "好吧，那我再等一天。", "好的，谢谢。"],
}


def turns(variant: int = 0) -> list[tuple[str, float, float, float]]:
    """The turns of call `variant`: 0 as above; 1 without the overtalk and the loud turn;
    2 with a dead air of 2 s instead of 6 s."""
    out = list(TURNS)
    if variant == 1:
        out = [t for t in out if t[1] != 9.0]
        out = [(sp, a, b, -28.0 if a == 17.0 else lvl) for sp, a, b, lvl in out]
    elif variant == 2:
        out = [(sp, a - 4.0, b - 4.0, lvl) if a >= 17.0 else (sp, a, b, lvl)
               for sp, a, b, lvl in out]
    return out


def burst(seconds: float, f0: float, dbfs: float, seed: int) -> np.ndarray:
    """A voiced burst: harmonics of a gliding f0, syllable-rate amplitude modulation."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.04 * np.sin(2 * np.pi * 0.7 * t))) / RATE
    x = sum(np.sin(k * phase + rng.uniform(0, 6.3)) / k for k in range(1, 14) if k * f0 < 3600)
    x = np.asarray(x) * (0.55 + 0.45 * np.sin(2 * np.pi * 4.5 * t))
    return (x * 10 ** (dbfs / 20) / np.sqrt(np.mean(x**2))).astype(np.float32)


def write_call(path: Path, variant: int = 0, seconds: float = 38.0) -> Path:
    """A stereo WAV (agent left) of call `variant`."""
    legs = {sp: np.zeros(round(seconds * RATE), np.float32) for sp in ("agent", "customer")}
    for i, (sp, start, end, level) in enumerate(turns(variant)):
        x = burst(end - start, 200.0 if sp == "agent" else 140.0, level, seed=i + 10 * variant)
        a = round(start * RATE)
        legs[sp][a : a + len(x)] += x
    rng = np.random.default_rng(99 + variant)
    chans = [legs[sp] + rng.standard_normal(len(legs[sp])).astype(np.float32) * 10 ** (-58 / 20)
             for sp in ("agent", "customer")]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav_pcm16(path, chans, RATE)
    return path


def scored_evidence(path: Path, variant: int = 0) -> CallEvidence:
    """What the pipeline hands the rubric engine for the file (texts in place of ASR)."""
    legs = legs_from_recording(read_wav(path))
    utterances, activity = segment_legs(legs, min_silence_s=0.5, max_utterance_s=15.0)
    seen = {"agent": variant, "customer": variant}
    for u in utterances:
        pool = TEXTS[u.speaker]
        u.text = pool[seen[u.speaker] % len(pool)]
        seen[u.speaker] += 1
        u.avg_logprob, u.no_speech_prob = -0.3, 0.02
    duration = max(len(leg.audio) / leg.sample_rate for leg in legs)
    return CallEvidence(duration_s=duration, language="zh", utterances=utterances,
                        activity=activity)


def default_rubric() -> Rubric:
    return load_rubric_text(builtin_rubrics()["default-zh"])


def draft_yaml(rubric_id: str = "default-zh") -> str:
    """default-zh with the timeline rules made sharper (shorter dead air, shorter overtalk
    by either side, a smaller volume rise, a narrower pace), no closing nor apology check,
    customer emotion only when sure, and a lower pass mark."""
    data = yaml.safe_load(builtin_rubrics()["default-zh"])
    data["id"] = rubric_id
    data["pass_score"] = 70
    for item in data["items"]:
        if item["id"] == "dead_air":
            item["min_s"] = 3
        elif item["id"] == "interrupt":
            item["min_overlap_s"] = 0.3
            item["speaker"] = "any"
        elif item["id"] == "volume":
            item["rise_db"] = 3
        elif item["id"] == "pace":
            item["max_per_min"] = 200
        elif item["id"] in ("closing", "apology"):
            item["enabled"] = False
        elif item["id"] == "customer_emotion":
            item["min_confidence"] = 0.95
    return str(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def draft_rubric() -> Rubric:
    return load_rubric_text(draft_yaml())


def store_scored(db: Database, evidence: CallEvidence, wav: Path, *, agent: str = "A01",
                 team: str = "T1", started: str = "2025-09-03T09:00:00+08:00",
                 keep_timelines: bool = True) -> str:
    """Score `evidence` with default-zh and store the call with its recording `wav`;
    ``keep_timelines=False`` stores it as calls were stored before timelines were kept."""
    rubric = default_rubric()
    version = repository.record_rubric_version(db, rubric.id, builtin_rubrics()[rubric.id])
    result = evaluate(rubric, evidence, rubric_version=version)
    if not keep_timelines:
        result.evidence = None
    record = repository.CallRecord(
        id=repository.new_call_id(), source="file", recording_path=str(wav),
        duration_s=evidence.duration_s, started_at=started, agent_id=agent, team_id=team,
        language="zh", meta={"agent_channel": "left", "channels": 2},
    )
    repository.save_scored_call(db, record, result)
    return record.id
