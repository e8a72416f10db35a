"""The `callqa receive` command: run the recording server until stopped (SIGINT, SIGTERM)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any

from core.config import Settings
from core.ingest.receive import ReceiverSettings, run_receiver, server_settings


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `receive` to the `callqa` sub-commands."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "receive",
        help="record calls sent by a PBX or SBC (SIPREC or SIP), then score and store them",
    )
    p.add_argument("--sip-host", help="address to listen on (setting sip_host)")
    p.add_argument("--sip-port", type=int, help="SIP port (setting sip_port)")
    p.add_argument(
        "--allow",
        action="append",
        metavar="PEER",
        help="an allowed SBC/PBX address or network; repeat for more (setting sip_allowed_peers)",
    )
    p.add_argument("--no-score", action="store_true", help="store recordings without scoring")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace, config: Settings) -> int:
    overrides = {
        "sip_host": getattr(args, "sip_host", None),
        "sip_port": getattr(args, "sip_port", None),
        "sip_allowed_peers": ",".join(args.allow) if getattr(args, "allow", None) else None,
    }
    settings = ReceiverSettings(
        config=config,
        server=server_settings(config.replace(**overrides)),
        score=not getattr(args, "no_score", False),
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await run_receiver(settings, stop)

    asyncio.run(main())
    return 0
