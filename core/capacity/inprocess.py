"""The daemon's capacity benchmark: how many live lines this box transcribes in time.

`run_line_benchmark` plays recordings into the running :class:`~core.live.engine.LiveEngine`
as simulated calls that are not kept (``store=False``: no rows, no recording), the way the
telephony ingest feeds real ones: 20 ms of audio per leg per line, in real time. It raises
the number of lines step by step (``step_lines``, ``2 * step_lines``, ... up to
``max_lines``); each step keeps its lines running for ``step_s`` seconds of wall time and
measures

* the latency of every finished transcript, from the end of the speech (wall time) to the
  transcript, as the engine reports it (it includes the endpointer's wait for silence);
* the ASR scheduler's backlog, sampled every second, and whether it keeps growing;
* the CPU use of the whole process and, apart, of the thread that feeds the lines (the
  benchmark's own cost, which real calls put on the telephony ingest instead), in percent
  of one core.

The figures and the verdict are those of `core.capacity.results`, as for `callqa bench`: a
step *holds* when the 95th percentile latency is within the deadline, the backlog is not
growing, and what was queued when the step ended is transcribed soon after. The benchmark
stops at the first step that does not hold, at ``max_lines``, or when cancelled; between
steps every simulated call is ended and the queue drained, so steps do not overlap.

Threads: the caller's thread is the feeder (it owns every simulated leg, which are not
thread-safe); one collector thread reads the calls' events from one subscription and
samples the backlog, so the feeder never waits on either.

Simulated calls go through the whole live pipeline, rubric included: findings and alerts of
the rubric they run are published like those of real calls.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.audio.wav import read_wav
from core.capacity.results import (
    Run,
    Step,
    backlog_growing,
    cpu_percent,
    judge,
    latency,
)
from core.clock import utc_now_iso
from core.live.call import CallSetup, LiveCall
from core.live.events import CallEvent, TranscriptLine
from kernels.resample import downsample_16k_to_8k

if TYPE_CHECKING:
    from core.live.engine import LiveEngine

logger = logging.getLogger(__name__)

RATE_HZ = 8000
TICK_S = 0.020
TICK_SAMPLES = 160
SOURCE = "benchmark"
END_REASON = "benchmark"
BACKLOG_EVERY_S = 1.0
WARMUP_S = 3.0
"""Backlog samples of the first seconds of a step (at most a quarter of it) are left out of
the trend: the lines have only just started, so the backlog starts from nothing."""
SETTLE_MIN_S = 10.0
"""After a step, how long (at least) what it queued may take to be transcribed."""
DRAIN_TIMEOUT_S = 60.0
"""How long ending a step's calls and emptying the queue may take before the next step."""
POLL_S = 0.1
GOLDEN = 0.6180339887498949
"""Lines on the same recording start at offsets spread by this fraction of its length."""


# ---------------------------------------------------------------- results


@dataclass(frozen=True, kw_only=True)
class StepResult(Step):
    """The figures of one step (`core.capacity.results.Step`), and the feeder's own."""

    step: int
    """Number of the step, from 1."""
    duration_s: float
    """Wall time the lines ran."""
    transcripts: int
    """Finished (not partial) transcripts of utterances that ended during the step."""
    partials: int
    """Transcripts of parts of utterances still going on."""
    backlog_start: int
    """Utterances queued or decoding when the step started."""
    backlog_end: int
    """... when its lines stopped."""
    backlog_samples: list[int]
    """The backlog once a second while the lines ran."""
    unfinished: int
    """Utterances still queued when the settling time after the step ran out."""
    cpu_percent: float
    """CPU time of the whole process over the step, in percent of one core."""
    feeder_cpu_percent: float
    """CPU time of the feeder thread alone (part of ``cpu_percent``), in percent of one
    core."""
    asr_busy_percent: float
    """Share of the step's wall time the ASR thread spent decoding."""
    feeder_lag_max_ms: float
    """How late the feeder was at worst against its 20 ms deadlines."""
    calls: int
    """Simulated calls opened during the step (a line starts a new call when its recording
    ends)."""
    rss_mb: float
    """Resident memory of the process at the end of the step."""


@dataclass(kw_only=True)
class BenchmarkOutcome(Run[StepResult]):
    stop_reason: str
    """``not held``, ``max lines`` or ``cancelled``."""
    step_s: float
    recordings: list[str] = field(default_factory=list)

    @property
    def latency_p95_ms(self) -> float | None:
        """95th percentile latency at ``max_lines_held``."""
        step = self.held_step
        return step.latency_p95_ms if step else None

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out["latency_p95_ms"] = self.latency_p95_ms
        return out


# ---------------------------------------------------------------- audio


@dataclass(frozen=True)
class BenchAudio:
    """One recording's two legs as 8 kHz int16, padded to whole 20 ms frames."""

    name: str
    agent: np.ndarray
    customer: np.ndarray
    rubric: str | None = None
    """The rubric its calls run; None: the routing rules' choice."""

    @property
    def samples(self) -> int:
        return len(self.agent)

    @property
    def duration_s(self) -> float:
        return self.samples / RATE_HZ


RubricChoice = str | Callable[[Path], str | None] | None
"""The rubric simulated calls run: one for all, one per recording, or None (routing)."""


def load_recordings(paths: Sequence[Path], rubric: RubricChoice = None) -> list[BenchAudio]:
    """Read each recording once: agent left, customer right (a mono file: agent only)."""
    out = []
    for path in paths:
        chosen = rubric(Path(path)) if callable(rubric) else rubric
        rec = read_wav(path)
        legs = [_to_8k(ch, rec.sample_rate) for ch in rec.channels[:2]]
        if len(legs) == 1:
            legs.append(np.zeros_like(legs[0]))
        agent, customer = (_pcm16(x) for x in legs)
        out.append(BenchAudio(Path(path).name, agent, customer, chosen))
    return out


def _to_8k(x: np.ndarray, rate: int) -> np.ndarray:
    """A leg at 8 kHz, as the live leg would make it of a 16 kHz stream."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if rate == RATE_HZ:
        return x
    if rate != 2 * RATE_HZ:
        raise ValueError(f"cannot play {rate} Hz audio: 8000 or 16000 Hz only")
    return downsample_16k_to_8k(x)


def _pcm16(x: np.ndarray) -> np.ndarray:
    pad = (-len(x)) % TICK_SAMPLES
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
    return np.concatenate([pcm, np.zeros(pad, np.int16)]) if pad else pcm


# ---------------------------------------------------------------- measuring


@dataclass
class _Bucket:
    """What the collector gathers for one step."""

    started: float  # time.monotonic()
    latencies_ms: list[float] = field(default_factory=list)
    partials: int = 0
    backlog: list[tuple[float, int]] = field(default_factory=list)  # (seconds in, utterances)
    sampling: bool = True


class _Collector:
    """Reads the simulated calls' events (one hub subscription) and samples the backlog."""

    def __init__(self, engine: LiveEngine) -> None:
        self.engine = engine
        self.ids: set[str] = set()
        self.bucket: _Bucket | None = None
        self._stop = threading.Event()
        self._sub = engine.hub.subscribe(self._accept)
        self._thread = threading.Thread(target=self._run, name="callqa-bench-collect",
                                        daemon=True)  # fmt: skip

    def _accept(self, event: CallEvent) -> bool:
        return event.kind == "transcript" and event.call_id in self.ids

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._sub.close()
        self._thread.join(5.0)

    def pending(self) -> int:
        return self._sub.queue.qsize()

    def _run(self) -> None:
        current: _Bucket | None = None
        next_sample = 0.0
        while not self._stop.is_set():
            event = self._sub.get(timeout=POLL_S)
            bucket = self.bucket
            if bucket is None:
                continue
            if bucket is not current:
                current, next_sample = bucket, 0.0
            if event is not None and isinstance(event.data, TranscriptLine):
                line = event.data
                if line.partial:
                    bucket.partials += 1
                elif line.latency_ms is not None:
                    bucket.latencies_ms.append(float(line.latency_ms))
            now = time.monotonic() - bucket.started
            if bucket.sampling and now >= next_sample:
                bucket.backlog.append((now, self.engine.scheduler.backlog))
                next_sample = (math.floor(now / BACKLOG_EVERY_S) + 1) * BACKLOG_EVERY_S


def rss_mb() -> float:
    """Resident memory of this process in MiB."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------- lines


@dataclass
class _Line:
    index: int
    audio: int
    pos: int
    call: LiveCall | None = None


class _Runner:
    """The feeder: runs the steps on the caller's thread."""

    def __init__(
        self, engine: LiveEngine, audios: list[BenchAudio], collector: _Collector, *,
        step_s: float, deadline_ms: float, cancel: threading.Event | None,
    ) -> None:  # fmt: skip
        self.engine = engine
        self.audios = audios
        self.collector = collector
        self.step_s = step_s
        self.deadline_ms = deadline_ms
        self.cancel = cancel
        self.live: list[_Line] = []
        self.calls_opened = 0

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    # ---- calls

    def _open(self, line: _Line) -> None:
        setup = CallSetup(source=SOURCE, rubric=self.audios[line.audio].rubric,
                          sample_rate=RATE_HZ, store=False,
                          meta={"benchmark_line": line.index})  # fmt: skip
        call = self.engine.open_call(setup)
        self.collector.ids.add(call.call_id)
        line.call = call
        self.calls_opened += 1

    def _feed(self, line: _Line) -> None:
        audio = self.audios[line.audio]
        call = line.call
        assert call is not None
        end = line.pos + TICK_SAMPLES
        self.engine.feed(call, "agent", audio.agent[line.pos : end])
        self.engine.feed(call, "customer", audio.customer[line.pos : end])
        line.pos = end
        if line.pos >= audio.samples:
            self.engine.end_call(call, END_REASON)
            line.audio = (line.audio + 1) % len(self.audios)
            line.pos = 0
            self._open(line)

    def end_all(self) -> list[str]:
        ids = []
        for line in self.live:
            if line.call is not None:
                ids.append(line.call.call_id)
                self.engine.end_call(line.call, END_REASON)
                line.call = None
        self.live = []
        return ids

    def drain(self, timeout: float) -> bool:
        """End every simulated call and wait until the engine has let them all go."""
        self.end_all()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            bench_live = any(c.call_id in self.collector.ids for c in self.engine.live_calls())
            if not bench_live and self.engine.scheduler.backlog == 0:
                self.collector.ids.clear()
                return True
            if self.cancelled():
                return False
            time.sleep(POLL_S)
        left = self.engine.scheduler.backlog
        logger.warning("benchmark: %d utterances still queued after %.0f s", left, timeout)
        return False

    # ---- one step

    def run_step(self, index: int, lines: int) -> StepResult | None:
        """Run ``lines`` lines for ``step_s``; None when cancelled during the step."""
        n_audio = len(self.audios)
        self.live = []
        self.calls_opened = 0
        for i in range(lines):
            audio = i % n_audio
            frames = self.audios[audio].samples // TICK_SAMPLES
            line = _Line(i, audio, int((i * GOLDEN) % 1.0 * frames) * TICK_SAMPLES)
            self._open(line)
            self.live.append(line)

        sched = self.engine.scheduler
        busy0 = sched.stats.busy_s
        backlog_start = sched.backlog
        proc0, thread0 = time.process_time(), time.thread_time()
        t0 = time.monotonic()
        bucket = _Bucket(started=t0)
        self.collector.bucket = bucket
        ticks = max(1, round(self.step_s / TICK_S))
        lag_max = 0.0
        for k in range(ticks):
            due = t0 + k * TICK_S
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)
            else:
                lag_max = max(lag_max, now - due)
            if self.cancelled():
                self.collector.bucket = None
                return None
            for line in self.live:
                self._feed(line)
        end_due = t0 + ticks * TICK_S
        if time.monotonic() < end_due:
            time.sleep(end_due - time.monotonic())
        wall = time.monotonic() - t0
        proc = time.process_time() - proc0
        feeder = time.thread_time() - thread0
        busy = sched.stats.busy_s - busy0
        backlog_end = sched.backlog
        bucket.sampling = False

        # What the step queued is still its latency: let it finish (the lines stay open
        # and silent, so nothing new is cut), then count.
        settle_until = time.monotonic() + max(SETTLE_MIN_S, 3 * self.deadline_ms / 1000.0)
        while time.monotonic() < settle_until and not self.cancelled():
            if sched.wait_idle(POLL_S):
                break
        quiet_until = time.monotonic() + 1.0
        time.sleep(0.2)  # the rules thread publishes the last transcripts
        while self.collector.pending() and time.monotonic() < quiet_until:
            time.sleep(0.02)
        time.sleep(POLL_S)
        unfinished = sched.backlog
        self.collector.bucket = None
        if self.cancelled():
            return None

        lat = latency(bucket.latencies_ms)
        warm = min(WARMUP_S, self.step_s / 4)
        trend = [float(n) for at, n in bucket.backlog if at >= warm]
        growing = backlog_growing(trend)
        problems = []
        if growing:
            problems.append("the ASR backlog kept growing")
        if unfinished:
            problems.append(f"{unfinished} utterances still queued after the step")
        verdict = judge(lat.p95_ms, self.deadline_ms, problems)
        return StepResult(
            step=index, lines=lines, duration_s=round(wall, 2),
            latency_p50_ms=lat.p50_ms, latency_p95_ms=lat.p95_ms, latency_max_ms=lat.max_ms,
            transcripts=lat.count, partials=bucket.partials,
            backlog_start=backlog_start, backlog_end=backlog_end,
            backlog_max=max([backlog_start, backlog_end, *(n for _, n in bucket.backlog)]),
            backlog_growing=growing, backlog_samples=[n for _, n in bucket.backlog],
            unfinished=unfinished,
            cpu_percent=round(cpu_percent(proc, wall), 1),
            feeder_cpu_percent=round(cpu_percent(feeder, wall), 1),
            asr_busy_percent=round(100.0 * busy / wall, 1),
            feeder_lag_max_ms=round(lag_max * 1000.0, 1), calls=self.calls_opened,
            held=verdict.held, sustained=verdict.sustained, note=verdict.note,
            rss_mb=round(rss_mb(), 1),
        )  # fmt: skip


# ---------------------------------------------------------------- the benchmark


def step_plan(max_lines: int, step_lines: int) -> list[int]:
    """Lines of each step: step_lines, 2 * step_lines, ..., and max_lines last."""
    plan = list(range(step_lines, max_lines + 1, step_lines))
    if not plan or plan[-1] != max_lines:
        plan.append(max_lines)
    return plan


def asr_identity(engine: LiveEngine) -> tuple[str, str, str]:
    """(device, compute type, model name) of the engine's loaded ASR model."""
    asr = engine.scheduler.engine
    name = str(getattr(getattr(asr, "model_info", None), "name", "unknown"))
    # The engine knows its model by its folder's name; a model configured by name
    # ("base", "tiny.en") is better known by that name.
    configured = engine.settings.model.strip()
    if configured and "/" not in configured and os.sep not in configured:
        name = configured
    return (
        str(getattr(asr, "device", "unknown")),
        str(getattr(asr, "compute_type", "unknown")),
        name,
    )


def run_line_benchmark(
    engine: LiveEngine,
    recordings: list[Path],
    *,
    max_lines: int,
    step_lines: int,
    step_s: float,
    deadline_ms: float = 2000.0,
    progress: Callable[[StepResult], None] | None = None,
    cancel: threading.Event | None = None,
    rubric: RubricChoice = None,
) -> BenchmarkOutcome:
    """Find the most simultaneous lines the engine transcribes within ``deadline_ms``.

    See the module notes. ``engine`` must be started. ``progress`` is called on this thread
    after each finished step; ``cancel`` stops the benchmark within a tick (the step under
    way is dropped). ``rubric`` is the rubric the simulated calls run: a rubric reference for
    all, a function choosing one per recording (e.g. by its language), or None for the
    routing rules' choice, as for a real call.
    """
    if max_lines < 1 or step_lines < 1:
        raise ValueError("max_lines and step_lines must be at least 1")
    if not step_s > 0 or not math.isfinite(step_s):
        raise ValueError("step_s must be a positive number of seconds")
    if not recordings:
        raise ValueError("the benchmark needs at least one recording")
    if engine.scheduler.engine is None:
        raise RuntimeError("the ASR model is not loaded: start the engine first")
    audios = load_recordings(recordings, rubric)
    device, compute_type, model_name = asr_identity(engine)
    started = utc_now_iso()
    steps: list[StepResult] = []
    stop_reason = "max lines"
    collector = _Collector(engine)
    collector.start()
    runner = _Runner(engine, audios, collector, step_s=step_s, deadline_ms=deadline_ms,
                     cancel=cancel)  # fmt: skip
    logger.info(
        "benchmark: up to %d lines by %d, %.0f s a step, deadline %.0f ms, %d recordings",
        max_lines, step_lines, step_s, deadline_ms, len(audios),
    )  # fmt: skip
    try:
        if engine.scheduler.backlog:
            runner.drain(DRAIN_TIMEOUT_S)
        for index, lines in enumerate(step_plan(max_lines, step_lines), start=1):
            if runner.cancelled():
                stop_reason = "cancelled"
                break
            result = runner.run_step(index, lines)
            runner.drain(DRAIN_TIMEOUT_S)
            if result is None:
                stop_reason = "cancelled"
                break
            steps.append(result)
            logger.info(
                "benchmark step %d: %d lines, p50 %s ms, p95 %s ms, %d transcripts, backlog "
                "%d..%d (max %d%s), CPU %.0f%% (feeder %.1f%%), %s", result.step,
                result.lines, result.latency_p50_ms, result.latency_p95_ms,
                result.transcripts, result.backlog_start, result.backlog_end,
                result.backlog_max, ", growing" if result.backlog_growing else "",
                result.cpu_percent, result.feeder_cpu_percent,
                "held" if result.held else f"not held: {result.note}",
            )  # fmt: skip
            if progress is not None:
                progress(result)
            if not result.held:
                stop_reason = "not held"
                break
    finally:
        runner.end_all()
        collector.close()
    outcome = BenchmarkOutcome(
        steps=steps, asr_device=device,
        compute_type=compute_type, model_name=model_name, started_at=started,
        finished_at=utc_now_iso(), summary="", stop_reason=stop_reason,
        deadline_ms=deadline_ms, step_s=step_s, recordings=[a.name for a in audios],
    )  # fmt: skip
    outcome.summary = summarize(outcome)
    return outcome


def summarize(outcome: BenchmarkOutcome) -> str:
    """One paragraph saying what the box held, on what, and why the benchmark stopped."""
    asr = f"{outcome.model_name} model on {outcome.asr_device} ({outcome.compute_type})"
    deadline = f"{outcome.deadline_ms:.0f} ms"
    best = outcome.held_step
    if best is not None:
        p95 = f"{best.latency_p95_ms:.0f}" if best.latency_p95_ms is not None else "-"
        text = (
            f"Held {best.lines} simultaneous lines within the {deadline} deadline "
            f"(p95 latency {p95} ms, CPU {best.cpu_percent:.0f}% of one core, ASR busy "
            f"{best.asr_busy_percent:.0f}%) with the {asr}."
        )
    elif outcome.steps:
        text = f"Held no step within the {deadline} deadline with the {asr}."
    else:
        text = f"No step finished with the {asr}."
    last = outcome.steps[-1] if outcome.steps else None
    if outcome.stop_reason == "not held" and last is not None:
        text += f" Stopped at {last.lines} lines: {last.note}."
    elif outcome.stop_reason == "cancelled":
        text += " The benchmark was cancelled."
    elif last is not None:
        text += f" Stopped at the {last.lines} lines asked for; the box may hold more."
    feeder = max((s.feeder_cpu_percent for s in outcome.steps), default=0.0)
    text += (
        f" {len(outcome.steps)} steps of {outcome.step_s:.0f} s playing "
        f"{len(outcome.recordings)} recordings; the simulated lines' own feeding used at "
        f"most {feeder:.1f}% of one core."
    )
    return text
