"""A call's decision record in the database: one row per decision the recorder made.

The SIP/SIPREC recorder notes which streams it took and why, who the agent is and why, each
metadata update, each pause and resume (`telephony.call_decisions`). They reach storage in
the call record's meta under ``decisions`` and are kept in ``call_decisions`` (migration 6),
in order, so the admin web and `callqa calls show` can list them.
"""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

META_KEY = "decisions"


def save(db: Database, call_id: str, decisions: list[dict[str, Any]]) -> None:
    """Replace the call's decision rows (inside the caller's transaction)."""
    db.execute("DELETE FROM call_decisions WHERE call_id = ?", [call_id])
    rows = []
    for seq, entry in enumerate(decisions):
        if not isinstance(entry, dict):
            continue
        rows.append({
            "call_id": call_id, "seq": seq, "at": str(entry.get("at") or ""),
            "kind": str(entry.get("kind") or ""), "summary": str(entry.get("summary") or ""),
            "detail": json.dumps(entry.get("detail") or {}, ensure_ascii=False, default=str),
        })  # fmt: skip
    if rows:
        db.table("call_decisions").insert_all(rows)


def load(db: Database, call_id: str) -> list[dict[str, Any]]:
    """The call's decisions in the order they were made."""
    out = []
    for row in db.query(
        "SELECT at, kind, summary, detail FROM call_decisions WHERE call_id = ? ORDER BY seq",
        [call_id],
    ):
        row["detail"] = json.loads(row["detail"] or "{}")
        out.append(row)
    return out
