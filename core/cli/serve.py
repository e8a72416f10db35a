"""The daemon's commands: `callqa serve`, and the client `callqa watch alerts|call`."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from core.config import Settings


def add_parsers(subparsers: Any) -> None:
    s = subparsers.add_parser(
        "serve",
        help="run the daemon: receive calls (SIPREC, SIP, gRPC), transcribe and score them live",
    )
    s.add_argument("--grpc-host", help="address of the gRPC API (setting grpc_host)")
    s.add_argument("--grpc-port", type=int, help="port of the gRPC API (setting grpc_port)")
    s.add_argument("--sip-host", help="address for SIP and RTP (setting sip_host)")
    s.add_argument("--sip-port", type=int, help="SIP port (setting sip_port)")
    s.add_argument("--no-sip", action="store_true", help="no SIP: gRPC streams only")
    s.add_argument(
        "--allow", action="append", metavar="PEER",
        help="an allowed SBC/PBX address or network; repeat for more (setting sip_allowed_peers)",
    )  # fmt: skip
    s.add_argument("--rubric", help="default rubric (setting rubric)")
    s.add_argument("--log-level", help="debug, info, warning or error (setting log_level)")
    s.set_defaults(func=cmd_serve)

    w = subparsers.add_parser("watch", help="follow the daemon's live alerts or one live call")
    ws = w.add_subparsers(dest="watch_cmd", required=True)
    wa = ws.add_parser("alerts", help="print alerts as they are raised")
    wa.add_argument("--agent", action="append", help="only this agent's calls (repeatable)")
    wa.add_argument("--team", action="append", help="only this team's calls (repeatable)")
    wa.add_argument("--min-severity", choices=["A", "B", "C"], help="A is the most serious")
    wa.add_argument("--call", help="only this call")
    wc = ws.add_parser("call", help="print one call's transcript, findings and alerts live")
    wc.add_argument("id", help="call id (or the sender's id for a live call)")
    for p in (wa, wc):
        p.add_argument("--address", help="daemon address host:port (default: the settings)")
        p.add_argument("--token", help="bearer token (default: setting grpc_token_read, "
                       "else grpc_token, or the grpc_tokens_file)")
        p.add_argument("--json", action="store_true", help="one JSON object per line")
    w.set_defaults(func=cmd_watch)


def cmd_serve(args: argparse.Namespace, config: Settings) -> int:
    from core.daemon.serve import ServeOptions, run_serve

    overrides = {
        "data_dir": str(config.data_dir),
        "model": config.model,
        "asr_device": config.asr_device,
        "grpc_host": args.grpc_host,
        "grpc_port": args.grpc_port,
        "sip_host": args.sip_host,
        "sip_port": args.sip_port,
        "sip_enabled": False if args.no_sip else None,
        "sip_allowed_peers": ",".join(args.allow) if args.allow else None,
        "rubric": args.rubric,
        "log_level": args.log_level,
    }
    return run_serve(ServeOptions(config_file=args.config, overrides=overrides))


def _client(args: argparse.Namespace, config: Settings) -> Any:
    from core.api.client import ApiClient

    return ApiClient(config, args.address or None, args.token)


def _clock(stamp: Any) -> str:
    return stamp.ToDatetime(tzinfo=dt.UTC).astimezone().strftime("%H:%M:%S")


def cmd_watch(args: argparse.Namespace, config: Settings) -> int:
    import grpc
    from google.protobuf.json_format import MessageToJson

    from core.api.convert import SEVERITIES
    from proto import callqa_pb2 as pb
    from proto import callqa_pb2_grpc as pb_grpc

    client = _client(args, config)
    stub = pb_grpc.CallQaStub(client.channel)
    metadata = client.metadata
    try:
        if args.watch_cmd == "alerts":
            request = pb.AlertFilter(
                agent_ids=args.agent or [], team_ids=args.team or [], call_id=args.call or "",
                min_severity=SEVERITIES.get(args.min_severity or "", 0),
            )  # fmt: skip
            for alert in stub.WatchAlerts(request, metadata=metadata):
                if args.json:
                    print(MessageToJson(alert, indent=None), flush=True)
                    continue
                print(
                    f"{_clock(alert.raised_at)} ALERT {pb.Severity.Name(alert.severity)[-1]} "
                    f"agent {alert.agent_id or '-'} call {alert.call_id} "
                    f"{alert.item_id}: {alert.evidence!r} at {alert.start_s:.1f} s "
                    f"({alert.latency_ms:.0f} ms{', late' if alert.late else ''})",
                    flush=True,
                )
            return 0
        for event in stub.WatchCall(pb.CallRef(call_id=args.id), metadata=metadata):
            if args.json:
                print(MessageToJson(event, indent=None), flush=True)
                continue
            print(describe_event(event), flush=True)
        return 0
    except grpc.RpcError as exc:
        print(f"callqa: error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()


def describe_event(event: Any) -> str:
    """One line for a CallEvent, as `callqa watch call` and the demo print it."""
    from proto import callqa_pb2 as pb

    kind = event.WhichOneof("event")
    head = f"{_clock(event.emitted_at)} {event.call_id}"
    if kind == "started":
        e = event.started
        return f"{head} started, rubric {e.rubric_id} v{e.rubric_version}"
    if kind == "transcript":
        u = event.transcript.utterance
        who = pb.Speaker.Name(u.speaker).split("_")[-1].lower()
        part = " …" if u.partial else ""
        return f"{head} {u.start_s:6.1f}s {who:<8} {u.text}{part}"
    if kind == "finding":
        f = event.finding.finding
        return f"{head} finding {f.item_id} ({pb.Severity.Name(f.severity)[-1]}): {f.evidence}"
    if kind == "alert":
        a = event.alert
        late = ", late" if a.late else ""
        return f"{head} ALERT {a.item_id}: {a.evidence!r} ({a.latency_ms:.0f} ms{late})"
    if kind == "scored":
        s = event.scored
        return f"{head} scored {s.score:g} ({'pass' if s.passed else 'FAIL'}), " \
               f"{s.finding_count} findings"  # fmt: skip
    if kind == "ended":
        return f"{head} ended: {event.ended.detail}"
    return f"{head} {kind}"
