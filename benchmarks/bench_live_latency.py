"""Alert latency of the live daemon: from the end of a forbidden phrase's utterance to its alert.

Runs `callqa serve` on the embedded defaults (Whisper base, int8 on CPU) as a child process,
and places calls to it with the SIPREC simulator (real-time RTP over loopback), while a
`WatchAlerts` client times every alert as it arrives. The calls are labelled corpus calls
whose agent says a forbidden phrase (labels give the utterance's end), so each expected alert
has a known moment: the wall time of the call's first RTP packet plus the utterance's end.

Two runs in the same daemon, the baseline first:

* baseline: one call at a time (an idle box);
* loaded: ``--lines`` calls at once (default 8), staggered over a few seconds.

Latency is signed: a forbidden phrase early in a long turn is alerted from a part of the
utterance (``live_partial_every_s``) before the turn has ended, so it can be negative.

It prints, per run, the alerts expected and received, client-measured latency percentiles,
the daemon's own latency figures, the ASR backlog sampled every second (is it growing?), and
the CPU of the daemon and of the load generator apart; then the loaded p95 as a ratio of the
baseline's.

    python benchmarks/bench_live_latency.py ../shared/corpus --lines 8
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.capacity.results import backlog_growing, backlog_halves
from core.daemon.child import ServeProcess
from core.stats import percentile
from proto import callqa_pb2 as pb
from telephony.simulator import load_plan_from_wav, simulate

AGENT_BASE = 3000


@dataclass
class Expected:
    agent_id: str
    call: str
    end_s: float  # end of the utterance holding the forbidden phrase, call time
    phrase: str


@dataclass
class RunResult:
    name: str
    lines: int
    expected: int = 0
    matched: list[float] = field(default_factory=list)  # client latency, ms
    server_ms: list[float] = field(default_factory=list)
    late: int = 0
    missed: list[str] = field(default_factory=list)
    extra_alerts: int = 0
    backlog: list[int] = field(default_factory=list)
    daemon_cpu_percent: float = 0.0
    sender_cpu_percent: float = 0.0
    wall_s: float = 0.0
    calls_ok: int = 0


def forbidden_calls(corpus: Path) -> list[tuple[Path, list[dict[str, object]]]]:
    out = []
    for label in sorted(corpus.glob("dev*.json")):
        data = json.loads(label.read_text(encoding="utf-8"))
        events = [e for e in data.get("events", []) if e.get("item_id") == "forbidden_words"]
        if events:
            out.append((label.with_suffix(".wav"), events))
    return out


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    """`core.stats.percentile` (q from 0 to 100), NaN when there are no values (printed)."""
    value = percentile(values, q)
    return float("nan") if value is None else value


def run(serve: ServeProcess, name: str, calls: list[tuple[Path, list[dict[str, object]]]],
        lines: int, agent_base: int, stagger_s: float) -> RunResult:  # fmt: skip
    stub = serve.stub()
    result = RunResult(name, lines)
    received: list[tuple[float, pb.Alert]] = []
    stream = stub.WatchAlerts(pb.AlertFilter())

    def collect() -> None:
        try:
            for alert in stream:
                received.append((time.time(), alert))
        except Exception:
            return

    threading.Thread(target=collect, daemon=True).start()
    backlog_stop = threading.Event()

    def sample_backlog() -> None:
        while not backlog_stop.wait(1.0):
            try:
                cap = stub.GetCapacity(pb.GetCapacityRequest(), timeout=2)
                result.backlog.append(cap.asr_backlog_utterances)
            except Exception:
                pass

    threading.Thread(target=sample_backlog, daemon=True).start()
    time.sleep(0.5)
    plans, expected = [], []
    for i in range(lines):
        path, events = calls[i % len(calls)]
        agent = str(agent_base + i)
        plans.append(load_plan_from_wav(path, agent_id=agent, start_offset_s=i * stagger_s))
        for e in events:
            expected.append(Expected(agent, path.stem, float(e["end"]),  # type: ignore[arg-type]
                                     str(e.get("phrase") or e.get("text"))))  # fmt: skip
    assert serve.proc is not None
    cpu0, t0 = proc_cpu_s(serve.proc.pid), time.monotonic()
    sim = simulate("127.0.0.1", serve.sip_port, plans)
    time.sleep(4.0)  # the last utterances and their alerts
    result.wall_s = time.monotonic() - t0
    result.daemon_cpu_percent = 100 * (proc_cpu_s(serve.proc.pid) - cpu0) / result.wall_s
    result.sender_cpu_percent = 100 * sim.sender.cpu_s / result.wall_s
    result.calls_ok = sim.ok
    backlog_stop.set()
    stream.cancel()
    first_packet = {c.agent_id: c.first_packet_wall for c in sim.calls}
    result.expected = len(expected)
    used: set[str] = set()
    for exp in expected:
        start = first_packet.get(exp.agent_id)
        candidates = [(t, a) for t, a in received if a.agent_id == exp.agent_id
                      and a.item_id == "forbidden_words" and a.alert_id not in used
                      and start is not None and a.end_s <= exp.end_s + 1.0]  # fmt: skip
        if not candidates or start is None:
            result.missed.append(f"{exp.agent_id}/{exp.call} {exp.phrase}")
            continue
        t, alert = min(candidates, key=lambda c: c[0])
        used.add(alert.alert_id)
        result.matched.append(1000.0 * (t - (start + exp.end_s)))
        result.server_ms.append(alert.latency_ms)
        result.late += int(alert.late)
    result.extra_alerts = sum(1 for _, a in received if a.item_id == "forbidden_words"
                              and a.alert_id not in used)  # fmt: skip
    return result


def show(results: list[RunResult]) -> None:
    head = (f"{'run':<9} {'lines':>5} {'calls':>5} {'alerts':>9} {'p50 ms':>7} {'p95 ms':>7} "
            f"{'max ms':>7} {'daemon p95':>10} {'late':>4} {'backlog 1st/2nd half':>21} "
            f"{'daemon CPU':>10} {'sender CPU':>10}")  # fmt: skip
    print(head)
    for r in results:
        b1, b2 = backlog_halves(r.backlog) if r.backlog else (float("nan"), float("nan"))
        grow = " growing" if backlog_growing(r.backlog) else ""
        print(f"{r.name:<9} {r.lines:>5} {r.calls_ok:>5} {len(r.matched):>4}/{r.expected:<4} "
              f"{pct(r.matched, 50):>7.0f} {pct(r.matched, 95):>7.0f} "
              f"{max(r.matched, default=float('nan')):>7.0f} "
              f"{pct(r.server_ms, 95):>10.0f} {r.late:>4} "
              f"{b1:>9.1f} / {b2:<5.1f}{grow:>5} {r.daemon_cpu_percent:>9.0f}% "
              f"{r.sender_cpu_percent:>9.1f}%")  # fmt: skip
        for m in r.missed:
            print(f"    missed: {m}")
        if r.extra_alerts:
            print(f"    {r.extra_alerts} forbidden-phrase alerts beyond the labelled ones")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("corpus", type=Path, help="labelled corpus folder (devNNN.wav + .json)")
    p.add_argument("--lines", type=int, default=8, help="calls at once in the loaded run")
    p.add_argument("--stagger-s", type=float, default=2.0, help="between call starts")
    p.add_argument("--data-dir", type=Path, help="daemon data folder (default: a temp one)")
    args = p.parse_args()
    calls = forbidden_calls(args.corpus)
    if not calls:
        p.error(f"no call with a forbidden_words label in {args.corpus}")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="callqa-latency-"))
    serve = ServeProcess(data_dir, {"agent_patterns": f"{AGENT_BASE}-{AGENT_BASE + 999}",
                                    "log_level": "warning"})  # fmt: skip
    print(f"callqa serve: embedded defaults, data in {data_dir}, {os.cpu_count()} CPUs")
    serve.start()
    try:
        baseline = []
        for i, call in enumerate(calls[:3]):  # one line at a time
            baseline.append(run(serve, "baseline", [call], 1, AGENT_BASE + 100 + i, 0.0))
        merged = RunResult("baseline", 1)
        for r in baseline:
            merged.expected += r.expected
            merged.matched += r.matched
            merged.server_ms += r.server_ms
            merged.late += r.late
            merged.missed += r.missed
            merged.backlog += r.backlog
            merged.calls_ok += r.calls_ok
            merged.daemon_cpu_percent = max(merged.daemon_cpu_percent, r.daemon_cpu_percent)
            merged.sender_cpu_percent = max(merged.sender_cpu_percent, r.sender_cpu_percent)
        loaded = run(serve, "loaded", calls, args.lines, AGENT_BASE + 200, args.stagger_s)
    finally:
        serve.stop()
    print()
    show([merged, loaded])
    base95, load95 = pct(merged.matched, 95), pct(loaded.matched, 95)
    base_d, load_d = pct(merged.server_ms, 95), pct(loaded.server_ms, 95)
    ratio = f"{load_d / base_d:.2f}" if base_d > 0 else "n/a"
    print(f"\nloaded / baseline, daemon-measured p95: {ratio} ({load_d:.0f} / {base_d:.0f} ms);"
          f" client-measured p95 {load95:.0f} ms loaded, {base95:.0f} ms baseline (negative:"
          f" the alert came before the turn ended, from a part of it)")  # fmt: skip
    print(f"target p95 <= 2000 ms at {args.lines} lines: "
          f"{'met' if load95 <= 2000 and not loaded.missed else 'NOT met'}; backlog "
          f"{'growing' if backlog_growing(loaded.backlog) else 'not growing'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
