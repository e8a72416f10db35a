"""The `callqa` command line.

Exit codes: 0 success, 1 an unexpected error, 2 bad input (a file that is not a usable
recording, an invalid rubric, a bad setting, an unknown call id).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.audio.wav import AudioFileError
from core.config import ConfigError, Settings, load_settings, settings_markdown
from core.rubric.loading import load_rubric_file, load_rubric_text
from core.rubric.schema import RubricError
from core.scoring.report import format_report
from core.storage import repository, search
from core.storage.db import open_db

logger = logging.getLogger("callqa")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
PROGRESS_MIN_DURATION_S = 30.0


class UsageError(Exception):
    """Bad input from the user; printed without a traceback, exit code 2."""


def _print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def _config(args: argparse.Namespace, *, flags_only: bool = False) -> Settings:
    """The settings; with `flags_only`, the defaults and the flags alone (no file, no
    environment), for a command that reports what is wrong with the others."""
    overrides = {
        "data_dir": getattr(args, "data_dir", None),
        "model": getattr(args, "model", None),
        "asr_device": getattr(args, "device", None),
    }
    if flags_only:
        return load_settings(Path(os.devnull), overrides, {})
    return load_settings(args.config, overrides)


# ---------------------------------------------------------------- score


def cmd_score(args: argparse.Namespace, config: Settings) -> int:
    from core.scoring.recording import ScoreRequest, score_file

    db = open_db(config.db_path)
    req = ScoreRequest(
        path=Path(args.file),
        rubric_ref=args.rubric or config.rubric,
        agent_id=args.agent,
        team_id=args.team,
        agent_channel=args.agent_channel or config.agent_channel,
        speaker=args.speaker,
        started_at=args.started_at,
        store=not args.no_store,
    )
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="utt", desc="transcribing", file=sys.stderr, leave=False)
        bar.update(done - bar.n)

    from core.audio.wav import read_wav

    duration = read_wav(req.path).duration_s
    show_progress = not args.json and duration >= PROGRESS_MIN_DURATION_S and not args.quiet
    outcome = score_file(config, db, req, progress if show_progress else None)
    if bar is not None:
        bar.close()
    result = outcome.scored.result
    if args.json:
        out = {"call_id": outcome.call_id, **result.to_json()}
        _print_json(out)
    else:
        header = {
            "file": str(req.path),
            "agent": req.agent_id,
            "team": req.team_id,
            "duration": f"{duration:.1f} s",
            "recording": str(outcome.recording_path) if outcome.recording_path else None,
        }
        print(format_report(outcome.call_id, result, header))
    return EXIT_OK


# ---------------------------------------------------------------- rubrics


def cmd_rubric(args: argparse.Namespace, config: Settings) -> int:
    if args.rubric_cmd == "validate":
        rubric = load_rubric_file(Path(args.file))
        print(f"{args.file}: valid rubric {rubric.id!r} with {len(rubric.items)} items")
        return EXIT_OK
    db = open_db(config.db_path)
    if args.rubric_cmd == "import":
        text = Path(args.file).read_text(encoding="utf-8")
        rubric = load_rubric_text(text)
        version = repository.record_rubric_version(db, rubric.id, text)
        if args.activate:
            repository.set_active(db, rubric.id, version)
        print(f"imported {rubric.id} as version {version}" + (" (active)" if args.activate else ""))
        return EXIT_OK
    if args.rubric_cmd == "export":
        from core.storage.rubric_catalog import resolve_rubric

        if args.version is not None:
            row = repository.get_rubric_version(db, args.id, args.version)
            if row is None:
                raise UsageError(f"no rubric {args.id!r} version {args.version}")
            text = row["yaml"]
        else:
            text = resolve_rubric(db, args.id).yaml_text
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return EXIT_OK
    if args.rubric_cmd == "list":
        from core.rubric.defaults import builtin_rubrics

        rows = repository.list_rubrics(db)
        stored = {r["rubric_id"] for r in rows}
        if args.json:
            _print_json({"stored": rows, "builtin": sorted(builtin_rubrics())})
            return EXIT_OK
        for r in rows:
            mark = "*" if r.get("active") else " "
            print(f"{mark} {r['rubric_id']:<24} v{r['version']:<4} {r.get('created_at', '')}")
        for rid in sorted(set(builtin_rubrics()) - stored):
            print(f"  {rid:<24} built-in")
        return EXIT_OK
    raise UsageError("say one of: validate, import, export, list")


def cmd_demo(args: argparse.Namespace, config: Settings) -> int:
    """The daemon with sample calls placed live (or, with --offline, scored from files)."""
    from core.cli import demo

    if args.offline:
        return demo.run_offline(config)
    return demo.run_live(config, args.calls)


# ---------------------------------------------------------------- calls, search


def cmd_calls(args: argparse.Namespace, config: Settings) -> int:
    db = open_db(config.db_path)
    if args.calls_cmd == "show":
        call = repository.get_call(db, args.id)
        if call is None:
            raise UsageError(f"no call {args.id!r}")
        if args.json:
            _print_json(call)
            return EXIT_OK
        print(format_stored_call(call))
        return EXIT_OK
    passed = None
    if args.passed:
        passed = True
    elif args.failed:
        passed = False
    rows = repository.list_calls(
        db, agent=args.agent, team=args.team, passed=passed, limit=args.limit
    )
    if args.json:
        _print_json(rows)
        return EXIT_OK
    print(f"{'call':<28} {'started':<26} {'agent':<8} {'team':<6} {'dur':>6} {'score':>6}  result")
    for r in rows:
        result = "-" if r.get("passed") is None else ("pass" if r["passed"] else "FAIL")
        score = "" if r.get("score") is None else f"{r['score']:g}"
        dur = "" if r.get("duration_s") is None else f"{r['duration_s']:.0f}s"
        print(
            f"{r['id']:<28} {r.get('started_at') or '':<26} {r.get('agent_id') or '':<8} "
            f"{r.get('team_id') or '':<6} {dur:>6} {score:>6}  {result}"
        )
    return EXIT_OK


def format_stored_call(call: dict[str, Any]) -> str:
    if call.get("score") is None:
        lines = [f"Call {call['id']}  not scored ({call.get('status')})"]
    else:
        lines = [f"Call {call['id']}  score {call['score']}  passed {bool(call.get('passed'))}"]
    for key in (
        "started_at",
        "source",
        "agent_id",
        "team_id",
        "caller",
        "callee",
        "duration_s",
        "rubric_id",
        "rubric_version",
        "recording_path",
        "status",
    ):
        if call.get(key) is not None:
            lines.append(f"  {key}: {call[key]}")
    meta = call.get("meta") or {}
    if meta.get("mono_speaker"):
        lines.append(f"  recorded: one stream, {meta['mono_speaker']}")
    for key, value in sorted((meta.get("call_identifiers") or {}).items()):
        lines.append(f"  {key}: {value}")
    if call.get("decisions"):
        lines.append("Decisions:")
        for d in call["decisions"]:
            at = str(d.get("at") or "")[11:23]
            lines.append(f"  {at:<12} {d['kind']:<8} {d['summary']}")
            detail = d.get("detail") or {}
            for note in detail.get("notes") or []:
                lines.append(f"  {'':<12} {'':<8}   {note}")
            for stream in detail.get("streams") or []:
                taken = "taken" if stream.get("taken") else "not taken"
                lines.append(f"  {'':<12} {'':<8}   m-line {stream.get('m_line')} label "
                             f"{stream.get('label')}: {taken}, {stream.get('why')}")  # fmt: skip
    lines.append("Findings:")
    for f in call.get("findings", []):
        lines.append(
            f"  {f['start_s']:7.1f}-{f['end_s']:7.1f}  {f['severity']}  -{f['deduct']:g}  "
            f"{f['item_id']}: {f['evidence']}"
        )
    lines.append("Transcript:")
    for u in call.get("utterances", []):
        lines.append(f"  {u['start_s']:7.1f} {u['speaker']:<8} {u['text']}")
    return "\n".join(lines)


def cmd_search(args: argparse.Namespace, config: Settings) -> int:
    db = open_db(config.db_path)
    query = " ".join(args.words)
    hits = search.search_utterances(db, query, limit=args.limit)
    if args.json:
        _print_json(hits)
        return EXIT_OK
    for h in hits:
        text = h.get("snippet") or h["text"]
        print(f"{h['call_id']}  {h['start_s']:7.1f}s  {h['speaker']:<8} {text}")
    print(f"{len(hits)} utterance(s) match {query!r}")
    return EXIT_OK


def cmd_settings(args: argparse.Namespace, config: Settings) -> int:
    print(settings_markdown())
    return EXIT_OK


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="callqa", description="Quality inspection of call-center calls"
    )
    p.add_argument("--config", type=Path, help="TOML settings file")
    p.add_argument("--data-dir", help="data folder (database, recordings, model)")
    p.add_argument("--model", help="Whisper model: base, tiny.en or a CTranslate2 model folder")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="ASR device")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("score", help="transcribe and score a recorded call")
    s.add_argument("file", help="WAV file: stereo (agent and customer) or mono with --speaker")
    s.add_argument("--rubric", help="rubric id (stored or built-in) or YAML path")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.add_argument("--agent-channel", choices=["left", "right"], help="channel of the agent")
    s.add_argument("--speaker", choices=["agent", "customer"], help="whose voice a mono file is")
    s.add_argument("--agent", help="agent id")
    s.add_argument("--team", help="team id")
    s.add_argument("--started-at", help="when the call started (ISO 8601)")
    s.add_argument("--no-store", action="store_true", help="score without storing the call")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_score)

    r = sub.add_parser("rubric", help="validate, import, export and list rubrics")
    rs = r.add_subparsers(dest="rubric_cmd", required=True)
    rv = rs.add_parser("validate", help="check a rubric YAML file")
    rv.add_argument("file")
    ri = rs.add_parser("import", help="store a rubric YAML file as a new version")
    ri.add_argument("file")
    ri.add_argument("--activate", action="store_true", help="make this version the active one")
    re_ = rs.add_parser("export", help="print a rubric as YAML")
    re_.add_argument("id")
    re_.add_argument("--version", type=int)
    re_.add_argument("-o", "--output")
    rl = rs.add_parser("list", help="list stored and built-in rubrics")
    rl.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_rubric)

    c = sub.add_parser("calls", help="list and show stored calls")
    cs = c.add_subparsers(dest="calls_cmd", required=True)
    cl = cs.add_parser("list", help="list calls, newest first")
    cl.add_argument("--agent")
    cl.add_argument("--team")
    g = cl.add_mutually_exclusive_group()
    g.add_argument("--passed", action="store_true")
    g.add_argument("--failed", action="store_true")
    cl.add_argument("--limit", type=int, default=50)
    cl.add_argument("--json", action="store_true")
    csh = cs.add_parser("show", help="one call with its findings and transcript")
    csh.add_argument("id")
    csh.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_calls)

    se = sub.add_parser("search", help="full-text search in transcripts")
    se.add_argument("words", nargs="+")
    se.add_argument("--limit", type=int, default=50)
    se.add_argument("--json", action="store_true")
    se.set_defaults(func=cmd_search)

    d = sub.add_parser(
        "demo",
        help="run the daemon on the embedded defaults and place sample calls to it live",
    )
    d.add_argument("--calls", type=int, help="calls at once (default: one per sample)")
    d.add_argument("--offline", action="store_true", help="score the samples from files")
    d.set_defaults(func=cmd_demo)

    st = sub.add_parser("settings", help="print the settings table")
    st.set_defaults(func=cmd_settings)
    _add_telephony_commands(sub)
    _add_plugin_commands(sub)
    return p


def _add_plugin_commands(sub: Any) -> None:
    """Commands of packages above core (the admin web), found by the ``callqa.commands``
    entry point, so that core does not import them."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="callqa.commands"):
        try:
            add = ep.load()
        except ImportError as exc:
            logger.debug("command %s not available: %s", ep.name, exc)
            continue
        add(sub)


def _add_telephony_commands(sub: Any) -> None:
    """Commands that receive calls through the telephony package, and the daemon's."""
    from core.cli import bench as cli_bench
    from core.cli import capture as cli_capture
    from core.cli import doctor as cli_doctor
    from core.cli import gpu as cli_gpu
    from core.cli import import_pcap as cli_import_pcap
    from core.cli import listen as cli_listen
    from core.cli import receive as cli_receive
    from core.cli import retention as cli_retention
    from core.cli import serve as cli_serve
    from telephony import cli_simulate

    cli_receive.add_parser(sub)
    cli_import_pcap.add_parser(sub)
    cli_serve.add_parsers(sub)
    cli_retention.add_parser(sub)
    cli_simulate.add_simulate_command(sub)
    cli_bench.add_parser(sub)
    cli_gpu.add_parser(sub)
    cli_listen.add_parser(sub)
    cli_capture.add_parser(sub)
    cli_doctor.add_parser(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    try:
        try:
            config = _config(args)
        except ConfigError:
            if not getattr(args, "reports_bad_settings", False):
                raise
            config = _config(args, flags_only=True)
        return func(args, config)
    except (AudioFileError, RubricError, ConfigError, UsageError) as exc:
        print(f"callqa: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as exc:
        print(f"callqa: error: {exc.filename}: no such file", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as exc:
        print(f"callqa: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
