"""The live pipeline without the model: legs, the ASR scheduler, overload, routing.

A scripted transcriber stands in for Whisper (it is not under test here); the VAD,
endpointer, scheduler, rules, writer and SQLite are the real ones.
"""

from __future__ import annotations

import itertools
import threading
import time
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from core.asr.types import AsrRequest, AsrResult
from core.audio.samples import SAMPLE_CALLS, render
from core.audio.segmentation import segment_leg
from core.audio.wav import read_wav
from core.calls import Finding, Segment
from core.config import load_settings
from core.live.call import CallSetup
from core.live.engine import LiveEngine
from core.live.leg import MIN_PART_S, PART_CUT_LOOKBACK_S, LiveLeg
from core.live.routing import RubricRoutes
from core.live.scheduler import PRIORITY_FINAL, PRIORITY_PARTIAL, AsrJob, AsrScheduler
from core.scoring.pipeline import asr_cut
from core.storage import repository
from core.storage.db import open_db

RUDE = next(c for c in SAMPLE_CALLS if c.name == "en-complaint-rude")


@pytest.fixture(scope="module")
def rude_legs() -> tuple[np.ndarray, np.ndarray]:
    agent, customer, _ = render(RUDE)
    return agent, customer


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 32768.0, -32768, 32767).astype(np.int16)


class ScriptedAsr:
    """Answers every utterance with one line, after a delay per batch (a slow model)."""

    def __init__(self, text: str = "I don't know. That is not my problem.", delay_s: float = 0.0):
        self.text = text
        self.delay_s = delay_s
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()

    def transcribe_batch(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
        time.sleep(self.delay_s)
        with self.lock:
            self.batches.append([r.id for r in requests])
        return [AsrResult(id=r.id, text=self.text, language="en") for r in requests]


def test_live_leg_cuts_the_same_utterances_as_offline(rude_legs: tuple[np.ndarray, ...]) -> None:
    agent = rude_legs[0].astype(np.float32)
    offline, _ = segment_leg(agent, "agent")
    leg = LiveLeg("agent", partial_every_s=0)
    spans = []
    pcm = _int16(agent)
    for i in range(0, len(pcm), 160):  # 20 ms at a time, as RTP delivers it
        spans += [u.span for u in leg.push(pcm[i : i + 160]).finished]
    spans += [u.span for u in leg.flush().finished]
    assert len(spans) == len(offline) > 3
    for live, off in zip(spans, offline, strict=True):
        assert live.start == pytest.approx(off.start, abs=0.021)
        assert live.end == pytest.approx(off.end, abs=0.021)
        assert live.level_db == pytest.approx(off.level_db, abs=0.5)


def test_live_leg_hands_out_parts_of_a_long_turn() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(8000 * 9) / 8000
    speech = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    speech += 0.01 * rng.standard_normal(len(t))
    pcm = _int16(np.concatenate([np.zeros(8000), speech, np.zeros(8000)]).astype(np.float32))
    leg = LiveLeg("agent", partial_every_s=3.0)
    parts, finished = [], []
    for i in range(0, len(pcm), 160):
        out = leg.push(pcm[i : i + 160])
        parts += out.partials
        finished += out.finished
    finished += leg.flush().finished
    assert len(finished) == 1 and len(parts) >= 2
    assert all(p.partial and p.seq == finished[0].seq for p in parts)
    assert [p.part for p in parts] == list(range(len(parts)))
    # The parts tile the turn: each holds only the audio new since the one before it.
    assert parts[0].span.start == pytest.approx(finished[0].span.start, abs=0.021)
    for before, after in itertools.pairwise(parts):
        assert after.span.start == before.span.end
    assert parts[0].span.end - parts[0].span.speech_start >= 3.0 - PART_CUT_LOOKBACK_S
    for p in parts:
        assert len(p.audio16) == pytest.approx(2 * 8000 * (p.span.end - p.span.start), abs=40)
        assert p.span.end - p.span.start >= MIN_PART_S


def test_parts_end_at_a_pause_inside_the_turn() -> None:
    """A part ends where the speaker paused briefly (too short to end the turn), so that a
    word is not cut in two between parts."""
    t = np.arange(8000 * 12) / 8000
    speech = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    dips = [(k + 0.9, k + 1.15) for k in range(0, 12)]  # 250 ms pauses, once a second
    for a, b in dips:
        speech[int(a * 8000) : int(b * 8000)] = 0.0
    pcm = _int16(np.concatenate([np.zeros(8000), speech, np.zeros(8000)]).astype(np.float32))
    leg = LiveLeg("agent", partial_every_s=3.0)
    parts = []
    for i in range(0, len(pcm), 160):
        parts += leg.push(pcm[i : i + 160]).partials
    assert len(parts) >= 2
    for p in parts:
        in_speech = p.span.end - 1.0  # the turn's audio starts after 1 s of silence
        assert any(a - 0.02 <= in_speech <= b + 0.02 for a, b in dips), p.span


def test_scheduler_batches_across_lines_oldest_first_and_spills_to_disk(tmp_path: Path) -> None:
    asr = ScriptedAsr(delay_s=0.05)
    spool = tmp_path / "queue"
    sched = AsrScheduler(lambda: asr, batch_size=4, memory_s=2.0, spool_dir=spool)
    gate = threading.Event()
    done: list[str] = []

    def finished(job: AsrJob, result: AsrResult | None, error: str | None) -> None:
        gate.wait()
        done.append(job.key if result is not None else f"skipped {job.key}")

    audio = np.full(16000, 0.1, dtype=np.float32)  # 1 s each
    sched.start()
    # The first batch blocks in its callback, so everything else queues up behind it.
    sched.submit(AsrJob("first", audio, "en", ready_at=0.0, done=finished))
    time.sleep(0.2)
    for k in range(12):
        line = k % 3
        sched.submit(AsrJob(f"line{line}-{k}", audio, "en", ready_at=1.0 + k, done=finished))
    sched.submit(AsrJob("part", audio, "en", ready_at=0.5, done=finished,
                        priority=PRIORITY_PARTIAL))  # fmt: skip
    assert sched.stats.spooled >= 10  # past 2 s of audio in memory, the queue is on disk
    assert len(list(spool.glob("*.f32"))) == sched.spooled_now >= 10
    time.sleep(1.2)  # the part is now stale too
    gate.set()
    assert sched.wait_idle(30)
    sched.stop(5)
    finals = [k for k in done if k.startswith("line")]
    assert finals == [f"line{k % 3}-{k}" for k in range(12)]  # oldest first, none lost
    assert "skipped part" in done  # a part waits behind a long queue: skipped, not decoded
    assert not list(spool.glob("*.f32"))
    mixed = [b for b in asr.batches if len({k.split("-")[0] for k in b}) > 1]
    assert mixed and max(len(b) for b in asr.batches) == 4  # batches take several lines


def test_scheduler_takes_parts_when_the_queue_is_short(tmp_path: Path) -> None:
    asr = ScriptedAsr()
    sched = AsrScheduler(lambda: asr, batch_size=8)
    got: list[str | None] = []
    ready = threading.Event()

    def finished(job: AsrJob, result: AsrResult | None, error: str | None) -> None:
        got.append(None if result is None else result.text)
        ready.set()

    sched.start()
    sched.submit(AsrJob("p", np.full(8000, 0.1, np.float32), "en", 0.0, finished,
                        priority=PRIORITY_PARTIAL))  # fmt: skip
    assert ready.wait(10)
    sched.stop(5)
    assert got == [asr.text] and PRIORITY_FINAL < PRIORITY_PARTIAL


def test_a_spilled_job_whose_file_is_gone_fails_alone(tmp_path: Path) -> None:
    """Queued audio that cannot be read back is reported as failed for its job; the worker
    lives on and decodes the rest."""
    asr = ScriptedAsr()
    spool = tmp_path / "queue"
    sched = AsrScheduler(lambda: asr, batch_size=1, workers=1, memory_s=0.5, spool_dir=spool)
    gate = threading.Event()
    got: list[tuple[str, str | None]] = []
    done = threading.Semaphore(0)

    def finished(job: AsrJob, result: AsrResult | None, error: str | None) -> None:
        if job.key == "first":
            gate.wait(10)
        got.append((job.key, error))
        done.release()

    audio = np.full(16000, 0.1, np.float32)
    sched.start()
    try:
        sched.submit(AsrJob("first", audio, "en", 0.0, finished))
        time.sleep(0.2)  # the worker holds "first" in its callback
        sched.submit(AsrJob("lost", audio, "en", 1.0, finished))
        sched.submit(AsrJob("next", audio, "en", 2.0, finished))
        spilled = sorted(spool.glob("*.f32"))
        assert len(spilled) == 2
        spilled[0].unlink()  # the queue file of "lost" (submitted first) disappears
        gate.set()
        for _ in range(3):
            assert done.acquire(timeout=10)
        assert sched.wait_idle(10)
    finally:
        sched.stop(5)
    assert [k for k, _ in got] == ["first", "lost", "next"]
    assert got[1][1] is not None and got[1][1].startswith("queued audio lost")
    assert got[0][1] is None and got[2][1] is None
    assert sched.stats.failures == 1 and sched.backlog == 0


def test_the_load_is_the_busy_share_of_the_window() -> None:
    """The load kept as a running sum (it is read for every batch and early decode) equals
    the busy time inside the last LOAD_WINDOW_S, batches cut at the window's start."""
    import random

    from core.live.scheduler import LOAD_WINDOW_S

    sched = AsrScheduler(lambda: ScriptedAsr(), workers=1)
    sched.workers = 1
    rng = random.Random(3)
    log: list[tuple[float, float]] = []
    now = at = 100.0
    for _ in range(3000):
        took = rng.uniform(0.001, 0.5)
        now = max(now, at) + took + rng.choice([0.0, rng.uniform(0.0, 0.3)])
        sched._busy_log.append((now, took))  # as a worker's batch adds itself
        sched._busy_sum += took
        log.append((now, took))
        at = now + rng.uniform(0.0, 2.0)  # the clock only goes forward
        since = at - LOAD_WINDOW_S
        want = sum(max(0.0, min(t, e - since)) for e, t in log if e >= since) / LOAD_WINDOW_S
        assert sched._busy_share(at) == pytest.approx(want, abs=1e-9)
    assert len(sched._busy_log) < 200  # the batches before the window are let go


def test_parts_are_skipped_while_the_workers_are_busy() -> None:
    """Past ``part_load_limit``, a part is not decoded; finished utterances always are."""
    asr = ScriptedAsr(delay_s=0.3)
    sched = AsrScheduler(lambda: asr, batch_size=1, workers=1, part_load_limit=0.02)
    got: list[str] = []
    done = threading.Semaphore(0)

    def finished(job: AsrJob, result: AsrResult | None, error: str | None) -> None:
        got.append(job.key if result is not None else f"skipped {job.key}")
        done.release()

    audio = np.full(8000, 0.1, np.float32)
    sched.start()
    try:
        sched.submit(AsrJob("part-idle", audio, "en", 0.0, finished, priority=PRIORITY_PARTIAL))
        assert done.acquire(timeout=10)  # an idle box decodes parts
        sched.submit(AsrJob("final", audio, "en", 1.0, finished))
        assert done.acquire(timeout=10)
        assert sched.load() > 0.02  # 0.6 s of the last 10 s on its one worker
        sched.submit(AsrJob("part-busy", audio, "en", 2.0, finished, priority=PRIORITY_PARTIAL))
        sched.submit(AsrJob("final-2", audio, "en", 3.0, finished))
        assert done.acquire(timeout=10) and done.acquire(timeout=10)
    finally:
        sched.stop(5)
    assert got[:2] == ["part-idle", "final"]
    assert sorted(got[2:]) == ["final-2", "skipped part-busy"]
    assert sched.stats.partials_skipped == 1
    with pytest.raises(ValueError, match="part_load_limit"):
        AsrScheduler(lambda: asr, part_load_limit=1.5)


def _engine(tmp_path: Path, asr: ScriptedAsr, **settings: object) -> LiveEngine:
    config = load_settings(overrides={"data_dir": str(tmp_path), "rubric": "default-en"},
                           environ={}).replace(**settings)  # fmt: skip
    engine = LiveEngine(config, lambda: asr)  # type: ignore[arg-type]
    engine.start()
    return engine


def test_overload_queues_to_disk_marks_alerts_late_and_scores_every_call(
    tmp_path: Path, rude_legs: tuple[np.ndarray, ...]
) -> None:
    asr = ScriptedAsr(delay_s=0.15)
    engine = _engine(tmp_path, asr, asr_batch_size=1, asr_queue_memory_s=3.0)
    sub = engine.hub.subscribe(lambda e: e.kind == "alert")
    agent, customer = (_int16(x) for x in rude_legs)
    calls = []
    try:
        # Three calls delivered far faster than real time: a box many times over capacity.
        for n in range(3):
            call = engine.open_call(CallSetup(source="grpc", agent_id=f"X{n}"))
            calls.append(call)
            for i in range(0, len(agent), 800):
                engine.feed(call, "agent", agent[i : i + 800])
                engine.feed(call, "customer", customer[i : i + 800])
        assert engine.scheduler.stats.spooled > 0
        for call in calls:
            engine.end_call(call, "end")
        assert engine.wait_calls(120), engine.counters
    finally:
        engine.shutdown(10)
    alerts = []
    while (event := sub.get(0.1)) is not None:
        alerts.append(event.data)
    # The first utterances meet an empty queue; those behind the backlog come late, and say so.
    assert sum(a.late for a in alerts) > len(alerts) // 2
    assert all(a.late == (a.latency_ms > 2000.0) for a in alerts)
    assert engine.counters["late_alerts"] == sum(a.late for a in alerts)
    db = open_db(tmp_path / "callqa.db")
    for call in calls:
        stored = repository.get_call(db, call.call_id)
        assert stored is not None and stored["status"] == "scored", stored
        decoded = {k.rstrip("e") for b in asr.batches for k in b if k.startswith(call.call_id)
                   and "p" not in k.rsplit("/", 1)[1]}  # utterances, decoded early or after
        assert len(stored["utterances"]) == len(decoded) > 3  # nothing lost
        assert any(f["item_id"] == "forbidden_words" for f in stored["findings"])
    assert not list((tmp_path / "spool" / "asr-queue").glob("*.f32"))


class PartsAsr:
    """Answers each part of a turn with its own word, the whole turn with all of them."""

    def __init__(self) -> None:
        self.drafts: dict[str, bool] = {}

    def transcribe_batch(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
        out = []
        for r in requests:
            self.drafts[r.id] = r.draft
            tail = r.id.rsplit("/", 1)[1]
            text = f"part{tail.split('p')[1]}" if "p" in tail else "the whole turn"
            out.append(AsrResult(id=r.id, text=text, language="en"))
        return out


def test_the_parts_of_a_turn_are_drafts_shown_joined_until_the_turn_ends(
    tmp_path: Path,
) -> None:
    asr = PartsAsr()
    engine = _engine(tmp_path, asr, live_partial_every_s=2.0)  # type: ignore[arg-type]
    sub = engine.hub.subscribe(lambda e: e.kind == "transcript")
    t = np.arange(8000 * 9) / 8000
    speech = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    pcm = _int16(np.concatenate([np.zeros(8000), speech, np.zeros(8000)]).astype(np.float32))
    try:
        call = engine.open_call(CallSetup(source="grpc", agent_id="P1", legs=("agent",)))
        for i in range(0, len(pcm), 160):
            engine.feed(call, "agent", pcm[i : i + 160])
            if i % 8000 == 0:
                assert engine.scheduler.wait_idle(10)  # parts decoded as they come, in order
        engine.end_call(call, "end")
        assert engine.wait_calls(30)
    finally:
        engine.shutdown(10)
    lines = []
    while (event := sub.get(0.1)) is not None:
        lines.append(event.data)
    parts = [line.utterance.text for line in lines if line.partial]
    assert len(parts) >= 3
    assert parts[:3] == ["part0", "part0 part1", "part0 part1 part2"]
    assert [line.utterance.text for line in lines if not line.partial] == ["the whole turn"]
    assert all(draft == ("p" in key.rsplit("/", 1)[1]) for key, draft in asr.drafts.items())


def test_rubric_routes() -> None:
    routes = RubricRoutes.parse("team:sales=sales-zh, skill:billing=billing-zh,agent:1001=coach")
    pick = routes.choose
    assert pick(agent_id="1001", team_id="sales", skill="billing", default="d") == "coach"
    assert pick(agent_id="7", team_id="sales", skill="billing", default="d") == "billing-zh"
    assert pick(agent_id="7", team_id="sales", skill=None, default="d") == "sales-zh"
    assert pick(agent_id=None, team_id=None, skill=None, default="d") == "d"
    for bad in ("team=sales", "crew:x=y", "team:sales=", "team:=x"):
        with pytest.raises(ValueError, match="KIND:VALUE=RUBRIC"):
            RubricRoutes.parse(bad)


def test_routes_pick_the_rubric_of_a_call_and_reload(tmp_path: Path) -> None:
    asr = ScriptedAsr()
    engine = _engine(tmp_path, asr, rubric_routes="team:zh-team=default-zh")
    try:
        a = engine.open_call(CallSetup(source="grpc", team_id="zh-team"))
        b = engine.open_call(CallSetup(source="grpc", team_id="other"))
        c = engine.open_call(CallSetup(source="grpc", team_id="zh-team", rubric="default-en"))
        assert (a.rubric.id, b.rubric.id, c.rubric.id) == ("default-zh", "default-en",
                                                           "default-en")  # fmt: skip
        engine.routes = RubricRoutes.parse("")
        d = engine.open_call(CallSetup(source="grpc", team_id="zh-team"))
        assert d.rubric.id == "default-en"  # new calls follow the reloaded routes
        assert a.rubric.id == "default-zh"  # calls in progress keep theirs
        with pytest.raises(Exception, match="no rubric"):
            engine.open_call(CallSetup(source="grpc", rubric="missing"))
        for call in (a, b, c, d):
            engine.end_call(call, "end")
        assert engine.wait_calls(30)
    finally:
        engine.shutdown(5)


def test_timeline_updates_queued_behind_a_busy_rules_thread_share_one_check(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path, ScriptedAsr())
    checks: list[bool] = []
    try:
        call = engine.open_call(CallSetup(source="grpc", agent_id="T1"))
        real = call.new_findings

        def counted(*, timeline_only: bool = False) -> list[Finding]:
            checks.append(timeline_only)
            return real(timeline_only=timeline_only)

        call.new_findings = counted  # type: ignore[method-assign]
        go, done = threading.Event(), threading.Event()
        engine._post(lambda: go.wait(10))  # the rules thread is busy
        for k in range(1, 6):
            seg = [Segment(k - 1.0, k - 0.5)]
            engine._post(lambda seg=seg, k=k: engine._timeline(call, "agent", seg, float(k)))
        go.set()
        engine._post(done.set)
        assert done.wait(10)
        assert checks == [True]  # five updates, one check
        assert call.timeline_check is None
        assert call.activity["agent"].duration_s == 5.0  # every update was taken in
        assert len(call.activity["agent"].voiced) == 5
        done.clear()
        engine._post(lambda: engine._timeline(call, "customer", [], 6.0))
        engine._post(done.set)
        assert done.wait(10)
        assert checks == [True, True]  # a later update gets a check of its own
        engine.end_call(call, "end")
        assert engine.wait_calls(30)
    finally:
        engine.shutdown(10)


def test_live_and_offline_give_the_asr_the_same_samples(
    rude_legs: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    """A live leg's utterance audio is, sample for sample, what offline scoring of the
    recording hands the ASR for the same span (`core.scoring.pipeline.asr_cut`): fed the
    same samples, the model's borderline decisions come out the same both ways."""
    pcm = _int16(rude_legs[0].astype(np.float32))
    with wave.open(str(tmp_path / "call.wav"), "wb") as w:  # as the recorder writes it
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.astype("<i2").tobytes())
    recorded = read_wav(tmp_path / "call.wav").channels[0]  # as offline scoring reads it
    leg = LiveLeg("agent", partial_every_s=0)
    finished = []
    for i in range(0, len(pcm), 160):  # 20 ms at a time, as RTP delivers it
        finished += leg.push(pcm[i : i + 160]).finished
    finished += leg.flush().finished
    assert len(finished) > 3
    for utt in finished:
        offline = asr_cut(recorded, 8000, utt.span.start, utt.span.end)
        assert offline.dtype == utt.audio16.dtype == np.float32
        assert np.array_equal(offline, utt.audio16), utt.span
