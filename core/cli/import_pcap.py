"""`callqa import-pcap FILE`: find the calls in a packet capture, record and score each.

Every SIP call with audio in the capture becomes a stereo recording (agent left, customer
right), which is then scored and stored like `callqa score` does. With `--no-score` the
recordings are only written, and kept, in the output folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.config import ConfigError, Settings
from telephony.follow import CALLEE, CALLER, FollowOptions
from telephony.pcap_import import OFFLINE_JITTER_DEPTH_MS, ImportedCall, import_capture

EXIT_OK = 0
EXIT_ERROR = 1


class NoCallsFound(ValueError):
    """The capture holds no SIP call with audio; the message says what it does hold."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `import-pcap` on the `callqa` subcommand parsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "import-pcap",
        help="record and score the SIP calls found in a pcap or pcapng capture",
        description=(
            "Follow the SIP calls (UDP) in a capture, write one stereo recording per call "
            "(agent left, customer right) and score each."
        ),
    )
    p.add_argument("file", help="capture file (pcap or pcapng, e.g. from tcpdump -w)")
    p.add_argument(
        "--agent-side",
        choices=[CALLEE, CALLER],
        help="who the agent is: the callee (inbound calls) or the caller (outbound); "
        "default: setting default_agent_side",
    )
    p.add_argument("--rubric", help="rubric id (stored or built-in) or YAML path")
    p.add_argument("--agent", help="agent id to store with every call")
    p.add_argument("--team", help="team id to store with every call")
    p.add_argument("--out-dir", type=Path, help="folder for the recordings (default: data dir)")
    p.add_argument("--idle-timeout-s", type=float, default=60.0,
                   help="a call with no SIP and no RTP this long ends (default 60)")
    p.add_argument("--no-score", action="store_true", help="only write the recordings")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
    return p


def _agent_side(args: argparse.Namespace, config: Settings) -> str:
    """``--agent-side``, else the setting ``default_agent_side`` (settings file, environment)."""
    if args.agent_side:
        return str(args.agent_side)
    configured = config.default_agent_side
    if configured not in (CALLER, CALLEE):
        raise ConfigError(
            f"setting 'default_agent_side' is {configured!r}, which means nothing in a capture "
            f"(its calls have a caller and a callee): pass --agent-side {CALLEE} or {CALLER}"
        )
    return configured


def _call_json(call: ImportedCall) -> dict[str, Any]:
    return {
        "sip_call_id": call.call_id,
        "caller": call.caller,
        "callee": call.callee,
        "recording": str(call.recording),
        "started_at": call.started_at,
        "duration_s": round(call.duration_s, 3),
        "end_reason": call.end_reason,
        "agent_side": call.agent_side,
        "agent_lost": call.agent.lost if call.agent else None,
        "customer_lost": call.customer.lost if call.customer else None,
    }


def run(args: argparse.Namespace, config: Settings) -> int:
    """Import the capture named in ``args.file`` and score its calls; returns the exit code."""
    path = Path(args.file)
    if not path.is_file():
        raise FileNotFoundError(2, "no such file", str(path))
    out_dir = args.out_dir or Path(config.data_dir) / "imports" / path.stem
    options = FollowOptions(
        agent_side=_agent_side(args, config),
        idle_timeout_s=args.idle_timeout_s,
        jitter_depth_ms=OFFLINE_JITTER_DEPTH_MS,
    )
    report = import_capture(path, out_dir, options)
    if not report.calls:
        raise NoCallsFound(
            f"{path}: no SIP call with audio found ({report.summary()}); the capture needs "
            "the SIP over UDP that set up the calls, not only their RTP"
        )
    results: list[dict[str, Any]] = []
    failed = 0
    db = None
    if not args.no_score:
        from core.storage.db import open_db

        db = open_db(config.db_path)
    for call in report.calls:
        item = _call_json(call)
        results.append(item)
        if db is None:
            continue
        from core.scoring.recording import ScoreRequest, score_file

        request = ScoreRequest(
            path=call.recording,
            rubric_ref=args.rubric or config.rubric,
            agent_id=args.agent,
            team_id=args.team,
            agent_channel="left",
            started_at=call.started_at,
            source="pcap",
            caller=call.caller,
            callee=call.callee,
            meta={"capture": str(path), "sip_call_id": call.call_id},
            move=True,
        )
        try:
            outcome = score_file(config, db, request)
        except (ValueError, OSError) as exc:
            failed += 1
            item["error"] = str(exc)
            print(f"callqa: {call.call_id}: not scored: {exc}", file=sys.stderr)
            continue
        result = outcome.scored.result
        item["call_id"] = outcome.call_id
        item["score"] = result.score
        item["passed"] = result.passed
        if outcome.recording_path is not None:
            item["recording"] = str(outcome.recording_path)  # moved under the data folder
    if args.json:
        json.dump({"calls": results, "summary": report.summary()}, sys.stdout,
                  ensure_ascii=False, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(f"{path}: {report.summary()}")
        for item in results:
            verdict = ""
            if "error" in item:
                verdict = "  NOT SCORED"
            elif item.get("score") is not None:
                verdict = f"  score {item['score']:g} {'pass' if item.get('passed') else 'FAIL'}"
            print(
                f"{item.get('call_id') or item['sip_call_id']:<32} {item['caller']} -> "
                f"{item['callee']}  {item['duration_s']:.1f}s{verdict}  {item['recording']}"
            )
    return EXIT_ERROR if failed else EXIT_OK
