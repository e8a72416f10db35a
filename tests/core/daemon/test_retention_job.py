"""The daemon's daily retention: when it runs, what it logs, what the metrics say."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from core import clock
from core.config import load_settings
from core.daemon.metrics import DaemonCollector
from core.daemon.retention import RetentionJob, next_run
from core.storage.db import open_db
from tests.core.storage.old_calls import NOW, make_holds, store_old_call


@pytest.fixture
def fixed_clock() -> Iterator[None]:
    clock.set_now(lambda: NOW)
    yield
    clock.reset()


def test_the_next_run_is_the_next_time_the_hour_comes() -> None:
    local = dt.datetime(2026, 3, 8, 2, 30).astimezone()
    assert next_run(local, 3) == local.replace(hour=3, minute=0)
    assert next_run(local.replace(hour=3, minute=0), 3) == (
        local.replace(hour=3, minute=0) + dt.timedelta(days=1))
    assert next_run(local.replace(hour=23), 3).day == 9


def test_a_pass_is_logged_and_counted_in_the_metrics(
        tmp_path: Path, fixed_clock: None, caplog: pytest.LogCaptureFixture) -> None:
    db = open_db(tmp_path / "callqa.db")
    old = store_old_call(db, tmp_path, "c-old", 50, "西瓜")
    held = store_old_call(db, tmp_path, "c-held", 50, "葡萄")
    store_old_call(db, tmp_path, "c-new", 5, "橙子")
    db.close()
    make_holds(tmp_path, {"c-held": "in_review"})
    settings = load_settings(overrides={"data_dir": tmp_path, "retention_recordings_days": 30},
                             environ={})
    job = RetentionJob(settings)
    registry = CollectorRegistry()
    registry.register(DaemonCollector(SimpleNamespace(  # type: ignore[arg-type]
        settings=settings, engine=None, sip_server=None, sip_bridge=None, follower=None,
        mirror_bridge=None, retention=job)))
    assert 'callqa_retention_deleted_total{kind="recordings"} 0.0' in generate_latest(
        registry).decode()
    with caplog.at_level(logging.INFO, logger="core.daemon.retention"):
        job.run_once(pause_s=0)
    assert not old.exists() and held.exists()
    assert any("retention deleted 0 calls, 1 recordings, 0 transcripts (call ids c-old .. "
               "c-old); 1 files removed; 1 calls kept for review" in r.getMessage()
               for r in caplog.records)
    text = generate_latest(registry).decode()
    assert 'callqa_retention_deleted_total{kind="recordings"} 1.0' in text
    assert 'callqa_retention_deleted_total{kind="files"} 1.0' in text
    assert "callqa_retention_held_calls 1.0" in text
    assert "callqa_retention_failures_total 0.0" in text
    # a reviews database without holds: the pass fails, is counted, deletes nothing
    (tmp_path / "admin.db").unlink()
    (tmp_path / "admin.db").write_bytes(b"")
    with pytest.raises(RuntimeError):
        job.run_once(pause_s=0)
    assert "callqa_retention_failures_total 1.0" in generate_latest(registry).decode()
    assert held.exists()
