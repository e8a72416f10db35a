"""What the rubric pages read: rubrics and their versions (the calls database, read-only, and
the built-in rubrics), who saved each version (the audit log), version diffs, and which rubric
each team is on (the routes and the active versions).
"""

from __future__ import annotations

import difflib
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import yaml

from admin_web import app_settings, rubric_rpc
from admin_web.rubric_form import dump_rubric_data
from admin_web.site_db import rows
from core.live.routing import KINDS as ROUTE_KINDS
from core.live.routing import RubricRoutes
from core.rubric import RubricError, load_rubric_text
from core.rubric.defaults import builtin_rubrics
from core.rubric.schema import rubric_to_dict

SAVE_ACTIONS = ("rubric_save", "rubric_import")


@dataclass(frozen=True)
class RubricSummary:
    rubric_id: str
    name: str
    language: str
    versions: int
    latest: int | None
    active: int | None
    built_in: bool
    updated_at: str | None

    @property
    def in_use(self) -> int | None:
        """The version new calls get: the active one, else the latest (None: built-in text)."""
        return self.active if self.active is not None else self.latest


def _name_and_language(text: str) -> tuple[str, str]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return "", ""
    if not isinstance(data, dict):
        return "", ""
    return str(data.get("name") or data.get("id") or ""), str(data.get("language") or "")


def list_rubrics(conn: sqlite3.Connection) -> list[RubricSummary]:
    """Every rubric: the stored ones and the built-in ones, by id."""
    found = rows(conn, "SELECT rubric_id, count(*) AS n, max(version) AS latest,"
                       " max(CASE WHEN active = 1 THEN version END) AS active,"
                       " max(created_at) AS updated_at"
                       " FROM cq.rubric_versions GROUP BY rubric_id")
    builtins = builtin_rubrics()
    out: dict[str, RubricSummary] = {}
    for r in found:
        rid = r["rubric_id"]
        shown = r["active"] if r["active"] is not None else r["latest"]
        text = version_text(conn, rid, int(shown))
        name, language = _name_and_language(text or "")
        out[rid] = RubricSummary(rid, name, language, int(r["n"]), int(r["latest"]),
                                 r["active"], rid in builtins, r["updated_at"])
    for rid, text in builtins.items():
        if rid not in out:
            name, language = _name_and_language(text)
            out[rid] = RubricSummary(rid, name, language, 0, None, None, True, None)
    return [out[k] for k in sorted(out)]


def get_rubric(conn: sqlite3.Connection, rubric_id: str) -> RubricSummary | None:
    return next((r for r in list_rubrics(conn) if r.rubric_id == rubric_id), None)


def version_text(conn: sqlite3.Connection, rubric_id: str, version: int | None) -> str | None:
    """The YAML of one stored version; None: the version in use, else the built-in text."""
    if version is None:
        row = conn.execute(
            "SELECT yaml FROM cq.rubric_versions WHERE rubric_id = ?"
            " ORDER BY active DESC, version DESC LIMIT 1", [rubric_id]).fetchone()
        if row is not None:
            return str(row[0])
        return builtin_rubrics().get(rubric_id)
    row = conn.execute("SELECT yaml FROM cq.rubric_versions WHERE rubric_id = ? AND version = ?",
                       [rubric_id, int(version)]).fetchone()
    return None if row is None else str(row[0])


def versions(conn: sqlite3.Connection, rubric_id: str) -> list[dict[str, Any]]:
    """Every stored version, newest first, with who saved it from the site (if anyone)."""
    found = rows(conn, "SELECT version, created_at, active, sha256 FROM cq.rubric_versions"
                       " WHERE rubric_id = ? ORDER BY version DESC", [rubric_id])
    placeholders = ", ".join("?" for _ in SAVE_ACTIONS)
    saved: dict[int, dict[str, Any]] = {}
    for entry in rows(
        conn,
        "SELECT username, action, at, CAST(json_extract(detail, '$.version') AS INTEGER) AS v"
        f" FROM audit_log WHERE action IN ({placeholders})"
        " AND json_extract(detail, '$.rubric_id') = ? ORDER BY id",
        [*SAVE_ACTIONS, rubric_id],
    ):
        if entry["v"] is not None:
            saved.setdefault(int(entry["v"]), entry)
    for v in found:
        v["active"] = bool(v["active"])
        v["saved_by"] = saved.get(int(v["version"]))
    return found


# ---------------------------------------------------------------- diff


def normalised(text: str) -> str:
    """The rubric's meaning as YAML in one layout (defaults written out, no comments), so that
    a diff shows what changed rather than how it was written; the text itself if it does not
    load."""
    if not text.strip():
        return text
    try:
        rubric = load_rubric_text(text)
    except RubricError:
        return text
    return dump_rubric_data(rubric_to_dict(rubric))


@dataclass(frozen=True)
class DiffLine:
    kind: str  # hunk, ctx, add, del
    old_no: int | None
    new_no: int | None
    text: str
    segments: tuple[tuple[str, bool], ...] = ()
    """The text in pieces, each marked changed or not (for a changed line's pair)."""


def _segments(a: str, b: str) -> tuple[tuple[tuple[str, bool], ...], tuple[tuple[str, bool], ...]]:
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    left: list[tuple[str, bool]] = []
    right: list[tuple[str, bool]] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if i2 > i1:
            left.append((a[i1:i2], op != "equal"))
        if j2 > j1:
            right.append((b[j1:j2], op != "equal"))
    return tuple(left), tuple(right)


@dataclass
class Diff:
    lines: list[DiffLine] = field(default_factory=list)
    added: int = 0
    removed: int = 0

    @property
    def same(self) -> bool:
        return not self.added and not self.removed


def diff(old: str, new: str, context: int = 3) -> Diff:
    """A unified diff of two YAML texts, line by line, with the changed parts of lines marked."""
    a, b = old.splitlines(), new.splitlines()
    out = Diff()
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        first, last = group[0], group[-1]
        out.lines.append(DiffLine("hunk", None, None,
                                  f"@@ -{first[1] + 1},{last[2] - first[1]}"
                                  f" +{first[3] + 1},{last[4] - first[3]} @@"))
        for op, i1, i2, j1, j2 in group:
            if op == "equal":
                out.lines += [DiffLine("ctx", i1 + k + 1, j1 + k + 1, a[i1 + k])
                              for k in range(i2 - i1)]
                continue
            dels = [DiffLine("del", i1 + k + 1, None, a[i1 + k]) for k in range(i2 - i1)]
            adds = [DiffLine("add", None, j1 + k + 1, b[j1 + k]) for k in range(j2 - j1)]
            if op == "replace":
                for k in range(min(len(dels), len(adds))):
                    left, right = _segments(dels[k].text, adds[k].text)
                    dels[k] = DiffLine("del", dels[k].old_no, None, dels[k].text, left)
                    adds[k] = DiffLine("add", None, adds[k].new_no, adds[k].text, right)
            out.lines += dels + adds
            out.removed += len(dels)
            out.added += len(adds)
    return out


# ---------------------------------------------------------------- routes and teams


@dataclass(frozen=True)
class Routes:
    listing: rubric_rpc.RouteListing
    live: bool
    """True: from the daemon; False: read from the database and this site's settings."""


def stored_routes(conn: sqlite3.Connection) -> list[rubric_rpc.Route]:
    try:
        found = rows(conn, "SELECT kind, value, rubric_id, updated_at FROM cq.rubric_routes")
    except sqlite3.OperationalError:  # a database from before the table
        return []
    order = {k: i for i, k in enumerate(ROUTE_KINDS)}
    found.sort(key=lambda r: (order.get(r["kind"], 9), r["value"]))
    return [rubric_rpc.Route(r["kind"], r["value"], r["rubric_id"], "stored", r["updated_at"])
            for r in found]


def routes(conn: sqlite3.Connection) -> Routes:
    """The routes as the daemon has them; when it is down, as stored and as this site's
    settings say (the daemon may run with other settings)."""
    try:
        return Routes(rubric_rpc.list_routes(), True)
    except (rubric_rpc.DaemonDown, rubric_rpc.DaemonRefused):
        pass
    stored = stored_routes(conn)
    keys = {(r.kind, r.value) for r in stored}
    settings = app_settings()
    try:
        setting = RubricRoutes.parse(settings.rubric_routes)
    except ValueError:
        setting = RubricRoutes.parse("")
    from_setting = [
        rubric_rpc.Route(kind, value, rid, "setting", overridden=(kind, value) in keys)
        for kind in ROUTE_KINDS for value, rid in sorted(setting.rules.get(kind, {}).items())
    ]
    return Routes(rubric_rpc.RouteListing(stored + from_setting, settings.rubric), False)


@dataclass(frozen=True)
class TeamRubric:
    team: str
    rubric_id: str
    version: int | None
    built_in_text: bool
    source: str  # stored, setting, default
    agents: tuple[tuple[str, str], ...] = ()
    """Agents of the team with a route of their own: (agent, rubric id)."""
    known: bool = True


def effective(listing: rubric_rpc.RouteListing, kind: str) -> dict[str, tuple[str, str]]:
    """For one kind, value -> (rubric id, source), the stored route winning its key."""
    out: dict[str, tuple[str, str]] = {}
    for r in listing.routes:
        if r.kind != kind:
            continue
        if r.source == "stored" or r.value not in out:
            out[r.value] = (r.rubric_id, r.source)
    return out


def team_rubrics(conn: sqlite3.Connection, listing: rubric_rpc.RouteListing,
                 summaries: list[RubricSummary]) -> list[TeamRubric]:
    """Which rubric (and version) each known team's calls get, and why."""
    by_id = {s.rubric_id: s for s in summaries}
    teams = effective(listing, "team")
    agents = effective(listing, "agent")
    known_teams = {r["id"] for r in rows(conn, "SELECT id FROM cq.teams")} | set(teams)
    team_of = {r["id"]: r["team_id"] for r in rows(conn, "SELECT id, team_id FROM cq.agents")}
    out = []
    for team in sorted(known_teams):
        rid, source = teams.get(team, (listing.default_rubric, "default"))
        summary = by_id.get(rid)
        own = tuple(sorted((a, r) for a, (r, _s) in agents.items() if team_of.get(a) == team))
        out.append(TeamRubric(
            team=team, rubric_id=rid, version=summary.in_use if summary else None,
            built_in_text=bool(summary and summary.in_use is None), source=source, agents=own,
            known=summary is not None,
        ))
    return out


def choices(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Teams and agents the calls database knows, for the route form."""
    return {
        "teams": [r["id"] for r in rows(conn, "SELECT id FROM cq.teams ORDER BY id")],
        "agents": [r["id"] for r in rows(conn, "SELECT id FROM cq.agents ORDER BY id")],
    }
