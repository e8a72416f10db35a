"""The overload soak: more lines than the box holds, for minutes, through the real SIPREC path.

One `callqa serve` child (the box's ASR settings, ``sip_max_sessions`` set to the load, the
ASR queue's memory share small so that its backlog goes to disk) takes ``lines`` SIPREC
calls at once from the simulator process for ``minutes``: each line places calls of
``call_s`` one after the other (`core.capacity.load.SimulatorProcess` with rounds). In the
course of every round, once all its calls are live, a second simulator offers ``probes``
calls more; the box must refuse them with 503 and Retry-After. A `DaemonProbe` samples the
backlog (in memory and on disk) and resident memory once a second and hears every finished
transcript; a ``WatchAlerts`` client keeps every alert. When the load ends the soak waits
for the box to finish every call, stops it with SIGTERM, and `core.capacity.soak_checks`
reads what was stored.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from core.capacity.load import SimulatorProcess, SimulatorRun, Source, write_cuts
from core.capacity.observe import DaemonProbe, Sample
from core.capacity.ramp import AGENT_BASE, AGENT_PATTERNS, MAX_STAGGER_S, RAMP_IN_S
from core.daemon.child import ServeProcess
from proto import callqa_pb2 as pb
from proto import callqa_pb2_grpc as pb_grpc

PROBE_AGENT_BASE = 8000
PROBE_CALL_S = 4.0
PROBE_POLL_S = 0.2
PROBE_SLACK_S = 10.0
"""How long after its planned start a round may still take its probes (the simulator's own
start delays every round)."""


@dataclass(frozen=True)
class SoakPlan:
    lines: int
    """Calls at once (twice what the box holds, for the soak proper)."""
    minutes: float
    call_s: float = 60.0
    gap_s: float = 3.0
    """From a call's last packet to the line's next call."""
    probes: int = 2
    """Calls offered beyond the session limit in every round, while every line is up."""
    queue_memory_s: float = 30.0
    """``asr_queue_memory_s`` of the daemon: past it the ASR backlog waits on disk."""
    drain_timeout_s: float = 1800.0
    deadline_s: float = 2.0
    """``alert_deadline_s``: an alert later than this after its speech must be marked late."""

    @property
    def rounds(self) -> int:
        return max(1, math.ceil(60.0 * self.minutes / (self.call_s + self.gap_s)))

    @property
    def stagger_s(self) -> float:
        return min(MAX_STAGGER_S, RAMP_IN_S / self.lines) if self.lines > 1 else 0.0


@dataclass
class SoakRun:
    """What the soak saw while it ran (the stored calls are read afterwards)."""

    plan: SoakPlan
    data_dir: Path
    files: list[Path]
    probe_file: Path
    load: SimulatorRun = field(default_factory=SimulatorRun)
    probe_runs: list[SimulatorRun] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    load_s: float = 0.0
    drained: bool = False
    drain_s: float = 0.0
    died: str = ""
    """How the daemon ended before the soak stopped it; empty while it stayed up."""
    exit_code: int | None = None
    peak_rss_bytes: int = 0
    on_disk_at_end: int = -1
    heard: dict[str, int] = field(default_factory=dict)
    """SIP Call-ID -> finished transcripts heard live."""
    alerts: list[Any] = field(default_factory=list)


class AlertWatcher:
    """A ``WatchAlerts`` client on a thread, keeping every alert."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stream = pb_grpc.CallQaStub(self.channel).WatchAlerts(pb.AlertFilter())
        self.alerts: list[Any] = []
        self._thread = threading.Thread(target=self._run, name="soak-alerts", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for alert in self.stream:
                self.alerts.append(alert)
        except grpc.RpcError:
            return

    def close(self) -> None:
        self.stream.cancel()
        self._thread.join(5)
        self.channel.close()


def daemon_settings(box: dict[str, str], plan: SoakPlan) -> dict[str, str]:
    return {
        **box, "agent_patterns": AGENT_PATTERNS, "log_level": "warning",
        "sip_max_sessions": str(plan.lines), "asr_queue_memory_s": f"{plan.queue_memory_s:g}",
        "alert_deadline_s": f"{plan.deadline_s:g}",
    }  # fmt: skip


def run_soak(
    plan: SoakPlan, box: dict[str, str], sources: list[Source], work: Path, *,
    config_file: Path | None = None, say: Callable[[str], None] = print,
) -> SoakRun:  # fmt: skip
    """Run the soak; see the module notes."""
    files = write_cuts(sources, plan.lines, plan.call_s, work / "audio")
    probe_file = write_cuts(sources, 1, PROBE_CALL_S, work / "probe")[0]
    run = SoakRun(plan, work / "data", files, probe_file)
    serve = ServeProcess(run.data_dir, daemon_settings(box, plan), config_file=config_file)
    serve.start()
    assert serve.proc is not None
    probe = DaemonProbe(serve.address, serve.proc.pid).start()
    alerts = AlertWatcher(serve.address)
    sim = SimulatorProcess(serve.sip_port, files, stagger_s=plan.stagger_s,
                           agent_base=AGENT_BASE, log_path=work / "load.log",
                           rounds=plan.rounds, gap_s=plan.gap_s)  # fmt: skip
    say(f"soak: {plan.lines} lines, {plan.rounds} rounds of {plan.call_s:g} s calls "
        f"({plan.lines * plan.rounds} calls), {plan.probes} calls beyond the limit per round; "
        f"data in {run.data_dir}")  # fmt: skip
    t0 = time.monotonic()
    load_done = threading.Event()

    def wait_load() -> None:
        try:
            run.load = sim.wait()
        finally:
            load_done.set()

    try:
        sim.start()
        waiter = threading.Thread(target=wait_load, name="soak-load", daemon=True)
        waiter.start()
        prober = threading.Thread(target=_probe_rounds,
                                  args=(plan, serve, run, probe, t0, load_done),
                                  name="soak-probes", daemon=True)  # fmt: skip
        prober.start()
        while not load_done.wait(5.0):
            if serve.proc.poll() is not None:
                run.died = f"exited with {serve.proc.returncode} during the load"
                break
            _progress(probe, t0, say)
        if run.died:
            sim.kill()
        waiter.join()
        run.load_s = time.monotonic() - t0
        prober.join(PROBE_CALL_S + 60)
        if not run.died:
            say("soak: the load ended; waiting for the box to finish every call")
            start = time.monotonic()
            run.drained = _wait_idle(probe, serve, plan.drain_timeout_s)
            run.drain_s = time.monotonic() - start
            if serve.proc.poll() is not None:
                run.died = f"exited with {serve.proc.returncode} while finishing the calls"
        if not run.died:
            cap = probe.capacity()
            run.on_disk_at_end = int(cap.queued_on_disk_utterances)
            run.peak_rss_bytes = int(cap.memory_peak_rss_bytes)
    finally:
        sim.kill()
        run.samples = probe.samples_since(t0)
        run.heard = _heard_per_call(probe)
        run.alerts = list(alerts.alerts)
        alerts.close()
        probe.close()
        run.exit_code = serve.stop()
    run.peak_rss_bytes = max([run.peak_rss_bytes] + [s.rss_bytes for s in run.samples])
    return run


def _probe_rounds(
    plan: SoakPlan, serve: ServeProcess, run: SoakRun, probe: DaemonProbe, t0: float,
    load_done: threading.Event,
) -> None:  # fmt: skip
    """In every round, once all its calls have started and are live, offer ``probes`` calls
    more (a round in which that is not seen before the next one is due is left without)."""
    if plan.probes < 1:
        return
    accepted = 0
    for round_no in range(plan.rounds):
        expected = (round_no + 1) * plan.lines + accepted
        next_due = t0 + (round_no + 1) * (plan.call_s + plan.gap_s) + PROBE_SLACK_S
        while not load_done.wait(PROBE_POLL_S):
            if probe.calls_started() >= expected and probe.capacity().live_lines >= plan.lines:
                break
            if time.monotonic() > next_due:
                break
        else:
            return
        if time.monotonic() > next_due:
            continue
        sim = SimulatorProcess(
            serve.sip_port, [run.probe_file] * plan.probes, stagger_s=0.0,
            agent_base=PROBE_AGENT_BASE + 10 * round_no,
            log_path=run.data_dir.parent / f"probe-{round_no:03d}.log",
        ).start()  # fmt: skip
        try:
            outcome = sim.wait()
        finally:
            sim.kill()
        run.probe_runs.append(outcome)
        accepted += outcome.ok


def _wait_idle(probe: DaemonProbe, serve: ServeProcess, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if serve.proc is not None and serve.proc.poll() is not None:
            return False
        if probe.wait_idle(min(30.0, max(0.1, deadline - time.monotonic()))):
            return True
    return False


def _heard_per_call(probe: DaemonProbe) -> dict[str, int]:
    out: dict[str, int] = {}
    for sip_call_id, _ in probe.heard():
        if sip_call_id:
            out[sip_call_id] = out.get(sip_call_id, 0) + 1
    return out


def _progress(probe: DaemonProbe, t0: float, say: Callable[[str], None]) -> None:
    samples = probe.samples_since(time.monotonic() - 5.5)
    if not samples:
        return
    s = samples[-1]
    if int(s.mono - t0) % 60 < 5:  # about once a minute
        say(f"  {s.mono - t0:5.0f} s: {s.live_lines} live, backlog {s.backlog} utterances "
            f"({max(s.backlog_audio_s, 0.0):.0f} s of audio, {s.on_disk} on disk), "
            f"RSS {s.rss_bytes / 2**20:.0f} MB")  # fmt: skip
