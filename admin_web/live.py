"""Live lines (实时监控): the calls on the box now, their alerts, one line's transcript.

The page lists the live calls (gRPC ``ListLiveCalls``) and is kept up to date by
server-sent events from ``/live/events`` (`admin_web.live_stream`: the daemon's
``WatchCalls`` stream, plus ``WatchCall`` for the line whose transcript is open). A
supervisor sees only the lines of their own team: the team filter is set on every gRPC
request here, never left to the page.
"""

from __future__ import annotations

from typing import Any

import grpc
from flask import Blueprint, Response, abort, current_app, render_template, request
from flask.blueprints import BlueprintSetupState

from admin_web import roles
from admin_web.auth import current_user, require
from admin_web.daemon import DaemonClient
from admin_web.db import get_conn
from admin_web.live_stream import (
    BUSY_RETRY_MS,
    DEFAULT_MAX_STREAMS,
    DEFAULT_REFRESH_S,
    DEFAULT_RETRY_MS,
    DEFAULT_STREAM_MAX_S,
    LIST_TIMEOUT_S,
    RecentAlerts,
    StreamLimits,
    StreamSlots,
    closing,
    line_json,
    relay,
    sse,
)
from admin_web.site_db import one, rows
from proto import callqa_pb2 as pb
from proto import callqa_pb2_grpc as pb_grpc

bp = Blueprint("live", __name__)

EXTENSION = "callqa_live"


class LiveState:
    """What the live pages share in one site process: stream slots and recent alerts."""

    def __init__(self, client: DaemonClient, max_streams: int) -> None:
        self.slots = StreamSlots(max_streams)
        self.recent = RecentAlerts(client.channel, client.metadata)


@bp.record_once
def _setup(state: BlueprintSetupState) -> None:
    app = state.app
    app.config.setdefault("LIVE_MAX_STREAMS", DEFAULT_MAX_STREAMS)
    app.config.setdefault("LIVE_STREAM_MAX_S", DEFAULT_STREAM_MAX_S)
    app.config.setdefault("LIVE_REFRESH_S", DEFAULT_REFRESH_S)
    app.config.setdefault("LIVE_RETRY_MS", DEFAULT_RETRY_MS)


def live_state() -> LiveState:
    state = current_app.extensions.get(EXTENSION)
    if state is None:
        state = LiveState(current_app.extensions["callqa_daemon"],
                          int(current_app.config["LIVE_MAX_STREAMS"]))
        current_app.extensions[EXTENSION] = state
    return state


def _client() -> DaemonClient:
    client: DaemonClient = current_app.extensions["callqa_daemon"]
    return client


def _teams() -> tuple[list[str], str]:
    """The team filter of this request: a supervisor's own team, else the chosen one."""
    user = current_user()
    if user.team_scope is not None:
        return [user.team_scope], user.team_scope
    chosen = request.args.get("team", "").strip()
    return ([chosen] if chosen else []), chosen


def _may_watch(call_id: str, teams: list[str]) -> bool:
    """Whether a user limited to `teams` may watch this call (live or stored)."""
    if not teams:
        return True
    client = _client()
    stub = pb_grpc.CallQaStub(client.channel)
    try:
        listed = stub.ListLiveCalls(pb.ListLiveCallsRequest(team_ids=teams),
                                    timeout=LIST_TIMEOUT_S, metadata=client.metadata)
        if any(c.call_id == call_id for c in listed.calls):
            return True
    except grpc.RpcError:
        pass
    marks = ", ".join("?" for _ in teams)
    row = one(get_conn(), f"SELECT id FROM cq.calls WHERE id = ? AND team_id IN ({marks})",
              [call_id, *teams])
    return row is not None


@bp.route("/live")
@require(roles.LIVE)
def index() -> Any:
    user = current_user()
    teams, chosen = _teams()
    state = live_state()
    state.recent.start()
    client = _client()
    lines: list[dict[str, Any]] = []
    daemon_up = True
    try:
        listed = pb_grpc.CallQaStub(client.channel).ListLiveCalls(
            pb.ListLiveCallsRequest(team_ids=teams), timeout=LIST_TIMEOUT_S,
            metadata=client.metadata)
        lines = [line_json(c) for c in listed.calls]
    except grpc.RpcError:
        daemon_up = False
    live_ids = {c["call_id"] for c in lines}
    recent = state.recent.latest(teams or None)
    for line in lines:
        line["latest"] = [a for a in recent if a["call_id"] == line["call_id"]][:2]
    team_choices: list[str] = []
    if user.team_scope is None:
        team_choices = [r["id"] for r in rows(get_conn(), "SELECT id FROM cq.teams ORDER BY id")]
    return render_template(
        "live/index.html", lines=lines, alerts=recent, live_ids=live_ids, daemon_up=daemon_up,
        team=chosen, team_choices=team_choices, address=client.address,
        retry_ms=int(current_app.config["LIVE_RETRY_MS"]), busy_retry_ms=BUSY_RETRY_MS,
    )


@bp.route("/live/events")
@require(roles.LIVE)
def events() -> Any:
    teams, _chosen = _teams()
    call_id = request.args.get("call", "").strip() or None
    if call_id is not None and (len(call_id) > 64 or not _may_watch(call_id, teams)):
        abort(404)
    state = live_state()
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    if not state.slots.take():
        body = f"retry: {BUSY_RETRY_MS}\n\n" + sse("busy", {"limit": state.slots.limit})
        return Response(body, mimetype="text/event-stream", headers=headers)
    state.recent.start()
    client = _client()
    cfg = current_app.config
    limits = StreamLimits(max_s=float(cfg["LIVE_STREAM_MAX_S"]),
                          refresh_s=float(cfg["LIVE_REFRESH_S"]),
                          retry_ms=int(cfg["LIVE_RETRY_MS"]))
    stream = relay(client.channel, client.metadata, teams=teams, call_id=call_id,
                   limits=limits, recent=state.recent.latest(teams or None))
    return Response(closing(stream, state.slots.give_back), mimetype="text/event-stream",
                    headers=headers)
