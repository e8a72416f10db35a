"""`callqa bench`: the capacity ramp, against a baseline in the same run.

    callqa bench [RECORDING.wav | FOLDER ...] [--lines 1,2,4,8,...] [--step-s 60]
        [--baseline-lines 1,2,3] [--set NAME=VALUE ...] [--no-baseline] [--front-end]
        [--out DIR] [--no-store] [--no-findings-check]

Without recordings the calls play the Mandarin sample calls (rendered with espeak-ng, as
`callqa demo` does). Each configuration runs in its own `callqa serve` child with its own
data folder, started over the box's settings file (``--config``, ``CALLQA_CONFIG`` or
``/etc/callqa/callqa.toml``), with the box's ASR settings (model, device, compute type, beam,
threads, batch, window, parts) as this command read them, global ``--model`` and
``--device`` included, so the run measures this box as configured. Run it off-hours:
it competes with live calls for the CPU.

Configurations:

* ``callqa``: the box's settings, with ``--set`` changes;
* ``baseline``: what one builds without callqa's ASR scheduling: each utterance transcribed
  alone (batch 1, so nothing is batched across lines), padded to Whisper's fixed 30 s
  window, beam 5 (faster-whisper's default), no partial transcripts of turns in progress.
  Everything else (receive path, VAD, endpointer, rules, storage) is the same, so the ratio
  isolates the ASR policy;
* ``front-end`` (``--front-end``, instead of the two above): ``asr_enabled = false``,
  ingest to features only, on a ladder of hundreds of lines; it reports CPU per line.

Once the ``callqa`` ramp's daemon has stopped, the calls of its last step held and of its
last step kept up are scored again offline, with the same model and settings and the
rubric version each was scored with, and their stored findings compared with those
(`core.capacity.offline_check`); ``--no-findings-check`` skips it.

Results: the table on standard output, ``capacity.svg`` (p95 latency against lines) and
``capacity.json`` in ``--out`` (default: ``<data_dir>/benchmarks/<time>``), and one row per
configuration in the box's database (``benchmark_runs``) for the admin page.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core import clock
from core.capacity.load import Source, load_sources
from core.capacity.ramp import FRONT_END_LADDER, STEP_LADDER, RampOutcome, StepResult, run_ramp
from core.capacity.report import ratio_text, table, verdict, write_outputs
from core.config import SETTINGS, ConfigError, Settings, settings_file

BASELINE = {
    "asr_batch_size": "1",
    "asr_inter_threads": "1",
    "asr_window_min_s": "30",
    "asr_beam_size": "5",
    "live_partial_every_s": "0",
    "live_early_decode_s": "0",
}
FRONT_END = {"asr_enabled": "false"}
KNOWN = {s.name for s in SETTINGS}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="measure how many live lines this box holds (SIPREC calls end to end)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("recordings", nargs="*", type=Path,
                   help="stereo 8 kHz WAV files or folders of them (default: the samples)")
    p.add_argument("--lines", help="comma-separated ladder of concurrent lines "
                   f"(default {','.join(map(str, STEP_LADDER))}; with --front-end "
                   f"{','.join(map(str, FRONT_END_LADDER))})")
    p.add_argument("--baseline-lines", help="the baseline's own ladder (default: --lines)")
    p.add_argument("--step-s", type=float, default=60.0, help="length of each step's calls")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="change a setting of the measured configuration (repeatable)")
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline ramp")
    p.add_argument("--baseline-only", action="store_true", help="run the baseline ramp alone")
    p.add_argument("--front-end", action="store_true",
                   help="measure ingest to features alone (ASR off) instead")
    p.add_argument("--out", type=Path, help="folder for capacity.svg and capacity.json")
    p.add_argument("--no-store", action="store_true", help="keep no row in the database")
    p.add_argument("--work-dir", type=Path, help="folder for the daemons' data and logs")
    p.add_argument("--no-findings-check", action="store_true",
                   help="do not score the calls of the last steps held and kept up again "
                        "offline to compare their findings")
    p.set_defaults(func=run)
    return p  # fmt: skip


def parse_ladder(text: str | None, default: Sequence[int]) -> list[int]:
    if not text:
        return list(default)
    try:
        ladder = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise ConfigError(f"--lines must be comma-separated numbers, got {text!r}") from exc
    if not ladder or any(n < 1 for n in ladder) or ladder != sorted(set(ladder)):
        raise ConfigError(f"--lines must be rising numbers of 1 or more, got {text!r}")
    return ladder


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in KNOWN:
            raise ConfigError(f"--set {item!r}: expected NAME=VALUE with a known setting name")
        out[name] = value.strip()
    Settings().replace(**out)  # refuses values of the wrong type, naming them
    return out


def recordings_from(paths: Sequence[Path], work: Path) -> list[Path]:
    if not paths:
        from core.audio.samples import make_samples

        return [p for p in make_samples(work / "samples") if p.stem.startswith("zh-")]
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.wav"))
            if not found:
                raise ConfigError(f"{path}: no .wav files in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(2, "no such file", str(path))
    return files


def box_settings(settings: Settings) -> dict[str, str]:
    """The box's settings that shape the measurement (declared `measured`), as text."""
    return settings.measured()


def show_step(step: StepResult) -> None:
    p95 = "-" if step.latency_p95_ms is None else f"{step.latency_p95_ms:,.0f} ms"
    state = "held" if step.held else f"NOT held: {step.note}"
    print(f"  {step.config:>9} {step.lines:>4} lines: p95 {p95}, daemon "
          f"{100 * step.daemon_cores:.0f}% of a core, backlog {step.backlog_first_half:.1f}/"
          f"{step.backlog_second_half:.1f}, {state}", flush=True)  # fmt: skip


def run(args: argparse.Namespace, config: Settings) -> int:
    # The box's settings as this command read them (settings file, environment, the global
    # --model and --device flags); every daemon measured starts from the same file.
    box_file = settings_file(args.config)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="callqa-bench-"))
    sources: list[Source] = load_sources(recordings_from(args.recordings, work))
    changes = parse_sets(args.set)
    deadline_ms = 1000.0 * config.alert_deadline_s
    outcomes: list[RampOutcome] = []
    if args.front_end:
        ladder = parse_ladder(args.lines, FRONT_END_LADDER)
        plan = [("front-end", {**box_settings(config), **changes, **FRONT_END}, ladder)]
    else:
        ladder = parse_ladder(args.lines, STEP_LADDER)
        plan = []
        if not args.baseline_only:
            plan.append(("callqa", {**box_settings(config), **changes}, ladder))
        if not args.no_baseline:
            base_ladder = parse_ladder(args.baseline_lines, ladder)
            plan.append(("baseline", {**box_settings(config), **BASELINE}, base_ladder))
    print(f"callqa bench: {len(sources)} recordings, {args.step_s:g} s steps, ladder "
          f"{','.join(map(str, ladder))}, deadline {deadline_ms:.0f} ms; work in {work}",
          flush=True)  # fmt: skip
    for name, settings, steps in plan:
        print(f"{name}: {', '.join(f'{k}={v}' for k, v in sorted(settings.items()))}", flush=True)
        outcomes.append(run_ramp(
            name, settings, sources, ladder=steps, step_s=args.step_s,
            deadline_ms=deadline_ms, front_end=args.front_end, work_dir=work / name,
            progress=show_step, config_file=box_file,
            check_findings=name == "callqa" and not args.no_findings_check,
            say=lambda text: print(text, flush=True),
        ))  # fmt: skip
    print()
    print(table(outcomes))
    print()
    baseline = next((o for o in outcomes if o.config == "baseline"), None)
    ours = next((o for o in outcomes if o.config != "baseline"), None)
    print(verdict(ours, baseline) if ours else baseline.summary if baseline else "")
    if ours is not None and baseline is not None:
        # Stored with the run, for the admin page (the printed verdict has it already).
        ours.summary += "; " + ratio_text(ours, baseline)
    stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
    out_dir = args.out or (config.data_dir / "benchmarks" / stamp)
    title = f"callqa capacity, {outcomes[0].model_name} on {outcomes[0].asr_device}"
    for path in write_outputs(outcomes, out_dir, title):
        print(f"wrote {path}")
    if not args.no_store:
        store(config, outcomes)
    return 0


def store(config: Settings, outcomes: Sequence[RampOutcome]) -> None:
    from core.storage.benchmarks import KIND_CAPACITY, save_benchmark
    from core.storage.db import open_db

    config.data_dir.mkdir(parents=True, exist_ok=True)
    db = open_db(config.db_path)
    try:
        for outcome in outcomes:
            run_id = save_benchmark(db, outcome, kind=KIND_CAPACITY + outcome.config)
            print(f"stored benchmark run {run_id} ({outcome.config}) in {config.db_path}")
    finally:
        db.close()

