"""The in-process capacity benchmark: a tiny run on a real model, stored and read back."""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from core.asr.types import AsrRequest, AsrResult
from core.audio.wav import write_wav_pcm16
from core.capacity.inprocess import (
    BenchmarkOutcome,
    StepResult,
    load_recordings,
    run_line_benchmark,
    step_plan,
)
from core.capacity.results import backlog_growing
from core.config import load_settings
from core.live.engine import LiveEngine
from core.scoring.recording import get_engine
from core.storage.benchmarks import last_benchmark, save_benchmark
from core.storage.db import open_db


def test_step_plan() -> None:
    assert step_plan(8, 2) == [2, 4, 6, 8]
    assert step_plan(10, 4) == [4, 8, 10]
    assert step_plan(2, 5) == [2]
    assert step_plan(1, 1) == [1]


def test_backlog_growing() -> None:
    assert not backlog_growing([])
    assert not backlog_growing([3.0])
    assert not backlog_growing([0, 1, 0, 2, 1, 0, 1, 1])
    assert not backlog_growing([8, 9, 7, 8, 9, 8, 10, 8])
    assert backlog_growing([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])


def test_load_recordings_resamples_as_a_live_leg_and_pads(tmp_path: Path) -> None:
    from core.audio.wav import read_wav
    from kernels.resample import downsample_16k_to_8k

    t = np.arange(16000 * 1 + 37) / 16000
    left = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    right = 0.3 * np.sin(2 * np.pi * 5000 * t).astype(np.float32)
    path = tmp_path / "tone.wav"
    write_wav_pcm16(path, [left, right], 16000)
    (audio,) = load_recordings([path])
    assert audio.agent.dtype == np.int16 and audio.customer.dtype == np.int16
    assert len(audio.agent) == len(audio.customer)
    assert len(audio.agent) % 160 == 0 and abs(len(audio.agent) - 8018) < 160
    mid = slice(1000, 7000)
    assert np.sqrt(np.mean(audio.agent[mid].astype(float) ** 2)) > 5000
    # The simulated lines play what a live leg makes of the same 16 kHz stream.
    for leg, channel in ((audio.agent, 0), (audio.customer, 1)):
        live = downsample_16k_to_8k(read_wav(path).channels[channel])
        np.testing.assert_array_equal(leg[: len(live)], np.round(live * 32768).astype(np.int16))
        assert not leg[len(live):].any()  # padded with silence to whole 20 ms frames


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        run_line_benchmark(None, [tmp_path / "x.wav"], max_lines=0, step_lines=1,  # type: ignore[arg-type]
                           step_s=1)  # fmt: skip
    with pytest.raises(ValueError):
        run_line_benchmark(None, [], max_lines=1, step_lines=1, step_s=1)  # type: ignore[arg-type]


SHORT_CALL = (
    ("agent", "Hello, this is Anna from support."),
    ("customer", "Hi, my bill is wrong."),
    ("agent", "I am sorry about that."),
    ("customer", "I was charged twice."),
    ("agent", "Let me check your account."),
    ("customer", "Thank you very much."),
    ("agent", "The refund is on its way."),
    ("customer", "Great, goodbye."),
)


@pytest.fixture(scope="module")
def sample_wavs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One short stereo call (agent left, customer right) of short turns, as G.711."""
    from core.audio.samples import Line, SampleCall, render
    from core.audio.wav import write_wav_g711
    from kernels.g711 import ulaw_encode

    call = SampleCall(
        "bench-short", "short turns", tuple(Line(sp, text, 0.5) for sp, text in SHORT_CALL), ()
    )
    agent, customer, _ = render(call)  # tests that use it carry the `speech` marker
    path = tmp_path_factory.mktemp("bench-audio") / "short.wav"
    codes = [ulaw_encode(np.round(np.clip(x, -1, 1) * 32767).astype(np.int16))
             for x in (agent, customer)]  # fmt: skip
    write_wav_g711(path, codes, 8000, law="mulaw")
    return [path]


@pytest.mark.speech
@pytest.mark.model
def test_tiny_benchmark_runs_stores_and_keeps_no_calls(
    tmp_path: Path, sample_wavs: list[Path]
) -> None:
    config = load_settings(overrides={"data_dir": str(tmp_path), "model": "tiny.en",
                                      "asr_device": "cpu"}, environ={})  # fmt: skip
    engine = LiveEngine(config, lambda: get_engine(config))
    engine.start()
    seen: list[StepResult] = []
    try:
        outcome = run_line_benchmark(
            engine, sample_wavs, max_lines=2, step_lines=1, step_s=6.0,
            deadline_ms=60_000.0, progress=seen.append, cancel=threading.Event(),
            rubric="default-en",
        )  # fmt: skip
        assert engine.live_calls() == []
    finally:
        engine.shutdown(5)

    assert isinstance(outcome, BenchmarkOutcome)
    assert [s.lines for s in outcome.steps] == [1, 2]
    assert [s.step for s in outcome.steps] == [1, 2]
    assert seen == outcome.steps
    assert outcome.stop_reason == "max lines"
    for step in outcome.steps:
        assert step.transcripts > 0, step
        assert step.latency_p50_ms is not None and step.latency_p95_ms is not None
        assert step.latency_max_ms is not None
        assert 0 < step.latency_p50_ms <= step.latency_p95_ms <= step.latency_max_ms
        assert step.duration_s >= 6.0  # the lines ran the whole step
        assert step.calls >= step.lines
        for value in (step.cpu_percent, step.feeder_cpu_percent, step.asr_busy_percent,
                      step.feeder_lag_max_ms, step.rss_mb):  # fmt: skip
            assert math.isfinite(value) and value >= 0
        # Percent of one core: the feeder is part of the process, which can use every core.
        assert 0 < step.feeder_cpu_percent <= step.cpu_percent <= 100.0 * (os.cpu_count() or 1)
        assert step.rss_mb > 10
        # A minute's deadline, a model that keeps up: every step holds, with nothing to say.
        assert (step.held, step.sustained, step.note) == (True, True, ""), step
    assert outcome.max_lines_held == 2  # the most lines asked for
    assert outcome.asr_device == "cpu"
    assert outcome.model_name == "tiny.en"
    assert outcome.compute_type and outcome.compute_type != "unknown"
    assert outcome.started_at <= outcome.finished_at
    assert outcome.summary and "\n" not in outcome.summary

    db = open_db(config.db_path)
    try:
        assert last_benchmark(db) is None
        run_id = save_benchmark(db, outcome)
        row = last_benchmark(db)
        assert row is not None and row["id"] == run_id
        assert row["kind"] == "daemon"
        assert row["max_lines_held"] == outcome.max_lines_held
        assert row["model_name"] == "tiny.en" and row["asr_device"] == "cpu"
        assert row["started_at"] == outcome.started_at
        assert row["finished_at"] == outcome.finished_at
        assert row["summary"] == outcome.summary
        assert [s["lines"] for s in row["steps"]] == [1, 2]
        assert row["steps"][0]["transcripts"] == outcome.steps[0].transcripts
        second = save_benchmark(db, outcome, kind="cli")
        assert second > run_id
        last = last_benchmark(db, kind="daemon")
        assert last is not None and last["id"] == run_id
        assert db.execute("SELECT count(*) FROM calls").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM utterances").fetchone()[0] == 0
    finally:
        db.close()
    assert not list((tmp_path / "recordings").rglob("*.wav"))
    assert not list((tmp_path / "spool").rglob("*.wav"))


class FakeAsr:
    """Answers every utterance with the same words, at once."""

    device = "cpu"
    compute_type = "none"

    def transcribe_batch(self, requests: list[AsrRequest]) -> list[AsrResult]:
        return [AsrResult(id=r.id, text="hello there", language="en") for r in requests]


@pytest.fixture
def fake_engine(tmp_path: Path):
    config = load_settings(overrides={"data_dir": str(tmp_path)}, environ={})
    engine = LiveEngine(config, FakeAsr)
    engine.start()
    yield engine
    engine.shutdown(5)


class StalledAsr(FakeAsr):
    """Answers nothing for `STALL_S` after the first request: the ASR stalls, as on an
    overloaded box."""

    STALL_S = 3.0

    def __init__(self) -> None:
        self.opened = threading.Event()
        self._timer: threading.Timer | None = None

    def transcribe_batch(self, requests: list[AsrRequest]) -> list[AsrResult]:
        if self._timer is None:
            self._timer = threading.Timer(self.STALL_S, self.opened.set)
            self._timer.start()
        self.opened.wait(60.0)
        return super().transcribe_batch(requests)


@pytest.mark.speech
def test_a_stalled_asr_shows_as_backlog_and_as_latency(
    tmp_path: Path, sample_wavs: list[Path]
) -> None:
    asr = StalledAsr()
    config = load_settings(overrides={"data_dir": str(tmp_path)}, environ={})
    engine = LiveEngine(config, lambda: asr)
    engine.start()
    try:
        outcome = run_line_benchmark(engine, sample_wavs, max_lines=1, step_lines=1,
                                     step_s=6.0, deadline_ms=60_000.0, rubric="default-en")
    finally:
        asr.opened.set()
        engine.shutdown(5)
    (step,) = outcome.steps
    # The once-a-second samples saw the line's first utterance wait in the queue ...
    assert step.backlog_start == 0 and step.backlog_max >= 1, step
    assert max(step.backlog_samples) >= 1, step
    # ... and its transcript came at least the stall after the end of its speech.
    assert step.transcripts >= 1 and step.unfinished == 0, step
    assert step.latency_max_ms is not None, step
    assert step.latency_max_ms >= 1000.0 * StalledAsr.STALL_S, step


@pytest.mark.speech
def test_cancel_stops_after_the_step_under_way(
    fake_engine: LiveEngine, sample_wavs: list[Path]
) -> None:
    cancel = threading.Event()
    outcome = run_line_benchmark(
        fake_engine, sample_wavs, max_lines=3, step_lines=1, step_s=4.0,
        progress=lambda step: cancel.set(), cancel=cancel, rubric="default-en",
    )  # fmt: skip
    assert [s.lines for s in outcome.steps] == [1]
    assert outcome.stop_reason == "cancelled"
    assert outcome.steps[0].transcripts > 0
    assert (outcome.model_name, outcome.compute_type) == ("base", "none")  # as configured
    assert "cancelled" in outcome.summary
    assert fake_engine.live_calls() == []


@pytest.mark.speech
def test_a_step_over_the_deadline_ends_the_benchmark(
    fake_engine: LiveEngine, sample_wavs: list[Path]
) -> None:
    # The latency counts the endpointer's wait for silence, so 1 ms cannot be met.
    outcome = run_line_benchmark(
        fake_engine, sample_wavs, max_lines=4, step_lines=2, step_s=4.0, deadline_ms=1.0,
        rubric=lambda path: "default-en",
    )  # fmt: skip
    assert [s.lines for s in outcome.steps] == [2]
    (step,) = outcome.steps
    assert not step.held and "deadline" in step.note
    assert outcome.stop_reason == "not held"
    assert outcome.max_lines_held == 0
    assert outcome.latency_p95_ms is None
    assert "Stopped at 2 lines" in outcome.summary


def _run(kind_held: int, summary: str, finished_at: str) -> BenchmarkOutcome:
    step = StepResult(
        step=1, lines=kind_held, duration_s=10.0, latency_p50_ms=400.0, latency_p95_ms=900.0,
        latency_max_ms=1000.0, transcripts=5, partials=0, backlog_start=0, backlog_end=0,
        backlog_max=1, backlog_growing=False, backlog_samples=[0, 1], unfinished=0,
        cpu_percent=50.0, feeder_cpu_percent=1.0, asr_busy_percent=40.0,
        feeder_lag_max_ms=2.0, calls=kind_held, held=True, sustained=True, rss_mb=300.0,
    )  # fmt: skip
    return BenchmarkOutcome(
        steps=[step], asr_device="cpu", compute_type="int8",
        model_name="base", started_at=finished_at, finished_at=finished_at, summary=summary,
        stop_reason="max lines", deadline_ms=2000.0, step_s=10.0,
    )  # fmt: skip


def test_capacity_reports_the_box_own_configuration_never_the_baseline(
    fake_engine: LiveEngine,
) -> None:
    """`callqa bench` stores the baseline last; GetCapacity still reports the box's run."""
    from types import SimpleNamespace

    from core.api.service import CallQaService
    from proto import callqa_pb2 as pb

    config = fake_engine.settings
    daemon = SimpleNamespace(settings=config, engine=fake_engine, sip_bridge=None)
    service = CallQaService(daemon)  # type: ignore[arg-type]
    db = open_db(config.db_path)
    try:
        assert not service.GetCapacity(pb.GetCapacityRequest(), None).HasField("last_benchmark")
        save_benchmark(db, _run(4, "in-process", "2026-01-01T10:00:00+00:00"), kind="daemon")
        assert service.GetCapacity(pb.GetCapacityRequest(), None).last_benchmark.max_lines == 4
        # One `callqa bench`: the box's configuration, then the baseline, then the front end.
        save_benchmark(db, _run(12, "callqa", "2026-01-02T10:00:00+00:00"),
                       kind="capacity-callqa")  # fmt: skip
        save_benchmark(db, _run(3, "baseline", "2026-01-02T11:00:00+00:00"),
                       kind="capacity-baseline")  # fmt: skip
        save_benchmark(db, _run(300, "front end", "2026-01-02T12:00:00+00:00"),
                       kind="capacity-front-end")  # fmt: skip
    finally:
        db.close()
    last = service.GetCapacity(pb.GetCapacityRequest(), None).last_benchmark
    assert (last.max_lines, last.summary) == (12, "callqa")
