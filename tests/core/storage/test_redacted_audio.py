"""The spans of a call's masked numbers silenced in its filed recording, the input file left
as it was, and the original kept (0600, beside `recordings/`) only when the setting says so."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from core.audio.wav import read_wav, write_wav_g711, write_wav_pcm16
from core.config import Settings
from core.storage import repository
from core.storage.db import open_db
from core.storage.filing import store_call
from core.storage.redacted_audio import original_path, redaction_meta
from kernels.g711 import ulaw_encode

RATE = 8000
SPAN = {"speaker": "customer", "start": 1.0, "end": 2.0, "kind": "card"}


def _tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _record(spans: list[dict[str, object]]) -> repository.CallRecord:
    return repository.CallRecord(
        id=repository.new_call_id(), source="file", recording_path=None, duration_s=4.0,
        started_at="2025-09-03T09:00:00+08:00", agent_id="A1", team_id="T1", language="zh",
        meta={"redaction": redaction_meta(["card"], spans)} if spans else {},
    )  # fmt: skip


@pytest.mark.parametrize("encoding", ["pcm16", "mulaw"])
def test_filed_copy_is_silenced_and_input_kept(tmp_path: Path, encoding: str) -> None:
    source = tmp_path / "in.wav"
    legs = [_tone(4.0, 220), _tone(4.0, 330)]
    if encoding == "pcm16":
        write_wav_pcm16(source, legs, RATE)
    else:
        write_wav_g711(source, [ulaw_encode(np.round(x * 32767).astype(np.int16))
                                for x in legs], RATE, "mulaw")  # fmt: skip
    before = source.read_bytes()
    config = Settings(data_dir=tmp_path / "data", redaction_margin_s=0.25)
    db = open_db(config.db_path)
    target = store_call(config, db, source, _record([SPAN]), None)
    assert source.read_bytes() == before                      # the input is not touched
    stored = read_wav(target)
    for ch in stored.channels:                                # every channel, with the margin
        assert not np.any(ch[int(0.75 * RATE) : int(2.25 * RATE)])
        assert np.abs(ch[: int(0.7 * RATE)]).max() > 0.2
        assert np.abs(ch[int(2.3 * RATE) :]).max() > 0.2
    assert not original_path(config.data_dir, "x", "2025-09-03T09:00:00+08:00").parent.exists()


def test_original_kept_private_only_when_asked(tmp_path: Path) -> None:
    spool = tmp_path / "spool.wav"
    write_wav_pcm16(spool, [_tone(4.0, 220), _tone(4.0, 330)], RATE)
    raw = spool.read_bytes()
    config = Settings(data_dir=tmp_path / "data", redaction_keep_original=True)
    db = open_db(config.db_path)
    record = _record([SPAN])
    target = store_call(config, db, spool, record, None, move=True)
    assert not spool.exists() and not np.any(read_wav(target).channels[1][RATE + 2400 : 2 * RATE])
    kept = Path(record.meta["redaction"]["original"])
    assert kept == original_path(config.data_dir, record.id, record.started_at)
    assert kept.read_bytes() == raw
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    row = repository.get_call(db, record.id)
    assert row is not None and row["meta"]["redaction"]["original"] == str(kept)


def test_no_spans_no_change(tmp_path: Path) -> None:
    source = tmp_path / "in.wav"
    write_wav_pcm16(source, [_tone(2.0, 220)], RATE)
    config = Settings(data_dir=tmp_path / "data", redaction_keep_original=True)
    target = store_call(config, open_db(config.db_path), source, _record([]), None)
    assert target.read_bytes() == source.read_bytes()
    assert not (config.data_dir / "originals").exists()
