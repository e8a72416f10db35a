"""The ``rubric_routes`` table: which rubric a new call gets by agent, skill group or team.

One row per key (``kind``, ``value``): ``agent``/``skill``/``team`` and the agent id, skill
group or team id it matches. The admin web sets the rows through the daemon's gRPC API
(``SetRubricRoutes``); the daemon reads them when it starts and after every change, and
lays them over the routes of the ``rubric_routes`` setting (`core.live.routing`): a route of
the setting applies where the table has none for the same key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlite_utils import Database

from core.clock import utc_now_iso
from core.storage.repository import write_transaction

ROUTE_KINDS = ("agent", "skill", "team")


@dataclass(frozen=True)
class StoredRoute:
    kind: str
    value: str
    rubric_id: str
    updated_at: str = ""


def _check(kind: str, value: str) -> None:
    if kind not in ROUTE_KINDS:
        raise ValueError(f"route kind must be one of {', '.join(ROUTE_KINDS)}, got {kind!r}")
    if not value.strip():
        raise ValueError(f"a {kind} route needs the {kind} it matches")


def list_routes(db: Database) -> list[StoredRoute]:
    """Every stored route, by kind (agent, skill, team) then value."""
    order = "CASE kind WHEN 'agent' THEN 0 WHEN 'skill' THEN 1 ELSE 2 END"
    rows = db.execute(
        "SELECT kind, value, rubric_id, updated_at FROM rubric_routes"
        f" ORDER BY {order}, value"
    ).fetchall()
    return [StoredRoute(str(k), str(v), str(r), str(u)) for k, v, r, u in rows]


def route_rules(db: Database) -> dict[str, dict[str, str]]:
    """The stored routes as `core.live.routing.RubricRoutes` rules: kind -> value -> rubric."""
    rules: dict[str, dict[str, str]] = {kind: {} for kind in ROUTE_KINDS}
    for route in list_routes(db):
        rules[route.kind][route.value] = route.rubric_id
    return rules


def set_routes(
    db: Database, routes: Iterable[tuple[str, str, str]], *, replace: bool = False
) -> list[StoredRoute]:
    """Set routes ``(kind, value, rubric_id)`` in one transaction; returns every route after.

    An empty ``rubric_id`` removes the route of that key (so that the setting's route, if
    any, applies again). With ``replace``, routes not named are removed first. Raises
    ValueError, and changes nothing, when a kind or value is not usable.
    """
    wanted = [(k.strip().lower(), v.strip(), r.strip()) for k, v, r in routes]
    for kind, value, _rubric in wanted:
        _check(kind, value)
    now = utc_now_iso()
    with write_transaction(db):
        if replace:
            db.execute("DELETE FROM rubric_routes")
        for kind, value, rubric_id in wanted:
            if not rubric_id:
                db.execute("DELETE FROM rubric_routes WHERE kind = ? AND value = ?", [kind, value])
                continue
            db.execute(
                "INSERT INTO rubric_routes (kind, value, rubric_id, updated_at)"
                " VALUES (?, ?, ?, ?)"
                " ON CONFLICT (kind, value) DO UPDATE SET rubric_id = excluded.rubric_id,"
                " updated_at = excluded.updated_at"
                " WHERE rubric_routes.rubric_id <> excluded.rubric_id",
                [kind, value, rubric_id, now],
            )
    return list_routes(db)
