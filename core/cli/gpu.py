"""`callqa gpu-check`: can this box run Whisper on the GPU? Exit 0 if so, 1 (and why) if not."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.config import Settings

EXIT_USABLE = 0
EXIT_NOT_USABLE = 1


def add_parser(subparsers: Any) -> None:
    g = subparsers.add_parser(
        "gpu-check",
        help="check that Whisper can run on the GPU here (exit 0) or say why not (exit 1)",
    )
    g.add_argument("--json", action="store_true", help="print the report as JSON")
    g.add_argument("--device-index", type=int, default=0, help="GPU to check (default: 0)")
    g.add_argument(
        "--no-model",
        action="store_true",
        help="do not load the configured model on the GPU (check libraries and devices only)",
    )
    g.set_defaults(func=cmd_gpu_check)


def cmd_gpu_check(args: argparse.Namespace, config: Settings) -> int:
    from core.asr.device import diagnose

    def model_path() -> Path:
        from core.asr.models import resolve_model

        return resolve_model(config.model, config.data_dir).path

    report = diagnose(None if args.no_model else model_path, args.device_index)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print("\n".join(report.lines()))
    if report.usable:
        return EXIT_USABLE
    print(f"callqa gpu-check: GPU path not usable: {report.verdict}", file=sys.stderr)
    return EXIT_NOT_USABLE
