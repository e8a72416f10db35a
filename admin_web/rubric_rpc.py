"""The rubric pages' calls to the daemon: storing versions, activating, rubric routes.

Rubric versions and routes live in the daemon's database, which the site never writes: each
change is a gRPC call (`PutRubric`, `ActivateRubric`, `SetRubricRoutes`). When the daemon does
not answer, `DaemonDown` says so and nothing is changed; when it refuses, `DaemonRefused`
carries its reason (for an invalid rubric, one problem per line).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from flask import current_app

from admin_web.daemon import DaemonClient
from proto import callqa_pb2 as pb
from proto import callqa_pb2_grpc as pb_grpc

TIMEOUT_S = 10.0
DOWN_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
              grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAUTHENTICATED)

ROUTE_KINDS: dict[str, Any] = {"agent": pb.ROUTE_KIND_AGENT, "skill": pb.ROUTE_KIND_SKILL,
                               "team": pb.ROUTE_KIND_TEAM}
ROUTE_KIND_NAMES = {v: k for k, v in ROUTE_KINDS.items()}


class DaemonDown(Exception):
    """The daemon did not answer (stopped, unreachable, or the token is wrong)."""

    def __init__(self, address: str, detail: str) -> None:
        super().__init__(f"{address}: {detail}")
        self.address = address
        self.detail = detail


class DaemonRefused(Exception):
    """The daemon answered with an error (INVALID_ARGUMENT, NOT_FOUND, ...)."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


def _client() -> DaemonClient:
    client: DaemonClient = current_app.extensions["callqa_daemon"]
    return client


def _call(method: str, request: Any) -> Any:
    client = _client()
    stub = pb_grpc.CallQaStub(client.channel)
    try:
        return getattr(stub, method)(request, timeout=TIMEOUT_S,
                                     metadata=client.metadata_for(method))
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = exc.details() if hasattr(exc, "details") else str(exc)
        if code in DOWN_CODES:
            raise DaemonDown(client.address, code.name) from exc
        raise DaemonRefused(code.name, details or "") from exc


@dataclass(frozen=True)
class Stored:
    rubric_id: str
    version: int
    unchanged: bool
    active: bool


def put_draft(yaml_text: str) -> Stored:
    """Store the text as the rubric's next version, a draft no call uses until activated."""
    reply = _call("PutRubric", pb.PutRubricRequest(yaml=yaml_text, draft=True))
    return Stored(reply.rubric_id, reply.version, reply.unchanged, reply.active)


def activate(rubric_id: str, version: int) -> None:
    _call("ActivateRubric", pb.ActivateRubricRequest(rubric_id=rubric_id, version=version))


@dataclass(frozen=True)
class Route:
    kind: str
    value: str
    rubric_id: str
    source: str  # stored | setting
    updated_at: str = ""
    overridden: bool = False


@dataclass(frozen=True)
class RouteListing:
    routes: list[Route]
    default_rubric: str


def _listing(reply: pb.ListRubricRoutesResponse) -> RouteListing:
    routes = []
    for r in reply.routes:
        updated = ""
        if r.HasField("updated_at"):
            updated = r.updated_at.ToDatetime().isoformat(timespec="seconds") + "+00:00"
        routes.append(Route(
            kind=ROUTE_KIND_NAMES.get(r.kind, "?"), value=r.value, rubric_id=r.rubric_id,
            source="stored" if r.source == pb.ROUTE_SOURCE_STORED else "setting",
            updated_at=updated, overridden=r.overridden,
        ))
    return RouteListing(routes, reply.default_rubric_id)


def list_routes() -> RouteListing:
    """The daemon's routes; a page reads them on every view, so a daemon that its (cached)
    health check finds down is not asked."""
    client = _client()
    status = client.status()
    if not status.up:
        raise DaemonDown(client.address, status.detail)
    return _listing(_call("ListRubricRoutes", pb.ListRubricRoutesRequest()))


def set_routes(changes: list[tuple[str, str, str]]) -> RouteListing:
    """Set (kind, value, rubric_id) routes; an empty rubric_id removes that key's route."""
    request = pb.SetRubricRoutesRequest(routes=[
        pb.RubricRoute(kind=ROUTE_KINDS[kind], value=value, rubric_id=rubric_id)
        for kind, value, rubric_id in changes
    ])
    return _listing(_call("SetRubricRoutes", request))
