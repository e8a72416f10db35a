"""Capacity benchmark runs: one row each in ``benchmark_runs`` (migration 2).

`save_benchmark` stores a `core.live.bench.BenchmarkOutcome` with every step's figures as
JSON; `last_benchmark` reads the newest run back, e.g. for the daemon's status.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from core.storage.repository import write_transaction

if TYPE_CHECKING:
    from core.live.bench import BenchmarkOutcome

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


def save_benchmark(db: Database, outcome: BenchmarkOutcome, kind: str = "daemon") -> int:
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


def last_benchmark(db: Database, kind: str | None = None) -> dict[str, Any] | None:
    """The newest benchmark run (of ``kind`` when given), None when none was stored.

    The row's columns, with ``steps``: the list of step dicts decoded from ``steps_json``.
    """
    sql = f"SELECT {', '.join(COLUMNS)} FROM benchmark_runs"
    args: list[Any] = []
    if kind is not None:
        sql += " WHERE kind = ?"
        args.append(kind)
    sql += " ORDER BY finished_at DESC, id DESC LIMIT 1"
    row = db.execute(sql, args).fetchone()
    if row is None:
        return None
    out = dict(zip(COLUMNS, row, strict=True))
    out["steps"] = json.loads(out["steps_json"] or "[]")
    return out
