"""Rubrics (质检规则): the list, a rubric's versions and diffs, the editor (a form per item beside
the raw YAML), import and export, activation, and which rubric each team, skill group and
agent gets (rubric routes).

Rubric versions and routes live in the daemon's database; the site reads them (read-only)
and changes them only through the daemon's gRPC API (`admin_web.rubric_rpc`): saving makes a
new DRAFT version that no call uses until it is activated. When the daemon is down nothing
is saved, and the page says so. Every save, import, export, activation and route change is
in the audit log.
"""

from __future__ import annotations

from typing import Any

import yaml
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from admin_web import audit, roles, rubric_data, rubric_form, rubric_rpc
from admin_web.auth import current_user, require
from admin_web.db import get_conn
from admin_web.rubric_errors import Problems, place_all
from core.live.routing import KINDS as ROUTE_KINDS
from core.rubric import RubricError, load_rubric_text
from core.rubric.defaults import builtin_rubrics

bp = Blueprint("rubrics", __name__)

RUBRIC_ID_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


def _valid_id(rubric_id: str) -> bool:
    return bool(rubric_id) and set(rubric_id) <= RUBRIC_ID_CHARS and len(rubric_id) <= 100


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name, "").strip()
    return int(raw) if raw.isdigit() else None


def validate(text: str) -> Problems:
    """The rubric's problems, each placed at its field and worded in the user's language."""
    try:
        load_rubric_text(text)
    except RubricError as exc:
        return place_all(exc.problems)
    return Problems()


def route_kind_names() -> dict[str, str]:
    return {"agent": _("Agent"), "skill": _("Skill group"), "team": _("Team")}


@bp.app_context_processor
def rubric_globals() -> dict[str, Any]:
    return {"kind_names": rubric_form.kind_names, "route_kind_names": route_kind_names}


# ---------------------------------------------------------------- list


@bp.route("/rubrics")
@require(roles.RUBRICS_READ)
def index() -> Any:
    conn = get_conn()
    summaries = rubric_data.list_rubrics(conn)
    routes = rubric_data.routes(conn)
    teams = rubric_data.team_rubrics(conn, routes.listing, summaries)
    return render_template("rubrics/list.html", rubrics=summaries, routes=routes, teams=teams,
                           can_edit=current_user().can(roles.RUBRICS))


# ---------------------------------------------------------------- one rubric


@bp.route("/rubrics/view/<rubric_id>")
@require(roles.RUBRICS_READ)
def rubric_page(rubric_id: str) -> Any:
    conn = get_conn()
    summary = rubric_data.get_rubric(conn, rubric_id)
    if summary is None:
        abort(404)
    version = _int_arg("version") or summary.in_use
    text = rubric_data.version_text(conn, rubric_id, version)
    if text is None:
        abort(404)
    history = rubric_data.versions(conn, rubric_id)
    routes = rubric_data.routes(conn)
    teams = [t for t in rubric_data.team_rubrics(conn, routes.listing, [summary])
             if t.rubric_id == rubric_id]
    pointing = [r for r in routes.listing.routes if r.rubric_id == rubric_id]
    return render_template(
        "rubrics/view.html", rubric=summary, version=version, text=text, history=history,
        routes=routes, teams=teams, pointing=pointing,
        can_edit=current_user().can(roles.RUBRICS),
        dryrun_enabled="dryrun" in current_app.blueprints,
        can_dryrun=current_user().can(roles.DRYRUN),
    )


@bp.route("/rubrics/diff/<rubric_id>")
@require(roles.RUBRICS_READ)
def diff_page(rubric_id: str) -> Any:
    conn = get_conn()
    summary = rubric_data.get_rubric(conn, rubric_id)
    if summary is None:
        abort(404)
    history = rubric_data.versions(conn, rubric_id)
    numbers = [int(v["version"]) for v in history]
    new = _int_arg("b") or (numbers[0] if numbers else None)
    old = _int_arg("a")
    if old is None and new is not None and request.args.get("a") is None:
        # The version before `new`; with ?a= (empty), the built-in text.
        older = [n for n in numbers if n < new]
        old = older[0] if older else None

    def text_of(v: int | None) -> str | None:
        # No version to compare with: the built-in text of that id, else nothing.
        if v:
            return rubric_data.version_text(conn, rubric_id, v)
        return builtin_rubrics().get(rubric_id, "")

    old_text, new_text = text_of(old), text_of(new)
    if old_text is None or new_text is None:
        abort(404)
    full = request.args.get("full") == "1"
    as_stored = request.args.get("text") == "1"
    if not as_stored:
        old_text, new_text = rubric_data.normalised(old_text), rubric_data.normalised(new_text)
    result = rubric_data.diff(old_text, new_text, context=100_000 if full else 3)
    return render_template("rubrics/diff.html", rubric=summary, history=history, old=old,
                           new=new, diff=result, full=full, as_stored=as_stored)


@bp.route("/rubrics/export/<rubric_id>")
@require(roles.RUBRICS_READ)
def export(rubric_id: str) -> Any:
    conn = get_conn()
    version = _int_arg("version")
    text = rubric_data.version_text(conn, rubric_id, version)
    if text is None or not _valid_id(rubric_id):
        abort(404)
    if version is None:
        summary = rubric_data.get_rubric(conn, rubric_id)
        version = summary.in_use if summary else None
    audit.record(conn, current_user().username, "rubric_export",
                 detail={"rubric_id": rubric_id, "version": version or "built-in"})
    name = f"{rubric_id}-v{version}.yaml" if version else f"{rubric_id}-built-in.yaml"
    return Response(text, mimetype="application/yaml",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.route("/rubrics/activate/<rubric_id>/<int:version>", methods=["POST"])
@require(roles.RUBRICS)
def activate(rubric_id: str, version: int) -> Any:
    conn = get_conn()
    summary = rubric_data.get_rubric(conn, rubric_id)
    if summary is None or rubric_data.version_text(conn, rubric_id, version) is None:
        abort(404)
    back = redirect(url_for(".rubric_page", rubric_id=rubric_id, version=version))
    try:
        rubric_rpc.activate(rubric_id, version)
    except rubric_rpc.DaemonDown as exc:
        flash(_("Not activated: the callqa daemon is not answering at %(address)s. Start it "
                "and try again.", address=exc.address))
        return back
    except rubric_rpc.DaemonRefused as exc:
        flash(_("Not activated: the daemon refused: %(reason)s", reason=exc.details))
        return back
    audit.record(conn, current_user().username, "rubric_activate",
                 detail={"rubric_id": rubric_id, "version": version,
                         "previous": summary.active})
    flash(_("Version %(v)s of %(id)s is active: calls that start from now on are scored with "
            "it.", v=version, id=rubric_id))
    return back


# ---------------------------------------------------------------- editor


def _editor(*, text: str, data: Any, problems: Problems, tab: str, base_id: str,
            base_version: int | None, notice: str = "", status: int = 200) -> Any:
    form = rubric_form.form_from_data(data)
    if not form.readable:
        tab = "yaml"
    category_choices = [("", _("None"))] + [(c["id"], c["id"]) for c in form.categories
                                             if c.get("id")]
    return render_template(
        "rubrics/editor.html", form=form, yaml_text=text, problems=problems, tab=tab,
        base_id=base_id, base_version=base_version, notice=notice,
        fields=rubric_form.item_fields(), error_keys=rubric_form.error_keys,
        kind_hints=rubric_form.kind_hints(), severities=rubric_form.severity_choices(),
        category_choices=category_choices, yaml_header=rubric_form.leading_comments(text),
        kind_choices=[("", "—"), *rubric_form.kind_names().items()],
    ), status


def _load(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):  # RecursionError: nested too deeply
        return None


@bp.route("/rubrics/edit/<rubric_id>")
@require(roles.RUBRICS)
def edit(rubric_id: str) -> Any:
    conn = get_conn()
    version = _int_arg("version")
    text = rubric_data.version_text(conn, rubric_id, version)
    if text is None:
        abort(404)
    if version is None:
        summary = rubric_data.get_rubric(conn, rubric_id)
        version = summary.in_use if summary else None
    return _editor(text=text, data=_load(text), problems=validate(text), tab="form",
                   base_id=rubric_id, base_version=version)


@bp.route("/rubrics/new")
@require(roles.RUBRICS)
def new() -> Any:
    conn = get_conn()
    source = request.args.get("from", "")
    version = _int_arg("version")
    data: Any = None
    if source:
        text = rubric_data.version_text(conn, source, version)
        if text is None:
            abort(404)
        data = _load(text)
        if isinstance(data, dict):
            data["id"] = f"{source}-copy"
    if not isinstance(data, dict):
        lang = "zh" if current_user().language == "zh" else "en"
        data = rubric_form.starter_rubric(lang)
    text = rubric_form.dump_rubric_data(data)
    return _editor(text=text, data=data, problems=Problems(), tab="form", base_id="",
                   base_version=None)


def _without_blank_categories(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    cats = [c for c in out.get("categories", []) if not isinstance(c, dict) or any(c.values())]
    if cats:
        out["categories"] = cats
    else:
        out.pop("categories", None)
    return out


@bp.route("/rubrics/editor", methods=["POST"])
@require(roles.RUBRICS)
def editor_post() -> Any:
    source = "yaml" if request.form.get("source") == "yaml" else "form"
    action = request.form.get("action", "check")
    base_id = request.form.get("base_id", "")
    raw_base = request.form.get("base_version", "")
    base_version = int(raw_base) if raw_base.isdigit() else None
    data: Any
    if source == "yaml":
        text = request.form.get("yaml_text", "").replace("\r\n", "\n")
        data = _load(text)
        tab = "form" if action == "to_form" else "yaml"
    else:
        data = rubric_form.data_from_form(request.form)
        rubric_form.apply_action(data, action)
        header = rubric_form.leading_comments(request.form.get("yaml_header", ""))
        text = rubric_form.dump_rubric_data(_without_blank_categories(data), header)
        tab = "yaml" if action == "to_yaml" else "form"
    problems = validate(text)
    editor = {"text": text, "data": data, "tab": tab, "base_id": base_id,
              "base_version": base_version}
    if action != "save":
        return _editor(problems=problems, **editor)
    if problems:
        return _editor(problems=problems, status=422, notice=_(
            "Not saved: the rubric has problems, marked below. Fix them and save again."),
            **editor)
    return _store(text, editor, source=source, action="rubric_save")


def _store(text: str, editor: dict[str, Any], *, source: str, action: str,
           filename: str | None = None) -> Any:
    """Store `text` as a draft through the daemon; audit it; on to the rubric's page."""
    try:
        stored = rubric_rpc.put_draft(text)
    except rubric_rpc.DaemonDown as exc:
        return _editor(problems=Problems(), status=503, notice=_(
            "Not saved: the callqa daemon is not answering at %(address)s. Rubric versions "
            "are kept in the daemon's database, so nothing can be saved while it is down. "
            "Start it and save again; your text is still here.", address=exc.address),
            **editor)
    except rubric_rpc.DaemonRefused as exc:
        if exc.code == "INVALID_ARGUMENT":
            return _editor(problems=place_all(exc.details.splitlines()), status=422, notice=_(
                "Not saved: the daemon found problems in the rubric, marked below."), **editor)
        return _editor(problems=Problems(), status=502, notice=_(
            "Not saved: the daemon refused: %(reason)s", reason=exc.details), **editor)
    detail: dict[str, Any] = {"rubric_id": stored.rubric_id, "version": stored.version,
                              "unchanged": stored.unchanged, "source": source}
    if editor.get("base_id"):
        detail["from"] = f"{editor['base_id']} v{editor.get('base_version') or '-'}"
    if filename:
        detail["file"] = filename
    audit.record(get_conn(), current_user().username, action, detail=detail)
    if stored.unchanged:
        flash(_("Nothing new to save: the text is the same as version %(v)s of %(id)s.",
                v=stored.version, id=stored.rubric_id))
    elif stored.active:
        flash(_("Saved as version %(v)s of %(id)s; it is the active version.",
                v=stored.version, id=stored.rubric_id))
    else:
        flash(_("Saved as version %(v)s of %(id)s, a draft: calls keep the active version "
                "until you activate this one.", v=stored.version, id=stored.rubric_id))
    return redirect(url_for(".rubric_page", rubric_id=stored.rubric_id, version=stored.version))


@bp.route("/rubrics/import", methods=["POST"])
@require(roles.RUBRICS)
def import_yaml() -> Any:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash(_("Choose a YAML file to import."))
        return redirect(url_for(".index"))
    filename = upload.filename
    raw = upload.read()
    try:
        text = raw.decode("utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError:
        flash(_("Not imported: %(file)s is not UTF-8 text.", file=filename))
        return redirect(url_for(".index"))
    data = _load(text)
    editor = {"text": text, "data": data, "tab": "yaml", "base_id": "", "base_version": None}
    problems = validate(text)
    if problems:
        return _editor(problems=problems, status=422, notice=_(
            "Not imported: %(file)s has problems, marked below. Fix them here and save.",
            file=filename), **editor)
    return _store(text, editor, source="file", action="rubric_import", filename=filename)


# ---------------------------------------------------------------- routes


@bp.route("/rubrics/routes")
@require(roles.RUBRICS_READ)
def routes_page() -> Any:
    conn = get_conn()
    summaries = rubric_data.list_rubrics(conn)
    routes = rubric_data.routes(conn)
    teams = rubric_data.team_rubrics(conn, routes.listing, summaries)
    return render_template(
        "rubrics/routes.html", routes=routes, teams=teams, rubrics=summaries,
        choices=rubric_data.choices(conn), can_edit=current_user().can(roles.RUBRICS),
        kinds=ROUTE_KINDS, stored_teams={r.value for r in routes.listing.routes
                                         if r.kind == "team" and r.source == "stored"},
    )


@bp.route("/rubrics/routes", methods=["POST"])
@require(roles.RUBRICS)
def routes_post() -> Any:
    conn = get_conn()
    kind = request.form.get("kind", "")
    value = request.form.get("value", "").strip()
    remove = request.form.get("action") == "remove"
    rubric_id = "" if remove else request.form.get("rubric_id", "").strip()
    back = redirect(url_for(".routes_page"))
    if kind not in ROUTE_KINDS or not value or len(value) > 200:
        flash(_("Not changed: choose what the route matches (team, skill group or agent) and "
                "give its id."))
        return back
    known = {r.rubric_id for r in rubric_data.list_rubrics(conn)}
    if not remove and rubric_id not in known:
        flash(_("Not changed: choose a rubric."))
        return back
    try:
        rubric_rpc.set_routes([(kind, value, rubric_id)])
    except rubric_rpc.DaemonDown as exc:
        flash(_("Not changed: the callqa daemon is not answering at %(address)s. Routes are "
                "kept in the daemon's database; start it and try again.", address=exc.address))
        return back
    except rubric_rpc.DaemonRefused as exc:
        flash(_("Not changed: the daemon refused: %(reason)s", reason=exc.details))
        return back
    audit.record(conn, current_user().username, "rubric_route",
                 detail={"kind": kind, "value": value, "rubric_id": rubric_id or None})
    label = route_kind_names()[kind]
    if remove:
        flash(_("%(kind)s %(value)s: the route set here is removed; the setting's route or the "
                "default applies again to new calls.", kind=label, value=value))
    else:
        flash(_("%(kind)s %(value)s: new calls get rubric %(id)s.", kind=label, value=value,
                id=rubric_id))
    return back
