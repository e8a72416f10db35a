"""Calls a stop cut short, scored from their recordings at the next start.

A live call is stored as ``live`` when it starts, with the path of its recording (which the
recorder keeps valid on disk to the last second). After a crash the engine finds such rows
(and ``ending`` ones, which a graceful stop could not finish), repairs the recording's
header, scores it with the offline pipeline, with its ASR queued on the live scheduler
behind the live lines, and stores it as ``interrupted``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.asr.types import AsrRequest, AsrResult, Transcriber
from core.clock import utc_now_iso
from core.config import Settings
from core.live.scheduler import PRIORITY_BACKFILL, AsrJob, AsrScheduler
from core.scoring.recording import ScoreRequest, ScoringContext, score_recording
from core.storage import repository
from core.storage.live_calls import store_live_call
from core.storage.rubric_catalog import ResolvedRubric
from core.storage.writer import StorageWriter

logger = logging.getLogger(__name__)

TOO_SHORT_TO_SCORE_S = 1.0
"""A call a stop cut before this much audio is kept unscored: there is nothing to judge."""


@dataclass(frozen=True)
class Recovery:
    """What re-scoring an interrupted call needs, handed in by the live engine (which this
    module sits below)."""

    config: Settings
    writer: StorageWriter
    """The storage writer thread: every write goes through it."""
    resolve_rubric: Callable[[str], ResolvedRubric]
    transcriber: Transcriber
    """Queues the recording's utterances on the live scheduler, behind the live lines."""
    batch_size: int


def recover_call(recovery: Recovery, row: dict[str, Any]) -> None:
    """Score a call a stop interrupted, from its recording; store it as interrupted."""
    from telephony.recorder import RecordingError, recover_wav

    call_id = row["id"]
    path = find_recording(recovery.config, row)
    meta = row.get("meta") or {}
    meta["interrupted"] = {
        "status_at_stop": row["status"], "recovered_at": utc_now_iso("milliseconds"),
    }  # fmt: skip
    record = repository.CallRecord.from_row(
        row, recording_path=str(path) if path else row.get("recording_path"), meta=meta,
        status="interrupted",
    )  # fmt: skip
    if path is None:
        meta["interrupted"]["error"] = "the recording was not found"
        recovery.writer.submit(store_live_call, recovery.config, record, None, None).result()
        return
    try:
        duration = recover_wav(path)
    except RecordingError as exc:
        meta["interrupted"]["error"] = str(exc)
        recovery.writer.submit(store_live_call, recovery.config, record, None, path).result()
        return
    record.duration_s = round(duration, 3)
    if duration < TOO_SHORT_TO_SCORE_S:
        meta["interrupted"]["error"] = f"too short to score ({duration:.1f} s of audio)"
        meta["interrupted"]["too_short"] = True
        recovery.writer.submit(store_live_call, recovery.config, record, None, path).result()
        logger.info("interrupted call %s kept unscored: %.1f s of audio", call_id, duration)
        return
    ref = (meta.get("live") or {}).get("rubric_id") or recovery.config.rubric
    stereo_right = meta.get("agent_channel") == "right"
    req = ScoreRequest(
        path=path, rubric_ref=ref, agent_channel="right" if stereo_right else "left",
        speaker=meta.get("mono_speaker") or "agent",
    )
    ctx = ScoringContext(
        config=recovery.config, transcriber=recovery.transcriber,
        resolve_rubric=recovery.resolve_rubric,
        write=lambda store: recovery.writer.submit(store).result(),
        batch_size=recovery.batch_size,
    )
    scored = score_recording(ctx, req, record=record).scored
    logger.info("interrupted call %s re-scored from %s: %.0f (%.1f s)", call_id, path,
                scored.result.score, duration)  # fmt: skip


def find_recording(config: Settings, row: dict[str, Any]) -> Path | None:
    """The recording of an interrupted call: where its row says, else where filing puts it.

    Filing moves the recording under ``recordings/`` and then writes the row, so a stop
    between the two leaves the row naming the spool file while the file is already filed.
    """
    named = Path(row["recording_path"]) if row.get("recording_path") else None
    if named is not None and named.is_file():
        return named
    filed = repository.recording_path(config.data_dir, row["id"], row["started_at"])
    if filed.is_file():
        logger.warning(
            "call %s: its recording was filed at %s before the stop, but its row still "
            "names %s; scoring it from the filed recording", row["id"], filed, named,
        )  # fmt: skip
        return filed
    return None


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
