"""Reading and writing calls, transcripts, findings, scores and rubric versions.

Every write here is one transaction (``BEGIN IMMEDIATE``, so that a second writer waits
on the busy timeout instead of failing halfway); when called inside a transaction the
caller already holds, a write becomes a savepoint of it.

Full-text search over the stored utterances lives in `core.storage.search`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from core.calls import SPEAKERS, CallResult, Finding, Utterance
from core.clock import utc_now_iso
from core.rubric.metrics import speech_time, speech_units
from core.stop_points import stop_point
from core.storage import decisions, timelines
from core.storage.search import search_text

SOURCES = ("file", "siprec", "sip", "grpc", "pcap", "mirror")
# Conventional call statuses: 'live' (in progress), 'recorded' (ended, not yet scored),
# 'scoring', 'scored', 'failed', 'ending' (ended, scoring not finished when the daemon
# stopped), 'interrupted' (scored from its recording after a stop cut it short).
DEFAULT_STATUS = "scored"


# ---------------------------------------------------------------- ids, paths, records


_id_lock = threading.Lock()
_last_id: tuple[str, int] = ("", 0)


def new_call_id() -> str:
    """A unique call id that sorts by creation time: ``YYYYMMDDTHHMMSS-xxxxxx`` (UTC).

    The suffix is random; ids made by one process within the same second take
    consecutive suffixes, so they also sort in the order they were made.
    """
    global _last_id
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    with _id_lock:
        last_stamp, last_suffix = _last_id
        if stamp == last_stamp and last_suffix < 0xFFFFFF:
            suffix = last_suffix + 1
        else:
            suffix = secrets.randbelow(0x800000)
        _last_id = (stamp, suffix)
    return f"{stamp}-{suffix:06x}"


def recording_path(data_dir: Path, call_id: str, started: str) -> Path:
    """Where the recording of a call lives: ``data_dir/recordings/YYYY/MM/DD/<id>.wav``.

    The date is the calendar date written in the ISO 8601 `started` time.
    """
    try:
        when = dt.datetime.fromisoformat(started)
    except ValueError:
        raise ValueError(f"call start {started!r} is not an ISO 8601 time") from None
    if not call_id or "/" in call_id or "\\" in call_id or call_id.startswith("."):
        raise ValueError(f"bad call id {call_id!r}")
    return Path(data_dir) / "recordings" / f"{when:%Y}" / f"{when:%m}" / f"{when:%d}" / (
        f"{call_id}.wav"
    )


@dataclass
class CallRecord:
    """What is known about a call apart from its scoring."""

    id: str
    source: str
    recording_path: str | None
    duration_s: float | None
    started_at: str
    agent_id: str | None
    team_id: str | None
    language: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    status: str = DEFAULT_STATUS
    caller: str | None = None
    callee: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any], **changes: Any) -> CallRecord:
        """The record of a stored call (a row of `get_call`), with `changes` applied."""
        fields = {
            "id": row["id"], "source": row["source"],
            "recording_path": row.get("recording_path"), "duration_s": row.get("duration_s"),
            "started_at": row["started_at"], "agent_id": row.get("agent_id"),
            "team_id": row.get("team_id"), "language": row.get("language"),
            "meta": row.get("meta") or {}, "status": row.get("status") or DEFAULT_STATUS,
            "caller": row.get("caller"), "callee": row.get("callee"),
        }  # fmt: skip
        return cls(**{**fields, **changes})


# ---------------------------------------------------------------- helpers


def _now() -> str:
    return utc_now_iso()


def _json_default(obj: Any) -> Any:
    item = getattr(obj, "item", None)
    if callable(item):  # numpy scalars
        return item()
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):  # numpy arrays
        return tolist()
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store a {type(obj).__name__} as JSON")


def _dumps(obj: Any) -> str:
    return json.dumps(obj if obj is not None else {}, ensure_ascii=False,
                      default=_json_default, allow_nan=False)


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else {}


@contextmanager
def write_transaction(db: Database) -> Iterator[Database]:
    """One write transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on error.

    Inside a transaction the caller already holds, a savepoint instead.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    try:
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise


def _check_record(record: CallRecord) -> None:
    if not record.id:
        raise ValueError("a call needs an id")
    if record.source not in SOURCES:
        raise ValueError(f"unknown call source {record.source!r}; one of {', '.join(SOURCES)}")
    if not record.status:
        raise ValueError("a call needs a status")


def _ensure_people(db: Database, agent_id: str | None, team_id: str | None) -> None:
    now = _now()
    if team_id:
        db.execute(
            "INSERT INTO teams (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
            [team_id, now],
        )
    if agent_id:
        db.execute(
            "INSERT INTO agents (id, team_id, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET team_id = coalesce(excluded.team_id, team_id)",
            [agent_id, team_id, now],
        )


_CALL_COLUMNS = (
    "source", "status", "started_at", "duration_s", "recording_path", "agent_id", "team_id",
    "language", "caller", "callee", "meta",
)


def _call_values(record: CallRecord) -> list[Any]:
    meta = {k: v for k, v in record.meta.items() if k != decisions.META_KEY}
    return [
        record.source, record.status, record.started_at, record.duration_s,
        record.recording_path, record.agent_id, record.team_id, record.language,
        record.caller, record.callee, _dumps(meta),
    ]


def _write_call(db: Database, record: CallRecord, *, replace: bool) -> None:
    _check_record(record)
    _ensure_people(db, record.agent_id, record.team_id)
    cols = ", ".join(_CALL_COLUMNS)
    marks = ", ".join("?" for _ in _CALL_COLUMNS)
    now = _now()
    sql = (
        f"INSERT INTO calls (id, {cols}, created_at, updated_at) VALUES (?, {marks}, ?, ?)"
    )
    if replace:
        updates = ", ".join(f"{c} = excluded.{c}" for c in (*_CALL_COLUMNS, "updated_at"))
        sql += f" ON CONFLICT (id) DO UPDATE SET {updates}"
    db.execute(sql, [record.id, *_call_values(record), now, now])
    if isinstance(record.meta.get(decisions.META_KEY), list):
        decisions.save(db, record.id, record.meta[decisions.META_KEY])


# ---------------------------------------------------------------- calls


def create_call(db: Database, record: CallRecord) -> None:
    """Store a call that is not scored yet (e.g. a live call); its id must be new."""
    with write_transaction(db):
        if db.execute("SELECT 1 FROM calls WHERE id = ?", [record.id]).fetchone():
            raise ValueError(f"call {record.id!r} already exists")
        _write_call(db, record, replace=False)


def update_call(db: Database, record: CallRecord) -> None:
    """Rewrite a stored call's fields (status, duration, meta, recording), or create it."""
    with write_transaction(db):
        _write_call(db, record, replace=True)


def mark_status(db: Database, call_id: str, status: str) -> None:
    """Set the status of a stored call."""
    if not status:
        raise ValueError("a call needs a status")
    with write_transaction(db):
        cur = db.execute(
            "UPDATE calls SET status = ?, updated_at = ? WHERE id = ?", [status, _now(), call_id]
        )
        if cur.rowcount == 0:
            raise ValueError(f"no call {call_id!r}")


def _utterance_row(call_id: str, seq: int, u: Utterance, language: str) -> dict[str, Any]:
    speech = speech_time(u)
    units = speech_units(u.text, language)
    return {
        "call_id": call_id,
        "seq": seq,
        "speaker": u.speaker,
        "start_s": float(u.start),
        "end_s": float(u.end),
        "text": u.text,
        "level_db": u.level_db,
        "voiced_s": u.voiced_s,
        "pitch_hz": u.pitch_hz,
        "rate_per_min": units * 60.0 / speech if speech > 0 and u.text else None,
        "avg_logprob": u.avg_logprob,
        "no_speech_prob": u.no_speech_prob,
        "search_text": search_text(u.text),
        "checks": _dumps([c.to_json() for c in u.checks]),
        "decoded_text": u.decoded_text,
    }


def _finding_row(call_id: str, seq: int, f: Finding) -> dict[str, Any]:
    return {
        "call_id": call_id,
        "seq": seq,
        "item_id": f.item_id,
        "name": f.name,
        "kind": f.kind,
        "category": f.category,
        "speaker": f.speaker,
        "severity": f.severity,
        "deduct": float(f.deduct),
        "start_s": float(f.start),
        "end_s": float(f.end),
        "evidence": f.evidence,
        "alert": int(bool(f.alert)),
        "detail": _dumps(f.detail),
        "confidence": f.confidence,
    }


def _leg_rows(call_id: str, result: CallResult) -> list[dict[str, Any]]:
    metrics = result.metrics or {}
    talk = metrics.get("talk_time_s") or {}
    levels = metrics.get("median_level_db") or {}
    pitches = metrics.get("median_pitch_hz") or {}
    rows = []
    for sp in SPEAKERS:
        count = sum(1 for u in result.transcript if u.speaker == sp)
        if not count and sp not in talk:
            continue
        rows.append({
            "call_id": call_id,
            "speaker": sp,
            "talk_time_s": talk.get(sp),
            "utterances": count,
            "median_level_db": levels.get(sp),
            "median_pitch_hz": pitches.get(sp),
        })
    return rows


def save_scored_call(db: Database, record: CallRecord, result: CallResult) -> None:
    """Store a scored call in one transaction: all of it, or (on any error) nothing.

    Creates the agent and team on first sight, writes the call (or updates it, when it
    was created earlier by `create_call`), replaces its legs, utterances, findings, score
    and voice timelines (`core.storage.timelines`, from ``result.evidence``), and
    references the rubric version it was scored with (which must be stored, see
    `record_rubric_version`, unless the result has no version).
    """
    language = record.language or (
        "zh" if (result.metrics or {}).get("rate_unit") == "chars" else "en"
    )
    with write_transaction(db):
        _write_call(db, record, replace=True)
        for table in ("legs", "utterances", "findings", "scores"):
            db.execute(f"DELETE FROM {table} WHERE call_id = ?", [record.id])
        legs = _leg_rows(record.id, result)
        if legs:
            db.table("legs").insert_all(legs)
        utts = [
            _utterance_row(record.id, i, u, language)
            for i, u in enumerate(sorted(result.transcript, key=lambda u: (u.start, u.end)))
        ]
        if utts:
            db.table("utterances").insert_all(utts)
        findings = [
            _finding_row(record.id, i, f)
            for i, f in enumerate(sorted(result.findings, key=lambda f: (f.start, f.end)))
        ]
        if findings:
            db.table("findings").insert_all(findings)
        db.execute(
            "INSERT INTO scores (call_id, rubric_id, rubric_version, score, passed, fatal, "
            "deducted, category_scores, scoring, metrics, scored_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                record.id, result.rubric_id, result.rubric_version, float(result.score),
                int(bool(result.passed)), int(bool(result.fatal)),
                (result.scoring or {}).get("deducted"), _dumps(result.category_scores),
                _dumps(result.scoring), _dumps(result.metrics), _now(),
            ],
        )
        timelines.save(db, record.id, result.evidence)
        stop_point("in-transaction")


def _score_fields(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("passed", "fatal"):
        if row.get(key) is not None:
            row[key] = bool(row[key])
    return row


def list_calls(
    db: Database,
    *,
    agent: str | None = None,
    team: str | None = None,
    passed: bool | None = None,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    min_score: float | None = None,
    max_score: float | None = None,
    rubric_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Calls newest first, filtered by every condition given.

    ``since`` and ``until`` are ISO 8601 times compared with the call's start (``until``
    excluded); scores are inclusive bounds.
    """
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("c.agent_id = ?", agent),
        ("c.team_id = ?", team),
        ("s.passed = ?", None if passed is None else int(passed)),
        ("c.status = ?", status),
        ("c.started_at >= ?", since),
        ("c.started_at < ?", until),
        ("s.score >= ?", min_score),
        ("s.score <= ?", max_score),
        ("s.rubric_id = ?", rubric_id),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = (
        "SELECT c.id, c.started_at, c.agent_id, c.team_id, c.duration_s, c.source, c.status,"
        " c.language, s.score, s.passed, s.fatal, s.rubric_id, s.rubric_version"
        " FROM calls c LEFT JOIN scores s ON s.call_id = c.id"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY c.started_at DESC, c.id DESC LIMIT ? OFFSET ?"
    )
    params += [max(0, int(limit)), max(0, int(offset))]
    return [_score_fields(row) for row in db.query(sql, params)]


def get_call(db: Database, call_id: str) -> dict[str, Any] | None:
    """A stored call with its score, legs, findings and utterances (in time order)."""
    rows = list(db.query(
        "SELECT c.*, s.score, s.passed, s.fatal, s.deducted, s.rubric_id, s.rubric_version,"
        " s.category_scores, s.scoring, s.metrics, s.scored_at"
        " FROM calls c LEFT JOIN scores s ON s.call_id = c.id WHERE c.id = ?",
        [call_id],
    ))
    if not rows:
        return None
    call = _score_fields(rows[0])
    for key in ("meta", "category_scores", "scoring", "metrics"):
        call[key] = _loads(call.get(key))
    call["legs"] = list(db.query(
        "SELECT speaker, channel, talk_time_s, utterances, median_level_db, median_pitch_hz,"
        " meta FROM legs WHERE call_id = ? ORDER BY speaker", [call_id],
    ))
    for leg in call["legs"]:
        leg["meta"] = _loads(leg["meta"])
    call["decisions"] = decisions.load(db, call_id)
    call["findings"] = []
    for f in db.query(
        "SELECT item_id, name, kind, category, speaker, severity, deduct, start_s, end_s,"
        " evidence, alert, detail, confidence FROM findings WHERE call_id = ?"
        " ORDER BY start_s, seq",
        [call_id],
    ):
        f["alert"] = bool(f["alert"])
        f["detail"] = _loads(f["detail"])
        call["findings"].append(f)
    call["utterances"] = list(db.query(
        "SELECT speaker, start_s, end_s, text, level_db, voiced_s, pitch_hz, rate_per_min,"
        " avg_logprob, no_speech_prob, checks, decoded_text FROM utterances WHERE call_id = ?"
        " ORDER BY start_s, seq",
        [call_id],
    ))
    for u in call["utterances"]:
        u["checks"] = _loads(u["checks"] or "[]")
    return call


# ---------------------------------------------------------------- rubric versions


def _rubric_row(row: dict[str, Any]) -> dict[str, Any]:
    row["active"] = bool(row["active"])
    return row


def record_rubric_version(db: Database, rubric_id: str, yaml_text: str) -> int:
    """Store `yaml_text` as the next version of `rubric_id`, unless it equals the latest.

    Returns the version number of the text (versions start at 1). A new version is not
    made active; see `set_active`.
    """
    if not rubric_id:
        raise ValueError("a rubric needs an id")
    digest = hashlib.sha256(yaml_text.encode("utf-8")).hexdigest()
    with write_transaction(db):
        latest = db.execute(
            "SELECT version, yaml FROM rubric_versions WHERE rubric_id = ?"
            " ORDER BY version DESC LIMIT 1",
            [rubric_id],
        ).fetchone()
        if latest is not None and latest[1] == yaml_text:
            return int(latest[0])
        version = 1 if latest is None else int(latest[0]) + 1
        db.execute(
            "INSERT INTO rubric_versions (rubric_id, version, yaml, sha256, active, created_at)"
            " VALUES (?, ?, ?, ?, 0, ?)",
            [rubric_id, version, yaml_text, digest, _now()],
        )
    return version


def get_rubric_version(
    db: Database, rubric_id: str, version: int | None = None
) -> dict[str, Any] | None:
    """One stored rubric version; `version` None means the active one, else the latest.

    Keys: rubric_id, version, yaml, sha256, active (bool), created_at.
    """
    cols = "rubric_id, version, yaml, sha256, active, created_at"
    if version is not None:
        rows = list(db.query(
            f"SELECT {cols} FROM rubric_versions WHERE rubric_id = ? AND version = ?",
            [rubric_id, int(version)],
        ))
    else:
        rows = list(db.query(
            f"SELECT {cols} FROM rubric_versions WHERE rubric_id = ?"
            " ORDER BY active DESC, version DESC LIMIT 1",
            [rubric_id],
        ))
    return _rubric_row(rows[0]) if rows else None


def set_active(db: Database, rubric_id: str, version: int) -> None:
    """Make `version` the one active version of `rubric_id` (ValueError if unknown)."""
    with write_transaction(db):
        known = db.execute(
            "SELECT 1 FROM rubric_versions WHERE rubric_id = ? AND version = ?",
            [rubric_id, int(version)],
        ).fetchone()
        if known is None:
            raise ValueError(f"no rubric {rubric_id!r} version {version}")
        db.execute(
            "UPDATE rubric_versions SET active = 0 WHERE rubric_id = ? AND active = 1",
            [rubric_id],
        )
        db.execute(
            "UPDATE rubric_versions SET active = 1 WHERE rubric_id = ? AND version = ?",
            [rubric_id, int(version)],
        )


def rubric_version_numbers(db: Database, rubric_id: str) -> list[int]:
    """The stored versions of a rubric, oldest first."""
    return [int(r[0]) for r in db.execute(
        "SELECT version FROM rubric_versions WHERE rubric_id = ? ORDER BY version", [rubric_id]
    ).fetchall()]


def latest_rubric_version(db: Database, rubric_id: str) -> int | None:
    """The newest stored version of a rubric, or None when none is stored."""
    row = db.execute(
        "SELECT max(version) FROM rubric_versions WHERE rubric_id = ?", [rubric_id]
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def list_rubrics(db: Database) -> list[dict[str, Any]]:
    """One row per stored rubric: its active (else latest) version, and how many it has."""
    rows = db.query(
        "SELECT r.rubric_id, r.version, r.active, r.created_at, r.sha256,"
        " (SELECT count(*) FROM rubric_versions v WHERE v.rubric_id = r.rubric_id) AS versions"
        " FROM rubric_versions r"
        " WHERE r.version = (SELECT v.version FROM rubric_versions v"
        "   WHERE v.rubric_id = r.rubric_id ORDER BY v.active DESC, v.version DESC LIMIT 1)"
        " ORDER BY r.rubric_id"
    )
    return [_rubric_row(row) for row in rows]
