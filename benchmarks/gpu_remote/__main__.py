"""``scripts/gpu-check-remote STEP``: pack here, then receive, assemble and check on the device.

pack      here: gather wheels, models and audio; write .gpu-pack/part-NN; print the plan
plan      here: print the device calls for the pack as it is (carry and command each)
receive   device, calls 1..n-1: check the parts that arrived (--survey: the machine too)
assemble  device, last call: join the parts (hash-checked), install the wheels
check     device, last call: the GPU attempts (a), (b), and the measurements if it runs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from benchmarks.gpu_remote.chunks import MIB, PackError, read_manifest

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / ".gpu-pack"
CHECK_BUDGET_S = 420
RECEIVE_TIMEOUT_S = 120
LAST_TIMEOUT_S = 600


def out_dir(args: argparse.Namespace) -> Path | None:
    given = args.out or os.environ.get("OUT")
    return Path(given) if given else None


def plan_lines(pack_dir: Path, budget_s: int = CHECK_BUDGET_S) -> list[str]:
    """The device calls, in order: what each carries and runs, as the device tool takes them."""
    from benchmarks.gpu_remote.pack import CALL_LIMIT_MIB, tree_bytes

    manifest = read_manifest(pack_dir)
    parts = sorted(manifest["parts"])
    tree = tree_bytes()
    try:
        rel: Path | str = pack_dir.resolve().relative_to(REPO.resolve())
    except ValueError:
        rel = pack_dir  # outside the repository: a call cannot carry it (pack refuses it)
    groups: dict[str, set[str]] = {}
    for f in manifest["files"]:
        for p in f["pieces"]:
            groups.setdefault(f"part-{p['part']:02d}", set()).add(f["group"])
    lines = [
        f"{len(parts)} device calls; the working tree is {tree / MIB:.1f} MiB of each "
        f"call's {CALL_LIMIT_MIB} MiB. Make each call as soon as the one before returns "
        "(a machine stays warm about 30 s). If a receive lists as missing a part already "
        "sent, the machine was replaced: send the parts it lists again."
    ]
    if tree > CALL_LIMIT_MIB * MIB / 2:
        lines.append(f"The working tree alone is {tree / MIB:.1f} MiB: ignore or remove the "
                     "untracked files `git status` lists, then pack again.")  # fmt: skip
    for n, part in enumerate(parts, 1):
        last = n == len(parts)
        if last:
            command = (
                "bash scripts/gpu-check-remote assemble && "
                f"bash scripts/gpu-check-remote check --budget-s {budget_s}"
            )
        else:
            command = "bash scripts/gpu-check-remote receive" + (" --survey" if n == 1 else "")
        size = manifest["parts"][part]
        total = (size + tree) / MIB
        warn = "" if total < CALL_LIMIT_MIB else f"  OVER {CALL_LIMIT_MIB} MiB: pack again"
        call = {
            "command": command,
            "carry": [f"{rel}/{part}"],
            "timeout_s": LAST_TIMEOUT_S if last else RECEIVE_TIMEOUT_S,
        }
        lines.append(
            f"call {n}/{len(parts)} ({size / MIB:.1f} MiB + tree = {total:.1f} MiB; "
            f"{', '.join(sorted(groups.get(part, ())))}){warn}"
        )
        lines.append("  run " + json.dumps(call))
    return lines


def cmd_pack(args: argparse.Namespace) -> int:
    from benchmarks.gpu_remote.pack import make_pack
    from core.config import load_settings

    data_dir = args.data_dir or load_settings(None).data_dir
    corpus = None if args.no_audio else args.corpus
    manifest = make_pack(
        args.pack,
        data_dir=data_dir,
        corpus=corpus,
        tiny=not args.no_tiny,
        part_mib=args.part_mib,
        audio_files=args.audio_files,
    )
    for part, size in sorted(manifest["parts"].items()):
        print(f"{part}: {size / MIB:.1f} MiB")
    print("\n".join(plan_lines(args.pack)))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    print("\n".join(plan_lines(args.pack, args.budget_s)))
    return 0


def cmd_receive(args: argparse.Namespace) -> int:
    from benchmarks.gpu_remote.assemble import receive, survey, write_json

    report: dict[str, Any] = {"receive": receive(args.pack)}
    if args.survey:
        report["machine"] = survey()
    write_json(report, out_dir(args), "receive.json")
    return 0


def cmd_assemble(args: argparse.Namespace) -> int:
    from benchmarks.gpu_remote.assemble import assemble, write_json

    report = assemble(args.pack, install=not args.no_install)
    write_json(report, out_dir(args), "assemble.json")
    return 0 if report.get("install", {"ok": True})["ok"] else 1


def cmd_check(args: argparse.Namespace) -> int:
    from benchmarks.gpu_remote.check import BENCH_LINES, BENCH_STEP_S, Check

    site: Path | None = args.pack / "site"
    marker = args.pack / "site-python.txt"
    if args.no_site or site is None or not site.is_dir():
        site = None
    elif (
        marker.is_file()
        and marker.read_text().strip() != f"{sys.version_info[0]}.{sys.version_info[1]}"
    ):
        print(
            f"{site} was installed for Python {marker.read_text().strip()}: not used here",
            file=sys.stderr,
        )
        site = None
    out = out_dir(args) or args.pack / "out"
    check = Check(args.pack, out, args.budget_s, site, model=args.model)
    code = check.run_all(
        bench_lines=args.bench_lines or BENCH_LINES, bench_step_s=args.bench_step_s or BENCH_STEP_S
    )
    print(
        json.dumps(
            {
                "gpu_runs": check.report["gpu_runs"],
                "verdict": check.report["verdict"],
                "report": str(out / "check.json"),
            },
            indent=1,
        )
    )
    return code


def cmd_probe(args: argparse.Namespace) -> int:
    from benchmarks.gpu_remote.probe import probe

    return probe(args.model, args.steps, args.audio, args.compute_type)


def cmd_measure(args: argparse.Namespace) -> int:
    from benchmarks.gpu_remote.check import BATCHES, COMPUTE_TYPES
    from benchmarks.gpu_remote.probe import measure

    batches = [int(b) for b in args.batches.split(",")] if args.batches else list(BATCHES)
    types = args.compute_types.split(",") if args.compute_types else list(COMPUTE_TYPES)
    report = measure(
        args.model,
        args.out,
        device=args.device,
        compute_types=types,
        batches=batches,
        audio_dir=args.audio,
        budget_s=args.budget_s,
    )
    print(json.dumps(report, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/gpu-check-remote",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pack", type=Path, default=PACK, help="pack folder (default .gpu-pack)")
    sub = p.add_subparsers(dest="step", required=True)
    s = sub.add_parser("pack", help="gather and cut the pack (here, with network)")
    s.add_argument("--data-dir", type=Path, help="where the base model is assembled")
    s.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus-b")
    s.add_argument("--audio-files", type=int, default=8)
    s.add_argument("--no-audio", action="store_true")
    s.add_argument("--no-tiny", action="store_true", help="leave Whisper tiny.en out")
    s.add_argument("--part-mib", type=int, default=56, help="most MiB in one part")
    s.set_defaults(func=cmd_pack)
    s = sub.add_parser("plan", help="print the device calls for the pack")
    s.add_argument("--budget-s", type=int, default=CHECK_BUDGET_S)
    s.set_defaults(func=cmd_plan)
    for name, func, helptext in (
        ("receive", cmd_receive, "check the parts that arrived"),
        ("assemble", cmd_assemble, "join the parts, install wheels"),
    ):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--out", type=Path, help="report folder (default: $OUT)")
        s.set_defaults(func=func)
    sub.choices["receive"].add_argument("--survey", action="store_true")
    sub.choices["assemble"].add_argument("--no-install", action="store_true")
    s = sub.add_parser("check", help="the GPU attempts and the measurements")
    s.add_argument("--budget-s", type=float, default=CHECK_BUDGET_S)
    s.add_argument("--out", type=Path, help="report folder (default: $OUT, else PACK/out)")
    s.add_argument("--model", type=Path, help="base model folder (default: from the pack)")
    s.add_argument("--no-site", action="store_true", help="use this Python's own packages")
    s.add_argument("--bench-lines", help="ladder for callqa bench on the GPU")
    s.add_argument("--bench-step-s", type=float)
    s.set_defaults(func=cmd_check)
    s = sub.add_parser("probe", help="(run by check) the CUDA steps, one process")
    s.add_argument("--model", type=Path, required=True)
    s.add_argument("--steps", type=Path, required=True)
    s.add_argument("--audio", type=Path)
    s.add_argument("--compute-type", default="float16")
    s.set_defaults(func=cmd_probe)
    s = sub.add_parser("measure", help="(run by check) batch size against latency")
    s.add_argument("--model", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--audio", type=Path)
    s.add_argument("--device", default="cuda")
    s.add_argument("--compute-types")
    s.add_argument("--batches")
    s.add_argument("--budget-s", type=float, default=120.0)
    s.set_defaults(func=cmd_measure)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except PackError as exc:
        print(f"gpu-check-remote {args.step}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
