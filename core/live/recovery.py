"""Calls a stop cut short, scored from their recordings at the next start.

A live call is stored as ``live`` when it starts, with the path of its recording (which the
recorder keeps valid on disk to the last second). After a crash the engine finds such rows
(and ``ending`` ones, which a graceful stop could not finish), repairs the recording's
header, scores it with the offline pipeline, with its ASR queued on the live scheduler
behind the live lines, and stores it as ``interrupted``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.asr.types import AsrRequest, AsrResult
from core.live.scheduler import PRIORITY_BACKFILL, AsrJob, AsrScheduler
from core.storage import repository
from core.storage.live_calls import store_live_call

if TYPE_CHECKING:
    from core.live.engine import LiveEngine

logger = logging.getLogger(__name__)


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def recover_call(engine: LiveEngine, row: dict[str, Any]) -> None:
    """Score a call a stop interrupted, from its recording; store it as interrupted."""
    from core.audio.wav import read_wav
    from core.scoring.pipeline import legs_from_recording, score_legs
    from telephony.recorder import RecordingError, recover_wav

    call_id = row["id"]
    path = Path(row["recording_path"]) if row.get("recording_path") else None
    meta = row.get("meta") or {}
    meta["interrupted"] = {"status_at_stop": row["status"], "recovered_at": _utc_now()}
    record = repository.CallRecord(
        id=call_id, source=row["source"], recording_path=str(path) if path else None,
        duration_s=row.get("duration_s"), started_at=row["started_at"],
        agent_id=row.get("agent_id"), team_id=row.get("team_id"),
        language=row.get("language"), meta=meta, status="interrupted",
        caller=row.get("caller"), callee=row.get("callee"),
    )  # fmt: skip
    if path is None or not path.is_file():
        meta["interrupted"]["error"] = "the recording was not found"
        engine.writer.submit(store_live_call, engine.config, record, None, None).result()
        return
    try:
        duration = recover_wav(path)
    except RecordingError as exc:
        meta["interrupted"]["error"] = str(exc)
        engine.writer.submit(store_live_call, engine.config, record, None, path).result()
        return
    record.duration_s = round(duration, 3)
    ref = (meta.get("live") or {}).get("rubric_id") or engine.config.rubric
    resolved = engine.resolve_rubric(ref)
    recording = read_wav(path)
    agent_channel = "left"
    if len(recording.channels) == 2 and (meta.get("agent_channel") == "right"):
        agent_channel = "right"
    legs = legs_from_recording(recording, agent_channel=agent_channel,
                               mono_speaker=meta.get("mono_speaker") or "agent")  # fmt: skip
    scored = score_legs(
        engine.transcriber(), resolved.rubric, legs,  # type: ignore[arg-type]
        rubric_version=resolved.version, min_silence_s=engine.settings.min_silence_s,
        max_utterance_s=engine.settings.max_utterance_s,
        batch_size=engine.scheduler.batch_size,
    )  # fmt: skip
    record.language = scored.evidence.language
    engine.writer.submit(store_live_call, engine.config, record, scored.result, path).result()
    logger.info("interrupted call %s re-scored from %s: %.0f (%.1f s)", call_id, path,
                scored.result.score, duration)  # fmt: skip


class BackfillTranscriber:
    """`transcribe_batch` through the scheduler, behind the live lines' work."""

    def __init__(self, scheduler: AsrScheduler) -> None:
        self.scheduler = scheduler

    def transcribe_batch(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
        results: dict[str, AsrResult] = {}
        done = threading.Event()
        left = [len(requests)]
        lock = threading.Lock()

        def finished(job: AsrJob, result: AsrResult | None, error: str | None) -> None:
            with lock:
                results[job.key] = result or AsrResult(
                    id=job.key, text="", language="", filtered=True, filter_reason="empty"
                )
                left[0] -= 1
                if left[0] == 0:
                    done.set()

        if not requests:
            return []
        for req in requests:
            self.scheduler.submit(AsrJob(
                key=req.id, audio=req.audio, language=req.language, ready_at=time.monotonic(),
                done=finished, priority=PRIORITY_BACKFILL,
            ))  # fmt: skip
        done.wait()
        return [results[req.id] for req in requests]
