"""Review data for one call, as the call page shows it (see `panel_context`)."""

from __future__ import annotations

import sqlite3
from typing import Any

from admin_web.users import User


def panel_context(conn: sqlite3.Connection, call: dict[str, Any], user: User) -> dict[str, Any]:
    """What `templates/review/panel.html` needs for `call` (from `calls_data.get_call`)."""
    return {"verdicts": {}, "added": [], "history": [], "appeals": [], "actions": []}
