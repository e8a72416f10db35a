"""The reviewed score of a call: its own rubric applied to the findings the reviewer kept.

A call is scored again with the exact rubric text it was first scored with (the YAML stored
in ``cq.rubric_versions`` under the call's ``scores.rubric_id`` and ``rubric_version``), so
that a later edit of the rubric never changes an old review. The findings scored are the
machine's findings minus those the reviewer rejected, plus those the reviewer added (and
did not remove), and they go through `core.rubric.scoring.score_findings`: caps per item and
fatal items work exactly as they did for the machine. Rejecting the one finding of a fatal
item therefore gives the call back a real score.

Times that people type for a missed finding are read by `parse_time`: plain seconds
(``75`` or ``75.5``) or minutes and seconds (``1:15``, ``1:15.5``, ``0:01:15``).
"""

from __future__ import annotations

import functools
import json
import math
import sqlite3
from dataclasses import dataclass
from typing import Any

from admin_web.site_db import one, rows
from core.calls import Finding
from core.rubric.defaults import builtin_rubrics
from core.rubric.loading import load_rubric_text
from core.rubric.schema import Rubric, RubricError
from core.rubric.scoring import ScoreSheet, score_findings


class ScoringError(RuntimeError):
    """The call cannot be scored again (it has no score, or its rubric is not stored)."""


@dataclass(frozen=True)
class CallScore:
    """What the machine said about a call, and the rubric it said it with."""

    call_id: str
    team_id: str | None
    score: float
    passed: bool
    fatal: bool
    rubric_id: str
    rubric_version: int | None
    duration_s: float | None


@functools.lru_cache(maxsize=32)
def _parse_rubric(yaml_text: str) -> Rubric:
    return load_rubric_text(yaml_text)


def machine_score(conn: sqlite3.Connection, call_id: str) -> CallScore | None:
    """The machine's score of the call, or None when it has not been scored."""
    row = one(
        conn,
        "SELECT c.id, c.team_id, c.duration_s, s.score, s.passed, s.fatal, s.rubric_id,"
        " s.rubric_version FROM cq.calls c JOIN cq.scores s ON s.call_id = c.id"
        " WHERE c.id = ?",
        [call_id],
    )
    if row is None:
        return None
    return CallScore(
        call_id=row["id"], team_id=row["team_id"], score=float(row["score"]),
        passed=bool(row["passed"]), fatal=bool(row["fatal"]), rubric_id=row["rubric_id"],
        rubric_version=row["rubric_version"], duration_s=row["duration_s"],
    )


def rubric_of(conn: sqlite3.Connection, rubric_id: str, version: int | None) -> Rubric:
    """The rubric a call was scored with: that stored version; else the latest stored one,
    else the built-in rubric of that id (for calls scored before versions were kept)."""
    stored = None
    if version is not None:
        stored = one(conn, "SELECT yaml FROM cq.rubric_versions WHERE rubric_id = ?"
                     " AND version = ?", [rubric_id, int(version)])
    if stored is None:
        stored = one(conn, "SELECT yaml FROM cq.rubric_versions WHERE rubric_id = ?"
                     " ORDER BY version DESC LIMIT 1", [rubric_id])
    text = stored["yaml"] if stored else builtin_rubrics().get(rubric_id)
    if text is None:
        raise ScoringError(f"the rubric {rubric_id!r} of this call is not stored")
    try:
        return _parse_rubric(text)
    except RubricError as exc:
        raise ScoringError(f"the rubric {rubric_id!r} of this call does not load: {exc}") from exc


def call_rubric(conn: sqlite3.Connection, call: CallScore) -> Rubric:
    return rubric_of(conn, call.rubric_id, call.rubric_version)


def _machine_finding(row: dict[str, Any]) -> Finding:
    detail = json.loads(row["detail"] or "{}")
    nominal = detail.pop("nominal_deduct", None)
    return Finding(
        item_id=row["item_id"], kind=row["kind"], speaker=row["speaker"],
        start=float(row["start_s"]), end=float(row["end_s"]), evidence=row["evidence"],
        severity=row["severity"], deduct=float(nominal if nominal is not None else row["deduct"]),
        name=row["name"], category=row["category"], alert=bool(row["alert"]), detail=detail,
    )


def added_finding(rubric: Rubric, item_id: str, start: float, end: float,
                  comment: str) -> Finding:
    """A finding a reviewer added, as the rubric's item would have reported it."""
    item = rubric.item(item_id)
    return Finding(
        item_id=item.id, kind=item.kind, speaker=item.speaker or "any", start=start, end=end,
        evidence=comment, severity=item.severity, deduct=item.deduct, name=item.name,
        category=item.category, alert=item.alert, detail={"added_by_reviewer": True},
    )


def reviewed_findings(conn: sqlite3.Connection, call_id: str, rubric: Rubric) -> list[Finding]:
    """The machine's findings that were not rejected, and the added ones not removed."""
    machine = rows(
        conn,
        "SELECT f.seq, f.item_id, f.name, f.kind, f.category, f.speaker, f.severity, f.deduct,"
        " f.start_s, f.end_s, f.evidence, f.alert, f.detail FROM cq.findings f"
        " WHERE f.call_id = ? AND NOT EXISTS (SELECT 1 FROM finding_verdicts v"
        "  WHERE v.call_id = f.call_id AND v.finding_seq = f.seq AND v.verdict = 'rejected')"
        " ORDER BY f.seq",
        [call_id],
    )
    kept = [_machine_finding(r) for r in machine]
    known = {it.id for it in rubric.items}
    for r in rows(conn, "SELECT item_id, start_s, end_s, comment FROM added_findings"
                  " WHERE call_id = ? AND removed = 0 ORDER BY id", [call_id]):
        if r["item_id"] in known:
            kept.append(added_finding(rubric, r["item_id"], r["start_s"], r["end_s"],
                                      r["comment"]))
    return kept


def reviewed_sheet(conn: sqlite3.Connection, call: CallScore) -> ScoreSheet:
    """The call scored with its own rubric on the reviewed findings."""
    rubric = call_rubric(conn, call)
    return score_findings(rubric, reviewed_findings(conn, call.call_id, rubric))


def parse_time(text: str) -> float:
    """Seconds from ``75``, ``75.5``, ``1:15``, ``1:15.5`` or ``0:01:15``; ValueError if not."""
    raw = text.strip().replace("：", ":")
    if not raw:
        raise ValueError("empty time")
    parts = raw.split(":")
    if len(parts) > 3:
        raise ValueError(f"not a time: {text!r}")
    seconds = 0.0
    for i, part in enumerate(parts):
        if not part or part.startswith(("-", "+")):
            raise ValueError(f"not a time: {text!r}")
        value = float(part)
        if not math.isfinite(value) or (i > 0 and value >= 60):
            raise ValueError(f"not a time: {text!r}")
        if i < len(parts) - 1 and not value.is_integer():
            raise ValueError(f"not a time: {text!r}")
        seconds = seconds * 60 + value
    return seconds
