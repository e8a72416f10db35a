"""The call list: filters, sorting, paging, and CSV export of what the filters select."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Blueprint, Response, render_template, request, url_for
from flask_babel import gettext as _

from admin_web import audit, calls_data, roles
from admin_web.auth import current_user, require
from admin_web.db import get_conn
from admin_web.labels import REVIEW_STATES

bp = Blueprint("calls", __name__)

EXPORT_MAX_ROWS = 100_000
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _float(name: str) -> float | None:
    raw = request.args.get(name, "").strip()
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def _date(name: str) -> str | None:
    raw = request.args.get(name, "").strip()
    if len(raw) == 10 and raw[4] == "-" and raw[7] == "-" and raw.replace("-", "").isdigit():
        return raw
    return None


def filter_from_args() -> calls_data.CallFilter:
    state = request.args.get("state") or None
    result = request.args.get("result") or None
    return calls_data.CallFilter(
        since=_date("since"),
        until=_date("until"),
        agent=request.args.get("agent") or None,
        team=request.args.get("team") or None,
        min_score=_float("min_score"),
        max_score=_float("max_score"),
        result=result if result in ("passed", "failed") else None,
        item=request.args.get("item") or None,
        state=state if state in REVIEW_STATES else None,
        source=request.args.get("source") or None,
    )


@bp.route("/")
@require(roles.READ_CALLS)
def index() -> Any:
    user = current_user()
    conn = get_conn()
    flt = filter_from_args()
    sort = request.args.get("sort", "started")
    if sort not in calls_data.SORTS:
        sort = "started"
    descending = request.args.get("dir", "desc") != "asc"
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    page_rows, total = calls_data.list_calls(
        conn, flt, team_scope=user.team_scope, sort=sort, descending=descending, page=page,
    )
    pages = max(1, -(-total // calls_data.PAGE_SIZE))
    args: dict[str, Any] = {k: v for k, v in request.args.items() if v and k != "page"}

    def page_url(n: int) -> str:
        return url_for("calls.index", **{**args, "page": n})

    def sort_url(key: str) -> str:
        same = sort == key
        new_dir = ("asc" if descending else "desc") if same else "desc"
        return url_for("calls.index", **{**args, "sort": key, "dir": new_dir, "page": 1})

    return render_template(
        "calls/list.html",
        calls=page_rows, total=total, page=page, pages=pages, page_url=page_url,
        sort=sort, descending=descending, sort_url=sort_url, args=args,
        choices=calls_data.filter_choices(conn, team_scope=user.team_scope),
        item_names=calls_data.item_names(conn), states=REVIEW_STATES,
        export_url=url_for("calls.export_csv", **args),
    )


def neutralise(value: Any) -> Any:
    """A spreadsheet cell that cannot run as a formula (a leading quote before = + - @)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


@bp.route("/calls.csv")
@require(roles.READ_CALLS, roles.EXPORT)
def export_csv() -> Any:
    """The filtered list as CSV with a byte-order mark, so that Excel reads Chinese right."""
    user = current_user()
    conn = get_conn()
    flt = filter_from_args()
    page_rows, _total = calls_data.list_calls(
        conn, flt, team_scope=user.team_scope, page=1, page_size=EXPORT_MAX_ROWS,
    )
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow([_("Call"), _("Started"), _("Agent"), _("Team"), _("Duration (s)"),
                     _("Source"), _("Machine score"), _("Result"), _("Review state"),
                     _("Reviewed score"), _("Findings"), _("Alerts")])
    for r in page_rows:
        writer.writerow([neutralise(v) for v in (
            r["id"], r["started_at"], r["agent_id"], r["team_id"],
            None if r["duration_s"] is None else round(r["duration_s"], 1), r["source"],
            r["score"], "" if r["passed"] is None else ("pass" if r["passed"] else "fail"),
            r["review_state"], r["reviewed_score"], r["findings"], r["alerts"],
        )])
    audit.record(conn, user.username, "export_calls_csv",
                 detail={"rows": len(page_rows), "filter": dict(request.args)})
    return Response(
        out.getvalue().encode("utf-8"), mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=calls.csv"},
    )



# The call page and the recording routes live in their own module, on this blueprint.
from admin_web import call_page as _call_page  # noqa: E402, F401
