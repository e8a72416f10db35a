"""The call simulator as a load generator: its sender's CPU and timing against a recorder.

Usage::

    python benchmarks/bench_simulator.py [--calls 50] [--seconds 10] [--stagger-s 0.0]

A `RecordingServer` runs in a child process (SIP on a free UDP port of 127.0.0.1, the
recordings in a temporary folder). This process places `--calls` simulated SIPREC calls of
`--seconds` of synthetic audio each (a tone with noise per leg, PCMU) at once, or staggered,
and reports:

* the outcome of the calls and whether every packet sent was received (the server's
  per-leg `received` counters against the simulator's `packets_sent`);
* the sender thread's CPU time (`time.thread_time()` inside it) per second of one stream's
  audio and per packet, next to the CPU time of this whole process (signalling included);
* the sender's timing: packets later than 2 ms after their deadline, the mean and the
  worst lateness, and the number of wake-ups.

With two or more CPUs the server is pinned to CPU 0 and this process to CPU 1.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.ports import free_port_range
from telephony.server import RecordingServer, ServerSettings
from telephony.sessions import CallInfo
from telephony.simulator import GIL_SWITCH_INTERVAL_S, CallPlan, Simulator
from telephony.siprec import AgentPatterns

HOST = "127.0.0.1"
RATE = 8000


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu})


def _serve(conn: Connection, calls: int, folder: str) -> None:
    """The child: a recording server that reports each ended call's per-leg counters."""
    _pin(0)
    first, last = free_port_range(4 * calls + 8)
    received: dict[str, dict[str, int]] = {}

    def ended(info: CallInfo) -> None:
        received[info.call_id] = {role: s.received for role, s in info.leg_stats.items()}

    async def main() -> None:
        settings = ServerSettings(
            recordings_dir=Path(folder), host=HOST, port=0, transports=("udp",),
            rtp_port_first=first, rtp_port_last=last, max_sessions=calls + 10,
            agent_patterns=AgentPatterns.parse("1000-9999"),
        )  # fmt: skip
        server = RecordingServer(settings, on_call_ended=ended)
        await server.start()
        conn.send(server.udp_port)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # until told to stop
        await server.wait_callbacks()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        await server.stop()
        conn.send((received, usage.ru_utime + usage.ru_stime))

    asyncio.run(main())


def _plans(calls: int, seconds: float, stagger_s: float) -> list[CallPlan]:
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * RATE)) / RATE
    legs = [
        np.clip(
            5000 * np.sin(2 * np.pi * f * t) + rng.normal(0, 1000, t.size), -32768, 32767
        ).astype(np.int16)
        for f in (300.0, 450.0, 600.0, 750.0)
    ]  # a few distinct legs: each is G.711-encoded once and shared by the calls
    return [
        CallPlan(
            agent_audio=legs[i % 2],
            customer_audio=legs[2 + i % 2],
            agent_aor=f"sip:{1001 + i}@pbx.example.com",
            customer_aor=f"sip:+1555{i:07d}@carrier.example.net",
            start_offset_s=i * stagger_s,
        )
        for i in range(calls)
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--stagger-s", type=float, default=0.0)
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * args.calls + 64
    if soft < need <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    with tempfile.TemporaryDirectory() as folder:
        proc = ctx.Process(target=_serve, args=(child, args.calls, folder), daemon=True)
        proc.start()
        port = parent.recv()
        _pin(1)
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # as `callqa simulate` does
        plans = _plans(args.calls, args.seconds, args.stagger_s)
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.monotonic()
        result = asyncio.run(Simulator(HOST, port).run(plans))
        wall = time.monotonic() - wall0
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        parent.send("stop")
        received, server_cpu = parent.recv()
        proc.join(10)

    calls = result.calls
    ok = [c for c in calls if c.ok]
    mismatched = [
        c.call_id for c in ok
        if received.get(c.call_id) != c.packets_sent
    ]  # fmt: skip
    s = result.sender
    process_cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    print(f"{len(ok)}/{len(calls)} calls ok, {args.seconds:g} s each, {wall:.1f} s wall")
    print(f"packets sent {s.packets}, send errors {s.send_errors}, "
          f"calls whose server counts differ: {len(mismatched)}")  # fmt: skip
    print(f"sender CPU {s.cpu_s:.3f} s for {s.stream_seconds:.0f} stream-seconds: "
          f"{1e6 * s.cpu_per_stream_second:.0f} us per stream-second "
          f"({100 * s.cpu_per_stream_second:.3f} % of a core per stream), "
          f"{1e6 * s.cpu_per_packet_s:.2f} us per packet")  # fmt: skip
    print(f"whole simulator process CPU {process_cpu:.2f} s; server process CPU {server_cpu:.2f} s")
    print(f"sender timing: {s.wakeups} wake-ups, late > {1e3 * s.late_threshold_s:.0f} ms: "
          f"{s.late_packets} packets; mean lateness {1e3 * s.mean_late_s:.3f} ms, "
          f"worst {1e3 * s.max_late_s:.2f} ms")  # fmt: skip
    setup = [c.setup_s for c in ok if c.setup_s is not None]
    if setup:
        print(f"call setup (INVITE to 200): median {1e3 * float(np.median(setup)):.1f} ms, "
              f"max {1e3 * max(setup):.1f} ms")  # fmt: skip
    return 0 if len(ok) == len(calls) and not mismatched else 1


if __name__ == "__main__":
    sys.exit(main())
