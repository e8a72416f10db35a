"""Voice timelines stored with every scored call, and a call scored again from its rows.

A call is segmented from a real stereo WAV file (speech-like harmonic bursts over faint
noise, no ASR: texts are given to the utterances found), scored, and stored by
`repository.save_scored_call`. Rebuilt from its rows, the evidence equals the original, and
any rubric finds the same on it; with the rows deleted (a call stored before timelines
were kept), the timelines derived from the recording are the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlite_utils import Database

from core.calls import CallEvidence, CallResult, LegActivity, Segment, Utterance
from core.rubric import evaluate
from core.scoring.rescore import NoRecordingError, derive_timelines, rescore, timelines_for
from core.storage import repository, timelines
from core.storage.db import open_db
from core.storage.evidence import evidence_of, stored_calls
from core.storage.migrations import MIGRATIONS, applied_versions
from tests.core.timeline_calls import (
    default_rubric,
    draft_rubric,
    scored_evidence,
    store_scored,
    write_call,
)


def findings_json(result: CallResult) -> list[dict[str, Any]]:
    return [f.to_json() for f in result.findings]


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    return write_call(tmp_path / "call.wav")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = open_db(tmp_path / "callqa.db")
    yield d
    d.close()


# ---------------------------------------------------------------- encoding


def test_segments_round_trip_exactly() -> None:
    segs = [Segment(0.1, 0.34), Segment(1 / 3, 2.0 + 1e-12), Segment(100.02, 100.04)]
    assert timelines.decode_segments(timelines.encode_segments(segs)) == segs
    assert timelines.decode_segments(timelines.encode_segments([])) == []


def test_levels_and_pitch_keep_a_byte_per_frame_within_half_a_step() -> None:
    levels = np.linspace(-127.5, 0.0, 2001)
    back = timelines.decode_levels(timelines.encode_levels(levels))
    assert back.shape == levels.shape
    assert np.max(np.abs(back - levels)) <= timelines.LEVEL_STEP_DB / 2 + 1e-9
    assert timelines.decode_levels(timelines.encode_levels(np.array([-200.0, 5.0]))).tolist() \
        == [-127.5, 0.0]
    pitch = np.concatenate([np.zeros(10), np.geomspace(50.0, 1500.0, 500)])
    hz = timelines.decode_pitch(timelines.encode_pitch(pitch))
    assert hz[:10].tolist() == [0.0] * 10
    ratio = hz[10:] / pitch[10:]
    half_step = 2 ** (0.5 / timelines.PITCH_STEPS_PER_OCTAVE)
    assert np.all(ratio <= half_step + 1e-9) and np.all(ratio >= 1 / half_step - 1e-9)


# ---------------------------------------------------------------- storage


def test_migration_4_adds_leg_timelines(db: Database) -> None:
    assert 4 in {m.version for m in MIGRATIONS}
    assert 4 in applied_versions(db)
    assert "leg_timelines" in db.table_names()


def test_a_scored_call_keeps_each_legs_timeline(db: Database, tmp_path: Path, wav: Path) -> None:
    evidence = scored_evidence(wav)
    call_id = store_scored(db, evidence, wav)
    rows = list(db.query("SELECT * FROM leg_timelines WHERE call_id = ? ORDER BY speaker",
                         [call_id]))
    assert [r["speaker"] for r in rows] == ["agent", "customer"]
    for r in rows:
        act = evidence.activity[r["speaker"]]
        assert r["call_duration_s"] == evidence.duration_s
        assert r["duration_s"] == act.duration_s
        assert r["language"] == "zh"
        assert timelines.decode_segments(r["voiced"]) == act.voiced
        assert r["frame_s"] == act.frame_s
        assert act.levels_db is not None and act.pitch_hz is not None
        levels = timelines.decode_levels(r["levels"])
        assert len(levels) == len(act.levels_db)
        assert np.max(np.abs(levels - np.clip(act.levels_db, -127.5, 0))) <= 0.25 + 1e-9
        assert len(timelines.decode_pitch(r["pitch"])) == len(act.pitch_hz)
    # Compact: a few hundred bytes a second of call, both legs together.
    size = sum(timelines.stored_size(r) for r in rows)
    assert size < 200 * evidence.duration_s


def test_the_rebuilt_evidence_is_the_one_scored(db: Database, tmp_path: Path, wav: Path) -> None:
    evidence = scored_evidence(wav)
    call_id = store_scored(db, evidence, wav)
    (call,) = stored_calls(db, [call_id])
    rebuilt = evidence_of(call)
    assert rebuilt.duration_s == evidence.duration_s
    assert rebuilt.language == evidence.language
    assert rebuilt.ended
    assert [(u.speaker, u.start, u.end, u.text, u.level_db, u.voiced_s, u.pitch_hz)
            for u in rebuilt.utterances] == \
        [(u.speaker, u.start, u.end, u.text, u.level_db, u.voiced_s, u.pitch_hz)
         for u in evidence.utterances]
    assert {sp: (a.voiced, a.duration_s) for sp, a in rebuilt.activity.items()} == \
        {sp: (a.voiced, a.duration_s) for sp, a in evidence.activity.items()}


@pytest.mark.parametrize("rubric", [default_rubric, draft_rubric], ids=["default", "draft"])
def test_a_rubric_finds_the_same_on_the_stored_call(db: Database, tmp_path: Path, wav: Path,
                                                    rubric: Any) -> None:
    evidence = scored_evidence(wav)
    call_id = store_scored(db, evidence, wav)
    (call,) = stored_calls(db, [call_id])
    want = evaluate(rubric(), evidence)
    got = rescore(rubric(), call)
    assert findings_json(got) == findings_json(want)
    assert (got.score, got.passed, got.fatal) == (want.score, want.passed, want.fatal)
    assert got.metrics == want.metrics


def test_the_draft_changes_timeline_findings(wav: Path) -> None:
    """The draft above is a fair test: it moves silence, overtalk and volume findings."""
    evidence = scored_evidence(wav)
    before = {f.item_id for f in evaluate(default_rubric(), evidence).findings}
    after = {f.item_id for f in evaluate(draft_rubric(), evidence).findings}
    assert {"dead_air", "interrupt", "volume"} <= after
    assert "closing" not in after
    assert before != after


def test_a_call_stored_without_timelines_gets_them_from_its_recording(
        db: Database, tmp_path: Path, wav: Path) -> None:
    evidence = scored_evidence(wav)
    call_id = store_scored(db, evidence, wav, keep_timelines=False)
    assert db.execute("SELECT COUNT(*) FROM leg_timelines WHERE call_id = ?",
                      [call_id]).fetchone()[0] == 0
    (call,) = stored_calls(db, [call_id])
    assert call.timelines is None
    derived = timelines_for(call)
    assert derived.duration_s == evidence.duration_s
    assert {sp: a.voiced for sp, a in derived.activity.items()} == \
        {sp: a.voiced for sp, a in evidence.activity.items()}
    want = evaluate(draft_rubric(), evidence)
    got = rescore(draft_rubric(), call, derived)
    assert findings_json(got) == findings_json(want)
    assert got.score == want.score


def test_deleting_the_rows_then_deriving_gives_the_same_findings(
        db: Database, tmp_path: Path, wav: Path) -> None:
    evidence = scored_evidence(wav)
    call_id = store_scored(db, evidence, wav)
    (call,) = stored_calls(db, [call_id])
    from_rows = rescore(draft_rubric(), call)
    db.execute("DELETE FROM leg_timelines WHERE call_id = ?", [call_id])
    db.conn.commit()
    (old,) = stored_calls(db, [call_id])
    assert old.timelines is None
    derived = rescore(draft_rubric(), old, derive_timelines(wav, old.meta, "zh"))
    assert findings_json(derived) == findings_json(from_rows)


def test_a_right_channel_agent_is_derived_on_the_right_channel(tmp_path: Path, wav: Path) -> None:
    left = derive_timelines(wav, {"agent_channel": "left"}, "zh")
    right = derive_timelines(wav, {"agent_channel": "right"}, "zh")
    assert right.activity["agent"].voiced == left.activity["customer"].voiced
    assert right.activity["customer"].voiced == left.activity["agent"].voiced


def test_no_recording_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NoRecordingError, match="not there"):
        derive_timelines(tmp_path / "gone.wav", {}, "zh")


def test_live_timelines_without_frames_are_stored_and_loaded(db: Database) -> None:
    """A live leg keeps no frame levels: the row has none, the voiced segments load."""
    evidence = CallEvidence(
        duration_s=12.5, language="zh",
        utterances=[Utterance("agent", 0.5, 2.0, "您好"), Utterance("customer", 2.5, 4.0, "你好")],
        activity={"agent": LegActivity("agent", [Segment(0.6, 1.9)], 12.5),
                  "customer": LegActivity("customer", [Segment(2.6, 3.9)], 12.4)},
    )
    rubric = default_rubric()
    result = evaluate(rubric, evidence)
    record = repository.CallRecord(id="live-1", source="sip", recording_path=None,
                                   duration_s=12.5, started_at="2025-09-03T09:00:00+08:00",
                                   agent_id=None, team_id=None, language="zh")
    repository.save_scored_call(db, record, result)
    row = db.execute("SELECT frame_s, levels, pitch FROM leg_timelines WHERE call_id = ?"
                     " AND speaker = 'agent'", ["live-1"]).fetchone()
    assert row == (None, None, None)
    loaded = timelines.load(db, ["live-1"], frames=True)["live-1"]
    assert loaded.duration_s == 12.5
    assert loaded.activity["customer"].voiced == [Segment(2.6, 3.9)]
    assert loaded.activity["customer"].duration_s == 12.4
    # Scoring again replaces the rows; deleting the call takes them along.
    repository.save_scored_call(db, record, result)
    assert db.execute("SELECT COUNT(*) FROM leg_timelines").fetchone()[0] == 2
    db.execute("DELETE FROM calls WHERE id = 'live-1'")
    db.conn.commit()
    assert db.execute("SELECT COUNT(*) FROM leg_timelines").fetchone()[0] == 0
