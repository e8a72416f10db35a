"""The audit log: append-only, each entry chained to the one before it by its hash.

Every playback, download, export, review change, appeal decision, login and user change is
appended here with the user, the time and the call. An entry's hash covers its own fields
and the hash of the entry before it, so editing or deleting an entry breaks the chain from
that point on. The table's triggers refuse UPDATE and DELETE, and the site offers no way to
clear it; `verify()` walks the chain and says where it breaks. Retention may prune entries
older than the law's floor (`admin_web.audit_prune`), and only behind an anchor that records
the hash the first kept entry follows, so the rest still verifies. A deleted last entry is
caught too: ids come from AUTOINCREMENT, and SQLite's own sequence remembers the highest id
ever handed out.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from admin_web.site_db import write
from core.clock import utc_now_iso

GENESIS_HASH = "0" * 64


def entry_hash(prev_hash: str, entry_id: int, at: str, username: str, action: str,
               call_id: str | None, detail: str) -> str:
    """The hash of one entry: SHA-256 over the previous hash and this entry's fields."""
    canonical = json.dumps(
        [prev_hash, entry_id, at, username, action, call_id, detail],
        ensure_ascii=False, separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _append(conn: sqlite3.Connection, username: str, action: str, call_id: str | None,
            detail: dict[str, Any] | None) -> int:
    last = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    prev = last[1] if last else latest_anchor(conn)[1]
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'").fetchone()
    entry_id = (seq[0] if seq else 0) + 1
    at = utc_now_iso()
    detail_text = json.dumps(detail or {}, ensure_ascii=False, sort_keys=True)
    digest = entry_hash(prev, entry_id, at, username, action, call_id, detail_text)
    conn.execute(
        "INSERT INTO audit_log (id, at, username, action, call_id, detail, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [entry_id, at, username, action, call_id, detail_text, prev, digest],
    )
    return entry_id


def record(conn: sqlite3.Connection, username: str, action: str, call_id: str | None = None,
           detail: dict[str, Any] | None = None) -> int:
    """Append one entry; inside the caller's transaction if one is open, else in its own."""
    if conn.in_transaction:
        return _append(conn, username, action, call_id, detail)
    with write(conn):
        return _append(conn, username, action, call_id, detail)


def latest_anchor(conn: sqlite3.Connection) -> tuple[int, str, str | None]:
    """Where the kept chain starts: (first entry kept, the hash it follows, the time before
    which entries were pruned); (1, genesis, None) when nothing was ever pruned."""
    row = conn.execute("SELECT first_kept_id, prev_hash, older_than FROM audit_anchors"
                       " ORDER BY first_kept_id DESC LIMIT 1").fetchone()
    return (1, GENESIS_HASH, None) if row is None else (int(row[0]), str(row[1]), str(row[2]))


@dataclass(frozen=True)
class ChainCheck:
    valid: bool
    entries: int
    broken_at: int | None = None
    reason: str = ""
    first_kept_id: int = 1
    """Entries before it were pruned by retention (`admin_web.audit_prune`)."""
    pruned_older_than: str | None = None


def verify(conn: sqlite3.Connection) -> ChainCheck:
    """Walk the chain from its start, or from the latest anchor where older entries were
    pruned; the first entry that does not follow from the one before."""
    expected_id, prev, older_than = latest_anchor(conn)
    first_kept = expected_id
    count = 0
    for row in conn.execute(
        "SELECT id, at, username, action, call_id, detail, prev_hash, hash"
        " FROM audit_log WHERE id >= ? ORDER BY id", [first_kept]
    ):
        entry_id, at, username, action, call_id, detail, prev_hash, digest = tuple(row)
        if entry_id != expected_id:
            return ChainCheck(False, count, expected_id,
                              f"entry {expected_id} is missing (next is {entry_id})",
                              first_kept, older_than)
        if prev_hash != prev:
            return ChainCheck(False, count, entry_id,
                              f"entry {entry_id} does not follow entry {entry_id - 1}",
                              first_kept, older_than)
        if entry_hash(prev, entry_id, at, username, action, call_id, detail) != digest:
            return ChainCheck(False, count, entry_id, f"entry {entry_id} was altered",
                              first_kept, older_than)
        prev = digest
        expected_id += 1
        count += 1
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'").fetchone()
    if seq is not None and seq[0] >= expected_id:
        return ChainCheck(False, count, expected_id,
                          f"entries {expected_id} to {seq[0]} are missing from the end",
                          first_kept, older_than)
    return ChainCheck(True, count, first_kept_id=first_kept, pruned_older_than=older_than)


def entries(conn: sqlite3.Connection, *, call_id: str | None = None, username: str | None = None,
            action: str | None = None, limit: int = 200, offset: int = 0,
            since: str | None = None, until: str | None = None) -> list[dict[str, Any]]:
    """Entries newest first, filtered by call, user, action or time (``since`` inclusive,
    ``until`` exclusive: ISO times in UTC as the entries store them)."""
    where, params = [], []
    for clause, value in (("call_id = ?", call_id), ("username = ?", username),
                          ("action = ?", action), ("at >= ?", since), ("at < ?", until)):
        if value:
            where.append(clause)
            params.append(value)
    sql = ("SELECT id, at, username, action, call_id, detail FROM audit_log"
           + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY id DESC LIMIT ? OFFSET ?")
    out = []
    for row in conn.execute(sql, [*params, limit, offset]):
        item = dict(row)
        item["detail"] = json.loads(item["detail"] or "{}")
        out.append(item)
    return out
