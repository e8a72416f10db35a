"""`callqa demo`: the daemon on the embedded defaults, with sample calls placed live.

It makes the sample calls (``core.audio.samples``: synthetic speech from espeak-ng, in Mandarin and
English), starts `callqa serve` on loopback ports, and has the call simulator place them as
real SIPREC sessions with real-time RTP, all at once. Alerts, transcripts and scores print
as they happen, through the same gRPC streams an agent desktop would use. At the end each
call's findings are compared with what its script was written to contain; the exit status
says whether every call came out as expected.

``--offline`` scores the same samples from their files instead, without the daemon.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import Settings

AGENT_BASE = 8001
SETTLE_S = 120.0


@dataclass
class DemoCall:
    agent_id: str
    name: str
    title: str
    rubric: str
    path: Path
    expected: set[str]


def _samples(config: Settings) -> list[tuple[Any, Path]]:
    from core.audio.samples import SAMPLE_CALLS, make_samples

    out_dir = config.data_dir / "samples"
    print(f"Making {len(SAMPLE_CALLS)} sample calls with espeak-ng in {out_dir} ...", flush=True)
    paths = {p.stem: p for p in make_samples(out_dir) if p.suffix == ".wav"}
    return [(call, paths[call.name]) for call in SAMPLE_CALLS]


def _plan(config: Settings, calls: int | None) -> list[DemoCall]:
    samples = _samples(config)
    n = calls or len(samples)
    out = []
    for i in range(n):
        sample, path = samples[i % len(samples)]
        out.append(DemoCall(str(AGENT_BASE + i), sample.name, sample.title,
                            sample.rubric, path,
                            set(sample.expected_items)))  # fmt: skip
    return out


class _Printer:
    """Prints the daemon's events for the demo's calls as they arrive."""

    def __init__(self, stub: Any, calls: list[DemoCall]) -> None:
        self.stub = stub
        self.calls = {c.agent_id: c for c in calls}
        self.lock = threading.Lock()
        self.watched: set[str] = set()
        self.streams: list[Any] = []
        self.stop = threading.Event()

    def say(self, text: str) -> None:
        with self.lock:
            print(text, flush=True)

    def label(self, agent_id: str) -> str:
        call = self.calls.get(agent_id)
        return f"[{agent_id} {call.name}]" if call else f"[{agent_id}]"

    def watch_new_calls(self) -> None:
        from proto import callqa_pb2 as pb

        while not self.stop.wait(0.3):
            try:
                live = self.stub.ListLiveCalls(pb.ListLiveCallsRequest(), timeout=5).calls
            except Exception:
                continue
            for call in live:
                if call.call_id not in self.watched and call.agent_id in self.calls:
                    self.watched.add(call.call_id)
                    threading.Thread(target=self._follow, args=(call.call_id, call.agent_id),
                                     daemon=True).start()  # fmt: skip

    def _follow(self, call_id: str, agent_id: str) -> None:
        from proto import callqa_pb2 as pb

        tag = self.label(agent_id)
        stream = self.stub.WatchCall(pb.CallRef(call_id=call_id))
        self.streams.append(stream)
        try:
            for event in stream:
                kind = event.WhichOneof("event")
                if kind == "started":
                    self.say(f"{tag} call {call_id} started, rubric {event.started.rubric_id}")
                elif kind == "transcript" and not event.transcript.utterance.partial:
                    u = event.transcript.utterance
                    who = "agent   " if u.speaker == pb.SPEAKER_AGENT else "customer"
                    self.say(f"{tag} {u.start_s:5.1f}s {who} {u.text}")
                elif kind == "alert":
                    a = event.alert
                    late = ", late" if a.late else ""
                    grade = pb.Severity.Name(a.severity)[-1]
                    self.say(f"{tag} *** ALERT {a.item_id} ({grade}): {a.evidence} "
                             f"[{a.latency_ms:.0f} ms after the speech{late}]")  # fmt: skip
                elif kind == "scored":
                    s = event.scored
                    verdict = "pass" if s.passed else "FAIL"
                    self.say(f"{tag} scored {s.score:g} ({verdict}), {s.finding_count} findings")
                elif kind == "ended":
                    return
        except Exception:
            return

    def close(self) -> None:
        self.stop.set()
        for stream in self.streams:
            stream.cancel()


def run_live(config: Settings, calls: int | None = None) -> int:
    """The live demo (see the module notes); returns the exit status."""
    from core.daemon.child import ServeProcess
    from telephony.simulator import load_plan_from_wav, simulate

    demo_calls = _plan(config, calls)
    routes = ",".join(f"agent:{c.agent_id}={c.rubric}" for c in demo_calls)
    serve = ServeProcess(config.data_dir, {
        "model": config.model, "asr_device": config.asr_device,
        "agent_patterns": f"{AGENT_BASE}-{AGENT_BASE + 999}", "rubric_routes": routes,
    })  # fmt: skip
    print(f"Starting callqa serve (log: {serve.log_path}) ...", flush=True)
    serve.start()
    stub = serve.stub()
    printer = _Printer(stub, demo_calls)
    watcher = threading.Thread(target=printer.watch_new_calls, daemon=True)
    watcher.start()
    try:
        plans = [
            load_plan_from_wav(c.path, agent_id=c.agent_id, start_offset_s=0.5 * i)
            for i, c in enumerate(demo_calls)
        ]
        longest = max(p.duration_s for p in plans)
        print(f"Placing {len(plans)} SIPREC calls at once to 127.0.0.1:{serve.sip_port} "
              f"(real-time RTP, about {longest:.0f} s) ...\n", flush=True)  # fmt: skip
        result = simulate("127.0.0.1", serve.sip_port, plans)
        failed = [c for c in result.calls if not c.ok]
        for c in failed:
            print(f"call {c.index} was not placed: {c.summary()}")
        stored = _wait_scored(stub, demo_calls, SETTLE_S)
    finally:
        printer.close()
        serve.stop()
    ok = not failed and _report(demo_calls, stored)
    print(f"\nEverything is stored in {config.data_dir}; try `callqa calls list`, "
          f"`callqa search 投诉` or `callqa serve` with `callqa watch alerts`.")  # fmt: skip
    return 0 if ok else 1


def _wait_scored(stub: Any, calls: list[DemoCall], timeout_s: float) -> dict[str, Any]:
    from proto import callqa_pb2 as pb

    wanted = {c.agent_id for c in calls}
    deadline = time.monotonic() + timeout_s
    found: dict[str, Any] = {}
    while time.monotonic() < deadline and len(found) < len(wanted):
        for agent_id in wanted - set(found):
            rows = stub.ListCalls(pb.ListCallsRequest(agent_id=agent_id, limit=1)).calls
            if rows and rows[0].status == pb.CALL_STATUS_SCORED:
                found[agent_id] = stub.GetCall(pb.CallRef(call_id=rows[0].call_id))
        time.sleep(0.5)
    return found


def _report(calls: list[DemoCall], stored: dict[str, Any]) -> bool:
    print("\n" + "=" * 78)
    all_ok = True
    for c in calls:
        call = stored.get(c.agent_id)
        if call is None:
            print(f"[{c.agent_id} {c.name}] was not scored in time")
            all_ok = False
            continue
        found = {f.item_id for f in call.findings}
        ok = found == c.expected
        all_ok &= ok
        print(f"[{c.agent_id} {c.name}] {c.title}\n    score {call.score:g} "
              f"({'pass' if call.passed else 'FAIL'}); expected findings "
              f"{sorted(c.expected) or 'none'}; found {sorted(found) or 'none'} -> "
              f"{'as expected' if ok else 'DIFFERENT'}")  # fmt: skip
    return all_ok


def run_offline(config: Settings) -> int:
    """Score the sample calls from their files, as `callqa score` would."""
    from core.scoring.recording import ScoreRequest, score_file
    from core.scoring.report import format_report
    from core.storage.db import open_db

    db = open_db(config.db_path)
    all_ok = True
    for sample, path in _samples(config):
        rubric = sample.rubric
        req = ScoreRequest(path=path, rubric_ref=rubric, agent_id="demo", team_id="demo")
        outcome = score_file(config, db, req)
        result = outcome.scored.result
        print("\n" + "=" * 78)
        print(f"{sample.name}: {sample.title}")
        print(format_report(outcome.call_id, result, {"file": str(path)}))
        found = {f.item_id for f in result.findings}
        expected = set(sample.expected_items)
        ok = found == expected
        all_ok &= ok
        print(f"expected findings: {sorted(expected) or 'none'}; found: {sorted(found) or 'none'}"
              f" -> {'as expected' if ok else 'DIFFERENT'}")  # fmt: skip
    print(f"\nStored in {config.db_path}; try `callqa calls list` and `callqa search complaint`.")
    return 0 if all_ok else 1
