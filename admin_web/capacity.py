"""Capacity (容量): the box's load now, capacity benchmarks and their results.

* The box now: gRPC ``GetCapacity`` as JSON (``/capacity/now.json``), polled by the page
  every few seconds (static/js/capacity.js).
* A benchmark: ``callqa bench`` run by the site (`admin_web.bench_runner`), followed through
  ``/capacity/bench.json`` and cancelled with a POST; start and cancel are audit-logged.
* Past runs: ``cq.benchmark_runs`` with each run's curve (p95 latency and CPU against
  lines, callqa beside the baseline), drawn as SVG here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from markupsafe import Markup

from admin_web import app_settings, audit, capacity_data, roles
from admin_web.auth import current_user, require
from admin_web.bench_runner import REPO, BenchBusy, BenchParams, BenchRunner, recording_folders
from admin_web.daemon import DaemonClient
from admin_web.db import get_conn
from admin_web.errors import error_response
from core.config import ConfigError
from proto import callqa_pb2 as pb
from proto import callqa_pb2_grpc as pb_grpc

bp = Blueprint("capacity", __name__)

EXTENSION = "callqa_bench"
CAPACITY_TIMEOUT_S = 2.0
MAX_BENCH_LINES = 500
MAX_BENCH_STEPS = 20
SHOWN_SETTINGS = ("model", "asr_device", "asr_compute_type", "asr_beam_size", "asr_cpu_threads",
                  "asr_batch_size", "asr_inter_threads", "live_early_decode_s",
                  "rtp_compiled_receive", "sip_max_sessions", "alert_deadline_s")


@bp.context_processor
def _names() -> dict[str, Any]:
    def bench_phase_names() -> dict[str, str]:
        return {"none": _("No benchmark yet"), "starting": _("Starting…"),
                "running": _("Running"), "finished": _("Finished"),
                "failed": _("Failed"), "cancelled": _("Cancelled")}

    return {"bench_phase_names": bench_phase_names, "series_colors": capacity_data.COLORS}


def runner() -> BenchRunner:
    found = current_app.extensions.get(EXTENSION)
    if found is None:
        found = BenchRunner(Path(current_app.config["DATA_DIR"]))
        current_app.extensions[EXTENSION] = found
    return found


def audio_choices() -> list[tuple[str, int]]:
    """Folders of recordings a benchmark may play: ``BENCH_AUDIO_DIRS`` (site config) or
    the data folder's ``bench-audio`` and the corpus folders next to the install."""
    configured = current_app.config.get("BENCH_AUDIO_DIRS")
    if configured is None:
        data = Path(current_app.config["DATA_DIR"])
        shared = REPO.parent / "shared"
        configured = [data / "bench-audio", shared / "corpus", shared / "corpus-b"]
    return recording_folders([Path(p) for p in configured])


def _capacity() -> tuple[pb.Capacity | None, str]:
    client: DaemonClient = current_app.extensions["callqa_daemon"]
    try:
        reply = pb_grpc.CallQaStub(client.channel).GetCapacity(
            pb.GetCapacityRequest(), timeout=CAPACITY_TIMEOUT_S, metadata=client.metadata)
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        return None, code.name if code is not None else str(exc)
    return reply, ""


def _texts() -> dict[str, str]:
    return {"latency_title": _("p95 latency against lines"),
            "latency_axis": _("p95 latency, ms"),
            "latency_axis_log": _("p95 latency, ms (log scale)"),
            "lines_axis": _("concurrent lines"), "deadline": _("alert deadline"),
            "cpu_title": _("CPU against lines"), "cpu_axis": _("CPU, percent of all cores"),
            "no_latency": _("No step finished a transcript"),
            "no_latency_front_end": _("The front end alone transcribes nothing")}


def _deadline_ms() -> float:
    return 1000.0 * app_settings().alert_deadline_s


@bp.route("/capacity")
@require(roles.CAPACITY)
def index() -> Any:
    cap, problem = _capacity()
    facts = capacity_data.box_facts()
    box = app_settings()
    settings = [(name, getattr(box, name)) for name in SHOWN_SETTINGS]
    groups = capacity_data.runs(get_conn())
    charts = None
    if groups:
        lat, cpu = capacity_data.group_charts(groups[0], facts["cores"], _texts(),
                                              _deadline_ms())
        charts = (Markup(lat), Markup(cpu))
    return render_template(
        "capacity/index.html", now=capacity_data.capacity_json(cap) if cap else None,
        problem=problem, facts=facts, settings=settings, groups=groups, charts=charts,
        choices=audio_choices(), bench=runner().status(), stages=capacity_data.STAGES,
        default_ladder="1,2,4,8,12,16", default_step_s=60,
    )


@bp.route("/capacity/runs/<int:run_id>")
@require(roles.CAPACITY)
def run(run_id: int) -> Any:
    group = capacity_data.run_group(get_conn(), run_id)
    if group is None:
        abort(404)
    facts = capacity_data.box_facts()
    lat, cpu = capacity_data.group_charts(group, facts["cores"], _texts(), _deadline_ms())
    return render_template("capacity/run.html", group=group, charts=(Markup(lat), Markup(cpu)),
                           cores=facts["cores"])


@bp.route("/capacity/now.json")
@require(roles.CAPACITY)
def now() -> Any:
    cap, problem = _capacity()
    if cap is None:
        return jsonify({"up": False, "problem": problem})
    return jsonify({"up": True, **capacity_data.capacity_json(cap)})


@bp.route("/capacity/bench.json")
@require(roles.CAPACITY)
def bench_status() -> Any:
    return jsonify(runner().status())


def _params() -> BenchParams:
    from core.capacity.ramp import STEP_LADDER
    from core.cli.bench import parse_ladder

    try:
        ladder = parse_ladder(request.form.get("ladder", "").replace(" ", ""), STEP_LADDER)
    except ConfigError as exc:
        raise ValueError(_("The ladder must be rising numbers of lines, such as 1,2,4,8.")
                         ) from exc
    if len(ladder) > MAX_BENCH_STEPS or ladder[-1] > MAX_BENCH_LINES:
        raise ValueError(_("At most %(steps)s steps and %(lines)s lines.",
                           steps=MAX_BENCH_STEPS, lines=MAX_BENCH_LINES))
    try:
        step_s = float(request.form.get("step_s", "60"))
    except ValueError:
        step_s = -1.0
    if not 5 <= step_s <= 600:
        raise ValueError(_("A step lasts 5 to 600 seconds."))
    chosen = request.form.get("recordings", "samples")
    folders = {path for path, _count in audio_choices()}
    if chosen != "samples" and chosen not in folders:
        raise ValueError(_("Choose recordings from the list."))
    return BenchParams(ladder=tuple(ladder), step_s=step_s,
                       recordings=None if chosen == "samples" else chosen,
                       baseline=bool(request.form.get("baseline")))


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


@bp.route("/capacity/bench", methods=["POST"])
@require(roles.CAPACITY)
def bench_start() -> Any:
    user = current_user()
    try:
        params = _params()
        state = runner().start(params, user.username)
    except ValueError as exc:
        if _wants_json():
            return error_response(400, str(exc))
        flash(str(exc))
        return redirect(url_for("capacity.index"))
    except BenchBusy:
        message = _("A capacity benchmark is running already: wait for it or cancel it.")
        if _wants_json():
            return error_response(409, message)
        flash(message)
        return redirect(url_for("capacity.index"))
    audit.record(get_conn(), user.username, "benchmark_started", detail={
        "ladder": list(params.ladder), "step_s": params.step_s,
        "recordings": params.recordings or "samples", "baseline": params.baseline,
        "pid": state.pid, "work": state.work,
    })
    if _wants_json():
        return jsonify(runner().status())
    return redirect(url_for("capacity.index", _anchor="bench"))


@bp.route("/capacity/bench/cancel", methods=["POST"])
@require(roles.CAPACITY)
def bench_cancel() -> Any:
    user = current_user()
    state = runner().cancel(user.username)
    if state is None:
        message = _("No capacity benchmark is running.")
        if _wants_json():
            return error_response(409, message)
        flash(message)
        return redirect(url_for("capacity.index"))
    audit.record(get_conn(), user.username, "benchmark_cancelled",
                 detail={"pid": state.pid, "work": state.work, "started_by": state.by})
    if _wants_json():
        return jsonify(runner().status())
    flash(_("The capacity benchmark is cancelled."))
    return redirect(url_for("capacity.index", _anchor="bench"))
