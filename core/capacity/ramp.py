"""The ramp: steps of N concurrent calls against one daemon, until a step does not hold.

One step places ``lines`` SIPREC calls of ``step_s`` seconds each (their starts spread over
at most ``RAMP_IN_S``), waits for them to end, then for the daemon to finish what they
queued. Latency is measured by the client for every finished transcript: the wall time it
arrived, minus the wall time the end of its speech left the simulator: the call's first RTP
packet, plus the utterance's end measured from where the box placed that leg's first audio
(``leg_start_s``: the box aligns legs by arrival, so a slow start would otherwise shift every
utterance), less the endpointer's ``PAD_S`` of trailing padding. Only utterances whose
speech ended once every call of the step was running count, so a step is judged at its full
load.

A step is *sustained* (the box kept up, whatever the latency) when every call went through,
the ASR backlog is not growing (the second half of the once-a-second samples does
not run clearly above the first, as `core.capacity.results.backlog_growing` judges), the
daemon emptied its queue within ``DRAIN_TIMEOUT_S`` of the last call's end, and at most
``MAX_DROPPED_FRACTION`` of the RTP packets were lost or dropped by the kernel. It *holds*
(real time) when it is sustained and the 95th percentile latency is within the deadline
(`core.capacity.results.judge`, the rule `RunBenchmark` applies too). The ramp climbs
until a step is not sustained, so both counts come out of one run: lines held in real time,
and lines sustained, which is what compares with a baseline that misses the deadline even
alone.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.audio.segmentation import PAD_S
from core.capacity import offline_check
from core.capacity.load import SimulatorProcess, Source, write_cuts
from core.capacity.observe import DaemonProbe, Snapshot
from core.capacity.results import (
    MIN_WALL_S,
    Run,
    Step,
    Verdict,
    backlog_growing,
    backlog_halves,
    cpu_cores,
    judge,
    latency,
)
from core.clock import utc_now_iso
from core.daemon.child import ServeProcess

logger = logging.getLogger(__name__)

RAMP_IN_S = 10.0
"""Calls of a step start spread over at most this long."""
MAX_STAGGER_S = 0.5
DRAIN_TIMEOUT_S = 60.0
MAX_DROPPED_FRACTION = 0.001
MAX_RECEIVE_QUEUE_KB = 64.0
"""A step holds only while the daemon reads its sockets as fast as packets come: 64 KiB
waiting in the 90th-percentile socket is about 80 RTP packets, 1.6 s of one leg."""
AGENT_BASE = 4000
AGENT_PATTERNS = "4000-8999"
STEP_LADDER = (1, 2, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64)
FRONT_END_LADDER = (50, 100, 200, 300, 400, 500)


@dataclass(frozen=True, kw_only=True)
class StepResult(Step):
    """One step's figures (`core.capacity.results.Step`, and what the ramp sees besides).
    CPU is in cores (1.0 = one core busy all the time: `core.capacity.results.cpu_cores`)."""

    config: str
    calls_ok: int
    step_s: float
    utterances: int
    """Finished transcripts that count (speech ended at full load)."""
    latency_p99_ms: float | None
    server_latency_p95_ms: float | None
    """The daemon's own figure for the same transcripts (from when their audio arrived)."""
    backlog_first_half: float
    backlog_second_half: float
    drained: bool
    drain_s: float
    daemon_cores: float
    stage_cores: dict[str, float]
    simulator_cores: float
    sender_max_late_ms: float
    cpu_ms_per_line_s: float
    """Daemon CPU per second of one line (both legs), in milliseconds."""
    rss_peak_mb: float
    packets_received: int
    packets_lost: int
    packets_late: int
    packets_malformed: int
    kernel_drops: int
    asr_busy_fraction: float
    """Seconds the ASR workers were busy per second of the step (up to their number)."""
    asr_audio_s: float
    asr_audio_fraction: float
    """Audio sent to the ASR over the audio of all legs: what the VAD gating lets through
    (parts of turns in progress count again)."""
    asr_batches: int
    asr_mean_batch: float
    asr_partials_skipped: int
    transcripts_answered: int
    early_used: int = 0
    """Of those, the ones that took the transcript of an early decode (`core.live.early`)."""
    receive_queue_kb: float = 0.0
    """The most that waited unread in the daemon's UDP sockets during the load (90th
    percentile over the sockets, at one-second samples): the receive path's lag."""

    @property
    def dropped_fraction(self) -> float:
        sent = self.packets_received + self.packets_lost
        return (self.packets_lost + self.kernel_drops) / sent if sent else 0.0


@dataclass(kw_only=True)
class RampOutcome(Run[StepResult]):
    """One configuration's ramp (the shape `core.storage.benchmarks.save_benchmark` keeps)."""

    config: str
    settings: dict[str, str]
    findings_checks: list[dict[str, Any]] = field(default_factory=list)
    """`core.capacity.offline_check.FindingsCheck.to_json` of each step checked."""


class Ramp:
    """Steps against one running daemon; see the module notes."""

    def __init__(
        self, config: str, serve: ServeProcess, sources: list[Source], *, step_s: float,
        deadline_ms: float, work_dir: Path, front_end: bool = False,
    ) -> None:  # fmt: skip
        self.config = config
        self.serve = serve
        self.sources = sources
        self.step_s = step_s
        self.deadline_ms = deadline_ms
        self.work_dir = work_dir
        self.front_end = front_end
        self.step_calls: dict[int, list[str]] = {}
        """The box's call ids of each step, by the step's lines."""
        assert serve.proc is not None
        self.probe = DaemonProbe(serve.address, serve.proc.pid).start()

    def close(self) -> None:
        self.probe.close()

    def identity(self) -> tuple[str, str, str]:
        cap = self.probe.capacity()
        return cap.asr_device or "none", cap.asr_compute_type or "none", cap.model_name

    def run_step(self, index: int, lines: int) -> StepResult:
        files = write_cuts(self.sources, lines, self.step_s, self.work_dir / "audio")
        stagger = min(MAX_STAGGER_S, RAMP_IN_S / lines) if lines > 1 else 0.0
        sim = SimulatorProcess(
            self.serve.sip_port, files, stagger_s=stagger,
            agent_base=AGENT_BASE + (index * 100) % 4000,
            log_path=self.work_dir / f"{self.config}-step{index:02d}-{lines}.log",
        )  # fmt: skip
        before = self.probe.snapshot()
        sim.start()
        try:
            run = sim.wait()
        finally:
            sim.kill()
        loaded = self.probe.snapshot()
        drained = self.probe.wait_idle(DRAIN_TIMEOUT_S)
        after = self.probe.snapshot()
        load = loaded.minus(before)
        whole = after.minus(before)
        starts = run.first_packets()
        self.step_calls[lines] = self.probe.box_call_ids(set(starts))
        full_load_at = max(starts.values(), default=0.0)
        latencies, server = [], []
        for call_id, heard in self.probe.heard(set(starts)):
            speech_end = starts[call_id] + (heard.end_s - heard.leg_start_s) - PAD_S
            if speech_end < full_load_at:
                continue
            latencies.append(1000.0 * (heard.received_wall - speech_end))
            server.append(heard.server_latency_ms)
        samples = self.probe.samples_since(before.mono)
        load_samples = [s for s in samples if s.mono <= loaded.mono]
        backlog = [s.backlog for s in load_samples]
        first, second = backlog_halves(backlog)
        wall = max(load.mono, MIN_WALL_S)
        stage = {k: round(cpu_cores(v, wall), 4) for k, v in load.stage_cpu_s.items()}
        asr = whole.asr
        lat = latency(latencies)
        step = StepResult(
            config=self.config, lines=lines, calls_ok=run.ok, step_s=self.step_s,
            utterances=lat.count, latency_p50_ms=lat.p50_ms, latency_p95_ms=lat.p95_ms,
            latency_p99_ms=lat.p99_ms, latency_max_ms=lat.max_ms,
            server_latency_p95_ms=latency(server).p95_ms,
            backlog_first_half=round(first, 2), backlog_second_half=round(second, 2),
            backlog_max=max(backlog, default=0),
            backlog_growing=backlog_growing(backlog),
            drained=drained, drain_s=round(after.mono - loaded.mono, 1),
            daemon_cores=round(cpu_cores(load.process_cpu_s, wall), 4), stage_cores=stage,
            simulator_cores=round(cpu_cores(run.cpu_s, run.wall_s), 4),
            sender_max_late_ms=round(1000.0 * float(run.sender.get("max_late_s", 0.0)), 1),
            cpu_ms_per_line_s=round(1000.0 * load.process_cpu_s / (wall * lines), 3),
            rss_peak_mb=round(max((s.rss_bytes for s in samples), default=0) / 2**20, 1),
            packets_received=load_packets(after, before, "received"),
            packets_lost=load_packets(after, before, "lost"),
            packets_late=load_packets(after, before, "late"),
            packets_malformed=load_packets(after, before, "malformed"),
            kernel_drops=whole.kernel_drops,
            asr_busy_fraction=round(asr["busy_s"] / wall, 3),
            asr_audio_s=round(asr["audio_s"], 1), asr_batches=int(asr["batches"]),
            asr_audio_fraction=round(asr["audio_s"] / (2 * lines * self.step_s), 3),
            asr_mean_batch=round(asr["utterances"] / asr["batches"], 2) if asr["batches"] else 0.0,
            asr_partials_skipped=int(asr["partials_skipped"]),
            transcripts_answered=int(asr["transcripts"]), early_used=int(asr["early_used"]),
            receive_queue_kb=round(
                max((s.receive_queue_bytes for s in load_samples), default=0) / 1024, 1
            ),
        )  # fmt: skip
        return step.judged(self.verdict(step, run.error))

    def verdict(self, step: StepResult, sim_error: str) -> Verdict:
        """The step judged by `core.capacity.results.judge`, on the problems the ramp sees."""
        problems = []
        if sim_error:
            problems.append(sim_error)
        if step.calls_ok < step.lines:
            problems.append(f"{step.lines - step.calls_ok} of {step.lines} calls failed")
        if not self.front_end and step.backlog_growing:
            problems.append(
                f"ASR backlog growing ({step.backlog_first_half:.1f} -> "
                f"{step.backlog_second_half:.1f})"
            )
        if not step.drained:
            problems.append(f"queue not empty {DRAIN_TIMEOUT_S:.0f} s after the calls ended")
        if step.receive_queue_kb > MAX_RECEIVE_QUEUE_KB:
            problems.append(f"receive fell behind: {step.receive_queue_kb:.0f} KiB waited "
                            "unread in the sockets")  # fmt: skip
        if step.dropped_fraction > MAX_DROPPED_FRACTION:
            problems.append(f"{100 * step.dropped_fraction:.2f} % of packets dropped")
        return judge(step.latency_p95_ms, self.deadline_ms, problems, timed=not self.front_end)


def load_packets(after: Snapshot, before: Snapshot, name: str) -> int:
    return int(after.packets.get(name, 0) - before.packets.get(name, 0))


def run_ramp(
    config: str,
    settings: dict[str, str],
    sources: list[Source],
    *,
    ladder: Sequence[int],
    step_s: float,
    deadline_ms: float = 2000.0,
    front_end: bool = False,
    work_dir: Path | None = None,
    progress: Callable[[StepResult], None] | None = None,
    config_file: Path | None = None,
    check_findings: bool = False,
    say: Callable[[str], None] | None = None,
) -> RampOutcome:
    """Start a daemon with ``settings`` over the settings file ``config_file`` (None: none),
    climb ``ladder`` until a step does not hold.

    With ``check_findings``, the calls of the last step held and of the last step kept up
    are scored again offline once the daemon has stopped, and their stored findings
    compared (`core.capacity.offline_check`); ``say`` hears what is being done then.
    """
    work = Path(work_dir or tempfile.mkdtemp(prefix=f"callqa-bench-{config}-"))
    work.mkdir(parents=True, exist_ok=True)
    daemon_settings = {
        "agent_patterns": AGENT_PATTERNS, "log_level": "warning",
        "sip_max_sessions": str(max(100, 2 * max(ladder, default=1))),
        "rtp_port_first": "40000", "rtp_port_last": "59999",
        **settings,
    }  # fmt: skip
    serve = ServeProcess(work / "data", daemon_settings, config_file=config_file)
    outcome = RampOutcome(config=config, settings=dict(settings), steps=[], asr_device="",
                          compute_type="", model_name="", started_at=utc_now_iso(),
                          deadline_ms=deadline_ms)  # fmt: skip
    serve.start()
    ramp: Ramp | None = None
    try:
        ramp = Ramp(config, serve, sources, step_s=step_s, deadline_ms=deadline_ms,
                    work_dir=work, front_end=front_end)  # fmt: skip
        outcome.asr_device, outcome.compute_type, outcome.model_name = ramp.identity()
        for index, lines in enumerate(ladder, 1):
            step = ramp.run_step(index, lines)
            outcome.steps.append(step)
            # Kept as the ramp goes, so that an interrupted run keeps its finished steps.
            (work / "steps.json").write_text(
                json.dumps(outcome.to_json(), indent=1, default=str), encoding="utf-8"
            )
            if progress is not None:
                progress(step)
            if not step.sustained:
                break
    finally:
        if ramp is not None:
            ramp.close()
        serve.stop()
    if check_findings and ramp is not None:
        checked = {s.lines for s in (outcome.held_step, _last_sustained(outcome)) if s}
        for lines in sorted(checked):
            calls = ramp.step_calls.get(lines, [])
            if calls:
                if say is not None:
                    say(f"  scoring the {len(calls)} calls of the {lines}-line step again "
                        "offline to compare their findings")  # fmt: skip
                check = offline_check.check_findings(serve.read_settings(), calls, lines=lines)
                outcome.findings_checks.append(check.to_json())
    outcome.finished_at = utc_now_iso()
    outcome.summary = summarize(outcome)
    return outcome


def _last_sustained(outcome: RampOutcome) -> StepResult | None:
    return next((s for s in reversed(outcome.steps) if s.sustained), None)


def stage_split(step: StepResult) -> str:
    """The daemon's CPU by stage in one step, in % of one core, biggest first."""
    parts = sorted(step.stage_cores.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{name} {100 * cores:.1f}" for name, cores in parts)


def summarize(outcome: RampOutcome, box_cores: int | None = None) -> str:
    """One line: what ran, the lines held with the daemon's CPU at that step (in cores, as a
    share of the box's ``box_cores``, default this machine's, and by stage), what kept up."""
    box_cores = box_cores or os.cpu_count() or 1
    best = outcome.held_step
    last = outcome.steps[-1] if outcome.steps else None
    asr = f"{outcome.model_name} on {outcome.asr_device} ({outcome.compute_type})"
    head = f"{outcome.config}: {asr}"
    if best is None:
        held = "held no step"
    else:
        p95 = "n/a" if best.latency_p95_ms is None else f"{best.latency_p95_ms:.0f} ms"
        share = 100 * best.daemon_cores / box_cores
        held = (f"held {best.lines} lines (p95 {p95}, {best.daemon_cores:.2f} cores, "
                f"{share:.0f} % of the box's {box_cores}; by stage, % of a core: "
                f"{stage_split(best)})")  # fmt: skip
    stop = ""
    kept = f"; kept up (any latency) with {outcome.max_lines_sustained} lines"
    if last is not None and not last.sustained:
        stop = f"; {last.lines} lines did not keep up: {last.note}"
    elif last is not None:
        stop = "; the ladder ended while still keeping up"
    checks = "".join("; " + c["summary"] for c in outcome.findings_checks)
    return head + ", " + held + kept + stop + checks


def ratio(ours: RampOutcome, baseline: RampOutcome) -> float:
    """Lines held, ours over the baseline's (inf when the baseline held none)."""
    if baseline.max_lines_held == 0:
        return math.inf if ours.max_lines_held else math.nan
    return ours.max_lines_held / baseline.max_lines_held

