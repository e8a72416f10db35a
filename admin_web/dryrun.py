"""Dry run (试运行) of a draft rubric over stored calls: start it, watch it, read what changes.

* ``GET /dryrun/``: the start form (a stored rubric version or pasted YAML; the last N calls
  or the calls matching a filter) and the recent runs;
* ``POST /dryrun/start`` (``dryrun.start``): with ``rubric_id`` + ``version`` or ``yaml``, and
  the selection (``mode`` = last | filter, ...), starts a run and shows it; without a
  selection (as the rubric editor links here), shows the form with that rubric chosen;
* ``GET /dryrun/<id>``: progress while it runs (the page polls ``/dryrun/<id>/progress``),
  then per call what changes, the shift per team and per item against the inspectors'
  verdicts;
* ``POST /dryrun/<id>/cancel``: stop it (what was scored so far stays).

Administrators only (`roles.DRYRUN`): a dry run reads every team's calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from admin_web import audit, calls_data, dryrun_engine, roles
from admin_web.auth import current_user, require
from admin_web.db import get_conn
from admin_web.dryrun_engine import DryRunError
from admin_web.errors import error_response

bp = Blueprint("dryrun", __name__, url_prefix="/dryrun")

PAGE_SIZE = 50
CALL_VIEWS = ("changed", "flips", "all", "errors")


def _form_context(form: dict[str, Any], error: str | None = None) -> dict[str, Any]:
    conn = get_conn()
    user = current_user()
    return {
        "form": form,
        "error": error,
        "versions": dryrun_engine.rubric_versions(conn),
        "choices": calls_data.filter_choices(conn, team_scope=user.team_scope),
        "runs": dryrun_engine.list_runs(conn),
        "busy": dryrun_engine.busy(),
        "max_calls": dryrun_engine.MAX_CALLS,
        "default_last": dryrun_engine.DEFAULT_LAST,
    }


@bp.route("/")
@require(roles.DRYRUN)
def index() -> Any:
    form = {k: v for k, v in request.args.items() if k in ("rubric_id", "version")}
    return render_template("dryrun/index.html", **_form_context(form))


def _version(raw: str | None) -> int | None:
    try:
        return int(raw) if raw not in (None, "") else None
    except ValueError:
        return None


@bp.route("/start", methods=["POST"])
@require(roles.DRYRUN)
def start() -> Any:
    user = current_user()
    conn = get_conn()
    form = request.form.to_dict()
    if form.get("rubric") and "|" in form["rubric"]:  # the form's select: "id|version"
        form["rubric_id"], _sep, form["version"] = form["rubric"].rpartition("|")
    if "mode" not in form:  # from the rubric editor: choose the calls first
        return render_template("dryrun/index.html", **_form_context(form))
    source = form.get("source") or ("yaml" if (form.get("yaml") or "").strip() else "stored")
    form["source"] = source
    try:
        rubric, text, version = dryrun_engine.draft_rubric(
            conn, rubric_id=(form.get("rubric_id") or None) if source == "stored" else None,
            version=_version(form.get("version")),
            yaml_text=form.get("yaml") if source == "yaml" else None,
        )
        selection = dryrun_engine.selection_from_form(form)
        call_ids = dryrun_engine.select_call_ids(conn, selection, team_scope=user.team_scope)
        if not call_ids:
            raise DryRunError(_("No scored call matches this selection."))
        if dryrun_engine.busy():
            raise DryRunError(_("Another dry run is going on: wait for it or cancel it."))
    except DryRunError as exc:
        return render_template("dryrun/index.html", **_form_context(form, str(exc))), 400
    run_id = dryrun_engine.create_run(conn, username=user.username, rubric=rubric,
                                      yaml_text=text, rubric_version=version,
                                      selection=selection, total=len(call_ids))
    audit.record(conn, user.username, "dryrun_start", detail={
        "run": run_id, "rubric_id": rubric.id, "rubric_version": version,
        "calls": len(call_ids), "selection": selection.to_json()})
    dryrun_engine.start(Path(current_app.config["DATA_DIR"]), run_id, call_ids)
    return redirect(url_for("dryrun.show", run_id=run_id))


def _run_or_404(run_id: int) -> dict[str, Any]:
    run = dryrun_engine.get_run(get_conn(), run_id)
    if run is None:
        abort(404)
    return run


@bp.route("/<int:run_id>")
@require(roles.DRYRUN)
def show(run_id: int) -> Any:
    run = _run_or_404(run_id)
    which = request.args.get("calls", "changed")
    if which not in CALL_VIEWS:
        which = "changed"
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    changes, total = dryrun_engine.call_changes(get_conn(), run_id, which=which, page=page,
                                                page_size=PAGE_SIZE)
    pages = max(1, -(-total // PAGE_SIZE))

    def page_url(n: int) -> str:
        return url_for("dryrun.show", run_id=run_id, calls=which, page=n) + "#calls"

    pager = {"page": page, "pages": pages,
             "prev": page_url(page - 1) if page > 1 else None,
             "next": page_url(page + 1) if page < pages else None}
    return render_template("dryrun/show.html", run=run, changes=changes, total=total,
                           which=which, pager=pager, views=CALL_VIEWS,
                           filter_names=_filter_names())


def _filter_names() -> dict[str, str]:
    return {"since": _("From"), "until": _("To"), "team": _("Team"), "agent": _("Agent"),
            "result": _("Result"), "item": _("Item found"), "call_source": _("Source"),
            "min_score": _("Lowest score"), "max_score": _("Highest score")}


@bp.route("/<int:run_id>/progress")
@require(roles.DRYRUN)
def progress(run_id: int) -> Any:
    run = dryrun_engine.get_run(get_conn(), run_id)
    if run is None:
        return error_response(404, _("Not found."))
    return {
        "id": run["id"], "state": run["shown_state"], "done": run["done"],
        "total": run["total"], "percent": round(100.0 * run["percent"], 1),
        "cancel_requested": bool(run["cancel_requested"]), "error": run["error"],
        "finished": run["shown_state"] not in dryrun_engine.ACTIVE_STATES,
    }


@bp.route("/<int:run_id>/cancel", methods=["POST"])
@require(roles.DRYRUN)
def cancel(run_id: int) -> Any:
    user = current_user()
    conn = get_conn()
    _run_or_404(run_id)
    if dryrun_engine.request_cancel(conn, run_id):
        audit.record(conn, user.username, "dryrun_cancel", detail={"run": run_id})
        flash(_("The dry run stops after the calls it is scoring now."))
    if request.accept_mimetypes.best == "application/json":
        return {"cancel_requested": True}
    return redirect(url_for("dryrun.show", run_id=run_id))
