"""Early decodes (core.live.early): a turn transcribed in its pause, before its end is sure.

A transcriber that answers with a digest of the audio it was given stands in for Whisper
(it is not under test here): a finished utterance's transcript then says which samples the
ASR got for it. The VAD, endpointer, legs, scheduler, rules thread and SQLite are real.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from core.asr.types import AsrRequest, AsrResult
from core.audio.samples import SAMPLE_CALLS, render
from core.config import ConfigError, load_settings
from core.live.call import CallSetup
from core.live.engine import LiveEngine
from core.live.leg import LiveLeg, LiveUtterance
from core.live.scheduler import (
    PRIORITY_EARLY,
    PRIORITY_FINAL,
    PRIORITY_PARTIAL,
    AsrJob,
    AsrScheduler,
)
from core.storage import repository
from core.storage.db import open_db

RUDE = next(c for c in SAMPLE_CALLS if c.name == "en-complaint-rude")


@pytest.fixture(scope="module")
def legs() -> tuple[np.ndarray, np.ndarray]:
    agent, customer, _ = render(RUDE)
    return _int16(agent), _int16(customer)


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 32768.0, -32768, 32767).astype(np.int16)


def _digest(audio: np.ndarray) -> str:
    return f"n{len(audio)} crc{zlib.crc32(np.ascontiguousarray(audio).tobytes())}"


class DigestAsr:
    """Answers every utterance with a digest of its samples, after a delay per batch."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.keys: list[str] = []
        self.lock = threading.Lock()

    def transcribe_batch(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
        time.sleep(self.delay_s)
        with self.lock:
            self.keys += [r.id for r in requests]
        return [AsrResult(id=r.id, text=_digest(r.audio), language="en") for r in requests]


def test_an_early_utterance_is_the_finished_one_when_the_pause_ends_the_turn(
    legs: tuple[np.ndarray, np.ndarray],
) -> None:
    """Pushed 20 ms at a time as RTP delivers it, a leg hands out each turn early, in its
    pause, with the span and the very samples the finished turn then has, and with the
    rest of ``min_silence_s`` to spare; a turn the speaker went on with differs."""
    pcm = legs[0]
    leg = LiveLeg("agent", partial_every_s=0, early_after_s=0.2)
    early: list[LiveUtterance] = []
    finished: list[LiveUtterance] = []
    for i in range(0, len(pcm), 160):
        out = leg.push(pcm[i : i + 160])
        finished += out.finished
        if out.early is not None:
            early.append(out.early)
    finished += leg.flush().finished
    plain = LiveLeg("agent", partial_every_s=0)
    same_cut = []
    for i in range(0, len(pcm), 160):
        same_cut += plain.push(pcm[i : i + 160]).finished
    same_cut += plain.flush().finished
    assert [u.span for u in finished] == [u.span for u in same_cut]  # nothing else changes
    matched = 0
    for utt in finished:
        for e in early:
            if (e.seq, e.span.start, e.span.end) == (utt.seq, utt.span.start, utt.span.end):
                matched += 1
                assert not e.partial
                assert dataclasses.replace(e.span, pitch_hz=utt.span.pitch_hz) == utt.span
                assert np.array_equal(e.audio16, utt.audio16)
                assert utt.ended_at_s - e.ended_at_s >= 0.5 - 0.2 - 0.1  # the DSP chunk
    assert matched >= len(finished) - 1 >= 3  # the last turn is cut by the flush
    assert len({(e.seq, e.span.end) for e in early}) == len(early)  # once per pause
    with pytest.raises(ValueError, match="early_after_s"):
        LiveLeg("agent", early_after_s=0.5)


def _run_call(
    tmp_path: Path, legs: tuple[np.ndarray, np.ndarray], asr: DigestAsr, *, early_s: float,
    idle_between: bool | None,
) -> tuple[list[str], LiveEngine]:  # fmt: skip
    """One call through the engine, 100 ms at a time; between chunks the ASR is waited for
    (``idle_between``), or 5 ms pass (False), or nothing (None)."""
    config = load_settings(overrides={"data_dir": str(tmp_path), "rubric": "default-en",
                                      "live_partial_every_s": 0,
                                      "live_early_decode_s": early_s}, environ={})  # fmt: skip
    engine = LiveEngine(config, lambda: asr)  # type: ignore[arg-type]
    engine.start()
    agent, customer = legs
    try:
        call = engine.open_call(CallSetup(source="grpc", agent_id="E1"))
        for i in range(0, len(agent), 800):  # 100 ms at a time
            engine.feed(call, "agent", agent[i : i + 800])
            engine.feed(call, "customer", customer[i : i + 800])
            if idle_between:  # the ASR keeps up: an early decode is done before its turn ends
                assert engine.scheduler.wait_idle(10)
            elif idle_between is False:  # 20x real time: the turn ends (0.3 s of audio, 15 ms
                time.sleep(0.005)  # later) while its early decode is being decoded
        engine.end_call(call, "end")
        assert engine.wait_calls(60)
    finally:
        engine.shutdown(10)
    stored = repository.get_call(open_db(tmp_path / "callqa.db"), call.call_id)
    assert stored is not None and stored["status"] == "scored"
    lines = [f"{u['speaker']} {u['start_s']:.2f}-{u['end_s']:.2f} {u['text']}"
             for u in stored["utterances"]]  # fmt: skip
    return lines, engine


@pytest.mark.parametrize("idle_between", [True, False], ids=["decoded-first", "in-flight"])
def test_a_finished_turn_takes_its_early_transcript_and_the_call_is_the_same(
    tmp_path: Path, legs: tuple[np.ndarray, np.ndarray], idle_between: bool
) -> None:
    """The stored transcript of a call is the same with early decodes as without, sample
    for sample (each line is a digest of the audio decoded for it); most turns took the
    early transcript, whether it was ready when the turn ended or still being decoded."""
    plain, _ = _run_call(tmp_path / "plain", legs, DigestAsr(), early_s=0.0, idle_between=None)
    asr = DigestAsr(delay_s=0.0 if idle_between else 0.08)
    early, engine = _run_call(tmp_path / "early", legs, asr, early_s=0.2,
                              idle_between=idle_between)  # fmt: skip
    assert early == plain and len(plain) > 6
    counts = engine.early.counts
    assert counts["used"] >= len(plain) // 2, counts
    finals = [k for k in asr.keys if not k.endswith("e")]
    assert len(finals) == len(plain) - counts["used"]  # a used one is not decoded again


def test_an_early_decode_skipped_under_load_leaves_the_turn_to_be_decoded(
    tmp_path: Path,
) -> None:
    """The scheduler skips a queued early decode when the queue is deep; the finished turn
    that comes for it is then decoded as usual. A queued one the turn claims is moved up
    and not skipped."""
    asr = DigestAsr()
    sched = AsrScheduler(lambda: asr, batch_size=1, skip_partials_above=0)
    answers: list[tuple[str, str | None]] = []

    def done(job: AsrJob, result: AsrResult | None, error: str | None) -> None:
        answers.append((job.key, error))

    audio = np.ones(1600, np.float32)
    jobs = [AsrJob(f"c/agent/{k}e", audio, "en", float(k), done, priority=PRIORITY_EARLY)
            for k in range(3)]  # fmt: skip
    for job in jobs:
        sched.submit(job)
    assert sched.promote(jobs[1], PRIORITY_FINAL)
    assert not sched.promote(AsrJob("c/x/9", audio, "en", 9.0, done), PRIORITY_FINAL)
    assert not sched.has_room()  # three queued, room for none
    sched.start()
    assert sched.wait_idle(10)
    sched.stop(5)
    assert sorted(answers) == [("c/agent/0e", "skipped"), ("c/agent/1e", None),
                               ("c/agent/2e", "skipped")]  # fmt: skip
    assert sched.stats.early_skipped == 2 and sched.stats.partials_skipped == 0


def test_the_setting_must_leave_room_before_the_end_of_a_turn(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="live_early_decode_s"):
        load_settings(overrides={"data_dir": str(tmp_path), "live_early_decode_s": 0.5},
                      environ={})  # fmt: skip


def test_a_batch_of_finished_turns_takes_no_courtesy_work() -> None:
    """Finished turns are decoded in batches of their own: a part or an early decode queued
    beside them waits for the next batch rather than slow theirs down."""
    asr = DigestAsr()
    sched = AsrScheduler(lambda: asr, batch_size=8, workers=1)
    audio = np.ones(1600, np.float32)
    answered = threading.Semaphore(0)

    def done(job: AsrJob, result: AsrResult | None, error: str | None) -> None:
        answered.release()

    kinds = [("f0", PRIORITY_FINAL), ("e1", PRIORITY_EARLY), ("p2", PRIORITY_PARTIAL),
             ("f3", PRIORITY_FINAL)]  # fmt: skip
    for k, (key, priority) in enumerate(kinds):
        sched.submit(AsrJob(key, audio, "en", float(k), done, priority=priority))
    sched.start()
    try:
        for _ in kinds:
            assert answered.acquire(timeout=10)
    finally:
        sched.stop(5)
    assert sorted(sched.stats.batch_sizes.elements()) == [2, 2]
    assert asr.keys == ["f0", "f3", "e1", "p2"]  # finished first, in a batch of their own


def test_an_early_decode_is_offered_only_to_an_idle_worker() -> None:
    """`has_room`: nothing queued, a worker idle, and one worker left for finished turns."""
    gate = threading.Event()

    class Held(DigestAsr):
        def transcribe_batch(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
            gate.wait(10)
            return super().transcribe_batch(requests)

    sched = AsrScheduler(lambda: Held(), batch_size=1, workers=2)
    audio = np.ones(1600, np.float32)

    def done(job: AsrJob, result: AsrResult | None, error: str | None) -> None:
        pass

    sched.start()
    try:
        assert sched.has_room()
        sched.submit(AsrJob("e0", audio, "en", 0.0, done, priority=PRIORITY_EARLY))
        deadline = time.monotonic() + 10
        while sched.backlog_audio_s > 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # until a worker has taken it
        assert not sched.has_room()  # the other worker is kept for finished turns
        gate.set()
        assert sched.wait_idle(10)
        assert sched.has_room()
    finally:
        gate.set()
        sched.stop(5)
