"""Human review (人工复核): verdicts on findings, missed findings, appeals and decisions,
the review queue, sampling plans, agreement between machine and reviewers, the audit log.

This module has the pages; the review panel's POST routes are in `admin_web.review_actions`
(registered on the same blueprint), the state machine in `admin_web.reviews`.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from admin_web import agreement as agreement_data
from admin_web import audit, calls_data, review_actions, review_queue, roles, sampling
from admin_web.auth import current_user, require
from admin_web.db import get_conn
from admin_web.site_db import rows

bp = Blueprint("review", __name__)
review_actions.register(bp)

AUDIT_PAGE_SIZE = 50


def _page() -> int:
    try:
        return max(1, int(request.args.get("page", "1")))
    except ValueError:
        return 1


def _date(name: str) -> str | None:
    raw = request.args.get(name, "").strip()
    if len(raw) == 10 and raw[4] == "-" and raw[7] == "-" and raw.replace("-", "").isdigit():
        return raw
    return None


def _pager(endpoint: str, args: dict[str, Any], page: int, pages: int) -> dict[str, Any]:
    def url(n: int) -> str:
        return url_for(endpoint, **args, page=n)

    return {"page": page, "pages": pages,
            "prev": url(page - 1) if page > 1 else None,
            "next": url(page + 1) if page < pages else None}


@bp.route("/review/queue")
@require(roles.REVIEW)
def queue() -> Any:
    user = current_user()
    mine = request.args.get("mine") == "1"
    page = _page()
    flt = review_queue.QueueFilter(mine=user.username if mine else None,
                                   team_scope=user.team_scope)
    found, total = review_queue.queue(get_conn(), flt, page=page)
    pages = max(1, -(-total // review_queue.PAGE_SIZE))
    args = {"mine": "1"} if mine else {}
    return render_template("review/queue.html", calls=found, total=total, mine=mine,
                           pager=_pager("review.queue", args, page, pages),
                           page_size=review_queue.PAGE_SIZE)


def _appeal_rows(where: str, params: list[Any], limit: int = 100) -> list[dict[str, Any]]:
    return rows(
        get_conn(),
        "SELECT a.*, c.agent_id, c.team_id, c.started_at, s.score AS machine_score,"
        " COALESCE(r.state, 'scored') AS state, r.reviewer, r.reviewed_score"
        " FROM appeals a JOIN cq.calls c ON c.id = a.call_id"
        " LEFT JOIN cq.scores s ON s.call_id = a.call_id"
        " LEFT JOIN call_reviews r ON r.call_id = a.call_id"
        f" WHERE {where} ORDER BY a.id DESC LIMIT ?",
        [*params, limit],
    )


@bp.route("/appeals")
@require(roles.READ_CALLS)
def appeals() -> Any:
    user = current_user()
    if not (user.can(roles.APPEAL) or user.can(roles.DECIDE)):
        abort(403)
    scope, params = ("c.team_id = ?", [user.team_scope]) if user.team_scope else ("1", [])
    open_rows = _appeal_rows(f"a.decided_by IS NULL AND {scope}", params)
    decided = _appeal_rows(f"a.decided_by IS NOT NULL AND {scope}", params, 50)
    return render_template("review/appeals.html", open_appeals=open_rows, decided=decided,
                           deciding=user.can(roles.DECIDE))


def _plan_form_defaults() -> dict[str, Any]:
    return {"mode": "percent", "amount": "10", "passed_share": "10"}


def _number(form: Any, name: str) -> float | None:
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise sampling.PlanError(_("Not a number: %(value)s", value=raw)) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise sampling.PlanError(_("Not a number: %(value)s", value=raw))
    return value


def plan_request(form: Any) -> sampling.PlanRequest:
    """A plan as the form asks for it; PlanError for a value that is not a number."""
    amount = _number(form, "amount")
    share = _number(form, "passed_share")
    quota = _number(form, "quota")
    seed = _number(form, "seed")
    dates = {}
    for key in ("since", "until"):
        raw = (form.get(key) or "").strip()
        if raw and not (len(raw) == 10 and raw[4] == "-" and raw[7] == "-"):
            raise sampling.PlanError(_("Not a date: %(value)s", value=raw))
        dates[key] = raw or None
    if quota is not None and not quota.is_integer():
        raise sampling.PlanError(_("A quota is a whole number of calls."))
    if seed is not None and (not seed.is_integer() or seed < 0):
        raise sampling.PlanError(_("A seed is a whole number, 0 or more."))
    return sampling.PlanRequest(
        name=(form.get("name") or "").strip(),
        mode=form.get("mode") or "percent",
        amount=amount if amount is not None else 0.0,
        passed_share=(share if share is not None else 100 * sampling.DEFAULT_PASSED_SHARE) / 100,
        quota=None if quota is None else int(quota),
        inspectors=form.getlist("inspectors"),
        seed=None if seed is None else int(seed),
        team=form.get("team") or None, agent=form.get("agent") or None,
        min_score=_number(form, "min_score"), max_score=_number(form, "max_score"),
        min_duration=_number(form, "min_duration"), max_duration=_number(form, "max_duration"),
        since=dates["since"], until=dates["until"],
    )


def _plans_page(form: dict[str, Any], error: str | None = None,
                preview: sampling.Selection | None = None, status: int = 200) -> Any:
    conn = get_conn()
    return render_template(
        "review/plans.html", plans=sampling.list_plans(conn), form=form, error=error,
        preview=preview, inspectors=sampling.inspectors(conn),
        choices=calls_data.filter_choices(conn, team_scope=None),
    ), status


@bp.route("/sampling")
@require(roles.SAMPLING)
def plans() -> Any:
    form = _plan_form_defaults()
    form["inspectors"] = sampling.inspectors(get_conn())
    return _plans_page(form)


@bp.route("/sampling", methods=["POST"])
@require(roles.SAMPLING)
def plan_create() -> Any:
    user = current_user()
    conn = get_conn()
    form: dict[str, Any] = {k: v for k, v in request.form.items() if k != "csrf_token"}
    form["inspectors"] = request.form.getlist("inspectors")
    try:
        req = plan_request(request.form)
        if request.form.get("action") == "preview":
            shown = sampling.preview(conn, req)
            # Creating the plan after this preview takes the same calls: keep its seed.
            form["seed"] = str(shown.summary["seed"])
            return _plans_page(form, preview=shown)
        plan_id = sampling.create_plan(conn, req, user)
    except sampling.PlanError as exc:
        return _plans_page(form, error=str(exc), status=400)
    flash(_("Sampling plan created."))
    return redirect(url_for("review.plan", plan_id=plan_id))


@bp.route("/sampling/<int:plan_id>")
@require(roles.SAMPLING)
def plan(plan_id: int) -> Any:
    found = sampling.get_plan(get_conn(), plan_id)
    if found is None:
        abort(404)
    return render_template("review/plan.html", plan=found)


@bp.route("/agreement")
@require(roles.AGREEMENT)
def agreement() -> Any:
    user = current_user()
    conn = get_conn()
    since, until = _date("since"), _date("until")
    team = request.args.get("team") or None
    figures = agreement_data.item_agreement(conn, since=since, until=until, team=team,
                                            team_scope=user.team_scope)
    return render_template(
        "review/agreement.html", figures=figures,
        args={"since": since or "", "until": until or "", "team": team or ""},
        teams=calls_data.filter_choices(conn, team_scope=user.team_scope)["teams"],
    )


def detail_items(detail: dict[str, Any], width: int = 160) -> list[tuple[str, str]]:
    """An audit entry's detail as (key, text) pairs, long values cut short."""
    out = []
    for key in sorted(detail):
        value = detail[key]
        text = (value if isinstance(value, str)
                else json.dumps(value, ensure_ascii=False, separators=(",", ":")))
        out.append((key, text if len(text) <= width else text[: width - 1] + "…"))
    return out


def _center_day_utc(day: str, add_days: int = 0) -> str | None:
    """The start of a day (YYYY-MM-DD, center time, plus `add_days`) as the audit log's UTC."""
    if not day:
        return None
    import datetime as dt

    from admin_web.i18n import DISPLAY_TZ

    start = dt.datetime.fromisoformat(day).replace(tzinfo=DISPLAY_TZ) + dt.timedelta(add_days)
    return start.astimezone(dt.UTC).isoformat(timespec="seconds")


@bp.route("/audit")
@require(roles.AUDIT)
def audit_log() -> Any:
    conn = get_conn()
    args = {k: request.args.get(k, "").strip() for k in ("user", "action", "call")}
    args.update(since=_date("since") or "", until=_date("until") or "")
    page = _page()
    found = audit.entries(conn, username=args["user"] or None, action=args["action"] or None,
                          call_id=args["call"] or None, limit=AUDIT_PAGE_SIZE + 1,
                          offset=(page - 1) * AUDIT_PAGE_SIZE,
                          since=_center_day_utc(args["since"]),
                          until=_center_day_utc(args["until"], 1))
    more = len(found) > AUDIT_PAGE_SIZE
    shown: dict[str, Any] = {k: v for k, v in args.items() if v}

    def url(n: int) -> str:
        return url_for("review.audit_log", **shown, page=n)

    for entry in found:
        entry["detail_items"] = detail_items(entry["detail"])
    actions = [r[0] for r in conn.execute("SELECT DISTINCT action FROM audit_log ORDER BY 1")]
    return render_template(
        "review/audit.html", entries=found[:AUDIT_PAGE_SIZE], args=args, actions=actions,
        check=audit.verify(conn), page=page,
        prev_url=url(page - 1) if page > 1 else None, next_url=url(page + 1) if more else None,
    )
