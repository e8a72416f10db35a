"""`callqa simulate --to HOST:PORT FILE.wav ...`: place simulated SIPREC calls on a recorder.

Each call streams a stereo 8 kHz WAV file (the agent on the left, the customer on the right)
in real time, as an SBC would send a recording session: an INVITE with SDP and RFC 7865
metadata, RTP for both legs, a BYE. The files are cycled over `--calls` calls; call i has
agent extension `--agent-base` + i. With `--rounds R` each of those lines places R calls one
after the other (`--gap-s` apart), a steady load for a soak. One line per call says how it
went.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import signal
import sys
from pathlib import Path
from typing import Any

from telephony.simulator import (
    AGENT_DOMAIN,
    CODECS,
    GIL_SWITCH_INTERVAL_S,
    CallPlan,
    SimulationResult,
    Simulator,
    agent_aor_for,
    load_plan_from_wav,
)

EXIT_OK = 0
EXIT_CALLS_FAILED = 1


def parse_target(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[IPv6]:PORT` or `HOST` (port 5060)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise argparse.ArgumentTypeError(f"no host in {text!r}; write HOST:PORT")
    if not port_text:
        return host, 5060
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}; write HOST:PORT")
    return host, int(port_text)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def add_simulate_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register `simulate` on the `callqa` sub-command parsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="place simulated SIPREC calls with real-time RTP on a recording server",
        description=(
            "Stream stereo WAV files (agent left, customer right, 8 kHz) to a recording server "
            "as SIPREC calls over UDP, several at once, and print how each call went."
        ),
    )
    p.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE.wav",
        help="stereo 8 kHz WAV files, cycled over the calls",
    )
    p.add_argument(
        "--to",
        required=True,
        type=parse_target,
        metavar="HOST:PORT",
        help="the recording server's SIP address (UDP)",
    )
    p.add_argument("--calls", type=_positive_int, default=1, help="calls to place (default 1)")
    p.add_argument(
        "--stagger-s",
        type=_non_negative,
        default=0.0,
        metavar="S",
        help="seconds between the starts of consecutive calls (default 0)",
    )
    p.add_argument(
        "--rounds",
        type=_positive_int,
        default=1,
        help="calls each line places one after the other (default 1)",
    )
    p.add_argument(
        "--gap-s",
        type=_non_negative,
        default=1.0,
        metavar="S",
        help="with --rounds: seconds from a call's last packet to the line's next call "
        "(default 1)",
    )
    p.add_argument(
        "--codec",
        choices=[c.lower() for c in CODECS],
        default="pcmu",
        help="G.711 codec of the RTP (default pcmu)",
    )
    p.add_argument(
        "--agent-base",
        type=int,
        default=1001,
        metavar="EXT",
        help="agent extension of call 0; call i gets EXT + i (default 1001)",
    )
    p.add_argument(
        "--agent-domain",
        default=AGENT_DOMAIN,
        help=f"domain of the agents' AoRs (default {AGENT_DOMAIN})",
    )
    p.add_argument(
        "--local-host",
        default=None,
        help="local address for SIP and RTP (default 127.0.0.1, ::1 for IPv6)",
    )
    p.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    p.set_defaults(func=run)
    return p


add_parser = add_simulate_command  # the name the other telephony commands use


def build_plans(
    files: list[Path],
    calls: int,
    *,
    stagger_s: float = 0.0,
    codec: str = "PCMU",
    agent_base: int = 1001,
    agent_domain: str = AGENT_DOMAIN,
    rounds: int = 1,
    gap_s: float = 1.0,
) -> list[CallPlan]:
    """`calls` lines cycling over `files` (each file read once), staggered by `stagger_s`;
    each line places `rounds` calls, the next `gap_s` after the end of the last one's audio.
    Plan i is round i // calls of line i % calls."""
    if not files:
        raise ValueError("no WAV files given")
    loaded = [load_plan_from_wav(path, codec=codec) for path in files]
    plans = []
    for i in range(calls * rounds):
        line, round_no = i % calls, i // calls
        base = loaded[line % len(loaded)]
        plans.append(
            dataclasses.replace(
                base,
                agent_aor=agent_aor_for(agent_base + line, agent_domain),
                customer_aor=f"sip:+1555{i % 10_000_000:07d}@carrier.example.net",
                start_offset_s=line * stagger_s + round_no * (base.duration_s + gap_s),
            )
        )
    return plans


def _as_json(result: SimulationResult) -> str:
    calls = [dataclasses.asdict(call) for call in result.calls]
    sender = dataclasses.asdict(result.sender)
    sender["cpu_per_stream_second"] = result.sender.cpu_per_stream_second
    return json.dumps({"calls": calls, "sender": sender}, indent=2)


def run(args: argparse.Namespace, config: Any = None) -> int:
    host, port = args.to
    local_host = args.local_host or ("::1" if ":" in host else "127.0.0.1")
    plans = build_plans(
        list(args.files),
        args.calls,
        stagger_s=args.stagger_s,
        codec=args.codec.upper(),
        agent_base=args.agent_base,
        agent_domain=args.agent_domain,
        rounds=args.rounds,
        gap_s=args.gap_s,
    )
    simulator = Simulator(host, port, local_host=local_host)
    # This process only simulates: let the RTP sender thread get the GIL back sooner.
    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))

    async def main() -> SimulationResult:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
                loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
        return await simulator.run(plans)

    try:
        result = asyncio.run(main())
    except asyncio.CancelledError:
        print("callqa simulate: stopped; the calls in progress were hung up")
        return 130
    if args.json:
        print(_as_json(result))
    else:
        for call in result.calls:
            print(call.summary())
        s = result.sender
        print(
            f"{result.ok}/{len(result.calls)} calls ok; sender: {s.packets} packets, "
            f"{s.cpu_s:.2f} s CPU ({1e6 * s.cpu_per_stream_second:.0f} us per stream-second), "
            f"latest packet {1e3 * s.max_late_s:.1f} ms after its time"
        )
    return EXIT_OK if result.ok == len(result.calls) else EXIT_CALLS_FAILED
