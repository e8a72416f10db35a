"""Calls that retention must not touch: those under human review or appeal.

Reviews and appeals are kept by whoever reviews calls (the admin web), in its own database
beside the calls database, `REVIEWS_DB` in the data folder. That database offers the holds
as a table or view named ``retention_holds`` with a ``call_id`` and a ``reason`` column; the
admin web derives it from its review states, so a call is held from the moment its review
starts until it is final, in the same transaction as the state change, and no code path can
forget to set or clear it. Core only reads it, read-only, and never imports the admin web.

No reviews database: nobody reviews calls on this box, and nothing is held. A reviews
database that cannot be read, or that has no ``retention_holds``, is an error: retention
then deletes nothing rather than delete a call someone may be reviewing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

REVIEWS_DB = "admin.db"
"""The file, in the data folder, of the database that holds calls (the admin web's)."""
HOLDS = "retention_holds"


class HoldsUnreadable(RuntimeError):
    """The reviews database exists but its holds cannot be read."""


class Holds:
    """The holds of the reviews database in `data_dir`, read afresh by each `held` call."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / REVIEWS_DB
        self._conn: sqlite3.Connection | None = None

    def held(self) -> dict[str, str]:
        """Call id -> reason (the review state) of every held call, as of now."""
        if self._conn is None:
            if not self.path.exists():
                return {}
            try:
                self._conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                             timeout=10.0, check_same_thread=False)
            except sqlite3.Error as exc:
                raise HoldsUnreadable(f"cannot open {self.path}: {exc}") from exc
        try:
            rows = self._conn.execute(f"SELECT call_id, reason FROM {HOLDS}").fetchall()
        except sqlite3.Error as exc:
            raise HoldsUnreadable(
                f"cannot read the holds of {self.path} ({exc}): is the admin web up to date?"
            ) from exc
        return {str(call_id): str(reason) for call_id, reason in rows}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
