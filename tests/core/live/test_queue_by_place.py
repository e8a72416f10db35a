"""What the metrics read from the ASR scheduler: audio queued in memory and on disk, and the
sizes of the batches it transcribed."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.asr.types import AsrRequest, AsrResult
from core.live.scheduler import PRIORITY_FINAL, AsrJob, AsrScheduler


class GatedAsr:
    """Holds its first batch until the gate opens (the model is not what is tested here)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.holding = threading.Event()

    def transcribe_batch(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
        self.holding.set()
        self.gate.wait(10)
        return [AsrResult(id=r.id, text="好的", language="zh") for r in requests]


def _job(key: str, seconds: float) -> AsrJob:
    audio = np.zeros(int(16000 * seconds), np.float32)
    return AsrJob(key=key, audio=audio, language="zh", ready_at=time.monotonic(),
                  done=lambda *_: None, priority=PRIORITY_FINAL)  # fmt: skip


def test_queued_audio_is_split_by_place_and_batch_sizes_are_counted(tmp_path: Path) -> None:
    asr = GatedAsr()
    sched = AsrScheduler(lambda: asr, batch_size=4, workers=1, memory_s=1.0,
                         spool_dir=tmp_path / "queue")  # fmt: skip
    sched.start()
    try:
        sched.submit(_job("first", 0.5))
        assert asr.holding.wait(5)  # taken: no longer queued
        assert sched.queued_audio_s_by_place == (0.0, 0.0)
        sched.submit(_job("a", 0.75))  # fits in memory
        sched.submit(_job("b", 0.5))  # 1.25 s > 1.0 s: to disk
        sched.submit(_job("c", 0.25))  # 1.0 s: fits
        memory_s, disk_s = sched.queued_audio_s_by_place
        assert (round(memory_s, 3), round(disk_s, 3)) == (1.0, 0.5)
        assert len(list((tmp_path / "queue").glob("*.f32"))) == 1
        asr.gate.set()
        assert sched.wait_idle(10)
    finally:
        asr.gate.set()
        sched.stop(5)
    assert sched.queued_audio_s_by_place == (0.0, 0.0)
    assert dict(sched.stats.batch_sizes) == {1: 1, 3: 1}
