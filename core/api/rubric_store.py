"""Rubric drafts and rubric routes for the gRPC service (`PutRubric` with ``draft``,
`ListRubricRoutes`, `SetRubricRoutes`).

Everything here that writes runs on the daemon's storage writer thread (the functions take
its connection first), each change in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from core.api import convert
from core.live.routing import RubricRoutes
from core.rubric.defaults import builtin_rubrics
from core.storage import repository, routes
from core.storage.repository import write_transaction
from proto import callqa_pb2 as pb

ROUTE_KINDS: dict[str, Any] = {
    "agent": pb.ROUTE_KIND_AGENT, "skill": pb.ROUTE_KIND_SKILL, "team": pb.ROUTE_KIND_TEAM,
}  # fmt: skip
ROUTE_KIND_NAMES = {v: k for k, v in ROUTE_KINDS.items()}


@dataclass(frozen=True)
class Stored:
    version: int
    unchanged: bool
    active: bool


def pin_in_use(db: Database, rubric_id: str) -> None:
    """Make the version that calls use now the active one, when the rubric has none active.

    Calls use the active version, else the latest stored one, else the built-in text of
    that id (`core.storage.rubric_catalog`); pinning it keeps a newer draft out of use.
    """
    current = repository.get_rubric_version(db, rubric_id)
    if current is not None:
        if not current["active"]:
            repository.set_active(db, rubric_id, int(current["version"]))
        return
    builtin = builtin_rubrics().get(rubric_id)
    if builtin is not None:
        repository.set_active(db, rubric_id, repository.record_rubric_version(db, rubric_id,
                                                                             builtin))


def store_rubric(
    db: Database, rubric_id: str, yaml_text: str, activate: bool, draft: bool
) -> Stored:
    """Store `yaml_text` as the next version of `rubric_id` (see PutRubricRequest)."""
    with write_transaction(db):
        if draft and not activate:
            pin_in_use(db, rubric_id)
        latest = repository.latest_rubric_version(db, rubric_id)
        version = repository.record_rubric_version(db, rubric_id, yaml_text)
        if activate:
            repository.set_active(db, rubric_id, version)
        row = repository.get_rubric_version(db, rubric_id, version)
    unchanged = latest is not None and version == latest
    return Stored(version, unchanged, bool(row and row["active"]))


def known_rubric_ids(db: Database) -> set[str]:
    """Rubric ids a route may name: every stored one and every built-in one."""
    return set(builtin_rubrics()) | {r["rubric_id"] for r in repository.list_rubrics(db)}


def set_routes(db: Database, request: pb.SetRubricRoutesRequest) -> list[routes.StoredRoute]:
    """Apply a SetRubricRoutesRequest; ValueError (nothing changed) names a bad route."""
    wanted: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    known = known_rubric_ids(db)
    for r in request.routes:
        kind = ROUTE_KIND_NAMES.get(r.kind)
        if kind is None:
            raise ValueError("every route needs a kind: agent, skill or team")
        value, rubric_id = r.value.strip(), r.rubric_id.strip()
        if not value:
            raise ValueError(f"a {kind} route needs the {kind} it matches")
        if (kind, value) in seen:
            raise ValueError(f"route {kind}:{value} is named twice")
        seen.add((kind, value))
        if rubric_id and rubric_id not in known:
            raise ValueError(
                f"route {kind}:{value}: no rubric {rubric_id!r}; known: {', '.join(sorted(known))}"
            )
        wanted.append((kind, value, rubric_id))
    return routes.set_routes(db, wanted, replace=request.replace)


def routes_response(
    stored: list[routes.StoredRoute], setting: RubricRoutes, default_rubric: str
) -> pb.ListRubricRoutesResponse:
    """Both sources of routes, as ListRubricRoutes answers."""
    out = pb.ListRubricRoutesResponse(default_rubric_id=default_rubric)
    keys = set()
    for route in stored:
        keys.add((route.kind, route.value))
        out.routes.append(pb.RubricRoute(
            kind=ROUTE_KINDS[route.kind], value=route.value, rubric_id=route.rubric_id,
            source=pb.ROUTE_SOURCE_STORED, updated_at=convert.ts(route.updated_at),
        ))  # fmt: skip
    for kind in ROUTE_KINDS:
        for value, rubric_id in sorted(setting.rules.get(kind, {}).items()):
            out.routes.append(pb.RubricRoute(
                kind=ROUTE_KINDS[kind], value=value, rubric_id=rubric_id,
                source=pb.ROUTE_SOURCE_SETTING, overridden=(kind, value) in keys,
            ))  # fmt: skip
    return out
