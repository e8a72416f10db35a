"""A stored call's evidence, rebuilt from its rows: the transcript and the voice timelines.

`stored_calls` reads what scoring needs of many calls at once (a few queries, whatever
their number); `evidence_of` puts one call's transcript and timelines back together as the
`CallEvidence` it was scored from. Utterances come back in the order the pipeline handed
them to the rubric engine (start time, then speaker), with the exact times, levels, voiced
times and pitches that were stored, so that a rubric run on the rebuilt evidence finds what
it would have found on the original.

Every function takes `schema`, the name the calls database has on the connection: "main"
for the daemon's own connection, "cq" where the admin web attaches it read-only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.calls import CallEvidence, PhraseCheck, Speaker, Utterance
from core.storage import timelines
from core.storage.timelines import CallTimelines

CHUNK = 500  # call ids per query (SQLite allows 32766 variables; keep statements small)


@dataclass
class StoredCall:
    """One stored call as a rubric needs it, with what it was scored as."""

    id: str
    team_id: str | None
    agent_id: str | None
    started_at: str
    duration_s: float | None
    language: str | None
    recording_path: str | None
    meta: dict[str, Any]
    score: float | None
    passed: bool | None
    fatal: bool | None
    rubric_id: str | None
    rubric_version: int | None
    utterances: list[Utterance] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    timelines: CallTimelines | None = None


def _utterance(row: Sequence[Any]) -> Utterance:
    speaker: Speaker = "agent" if row[1] == "agent" else "customer"
    return Utterance(speaker=speaker, start=float(row[2]), end=float(row[3]), text=row[4],
                     level_db=row[5], voiced_s=row[6], pitch_hz=row[7], avg_logprob=row[8],
                     no_speech_prob=row[9],
                     checks=[PhraseCheck.from_json(c) for c in json.loads(row[10] or "[]")],
                     decoded_text=row[11])


def stored_calls(conn: Any, call_ids: Sequence[str], *, schema: str = "main",
                 with_timelines: bool = True) -> list[StoredCall]:
    """The calls of `call_ids` that exist, in that order, with transcript, findings (as
    stored, each with its ``seq``) and timelines (None for a call stored without them)."""
    ids = list(dict.fromkeys(call_ids))
    calls: dict[str, StoredCall] = {}
    for i in range(0, len(ids), CHUNK):
        part = ids[i : i + CHUNK]
        marks = ", ".join("?" for _ in part)
        for r in conn.execute(
            "SELECT c.id, c.team_id, c.agent_id, c.started_at, c.duration_s, c.language,"
            " c.recording_path, c.meta, s.score, s.passed, s.fatal, s.rubric_id,"
            f" s.rubric_version FROM {schema}.calls c"
            f" LEFT JOIN {schema}.scores s ON s.call_id = c.id WHERE c.id IN ({marks})",
            part,
        ).fetchall():
            calls[r[0]] = StoredCall(
                id=r[0], team_id=r[1], agent_id=r[2], started_at=r[3], duration_s=r[4],
                language=r[5], recording_path=r[6], meta=json.loads(r[7] or "{}"),
                score=None if r[8] is None else float(r[8]),
                passed=None if r[9] is None else bool(r[9]),
                fatal=None if r[10] is None else bool(r[10]),
                rubric_id=r[11], rubric_version=r[12],
            )
        for r in conn.execute(
            "SELECT call_id, speaker, start_s, end_s, text, level_db, voiced_s, pitch_hz,"
            f" avg_logprob, no_speech_prob, checks, decoded_text FROM {schema}.utterances"
            f" WHERE call_id IN ({marks}) ORDER BY call_id, seq",
            part,
        ).fetchall():
            call = calls.get(r[0])
            if call is not None:
                call.utterances.append(_utterance(r))
        for r in conn.execute(
            "SELECT call_id, seq, item_id, start_s, end_s, speaker, severity, deduct, evidence,"
            f" name, confidence FROM {schema}.findings WHERE call_id IN ({marks})"
            " ORDER BY call_id, seq",
            part,
        ).fetchall():
            call = calls.get(r[0])
            if call is not None:
                call.findings.append({
                    "seq": int(r[1]), "item_id": r[2], "start": float(r[3]),
                    "end": float(r[4]), "speaker": r[5], "severity": r[6],
                    "deduct": float(r[7]), "evidence": r[8], "name": r[9],
                    "confidence": r[10],
                })
        if with_timelines:
            for call_id, tl in timelines.load(conn, part, schema=schema).items():
                if call_id in calls:
                    calls[call_id].timelines = tl
    return [calls[i] for i in ids if i in calls]


def evidence_of(call: StoredCall, tl: CallTimelines | None = None) -> CallEvidence:
    """The evidence `call` was scored from: its transcript with `tl` (else its own stored
    timelines). Without any timeline the legs' activity is unknown and the rules fall back
    on the utterance spans, which only approximates silence and overtalk."""
    tl = tl if tl is not None else call.timelines
    utterances = sorted(call.utterances, key=lambda u: (u.start, u.speaker))
    if tl is None:
        return CallEvidence(duration_s=float(call.duration_s or 0.0),
                            language=call.language or "zh", utterances=utterances,
                            activity={})
    return CallEvidence(duration_s=tl.duration_s, language=tl.language, utterances=utterances,
                        activity=dict(tl.activity))
