"""Each leg's voice timeline, stored with the call so that it can be scored again.

Besides the transcript (text, times, and per utterance its level, voiced time and pitch, all
in ``utterances``), the rubric engine reads the call's duration and language and each leg's
voiced segments (silence, overtalk and talk-time rules, and whether a leg was recorded at
all). Those go into ``leg_timelines`` (migration 4), one row per leg, written by
`core.storage.repository.save_scored_call` from the evidence the call was scored from
(`core.calls.CallResult.evidence`). With them and the transcript, `core.scoring.rescore`
rebuilds the evidence exactly and a draft rubric scores the call without its audio.

The row also keeps the leg's frame levels and pitch where they were computed (offline
scoring), one byte per 20 ms frame: levels in steps of `LEVEL_STEP_DB` above
`LEVEL_FLOOR_DBFS`, pitch in quarter semitones above `PITCH_REF_HZ`. No rule reads them
(the utterance levels and pitches they were summarised into are stored exactly); they are
there for timeline views and rules to come, so a coarse but compact form is enough.

Voiced segments are kept exactly: float64 (start, end) pairs. Every blob is zlib-compressed.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.calls import CallEvidence, LegActivity, Segment, Speaker

TABLE = "leg_timelines"
LEVEL_STEP_DB = 0.5
LEVEL_FLOOR_DBFS = -127.5
"""Level code 0; code k is ``LEVEL_FLOOR_DBFS + k * LEVEL_STEP_DB`` (up to 0 dBFS)."""
PITCH_REF_HZ = 50.0
PITCH_STEPS_PER_OCTAVE = 48
"""Pitch code 0 is "no pitch"; code k >= 1 is ``PITCH_REF_HZ * 2 ** ((k - 1) / 48)``,
50 Hz to about 1.9 kHz in quarter semitones."""
ZLIB_LEVEL = 6
COLUMNS = ("call_id", "speaker", "duration_s", "call_duration_s", "language", "voiced",
           "frame_s", "levels", "pitch")


@dataclass(frozen=True)
class CallTimelines:
    """What a stored call's rows say beyond its transcript."""

    duration_s: float
    language: str
    activity: dict[str, LegActivity]


# ---------------------------------------------------------------- encoding


def encode_segments(segments: Sequence[Segment]) -> bytes:
    pairs = np.asarray([(s.start, s.end) for s in segments], dtype="<f8").reshape(-1)
    return zlib.compress(pairs.tobytes(), ZLIB_LEVEL)


def decode_segments(blob: bytes) -> list[Segment]:
    pairs = np.frombuffer(zlib.decompress(blob), dtype="<f8").reshape(-1, 2).tolist()
    return [Segment(a, b) for a, b in pairs]


def encode_levels(levels_db: np.ndarray) -> bytes:
    x = np.nan_to_num(np.asarray(levels_db, dtype=np.float64), nan=LEVEL_FLOOR_DBFS)
    codes = np.clip(np.rint((x - LEVEL_FLOOR_DBFS) / LEVEL_STEP_DB), 0, 255).astype(np.uint8)
    return zlib.compress(codes.tobytes(), ZLIB_LEVEL)


def decode_levels(blob: bytes) -> np.ndarray:
    codes = np.frombuffer(zlib.decompress(blob), dtype=np.uint8)
    return LEVEL_FLOOR_DBFS + codes.astype(np.float64) * LEVEL_STEP_DB


def encode_pitch(pitch_hz: np.ndarray) -> bytes:
    hz = np.nan_to_num(np.asarray(pitch_hz, dtype=np.float64), nan=0.0)
    codes = np.zeros(hz.shape, dtype=np.uint8)
    voiced = hz > 0
    steps = np.rint(PITCH_STEPS_PER_OCTAVE * np.log2(np.maximum(hz[voiced], 1e-9) / PITCH_REF_HZ))
    codes[voiced] = np.clip(steps + 1, 1, 255).astype(np.uint8)
    return zlib.compress(codes.tobytes(), ZLIB_LEVEL)


def decode_pitch(blob: bytes) -> np.ndarray:
    codes = np.frombuffer(zlib.decompress(blob), dtype=np.uint8).astype(np.float64)
    hz = PITCH_REF_HZ * np.power(2.0, (codes - 1.0) / PITCH_STEPS_PER_OCTAVE)
    return np.where(codes > 0, hz, 0.0)


# ---------------------------------------------------------------- rows


def timeline_rows(call_id: str, evidence: CallEvidence) -> list[dict[str, Any]]:
    """The ``leg_timelines`` rows of one call scored from `evidence`: one per leg it holds."""
    out = []
    for speaker, act in sorted(evidence.activity.items()):
        frames = act.frame_s is not None and act.levels_db is not None
        out.append({
            "call_id": call_id,
            "speaker": speaker,
            "duration_s": float(act.duration_s),
            "call_duration_s": float(evidence.duration_s),
            "language": evidence.language,
            "voiced": encode_segments(act.voiced),
            "frame_s": float(act.frame_s) if frames and act.frame_s is not None else None,
            "levels": encode_levels(act.levels_db) if frames and act.levels_db is not None
            else None,
            "pitch": encode_pitch(act.pitch_hz) if frames and act.pitch_hz is not None else None,
        })
    return out


def insert_sql(table: str = TABLE) -> str:
    marks = ", ".join("?" for _ in COLUMNS)
    return f"INSERT OR REPLACE INTO {table} ({', '.join(COLUMNS)}) VALUES ({marks})"


def write_rows(conn: Any, rows: Iterable[dict[str, Any]], table: str = TABLE) -> None:
    """Insert rows (replacing those of the same leg) with `conn.execute`, in the caller's
    transaction; works on a `sqlite3.Connection` and on a `sqlite_utils.Database`."""
    sql = insert_sql(table)
    for row in rows:
        conn.execute(sql, [row[c] for c in COLUMNS])


def from_rows(rows: Iterable[Sequence[Any]], *, frames: bool = False
              ) -> dict[str, CallTimelines]:
    """Timelines per call from rows of `COLUMNS`, in that order; the frame arrays are
    decoded only with ``frames`` (the rules do not read them)."""
    out: dict[str, CallTimelines] = {}
    for r in rows:
        call_id, speaker, dur, call_dur, lang, voiced, frame_s, levels, pitch = tuple(r)
        act = LegActivity(speaker=_speaker(speaker), voiced=decode_segments(voiced),
                          duration_s=float(dur))
        if frames and frame_s is not None:
            act.frame_s = float(frame_s)
            act.levels_db = decode_levels(levels) if levels is not None else None
            act.pitch_hz = decode_pitch(pitch) if pitch is not None else None
        tl = out.get(call_id)
        if tl is None:
            tl = out[call_id] = CallTimelines(float(call_dur), str(lang), {})
        tl.activity[speaker] = act
    return out


def _speaker(value: str) -> Speaker:
    if value == "agent":
        return "agent"
    if value == "customer":
        return "customer"
    raise ValueError(f"a leg timeline of unknown speaker {value!r}")


def load(conn: Any, call_ids: Sequence[str], *, schema: str = "main", table: str = TABLE,
         frames: bool = False, chunk: int = 500) -> dict[str, CallTimelines]:
    """The stored timelines of `call_ids` (calls without any are absent from the result).

    `conn` is anything with ``execute(sql, params)`` (sqlite3 or sqlite_utils); `schema` the
    attached name of the calls database (the admin web attaches it as ``cq``).
    """
    out: dict[str, CallTimelines] = {}
    ids = list(dict.fromkeys(call_ids))
    for i in range(0, len(ids), chunk):
        part = ids[i : i + chunk]
        marks = ", ".join("?" for _ in part)
        cur = conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM {schema}.{table} WHERE call_id IN ({marks})",
            part,
        )
        out.update(from_rows(cur.fetchall(), frames=frames))
    return out


def save(db: Any, call_id: str, evidence: CallEvidence | None) -> None:
    """Replace the call's timeline rows with those of `evidence` (none when it is None)."""
    db.execute(f"DELETE FROM {TABLE} WHERE call_id = ?", [call_id])
    if evidence is not None:
        write_rows(db, timeline_rows(call_id, evidence))


def stored_size(row: dict[str, Any]) -> int:
    """Bytes the row's blobs take (for reports)."""
    return sum(len(row[k]) for k in ("voiced", "levels", "pitch") if row.get(k) is not None)


def level_error_db() -> float:
    """The most a decoded frame level differs from the one stored (half a step)."""
    return LEVEL_STEP_DB / 2


def pitch_error_ratio() -> float:
    """The most a decoded pitch differs from the one stored, as a ratio (half a step)."""
    return float(math.pow(2.0, 0.5 / PITCH_STEPS_PER_OCTAVE))
