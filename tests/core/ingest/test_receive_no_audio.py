"""`callqa receive` stores a call with no audio as `no audio`, unscored, with its decisions."""

from __future__ import annotations

from pathlib import Path

from core.config import load_settings
from core.ingest.receive import NO_AUDIO_STATUS, store_call
from core.storage import repository
from core.storage.db import open_db
from telephony.recorder import CallRecorder
from telephony.sessions import CallInfo


def test_a_call_with_no_audio_is_stored_unscored(tmp_path: Path) -> None:
    config = load_settings(None, {"data_dir": str(tmp_path / "data")}, environ={})
    spool = tmp_path / "spool.wav"
    CallRecorder(spool, 2, 8000).close()  # both streams paused throughout: no frames
    decisions = [{"at": "2026-11-22T10:00:00.000+00:00", "kind": "audio",
                  "summary": "no audio: 0 RTP packets", "detail": {"packets": 0}}]  # fmt: skip
    info = CallInfo(
        call_id="sip-no-audio", source="siprec", recording_path=spool, channels=2,
        started_at="2026-11-22T10:00:00.000+00:00", ended_at="2026-11-22T10:00:05.000+00:00",
        duration_s=0.0, end_reason="bye", peer="udp:127.0.0.1:5070", agent_id="1555",
        agent_channel="left", decisions=decisions, no_audio=True,
    )  # fmt: skip
    call_id = store_call(config, info)  # no model is needed: nothing is transcribed
    assert call_id is not None
    db = open_db(config.db_path)
    call = repository.get_call(db, call_id)
    assert call is not None
    assert call["status"] == NO_AUDIO_STATUS and call["score"] is None
    assert call["decisions"] == decisions
    assert "decisions" not in call["meta"]  # kept once, in call_decisions
    assert Path(call["recording_path"]).is_file() and not spool.exists()
