"""Capacity benchmark runs: one row each in ``benchmark_runs`` (migration 2).

`save_benchmark` stores a benchmark run (the daemon's in-process `RunBenchmark`, kind
``daemon``, or a `callqa bench` ramp: kind ``capacity-<configuration>``) with every step's
figures as JSON; `last_benchmark` reads the newest run of the kinds asked for back. What the
box reports as its own capacity is the newest run of `BOX_KINDS`: never `callqa bench`'s
baseline (deliberately weak, and stored last) nor its front end (ASR off).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Protocol

from sqlite_utils import Database

from core.storage.repository import write_transaction


class _Step(Protocol):
    def to_json(self) -> dict[str, Any]: ...


class BenchmarkRun(Protocol):
    """What a stored run needs: `core.capacity.inprocess.BenchmarkOutcome` and
    `core.capacity.ramp.RampOutcome` both have it."""

    @property
    def steps(self) -> Sequence[_Step]: ...
    @property
    def max_lines_held(self) -> int: ...
    @property
    def asr_device(self) -> str: ...
    @property
    def compute_type(self) -> str: ...
    @property
    def model_name(self) -> str: ...
    @property
    def started_at(self) -> str: ...
    @property
    def finished_at(self) -> str: ...
    @property
    def summary(self) -> str: ...

KIND_DAEMON = "daemon"
"""`RunBenchmark`: the daemon's in-process benchmark, on its own configuration."""
KIND_CAPACITY = "capacity-"
"""`callqa bench`: this, then the configuration (``callqa``, ``baseline``, ``front-end``)."""
BOX_KINDS = (KIND_DAEMON, KIND_CAPACITY + "callqa")
"""Runs of the box's own configuration."""

COLUMNS = ("id", "started_at", "finished_at", "kind", "max_lines_held", "asr_device",
           "compute_type", "model_name", "steps_json", "summary")  # fmt: skip


def _finite(value: Any) -> Any:
    """The value with NaN and infinities replaced by None (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def save_benchmark(db: Database, outcome: BenchmarkRun, kind: str = KIND_DAEMON) -> int:
    """Store one benchmark run; returns its id."""
    steps = _finite([step.to_json() for step in outcome.steps])
    with write_transaction(db):
        cursor = db.execute(
            "INSERT INTO benchmark_runs (started_at, finished_at, kind, max_lines_held,"
            " asr_device, compute_type, model_name, steps_json, summary)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                outcome.started_at, outcome.finished_at, kind, int(outcome.max_lines_held),
                outcome.asr_device, outcome.compute_type, outcome.model_name,
                json.dumps(steps, ensure_ascii=False, allow_nan=False), outcome.summary,
            ],
        )  # fmt: skip
        run_id = cursor.lastrowid
    if run_id is None:
        raise RuntimeError("the benchmark run was not stored")
    return int(run_id)


def last_benchmark(
    db: Database, kind: str | Sequence[str] | None = None
) -> dict[str, Any] | None:
    """The newest benchmark run (of ``kind``, or of any of the kinds, when given), None when
    none was stored.

    The row's columns, with ``steps``: the list of step dicts decoded from ``steps_json``.
    """
    sql = f"SELECT {', '.join(COLUMNS)} FROM benchmark_runs"
    args: list[Any] = []
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        sql += f" WHERE kind IN ({', '.join('?' * len(kinds))})"
        args.extend(kinds)
    sql += " ORDER BY finished_at DESC, id DESC LIMIT 1"
    row = db.execute(sql, args).fetchone()
    if row is None:
        return None
    out = dict(zip(COLUMNS, row, strict=True))
    out["steps"] = json.loads(out["steps_json"] or "[]")
    return out
