"""Overload soak: twice the lines this box holds, for minutes, through the real SIPREC path.

Usage::

    python benchmarks/soak.py [RECORDING.wav | FOLDER ...] [--minutes 10] [--lines N]
        [--factor 2] [--call-s 60] [--probes 2] [--queue-memory-s 30] [--set NAME=VALUE ...]

The box's capacity is the lines its newest capacity benchmark held (``callqa bench`` or
``RunBenchmark``, stored in the box's database), or ``--lines``; the soak places ``--factor``
times as many SIPREC calls at once (`core.capacity.soak`) on a `callqa serve` child with the
box's ASR settings, ``sip_max_sessions`` at that load and ``asr_queue_memory_s`` at
``--queue-memory-s`` (so the backlog goes to disk), and offers ``--probes`` calls beyond the
limit in every round of calls, while every line is up. Then it prints what held
(`core.capacity.soak_checks`): the daemon stayed up, its peak memory and whether it stopped
growing, the backlog on disk and back, every call scored with all its utterances, every
recording equal sample for sample to what was sent, alerts past the deadline marked late,
503 with Retry-After beyond the limit. The exit status is 1 when any of it failed.

Without recordings the calls play the Mandarin sample calls, as ``callqa bench`` does. Run it
when the box takes no live calls: it loads the CPU for the whole soak.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.capacity.load import load_sources
from core.capacity.soak import SoakPlan, run_soak
from core.capacity.soak_checks import check_soak, report
from core.cli.bench import box_settings, parse_sets, recordings_from
from core.config import ConfigError, Settings, load_settings, settings_file
from core.storage.benchmarks import BOX_KINDS, last_benchmark
from core.storage.db import open_db


def measured_capacity(config: Settings) -> int:
    """Lines the newest capacity benchmark of the box's own configuration held; 0 if none."""
    if not config.db_path.is_file():
        return 0
    db = open_db(config.db_path)
    try:
        run = last_benchmark(db, BOX_KINDS)
    finally:
        db.close()
    return int(run["max_lines_held"]) if run else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "recordings",
        nargs="*",
        type=Path,
        help="stereo 8 kHz WAV files or folders of them (default: the samples)",
    )
    p.add_argument("--minutes", type=float, default=10.0, help="how long the load lasts")
    p.add_argument(
        "--lines",
        type=int,
        help="lines the box holds (default: its newest capacity benchmark in the database)",
    )
    p.add_argument("--factor", type=float, default=2.0, help="load, in times the capacity")
    p.add_argument("--call-s", type=float, default=60.0, help="length of each call")
    p.add_argument(
        "--probes", type=int, default=2, help="calls offered beyond sip_max_sessions in every round"
    )
    p.add_argument(
        "--queue-memory-s",
        type=float,
        default=30.0,
        help="the daemon's asr_queue_memory_s (small: the backlog goes to disk)",
    )
    p.add_argument(
        "--drain-timeout-s",
        type=float,
        default=1800.0,
        help="longest wait for the box to finish the calls after the load",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change a setting of the daemon (repeatable)",
    )
    p.add_argument("--config", type=Path, help="the box's settings file")
    p.add_argument("--work-dir", type=Path, help="folder for the daemon's data and logs")
    args = p.parse_args(argv)
    try:
        config = load_settings(args.config)
        capacity = args.lines if args.lines is not None else measured_capacity(config)
        if capacity < 1:
            raise ConfigError(f"no capacity benchmark in {config.db_path}: run `callqa bench` "
                              "first, or give the lines the box holds with --lines")  # fmt: skip
        changes = parse_sets(args.set)
        if args.minutes <= 0 or args.call_s <= 0 or args.factor <= 0:
            raise ConfigError("--minutes, --call-s and --factor must be above 0")
    except ConfigError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="callqa-soak-"))
    sources = load_sources(recordings_from(args.recordings, work))
    plan = SoakPlan(
        lines=max(1, round(args.factor * capacity)), minutes=args.minutes, call_s=args.call_s,
        probes=args.probes, queue_memory_s=args.queue_memory_s,
        drain_timeout_s=args.drain_timeout_s, deadline_s=config.alert_deadline_s,
    )  # fmt: skip
    print(f"soak: capacity {capacity} lines "
          f"({'--lines' if args.lines is not None else 'newest capacity benchmark'}), "
          f"load {plan.lines} lines for {plan.minutes:g} min", flush=True)  # fmt: skip
    box = {**box_settings(config), **changes}
    run = run_soak(plan, box, sources, work, config_file=settings_file(args.config),
                   say=lambda text: print(text, flush=True))  # fmt: skip
    checks = check_soak(run)
    print()
    print(report(run, checks))
    return 0 if all(c.held for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
