"""What both capacity benchmarks report, and how they judge a step.

`RunBenchmark` (`core.capacity.inprocess`: simulated lines fed into the running daemon's own
engine) and `callqa bench` (`core.capacity.ramp`: SIPREC calls from the simulator process to
a `callqa serve` child) differ only in how they place load. What a step and a run report,
and how a step is judged, is defined here once:

* latency: percentiles (`core.stats.percentile`) of the time from the end of the speech to
  its finished transcript, in milliseconds to 0.1 (`latency`);
* CPU: in percent of one core (100 % is one core busy for the whole step; a box with n cores
  reaches n × 100 %), `cpu_percent`. The ramp's ``*_cores`` figures are the same unit over
  100 (1.0 is one core);
* the ASR backlog, sampled once a second: its two halves and whether it keeps growing
  (`backlog_halves`, `backlog_growing`);
* the verdict (`judge`): a step is *sustained* when the box kept up (the benchmark found
  none of its problems: a growing backlog, utterances left queued, failed calls, dropped
  packets, no transcript at all), and *held* when it is sustained and its 95th percentile
  latency is within the deadline, the setting ``alert_deadline_s``;
* a run: its steps, and the most lines a step held (`Run.max_lines_held`) or sustained.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

from core.stats import percentile

DEFAULT_DEADLINE_MS = 2000.0
"""The default of ``alert_deadline_s``, in milliseconds."""
HELD_PERCENTILE = 95.0
"""The latency percentile that must be within the deadline for a step to hold."""
GROWTH_MIN = 2.0
GROWTH_FRACTION = 0.5
"""The backlog grows when the mean of the second half of a step's samples exceeds the first
half's by more than ``GROWTH_MIN`` utterances and by more than this fraction of it."""
MIN_WALL_S = 1e-6
NO_TRANSCRIPT = "no transcript finished during the step"
NO_EARLY_CONFIGS = ("front-end", "baseline")
"""Configurations of `callqa bench` whose transcripts never come from an early decode: the
front end transcribes nothing, the baseline turns early decodes off."""


# ---------------------------------------------------------------- figures


@dataclass(frozen=True)
class Latency:
    """Percentiles of a step's latencies, in milliseconds to 0.1; None when there are none."""

    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def latency(values_ms: Sequence[float]) -> Latency:
    """The latency figures of ``values_ms`` (end of speech to transcript, milliseconds)."""
    return Latency(
        count=len(values_ms),
        p50_ms=_ms(percentile(values_ms, 50)),
        p95_ms=_ms(percentile(values_ms, HELD_PERCENTILE)),
        p99_ms=_ms(percentile(values_ms, 99)),
        max_ms=_ms(max(values_ms)) if len(values_ms) else None,
    )


def cpu_cores(cpu_s: float, wall_s: float) -> float:
    """CPU seconds per second of wall time: 1.0 is one core busy all the time."""
    return cpu_s / max(wall_s, MIN_WALL_S)


def cpu_percent(cpu_s: float, wall_s: float) -> float:
    """CPU use in percent of one core (100: one core busy all the time)."""
    return 100.0 * cpu_cores(cpu_s, wall_s)


def early_share(config: str, early_used: int, transcripts: int) -> float | None:
    """The share of a step's finished transcripts taken from an early decode
    (``live_early_decode_s``); None where it means nothing (see ``NO_EARLY_CONFIGS``) or no
    transcript finished."""
    if config in NO_EARLY_CONFIGS or transcripts <= 0:
        return None
    return early_used / transcripts


def backlog_halves(samples: Sequence[float]) -> tuple[float, float]:
    """Mean of the first and of the second half of the samples (0, 0 when there are none)."""
    if not samples:
        return 0.0, 0.0
    half = max(1, len(samples) // 2)
    second = samples[half:] or samples[-1:]
    return statistics.fmean(samples[:half]), statistics.fmean(second)


def backlog_growing(samples: Sequence[float]) -> bool:
    """Whether the second half of the samples runs clearly above the first half."""
    if len(samples) < 2:
        return False
    first, second = backlog_halves(samples)
    return second - first > max(GROWTH_MIN, GROWTH_FRACTION * first)


# ---------------------------------------------------------------- the verdict


@dataclass(frozen=True)
class Verdict:
    held: bool
    """In real time: sustained, and the p95 latency within the deadline."""
    sustained: bool
    """Kept up, whatever the latency."""
    note: str
    """Why the step did not hold, one reason after the other; empty when it held."""


def judge(
    p95_ms: float | None, deadline_ms: float, problems: Sequence[str], *, timed: bool = True
) -> Verdict:
    """The verdict on a step: ``problems`` are the ways the box did not keep up, found by the
    benchmark; ``timed=False`` (ASR off: no transcripts) judges on them alone."""
    reasons = list(problems)
    late = []
    if timed:
        if p95_ms is None:
            reasons.insert(0, NO_TRANSCRIPT)
        elif p95_ms > deadline_ms:
            late.append(f"p95 {p95_ms:.0f} ms over the {deadline_ms:.0f} ms deadline")
    sustained = not reasons
    return Verdict(held=sustained and not late, sustained=sustained,
                   note="; ".join(late + reasons))  # fmt: skip


# ---------------------------------------------------------------- steps and runs


@dataclass(frozen=True, kw_only=True)
class Step:
    """The figures of one step (one number of simultaneous lines) of either benchmark."""

    lines: int
    """Lines running during the step."""
    latency_p50_ms: float | None
    """Median latency of the finished transcripts; None when none finished."""
    latency_p95_ms: float | None
    latency_max_ms: float | None
    backlog_max: int
    """Most utterances queued or decoding at once."""
    backlog_growing: bool
    held: bool = False
    """In real time: sustained, and the p95 latency within the deadline."""
    sustained: bool = False
    """Kept up, whatever the latency."""
    note: str = ""
    """Why the step did not hold; empty when it held."""

    def judged(self, verdict: Verdict) -> Self:
        """This step with ``verdict``."""
        return dataclasses.replace(self, held=verdict.held, sustained=verdict.sustained,
                                   note=verdict.note)  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


S = TypeVar("S", bound=Step)


@dataclass(kw_only=True)
class Run(Generic[S]):
    """One benchmark run: its steps, in order, and what it ran on."""

    steps: list[S]
    asr_device: str
    compute_type: str
    model_name: str
    started_at: str
    """ISO 8601, UTC."""
    finished_at: str = ""
    summary: str = ""
    """One paragraph, for people."""
    deadline_ms: float = DEFAULT_DEADLINE_MS

    @property
    def held_step(self) -> S | None:
        """The step with the most lines that held."""
        held = [s for s in self.steps if s.held]
        return max(held, key=lambda s: s.lines) if held else None

    @property
    def max_lines_held(self) -> int:
        """Most lines a step held; 0 when none did."""
        step = self.held_step
        return step.lines if step else 0

    @property
    def max_lines_sustained(self) -> int:
        return max((s.lines for s in self.steps if s.sustained), default=0)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["max_lines_held"] = self.max_lines_held
        out["max_lines_sustained"] = self.max_lines_sustained
        return out
