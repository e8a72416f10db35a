"""What the live engine's storage writer thread runs: the SQL side of live calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.calls import CallResult
from core.clock import utc_now_iso
from core.config import Settings
from core.storage import repository
from core.storage.filing import store_call

RECOVERABLE = ("live", "ending")
"""Statuses of calls a stop cut short: scored from their recordings at the next start."""


def team_of(db: Any, agent_id: str) -> str | None:
    row = db.execute("SELECT team_id FROM agents WHERE id = ?", [agent_id]).fetchone()
    return row[0] if row else None


def record_alert(db: Any, call_id: str, alert: dict[str, Any]) -> None:
    """Keep an alert in its call's row (``meta.alerts_raised``) as it is raised, so that a
    crash before the end of the call does not lose it."""
    with repository.write_transaction(db):
        db.execute(
            "UPDATE calls SET meta = json_set(coalesce(meta, '{}'), '$.alerts_raised', "
            "json_insert(coalesce(json_extract(meta, '$.alerts_raised'), '[]'), '$[#]', "
            "json(?))) WHERE id = ?",
            [json.dumps(alert), call_id],
        )


def mark_ending(db: Any, call_ids: list[str]) -> None:
    """Mark calls a stop ended before they were scored (``ending``), in one transaction:
    the next start scores them from their recordings."""
    now = utc_now_iso()
    with repository.write_transaction(db):
        for call_id in call_ids:
            db.execute("UPDATE calls SET status = 'ending', updated_at = ? WHERE id = ?",
                       [now, call_id])  # fmt: skip


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
    db: Any, config: Settings, record: repository.CallRecord, result: CallResult | None,
    recording: Path | None,
) -> Path | None:  # fmt: skip
    """File the recording under recordings/ and write the call's final rows (its row exists
    since the call started); without a recording on disk, the rows only."""
    if recording is not None and recording.is_file():
        return store_call(config, db, recording, record, result, move=True, existing=True)
    if result is not None:
        repository.save_scored_call(db, record, result)
    else:
        repository.update_call(db, record)
    return None
