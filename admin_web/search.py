"""Transcript search: words, two-character Chinese words and quoted phrases, with filters.

The page asks `core.storage.search.search` (the same code as the daemon's gRPC
SearchTranscripts) on the attached calls database ``cq``: the filters, the count and the page
are cut in SQL, so the count is every hit and no page comes up short. Each hit shows its
line with the matching words marked (escaped part by part: the text is never trusted as
markup), the lines before and after it, and a link that opens the call with the player at
that moment (``/calls/<id>?t=<seconds>``).

A supervisor searches their own team only: the team filter is theirs, whatever is asked.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from flask import Blueprint, render_template, request, url_for

from admin_web import calls_data, roles
from admin_web.auth import current_user, require
from admin_web.db import get_conn
from admin_web.site_db import rows
from core.storage import search as core_search

bp = Blueprint("search", __name__)

PAGE_SIZE = 20
MAX_QUERY_CHARS = 200
CENTER_OFFSET = "+08:00"


def _date(name: str) -> dt.date | None:
    raw = request.args.get(name, "").strip()
    try:
        return dt.date.fromisoformat(raw) if len(raw) == 10 else None
    except ValueError:
        return None


def _page() -> int:
    try:
        return max(1, int(request.args.get("page", "1")))
    except ValueError:
        return 1


def _seconds(value: float) -> str:
    """A time for the ``t`` parameter: at most two decimals, no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"


def _context(conn: sqlite3.Connection, hits: list[dict[str, Any]]
             ) -> dict[tuple[str, int], dict[str, Any]]:
    """The lines just before and after each hit (by their order in the call)."""
    wanted = {(h["call_id"], h["seq"] + d) for h in hits for d in (-1, 1)}
    if not wanted:
        return {}
    values = ", ".join("(?, ?)" for _ in wanted)
    params = [v for pair in wanted for v in pair]
    found = rows(conn, "SELECT call_id, seq, speaker, start_s, text FROM cq.utterances"
                 f" WHERE (call_id, seq) IN (VALUES {values})", params)
    return {(r["call_id"], r["seq"]): r for r in found}


@bp.route("/search")
@require(roles.READ_CALLS)
def index() -> Any:
    user = current_user()
    conn = get_conn()
    query = request.args.get("q", "").strip()[:MAX_QUERY_CHARS]
    speaker = request.args.get("speaker", "")
    team = request.args.get("team", "").strip() or None
    since, until = _date("since"), _date("until")
    filters = core_search.SearchFilters(
        speaker=speaker if speaker in ("agent", "customer") else None,
        agent_id=request.args.get("agent", "").strip() or None,
        team_id=user.team_scope or team,
        item_id=request.args.get("item", "").strip() or None,
        since=f"{since.isoformat()}T00:00:00{CENTER_OFFSET}" if since else None,
        until=(f"{(until + dt.timedelta(days=1)).isoformat()}T00:00:00{CENTER_OFFSET}"
               if until else None),
    )
    page = _page()
    searched = bool(core_search.fts_query(query))
    outside_scope = bool(user.team_scope and team and team != user.team_scope)
    if searched and not outside_scope:
        found = core_search.search(conn, query, filters, limit=PAGE_SIZE,
                                   offset=(page - 1) * PAGE_SIZE, schema="cq")
    else:
        found = core_search.SearchResult([], 0)
    context = _context(conn, found.hits)
    hits = []
    for h in found.hits:
        hits.append({
            **h,
            "parts": core_search.highlight_parts(h["text"], query),
            "before": context.get((h["call_id"], h["seq"] - 1)),
            "after": context.get((h["call_id"], h["seq"] + 1)),
            "url": url_for("calls.call_page", call_id=h["call_id"], t=_seconds(h["start_s"])),
        })
    pages = max(1, -(-found.total // PAGE_SIZE))
    args: dict[str, Any] = {k: v for k, v in request.args.items() if v and k != "page"}

    def page_url(n: int) -> str:
        return url_for("search.index", **{**args, "page": n})

    return render_template(
        "search/index.html", query=query, hits=hits, total=found.total, page=page,
        pages=pages, page_url=page_url, page_size=PAGE_SIZE, args=args, searched=searched,
        choices=calls_data.filter_choices(conn, team_scope=user.team_scope),
        item_names=calls_data.item_names(conn),
    )
