"""RunBenchmark: the in-process capacity benchmark (core.capacity.inprocess), streamed as progress.

The benchmark runs on a thread of its own while live calls go on (its simulated calls are
not kept and raise no alerts to watchers); each finished step is sent as a
BenchmarkProgress, the last one with ``done`` and the result, which is also stored for
GetCapacity and the admin page. Cancelling the RPC stops the benchmark.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from core.api import convert
from core.api.context import ApiContext
from core.capacity.inprocess import BenchmarkOutcome, StepResult
from proto import callqa_pb2 as pb

MAX_LINES = 2000
MAX_STEP_S = 600.0
RECENT_RECORDINGS = 20


def _recordings(daemon: ApiContext, request: pb.RunBenchmarkRequest) -> tuple[list[Path], Any]:
    """The audio to play and the rubric choice; raises ValueError with what is wrong."""
    data_dir = daemon.settings.data_dir
    audio = request.audio or pb.BENCHMARK_AUDIO_SAMPLES
    if audio == pb.BENCHMARK_AUDIO_SAMPLES:
        from core.audio.samples import make_samples

        folder = data_dir / "samples"
        wavs = sorted(folder.glob("*.wav")) if folder.is_dir() else []
        if not wavs:
            wavs = [p for p in make_samples(folder) if p.suffix == ".wav"]

        def rubric_of(path: Path) -> str | None:
            meta = path.with_suffix(".json")
            if meta.is_file():
                rubric: str | None = json.loads(meta.read_text(encoding="utf-8")).get("rubric")
                return rubric
            return None

        return wavs, rubric_of
    if audio == pb.BENCHMARK_AUDIO_RECORDINGS:
        from core.storage import repository
        from core.storage.db import open_db

        db = open_db(daemon.settings.db_path)
        try:
            rows = repository.list_calls(db, status="scored", limit=200)
            paths = []
            for row in rows:
                call = repository.get_call(db, row["id"])
                if call and call.get("recording_path") and Path(call["recording_path"]).is_file():
                    paths.append(Path(call["recording_path"]))
                if len(paths) >= RECENT_RECORDINGS:
                    break
        finally:
            db.close()
        if not paths:
            raise ValueError("no stored recordings to play yet; use the samples")
        return paths, None
    folder = Path(request.audio_dir)
    if not request.audio_dir or not folder.is_dir():
        raise ValueError(f"audio_dir {request.audio_dir!r} is not a folder on the box")
    wavs = sorted(folder.glob("*.wav"))
    if not wavs:
        raise ValueError(f"no .wav files in {folder}")
    return wavs, None


def _progress(step: StepResult) -> pb.BenchmarkProgress:
    return pb.BenchmarkProgress(
        step=step.step, lines=step.lines, latency_p50_ms=step.latency_p50_ms or 0.0,
        latency_p95_ms=step.latency_p95_ms or 0.0, asr_backlog_utterances=step.backlog_end,
        cpu_percent=step.cpu_percent, held=step.held,
    )  # fmt: skip


def _result(outcome: BenchmarkOutcome) -> pb.BenchmarkResult:
    return pb.BenchmarkResult(
        max_lines=outcome.max_lines_held,
        latency_p95_ms=getattr(outcome, "latency_p95_ms", None) or 0.0,
        finished_at=convert.ts(outcome.finished_at), asr_device=outcome.asr_device,
        model_name=outcome.model_name, summary=outcome.summary,
    )  # fmt: skip


def run_benchmark_rpc(
    daemon: ApiContext, request: pb.RunBenchmarkRequest, context: Any
) -> Iterator[pb.BenchmarkProgress]:
    from core.capacity.inprocess import run_line_benchmark
    from core.storage.benchmarks import KIND_DAEMON, save_benchmark

    max_lines = request.max_lines or 16
    step_lines = request.step_lines or max(1, max_lines // 4)
    step_s = request.step_s or 30.0
    if not 1 <= max_lines <= MAX_LINES or step_lines > max_lines or not 0 < step_s <= MAX_STEP_S:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      f"max_lines must be 1-{MAX_LINES}, step_lines at most max_lines, and "
                      f"step_s in (0, {MAX_STEP_S:g}] s")  # fmt: skip
    try:
        recordings, rubric = _recordings(daemon, request)
    except ValueError as exc:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise AssertionError("abort raises") from exc
    engine = daemon.engine
    assert engine is not None
    cancel = threading.Event()
    context.add_callback(cancel.set)
    updates: queue.Queue[Any] = queue.Queue()

    def run() -> None:
        try:
            outcome = run_line_benchmark(
                engine, recordings, max_lines=max_lines, step_lines=step_lines, step_s=step_s,
                deadline_ms=daemon.settings.alert_deadline_s * 1000.0,
                progress=updates.put, cancel=cancel, rubric=rubric,
            )  # fmt: skip
            if not cancel.is_set():
                engine.writer.submit(save_benchmark, outcome, KIND_DAEMON).result()
            updates.put(outcome)
        except Exception as exc:
            updates.put(exc)

    threading.Thread(target=run, name="callqa-benchmark", daemon=True).start()
    while True:
        item = updates.get()
        if isinstance(item, Exception):
            context.abort(grpc.StatusCode.INTERNAL, f"the benchmark failed: {item}")
        if hasattr(item, "steps") and hasattr(item, "max_lines_held"):
            yield pb.BenchmarkProgress(done=True, result=_result(item))
            return
        yield _progress(item)
