"""`scripts/fuzz [--seconds N | --inputs N] [TARGET...]`: fuzz the parsers of outside input.

Each target runs under atheris in a process of its own (`tests.fuzz.worker`), seeded from the
test fixtures. Per target it prints the inputs tried, libFuzzer's coverage figures (`cov`:
code edges reached, `ft`: features) and what crashed or hung. A crashing or hanging input is
kept under tests/fuzz/crashers/TARGET/, where tests/fuzz/test_crashers.py replays it; the
exit status is 1 when any target crashed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
CRASHERS = Path(__file__).resolve().parent / "crashers"
TOKENS = Path(__file__).resolve().parent / "tokens.dict"
ARTIFACT_KINDS = ("crash", "timeout", "oom", "leak", "slow-unit")
DEFAULT_INPUTS = 10_000
INPUT_TIMEOUT_S = 10
RSS_LIMIT_MB = 2048
MAX_INPUT_BYTES = 16_384

_COV = re.compile(r"\bcov: (\d+) ft: (\d+)")
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.M)


@dataclass
class Outcome:
    target: str
    inputs: int = 0
    cov: int = 0
    ft: int = 0
    exec_per_s: int = 0
    wall_s: float = 0.0
    returncode: int = 0
    artifacts: list[Path] = field(default_factory=list)
    log: str = ""

    @property
    def crashes(self) -> list[Path]:
        return [a for a in self.artifacts if not a.name.startswith("timeout-")]

    @property
    def hangs(self) -> list[Path]:
        return [a for a in self.artifacts if a.name.startswith("timeout-")]

    @property
    def lost_crash(self) -> bool:
        """The worker failed without keeping the input (a crash while reading its seeds)."""
        return self.returncode != 0 and not self.artifacts

    @property
    def failed(self) -> bool:
        return bool(self.artifacts) or self.returncode != 0


def _artifacts(folder: Path) -> set[Path]:
    if not folder.is_dir():
        return set()
    return {p for p in folder.iterdir() if p.name.startswith(ARTIFACT_KINDS)}


def run_target(
    name: str, *, inputs: int | None, seconds: float | None, crash_dir: Path, python: str
) -> Outcome:
    """Run one target in its own process and read libFuzzer's report."""
    folder = crash_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    before = _artifacts(folder)
    flags = [
        f"-artifact_prefix={folder}/",
        f"-timeout={INPUT_TIMEOUT_S}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-max_len={MAX_INPUT_BYTES}",
        f"-dict={TOKENS}",
        "-print_final_stats=1",
    ]
    if seconds is not None:
        flags.append(f"-max_total_time={max(1, round(seconds))}")
    if inputs is not None:
        flags.append(f"-runs={inputs}")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"callqa-fuzz-{name}-") as corpus:
        proc = subprocess.run(
            [python, "-m", "tests.fuzz.worker", name, corpus, *flags],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            check=False,
        )
    outcome = Outcome(name, wall_s=time.monotonic() - started, returncode=proc.returncode)
    outcome.log = proc.stdout
    stats = dict(_STAT.findall(proc.stdout))
    outcome.inputs = int(stats.get("number_of_executed_units", 0))
    outcome.exec_per_s = int(stats.get("average_exec_per_sec", 0))
    covs = _COV.findall(proc.stdout)
    if covs:
        outcome.cov, outcome.ft = (int(x) for x in covs[-1])
    outcome.artifacts = sorted(_artifacts(folder) - before)
    return outcome


def _excerpt(log: str, lines: int = 14) -> str:
    """The part of a worker's log that says what went wrong."""
    at = log.find("=== Uncaught Python exception")
    if at < 0:
        at = max(log.find("ERROR: libFuzzer"), 0)
    return "\n".join(log[at:].splitlines()[:lines])


def print_report(outcomes: list[Outcome]) -> None:
    head = f"{'target':<12} {'inputs':>10} {'cov':>6} {'ft':>6} {'exec/s':>7} {'wall s':>7}"
    print(f"{head} {'crashes':>7} {'hangs':>5}")
    for o in outcomes:
        print(
            f"{o.target:<12} {o.inputs:>10,} {o.cov:>6} {o.ft:>6} {o.exec_per_s:>7}"
            f" {o.wall_s:>7.1f} {len(o.crashes) + o.lost_crash:>7} {len(o.hangs):>5}"
        )
    for o in outcomes:
        for artifact in o.artifacts:
            shown = artifact.relative_to(ROOT) if artifact.is_relative_to(ROOT) else artifact
            print(f"\n{o.target}: kept {shown}")
        if o.failed:
            print(_excerpt(o.log) or f"{o.target}: the worker exited with status {o.returncode}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/fuzz", description="Coverage-guided fuzzing of the parsers of outside input."
    )
    parser.add_argument("--seconds", type=float, help="run each target this long")
    parser.add_argument(
        "--inputs",
        type=int,
        help=f"inputs per target (default {DEFAULT_INPUTS:,}); with --seconds, whichever first",
    )
    parser.add_argument("--jobs", type=int, default=1, help="targets run at once (default 1)")
    parser.add_argument(
        "--crash-dir",
        type=Path,
        default=CRASHERS,
        help="where crashing inputs are kept, one folder per target (default tests/fuzz/crashers)",
    )
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument("targets", nargs="*", metavar="TARGET", help="targets (default: all)")
    args = parser.parse_args(argv)
    if args.list:
        for t in TARGETS.values():
            print(f"{t.name:<12} {t.what}")
        return 0
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; targets: {', '.join(TARGETS)}")
    names = args.targets or list(TARGETS)
    inputs = args.inputs if args.inputs is not None or args.seconds is not None else DEFAULT_INPUTS

    def one(name: str) -> Outcome:
        return run_target(
            name,
            inputs=inputs,
            seconds=args.seconds,
            crash_dir=args.crash_dir.resolve(),
            python=sys.executable,
        )

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(pool.map(one, names))
    print_report(outcomes)
    return 1 if any(o.failed for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
