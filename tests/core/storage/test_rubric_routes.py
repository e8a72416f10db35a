"""Rubric routes as data: the ``rubric_routes`` table, its gRPC API, and the daemon's routing.

Checked: the table's writes (upsert, removal, replace, refusal of bad keys) on a real
SQLite file; the overlay of the table over the ``rubric_routes`` setting; and, against a real
`callqa serve` child (ASR off, so no model is loaded), that a route set with
`SetRubricRoutes` changes the rubric of the NEXT call streamed with that team, agent or
skill group, that a setting's route applies where the table has none for its key, that the
stored routes survive a restart, and that `PutRubric` with ``draft`` leaves the version in
use untouched until `ActivateRubric`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from core.daemon.child import ServeProcess
from core.live.routing import RubricRoutes
from core.rubric.defaults import builtin_rubrics
from core.storage import routes
from core.storage.db import open_db
from proto import callqa_pb2 as pb
from proto import callqa_pb2_grpc as pb_grpc

# ---------------------------------------------------------------- the table


def test_table_upserts_removes_and_replaces(tmp_path: Path) -> None:
    db = open_db(tmp_path / "callqa.db")
    try:
        assert routes.list_routes(db) == []
        after = routes.set_routes(db, [("team", "T1", "default-en"), ("agent", "A7", "x"),
                                       ("skill", "billing", "default-zh")])
        assert [(r.kind, r.value, r.rubric_id) for r in after] == [
            ("agent", "A7", "x"), ("skill", "billing", "default-zh"), ("team", "T1", "default-en")]
        assert all(r.updated_at for r in after)
        # One key holds one route: setting it again changes it.
        routes.set_routes(db, [(" Team ", "T1", "default-zh")])
        assert routes.route_rules(db)["team"] == {"T1": "default-zh"}
        # An empty rubric removes the key's route.
        routes.set_routes(db, [("agent", "A7", "")])
        assert routes.route_rules(db)["agent"] == {}
        # A bad key changes nothing at all, not even the good routes beside it.
        with pytest.raises(ValueError, match="route kind"):
            routes.set_routes(db, [("team", "T9", "default-zh"), ("crew", "x", "default-zh")])
        with pytest.raises(ValueError, match="needs the team"):
            routes.set_routes(db, [("team", "  ", "default-zh")])
        assert "T9" not in routes.route_rules(db)["team"]
        # Replace: the request is the whole table.
        routes.set_routes(db, [("team", "T2", "default-en")], replace=True)
        assert [(r.kind, r.value) for r in routes.list_routes(db)] == [("team", "T2")]
        # The database itself refuses what the code would refuse.
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("INSERT INTO rubric_routes VALUES ('crew', 'x', 'y', 'now')")
    finally:
        db.close()


def test_table_routes_lie_over_the_setting_key_by_key() -> None:
    setting = RubricRoutes.parse("team:T1=set-team,agent:A1=set-agent,skill:s=set-skill")
    merged = setting.overlay({"team": {"T1": "tab-team", "T2": "tab-t2"}, "agent": {},
                              "skill": {}})
    pick = merged.choose
    assert pick(agent_id=None, team_id="T1", skill=None, default="d") == "tab-team"
    assert pick(agent_id=None, team_id="T2", skill=None, default="d") == "tab-t2"
    # A more specific route of the setting still wins over a stored team route.
    assert pick(agent_id="A1", team_id="T1", skill=None, default="d") == "set-agent"
    assert pick(agent_id=None, team_id="T1", skill="s", default="d") == "set-skill"
    assert pick(agent_id="A9", team_id="T9", skill=None, default="d") == "d"
    assert setting.overlay({"team": {}}) is setting
    assert setting.rules["team"] == {"T1": "set-team"}  # the setting's own rules stay


# ---------------------------------------------------------------- a real daemon


def _daemon(data_dir: Path, routes_setting: str) -> ServeProcess:
    return ServeProcess(data_dir, {"asr_enabled": "false", "sip_enabled": "false",
                                   "rubric": "default-zh", "rubric_routes": routes_setting,
                                   "shutdown_grace_s": "20"}).start()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    d = _daemon(tmp_path_factory.mktemp("routes"), "team:T2=default-en")
    yield d
    d.stop()


def _frames(team: str, agent: str, skill: str) -> Iterator[pb.AudioFrame]:
    yield pb.AudioFrame(setup=pb.CallSetup(
        external_call_id="", agent_id=agent, team_id=team, skill_group=skill,
        encoding=pb.AUDIO_ENCODING_PCM16_LE, sample_rate_hz=8000))
    quiet = np.zeros(160, dtype="<i2").tobytes()
    for _ in range(25):  # half a second of each leg
        for leg in (pb.LEG_AGENT, pb.LEG_CUSTOMER):
            yield pb.AudioFrame(audio=pb.AudioChunk(leg=leg, payload=quiet))
    yield pb.AudioFrame(end=pb.CallEnd())


def rubric_of_new_call(stub: pb_grpc.CallQaStub, *, team: str = "", agent: str = "",
                       skill: str = "") -> tuple[str, int]:
    """Stream a short call; the rubric id and version its CallStarted names."""
    events = list(stub.StreamAudio(_frames(team, agent, skill), timeout=60))
    started = [e.started for e in events if e.WhichOneof("event") == "started"]
    assert started and events[-1].WhichOneof("event") == "ended", events
    return started[0].rubric_id, started[0].rubric_version


def _route(kind: int, value: str, rubric_id: str) -> pb.RubricRoute:
    return pb.RubricRoute(kind=kind, value=value, rubric_id=rubric_id)


def _listed(reply: pb.ListRubricRoutesResponse) -> set[tuple[int, str, str, int, bool]]:
    return {(r.kind, r.value, r.rubric_id, r.source, r.overridden) for r in reply.routes}


def test_a_stored_route_changes_the_rubric_of_the_next_call(daemon: ServeProcess) -> None:
    stub = daemon.stub()
    listing = stub.ListRubricRoutes(pb.ListRubricRoutesRequest(), timeout=10)
    assert listing.default_rubric_id == "default-zh"
    assert _listed(listing) == {(pb.ROUTE_KIND_TEAM, "T2", "default-en", pb.ROUTE_SOURCE_SETTING,
                                 False)}
    assert rubric_of_new_call(stub, team="T1")[0] == "default-zh"  # the default
    assert rubric_of_new_call(stub, team="T2")[0] == "default-en"  # the setting's route

    reply = stub.SetRubricRoutes(pb.SetRubricRoutesRequest(routes=[
        _route(pb.ROUTE_KIND_TEAM, "T1", "default-en"),
        _route(pb.ROUTE_KIND_TEAM, "T2", "default-zh"),
        _route(pb.ROUTE_KIND_AGENT, "A42", "default-zh"),
        _route(pb.ROUTE_KIND_SKILL, "billing", "default-zh"),
    ]), timeout=10)
    assert _listed(reply) == {
        (pb.ROUTE_KIND_AGENT, "A42", "default-zh", pb.ROUTE_SOURCE_STORED, False),
        (pb.ROUTE_KIND_SKILL, "billing", "default-zh", pb.ROUTE_SOURCE_STORED, False),
        (pb.ROUTE_KIND_TEAM, "T1", "default-en", pb.ROUTE_SOURCE_STORED, False),
        (pb.ROUTE_KIND_TEAM, "T2", "default-zh", pb.ROUTE_SOURCE_STORED, False),
        (pb.ROUTE_KIND_TEAM, "T2", "default-en", pb.ROUTE_SOURCE_SETTING, True),
    }
    assert all(r.updated_at.seconds > 0 for r in reply.routes
               if r.source == pb.ROUTE_SOURCE_STORED)
    # No restart, no SIGHUP: the next calls follow the stored routes.
    assert rubric_of_new_call(stub, team="T1")[0] == "default-en"
    assert rubric_of_new_call(stub, team="T2")[0] == "default-zh"  # the table wins its key
    assert rubric_of_new_call(stub, team="T1", agent="A42")[0] == "default-zh"  # agent first
    assert rubric_of_new_call(stub, team="T1", skill="billing")[0] == "default-zh"

    # Removing the stored T2 route brings the setting's route back.
    stub.SetRubricRoutes(pb.SetRubricRoutesRequest(
        routes=[_route(pb.ROUTE_KIND_TEAM, "T2", "")]), timeout=10)
    assert rubric_of_new_call(stub, team="T2")[0] == "default-en"

    # Refused requests change nothing.
    before = _listed(stub.ListRubricRoutes(pb.ListRubricRoutesRequest(), timeout=10))
    for bad, why in (
        (_route(pb.ROUTE_KIND_TEAM, "T1", "no-such-rubric"), "no rubric 'no-such-rubric'"),
        (_route(pb.ROUTE_KIND_UNSPECIFIED, "T1", "default-zh"), "kind: required"),
        (_route(pb.ROUTE_KIND_TEAM, " ", "default-zh"), "needs the team"),
    ):
        with pytest.raises(grpc.RpcError) as err:
            stub.SetRubricRoutes(pb.SetRubricRoutesRequest(
                routes=[_route(pb.ROUTE_KIND_TEAM, "T7", "default-zh"), bad]), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert why in (err.value.details() or "")
    assert _listed(stub.ListRubricRoutes(pb.ListRubricRoutesRequest(), timeout=10)) == before


def test_a_draft_stays_out_of_use_until_activated(daemon: ServeProcess) -> None:
    stub = daemon.stub()
    stub.SetRubricRoutes(pb.SetRubricRoutesRequest(routes=[], replace=True), timeout=10)
    text = builtin_rubrics()["default-zh"]
    # The calls above stored the built-in text as version 1, never activated: the latest
    # version is the one in use, so a plain PutRubric would take over at once.
    rid, in_use = rubric_of_new_call(stub, team="T1")
    assert rid == "default-zh"
    draft = text.replace("pass_score: 80", "pass_score: 85")
    put = stub.PutRubric(pb.PutRubricRequest(yaml=draft, draft=True), timeout=10)
    assert (put.version, put.unchanged, put.active) == (in_use + 1, False, False)
    assert rubric_of_new_call(stub, team="T1") == ("default-zh", in_use)  # pinned
    info = next(r for r in stub.ListRubrics(pb.ListRubricsRequest(), timeout=10).rubrics
                if r.rubric_id == "default-zh")
    assert info.active_version == in_use and put.version in info.versions
    again = stub.PutRubric(pb.PutRubricRequest(yaml=draft, draft=True), timeout=10)
    assert (again.version, again.unchanged) == (put.version, True)
    stub.ActivateRubric(pb.ActivateRubricRequest(rubric_id="default-zh", version=put.version),
                        timeout=10)
    assert rubric_of_new_call(stub, team="T1") == ("default-zh", put.version)
    # Back to the older version: calls use it as it is, without storing copies of it.
    stub.ActivateRubric(pb.ActivateRubricRequest(rubric_id="default-zh", version=in_use),
                        timeout=10)
    assert rubric_of_new_call(stub, team="T1") == ("default-zh", in_use)
    info = next(r for r in stub.ListRubrics(pb.ListRubricsRequest(), timeout=10).rubrics
                if r.rubric_id == "default-zh")
    assert max(info.versions) == put.version and info.active_version == in_use


def test_stored_routes_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    d = _daemon(data, "")
    try:
        d.stub().SetRubricRoutes(pb.SetRubricRoutesRequest(
            routes=[_route(pb.ROUTE_KIND_TEAM, "T5", "default-en")]), timeout=10)
    finally:
        d.stop()
    again = _daemon(data, "team:T5=default-zh")
    try:
        stub = again.stub()
        assert rubric_of_new_call(stub, team="T5")[0] == "default-en"
        listed = _listed(stub.ListRubricRoutes(pb.ListRubricRoutesRequest(), timeout=10))
        assert (pb.ROUTE_KIND_TEAM, "T5", "default-zh", pb.ROUTE_SOURCE_SETTING, True) in listed
    finally:
        again.stop()
