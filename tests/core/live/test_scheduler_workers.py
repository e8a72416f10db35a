"""The ASR scheduler with several workers: batches run at the same time, nothing is lost,
and the batch size can come from the model."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from core.asr.types import DEFAULT_BATCH, AsrRequest, AsrResult
from core.live.scheduler import PRIORITY_FINAL, AsrJob, AsrScheduler


class SlowAsr:
    """Answers each batch after a pause; records how many batches overlapped."""

    def __init__(self, pause_s: float = 0.2, max_batch_size: int | None = None) -> None:
        self.pause_s = pause_s
        if max_batch_size is not None:
            self.max_batch_size = max_batch_size
        self.running = 0
        self.most_at_once = 0
        self.batches: list[list[str]] = []
        self._lock = threading.Lock()

    def transcribe_batch(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.batches.append([r.id for r in requests])
        time.sleep(self.pause_s)
        with self._lock:
            self.running -= 1
        return [AsrResult(id=r.id, text=f"text {r.id}", language="zh") for r in requests]


def _jobs(n: int, done: list[str]) -> list[AsrJob]:
    lock = threading.Lock()

    def finished(job: AsrJob, result: AsrResult | None, error: str | None) -> None:
        assert result is not None and error is None and result.text == f"text {job.key}"
        with lock:
            done.append(job.key)

    now = time.monotonic()
    return [AsrJob(key=f"u{i}", audio=np.zeros(1600, np.float32), language="zh",
                   ready_at=now + i * 1e-3, done=finished, priority=PRIORITY_FINAL)
            for i in range(n)]  # fmt: skip


def test_two_workers_decode_two_batches_at_once_and_finish_everything() -> None:
    asr = SlowAsr()
    sched = AsrScheduler(lambda: asr, batch_size=2, workers=2)
    sched.start()
    done: list[str] = []
    try:
        for job in _jobs(8, done):
            sched.submit(job)
        assert sched.wait_idle(10)
    finally:
        sched.stop(5)
    assert sorted(done) == sorted(f"u{i}" for i in range(8))
    assert asr.most_at_once == 2
    assert sched.stats.utterances == 8 and sched.backlog == 0
    assert all(len(b) <= 2 for b in asr.batches)


def test_one_worker_never_overlaps() -> None:
    asr = SlowAsr(0.05)
    sched = AsrScheduler(lambda: asr, batch_size=2, workers=1)
    sched.start()
    done: list[str] = []
    try:
        for job in _jobs(6, done):
            sched.submit(job)
        assert sched.wait_idle(10)
    finally:
        sched.stop(5)
    assert asr.most_at_once == 1 and len(done) == 6
    assert asr.batches[0] == ["u0", "u1"]  # oldest first


def test_workers_zero_takes_as_many_as_the_model_decodes_at_once() -> None:
    asr = SlowAsr(0.1)
    asr.inter_threads = 3  # type: ignore[attr-defined]
    sched = AsrScheduler(lambda: asr, batch_size=1, workers=0)
    sched.start()
    done: list[str] = []
    try:
        assert sched.workers == 3
        for job in _jobs(6, done):
            sched.submit(job)
        assert sched.wait_idle(10)
    finally:
        sched.stop(5)
    assert asr.most_at_once == 3 and len(done) == 6


def test_batch_size_zero_takes_the_models_own() -> None:
    with_own = AsrScheduler(lambda: SlowAsr(0.0, max_batch_size=5), batch_size=0)
    with_own.start()
    without = AsrScheduler(lambda: SlowAsr(0.0), batch_size=0)
    without.start()
    try:
        assert with_own.batch_size == 5 and with_own.skip_partials_above == 5
        assert without.batch_size == DEFAULT_BATCH
    finally:
        with_own.stop(5)
        without.stop(5)


def test_every_live_setting_reaches_the_engine() -> None:
    from core.config import load_settings

    settings = load_settings(overrides={
        "live_partial_every_s": 0, "min_silence_s": 0.7, "asr_inter_threads": 2,
        "alert_deadline_s": 3.0,
    }, environ={})  # fmt: skip
    assert settings.live_partial_every_s == 0
    assert settings.min_silence_s == 0.7 and settings.asr_inter_threads == 2
    assert settings.alert_deadline_s == 3.0
