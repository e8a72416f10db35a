"""Dry run of a draft rubric over 1,000 stored calls, against re-deriving from recordings.

Usage::

    python benchmarks/bench_dryrun.py [--calls 1000] [--baseline-calls 30] [--repeat 3]

Generates a data folder of stored calls through core storage (`save_scored_call`, scored
with default-zh, so each call has its findings and its voice timelines): ~1.5 minutes per
call, ~20 utterances of Chinese call-centre speech, per leg its voiced segments and
20 ms frame levels and pitch. Then times, in the same run:

* the dry run as the admin web runs it (`admin_web.dryrun_engine.run`: read the calls,
  rebuild their evidence from the stored transcript and timelines, score them with a draft,
  compare, write per-call rows and the summary to the site database), median of `repeat`;
* the baseline, the naive way with no timelines stored: read the call's recording,
  segment it again (VAD, levels, pitch) and score the draft on that evidence. Writing
  1,000 recordings would take gigabytes, so it is measured on `baseline-calls` calls that
  get a real G.711 recording of their length, median per call of `repeat` passes, and
  scaled to the same number of calls.

Prints the figures and the ratio; the target is a 1,000-call dry run under a minute.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from admin_web import dryrun_engine, site_db
from admin_web.dryrun_engine import Selection
from core.audio.wav import write_wav_g711
from core.calls import CallEvidence, LegActivity, Segment, Speaker, Utterance
from core.rubric import Rubric, evaluate, load_rubric_text
from core.rubric.defaults import builtin_rubrics
from core.scoring.rescore import derive_timelines, rescore
from core.storage import repository, timelines
from core.storage.db import open_db
from core.storage.evidence import stored_calls
from kernels.g711 import ulaw_encode

RATE_HZ = 8000
FRAME_S = 0.02
UTTERANCES = (16, 24)
TARGET_S = 60.0
GREETING = "您好，很高兴为您服务，请问有什么可以帮您？"
CLOSING = "感谢您的来电，祝您生活愉快，再见。"
# (text, weight): mostly ordinary turns, now and then one a rule is about.
AGENT = [
    ("请您稍等，我帮您查询一下。", 6), ("您的订单已经发货了，预计明天送达。", 6),
    ("这个问题我需要跟相关部门确认一下，稍后给您回复。", 5), ("不好意思，给您添麻烦了。", 3),
    ("好的，我已经帮您登记了，稍后会有专人联系您。", 5), ("您提的建议我们会认真考虑，谢谢您。", 2),
    ("还有其他可以帮您的吗？", 3), ("嗯，那个，这个情况我们会尽快处理的。", 1),
    ("这个我也不知道，您可以去官网看看。", 1), ("我们的服务就这样，您看着办吧。", 1),
]
CUSTOMER = [
    ("你好，我想查一下我的快递到哪里了。", 6), ("好的，那我再等等。", 6),
    ("那我什么时候能收到？", 5), ("行吧，谢谢。", 4), ("我提个建议，你们应该早点通知。", 1),
    ("怎么回事，等了好久还没到！", 1),
    ("我要投诉你们的服务！", 1), ("你们这服务太差了，气死我了！", 1),
]


def pick(rng: np.random.Generator, pool: list[tuple[str, int]]) -> str:
    weights = np.array([w for _, w in pool], dtype=float)
    return pool[int(rng.choice(len(pool), p=weights / weights.sum()))][0]


def draft_yaml() -> str:
    data = yaml.safe_load(builtin_rubrics()["default-zh"])
    data["id"] = "draft-zh"
    data["pass_score"] = 75
    for item in data["items"]:
        if item["id"] == "dead_air":
            item["min_s"] = 4
        elif item["id"] == "interrupt":
            item["min_overlap_s"] = 0.5
        elif item["id"] == "volume":
            item["rise_db"] = 4
        elif item["id"] == "forbidden_words":
            item["phrases"] = [*item["phrases"], "您看着办吧"]
    return str(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def make_evidence(rng: np.random.Generator) -> CallEvidence:
    """One call: alternating turns with gaps, some overlaps, a long silence now and then."""
    n = int(rng.integers(*UTTERANCES, endpoint=True))
    n += 1 - n % 2  # odd: the agent speaks first and last
    utterances: list[Utterance] = []
    voiced: dict[str, list[Segment]] = {"agent": [], "customer": []}
    texts = []
    for i in range(n):
        if i == 0:
            texts.append(GREETING)
        elif i == n - 1:
            texts.append(CLOSING)
        else:
            texts.append(pick(rng, AGENT if i % 2 == 0 else CUSTOMER))
    lengths = [len(x) / float(rng.uniform(3.2, 4.8)) + 0.4 for x in texts]
    gaps = rng.uniform(0.3, 1.5, n) + (rng.random(n) < 0.04) * rng.uniform(5.0, 12.0, n)
    gaps[-1] = 1.0
    duration = 0.5 + sum(lengths) + float(gaps.sum())
    t = 0.5
    for i in range(n):
        speaker: Speaker = "agent" if i % 2 == 0 else "customer"
        text = texts[i]
        start = t - (float(rng.uniform(0.3, 1.5)) if rng.random() < 0.08 and i else 0.0)
        end = min(start + lengths[i], duration - 0.2)
        level = float(rng.normal(-26.0, 2.5)) + (8.0 if rng.random() < 0.05 else 0.0)
        f0 = float(rng.normal(210.0 if speaker == "agent" else 140.0, 15.0))
        # The VAD's speech runs: the utterance split at a pause or two.
        cuts = np.sort(rng.uniform(start + 0.15, end - 0.15, int(rng.integers(0, 3))))
        edges = [start + 0.15, *cuts.tolist(), end - 0.15]
        segs = [Segment(round(a / FRAME_S) * FRAME_S, round(b / FRAME_S) * FRAME_S)
                for a, b in itertools.pairwise(edges) if b - a > 0.1]
        voiced[speaker].extend(segs)
        utterances.append(Utterance(speaker=speaker, start=start, end=end, text=text,
                                    level_db=level, voiced_s=sum(s.duration for s in segs),
                                    pitch_hz=f0, avg_logprob=-0.3, no_speech_prob=0.02))
        t = end + float(gaps[i])
        if t >= duration - 1.0:
            break
    frames = int(duration / FRAME_S)
    activity = {}
    for sp in ("agent", "customer"):
        levels = rng.normal(-60.0, 3.0, frames)
        pitch = np.zeros(frames)
        for s in voiced[sp]:
            a, b = int(s.start / FRAME_S), int(s.end / FRAME_S)
            levels[a:b] = rng.normal(-26.0, 4.0, b - a)
            pitch[a:b] = rng.normal(200.0, 20.0, b - a)
        activity[sp] = LegActivity(speaker=sp, voiced=sorted(voiced[sp], key=lambda s: s.start),
                                   duration_s=duration, frame_s=FRAME_S, levels_db=levels,
                                   pitch_hz=pitch)
    utterances.sort(key=lambda u: (u.start, u.speaker))
    return CallEvidence(duration_s=duration, language="zh", utterances=utterances,
                        activity=activity)


def burst(seconds: float, f0: float, dbfs: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(round(seconds * RATE_HZ)) / RATE_HZ
    phase = 2 * np.pi * f0 * t
    x = sum(np.sin(k * phase + rng.uniform(0, 6.3)) / k for k in range(1, 12) if k * f0 < 3600)
    x = np.asarray(x) * (0.55 + 0.45 * np.sin(2 * np.pi * 4.5 * t))
    return x * 10 ** (dbfs / 20) / max(1e-9, float(np.sqrt(np.mean(x**2))))


def write_recording(path: Path, evidence: CallEvidence, rng: np.random.Generator) -> None:
    n = int(evidence.duration_s * RATE_HZ)
    chans = []
    for sp in ("agent", "customer"):
        x = rng.standard_normal(n) * 10 ** (-58 / 20)
        for s in evidence.activity[sp].voiced:
            a = int(s.start * RATE_HZ)
            piece = burst(s.duration, 200.0 if sp == "agent" else 140.0, -26.0, rng)
            x[a : a + len(piece)] += piece[: n - a]
        chans.append(ulaw_encode(np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav_g711(path, chans, RATE_HZ, "mulaw")


def generate(data_dir: Path, calls: int, baseline_calls: int) -> tuple[list[str], list[str], int]:
    """Store the calls; returns (all ids, ids with a recording, timeline bytes in all)."""
    rng = np.random.default_rng(7)
    db = open_db(data_dir / "callqa.db")
    rubric = load_rubric_text(builtin_rubrics()["default-zh"])
    version = repository.record_rubric_version(db, rubric.id, builtin_rubrics()[rubric.id])
    ids, with_audio = [], []
    size = 0
    try:
        for i in range(calls):
            evidence = make_evidence(rng)
            result = evaluate(rubric, evidence, rubric_version=version)
            call_id = repository.new_call_id()
            started = f"2025-09-{1 + i % 28:02d}T{8 + i % 10:02d}:{i % 60:02d}:00+08:00"
            path = None
            if i < baseline_calls:
                path = repository.recording_path(data_dir, call_id, started)
                write_recording(path, evidence, rng)
                with_audio.append(call_id)
            record = repository.CallRecord(
                id=call_id, source="siprec", recording_path=str(path) if path else None,
                duration_s=evidence.duration_s, started_at=started, agent_id=f"A{i % 40:02d}",
                team_id=f"T{i % 6 + 1}", language="zh",
                meta={"agent_channel": "left", "channels": 2},
            )
            repository.save_scored_call(db, record, result)
            size += sum(timelines.stored_size(r)
                        for r in timelines.timeline_rows(call_id, evidence))
            ids.append(call_id)
    finally:
        db.close()
    return ids, with_audio, size


def time_dry_run(data_dir: Path, ids: list[str], draft: Rubric, text: str) -> float:
    conn = site_db.connect(data_dir)
    try:
        run_id = dryrun_engine.create_run(
            conn, username="bench", rubric=draft, yaml_text=text, rubric_version=None,
            selection=Selection(mode="last", last=len(ids)), total=len(ids))
    finally:
        conn.close()
    t0 = time.perf_counter()
    state = dryrun_engine.run(data_dir, run_id, ids)
    elapsed = time.perf_counter() - t0
    assert state == "done", state
    return elapsed


def time_baseline(data_dir: Path, ids: list[str], draft: Rubric) -> list[float]:
    """Seconds per call: recording -> segmentation -> draft, no stored timelines."""
    db = open_db(data_dir / "callqa.db")
    try:
        calls = stored_calls(db, ids, with_timelines=False)
    finally:
        db.close()
    out = []
    for call in calls:
        t0 = time.perf_counter()
        assert call.recording_path is not None
        tl = derive_timelines(call.recording_path, call.meta, "zh")
        rescore(draft, call, tl)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--baseline-calls", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dryrun-"))
    try:
        data_dir = tmp / "data"
        data_dir.mkdir()
        t0 = time.perf_counter()
        ids, with_audio, size = generate(data_dir, args.calls, args.baseline_calls)
        site_db.prepare(data_dir)
        gen_s = time.perf_counter() - t0
        db = open_db(data_dir / "callqa.db")
        utts = db.execute("SELECT COUNT(*) FROM utterances").fetchone()[0]
        finds = db.execute("SELECT COUNT(*) FROM findings").fetchone()[0]
        secs = db.execute("SELECT SUM(duration_s) FROM calls").fetchone()[0]
        db.close()
        text = draft_yaml()
        draft = load_rubric_text(text)
        # Warm up once (imports, matcher caches, Numba), as a long-running site would be.
        time_dry_run(data_dir, ids[:20], draft, text)
        time_baseline(data_dir, with_audio[:2], draft)

        runs = [time_dry_run(data_dir, ids, draft, text) for _ in range(args.repeat)]
        per_call_base: list[float] = []
        passes = [statistics.median(time_baseline(data_dir, with_audio, draft))
                  for _ in range(args.repeat)]
        per_call_base = passes
        dry = statistics.median(runs)
        base_per_call = statistics.median(per_call_base)
        base_total = base_per_call * len(ids)
        n = len(ids)
        print(f"python {platform.python_version()} on {platform.machine()}, "
              f"{n} stored calls generated in {gen_s:.1f} s")
        print(f"  {utts / n:.1f} utterances and {finds / n:.1f} findings per call, "
              f"{secs / n:.0f} s of call on average; timelines {size / n / 1024:.1f} KiB per call "
              f"({size / secs:.0f} B per second of call)")
        print()
        print(f"{'case':<52} {'median':>10} {'per call':>10}")
        print(f"{'dry run, stored timelines (' + str(n) + ' calls)':<52} {dry:>9.2f}s "
              f"{1000 * dry / n:>8.2f}ms   runs: {', '.join(f'{r:.2f}' for r in runs)}")
        print(f"{'baseline: re-derive from recording + score':<52} {base_total:>9.2f}s "
              f"{1000 * base_per_call:>8.2f}ms   (measured on {len(with_audio)} calls, "
              f"scaled to {n})")
        print()
        print(f"ratio baseline / dry run: {base_total / dry:.1f}x; "
              f"target {n} calls under {TARGET_S:.0f} s: "
              f"{'met' if dry < TARGET_S else 'NOT met'} ({dry:.1f} s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
