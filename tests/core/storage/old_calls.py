"""Stored calls of given ages, with a recording file, a transcript, findings and a score."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from sqlite_utils import Database

from core.calls import CallResult, Finding, Speaker, Utterance
from core.storage import repository as repo

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def store_old_call(db: Database, data_dir: Path, call_id: str, age_days: float,
                   word: str, *, status: str = "scored") -> Path:
    """Store call `call_id`, started `age_days` before `NOW`, whose transcript says `word`;
    returns its recording, a real file under the data folder."""
    started = (NOW - dt.timedelta(days=age_days)).astimezone(
        dt.timezone(dt.timedelta(hours=8))).isoformat(timespec="milliseconds")
    path = repo.recording_path(data_dir, call_id, started)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + bytes(400))
    speakers: tuple[Speaker, ...] = ("agent", "customer")
    transcript = [Utterance(speaker=speakers[i % 2], start=2.0 * i, end=2.0 * i + 1.5,
                            text=f"{word} 第{i}句") for i in range(3)]
    findings = [Finding(item_id="forbidden", kind="phrase", speaker="agent", start=0.0,
                        end=1.5, evidence=word, severity="B", deduct=5.0,
                        detail={"utterance_text": f"{word} 第0句", "phrase": "x"})]
    result = CallResult(rubric_id="default-zh", rubric_version=1, score=95.0, passed=True,
                        fatal=False, findings=findings, transcript=transcript, metrics={})
    record = repo.CallRecord(id=call_id, source="file", recording_path=str(path),
                             duration_s=6.0, started_at=started, agent_id="A1", team_id="T1",
                             language="zh", status=status)
    if repo.latest_rubric_version(db, "default-zh") is None:
        repo.record_rubric_version(db, "default-zh", "id: default-zh\n")
    repo.save_scored_call(db, record, result)
    return path


def make_holds(data_dir: Path, held: dict[str, str]) -> None:
    """A reviews database offering `held` (call id -> reason) as ``retention_holds``."""
    conn = sqlite3.connect(data_dir / "admin.db")
    conn.execute("CREATE TABLE IF NOT EXISTS retention_holds (call_id TEXT, reason TEXT)")
    conn.executemany("INSERT INTO retention_holds VALUES (?, ?)", list(held.items()))
    conn.commit()
    conn.close()
