"""`callqa doctor`: check the box and say what is wrong and how to fix it.

Each check is a function that returns one `CheckResult` (ok, warn or fail, a message, a
fix). Exit status 0 when no check failed (warnings are printed but pass, unless --strict),
1 otherwise. When the settings do not load, the settings check says why and the other
checks run on the defaults and the command-line flags.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from core.cli.doctor import box, checks, network
from core.cli.doctor.result import CheckResult, Status
from core.config import Settings

EXIT_ALL_WELL = 0
EXIT_PROBLEMS = 1

CHECKS: dict[str, Callable[[checks.Context], CheckResult]] = {
    "settings": checks.check_settings,
    "model": checks.check_model,
    "speech-check": checks.check_speech_check,
    "sip-port": network.check_sip_port,
    "rtp-ports": network.check_rtp_ports,
    "grpc-port": network.check_grpc_port,
    "admin-port": network.check_admin_port,
    "metrics-port": network.check_metrics_port,
    "peers": network.check_peers,
    "data-folder": checks.check_data_folder,
    "database": checks.check_database,
    "gpu": checks.check_gpu,
    "clock": lambda ctx: box.check_clock(),
    "cpu": lambda ctx: box.check_cpu(),
}
"""Every check by name, in the order they run (the model before the GPU, which reuses it)."""


def add_parser(subparsers: Any) -> None:
    d = subparsers.add_parser(
        "doctor",
        help="check the box (model, ports, peers, disk, GPU, clock, settings, database, CPU) "
        "and say how to fix what is wrong; exit 0 when no check fails",
    )
    d.add_argument("--json", action="store_true", help="print the results as JSON")
    d.add_argument(
        "--only",
        action="append",
        choices=list(CHECKS),
        metavar="CHECK",
        help=f"run only this check (repeat for more): {', '.join(CHECKS)}",
    )
    d.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    d.set_defaults(func=cmd_doctor, reports_bad_settings=True)


def run_checks(ctx: checks.Context, names: list[str] | None = None) -> list[CheckResult]:
    """The results of the checks named (all by default), in CHECKS order."""
    wanted = set(names or CHECKS)
    results = []
    for name, check in CHECKS.items():
        if name not in wanted:
            continue
        try:
            results.append(check(ctx))
        except Exception as exc:  # a check that breaks is a finding, not a crash
            results.append(
                CheckResult(
                    name,
                    Status.FAIL,
                    f"the check itself failed: {exc!r}",
                    "report this with the output of `callqa -vv doctor`",
                )
            )
    return results


def cmd_doctor(args: argparse.Namespace, config: Settings) -> int:
    ctx = checks.Context(settings=config, config_file=args.config)
    results = run_checks(ctx, args.only)
    if len(results) > 1 and results[0].name == "settings" and results[0].status is Status.FAIL:
        first = results[0]
        note = " (the other checks ran on the defaults and the command-line flags)"
        results[0] = CheckResult(first.name, first.status, first.message + note, first.fix)
    failed = [r for r in results if r.status is Status.FAIL]
    warned = [r for r in results if r.status is Status.WARN]
    all_well = not failed and not (args.strict and warned)
    if args.json:
        out = {
            "ok": all_well,
            "failed": len(failed),
            "warnings": len(warned),
            "checks": [r.to_json() for r in results],
        }
        json.dump(out, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print("\n".join(format_results(results)))
    return EXIT_ALL_WELL if all_well else EXIT_PROBLEMS


MARKS = {Status.OK: "ok", Status.WARN: "WARN", Status.FAIL: "FAIL"}


def format_results(results: list[CheckResult]) -> list[str]:
    width = max((len(r.name) for r in results), default=0) + 2
    lines = []
    for r in results:
        lines.append(f"{MARKS[r.status]:<5} {r.name:<{width}}{r.message}")
        if r.fix:
            lines.append(f"{'':<5} {'':<{width}}fix: {r.fix}")
    failed = sum(r.status is Status.FAIL for r in results)
    warned = sum(r.status is Status.WARN for r in results)
    lines.append(f"{len(results)} checks: {failed} failed, {warned} warnings")
    return lines
