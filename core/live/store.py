"""What the live engine's storage writer thread runs: the SQL side of live calls."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from core.calldata import CallResult
from core.config import Config
from core.storage import repository

RECOVERABLE = ("live", "ending")
"""Statuses of calls a stop cut short: scored from their recordings at the next start."""


def team_of(db: Any, agent_id: str) -> str | None:
    row = db.execute("SELECT team_id FROM agents WHERE id = ?", [agent_id]).fetchone()
    return row[0] if row else None


def interrupted_calls(db: Any) -> list[dict[str, Any]]:
    marks = ", ".join("?" for _ in RECOVERABLE)
    rows = db.execute(
        f"SELECT id FROM calls WHERE status IN ({marks}) ORDER BY started_at", list(RECOVERABLE)
    ).fetchall()
    out = []
    for (call_id,) in rows:
        call = repository.get_call(db, call_id)
        if call is not None:
            out.append(call)
    return out


def store_live_call(
    db: Any, config: Config, record: repository.CallRecord, result: CallResult | None,
    recording: Path | None,
) -> Path | None:  # fmt: skip
    """File the recording under recordings/ and write the call's final rows."""
    target: Path | None = None
    if recording is not None and recording.is_file():
        target = repository.recording_path(config.data_dir, record.id, record.started_at)
        if recording.resolve() != target.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(recording), target)
        record.recording_path = str(target)
    try:
        if result is not None:
            repository.save_scored_call(db, record, result)
        else:
            repository.update_call(db, record)
    except BaseException:
        if target is not None and recording is not None and target != recording:
            shutil.move(str(target), recording)
        raise
    return target
