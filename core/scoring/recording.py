"""Score a recording and store the call with its recording: `callqa score FILE`, and the
calls that `callqa receive` and `callqa import-pcap` record.

Filing the call and its recording is `core.storage.filing.store_call`: nothing is
half-stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from core.asr.engine import AsrEngine, AsrOptions
from core.asr.models import resolve_model
from core.asr.types import DEFAULT_BATCH, Device, Transcriber
from core.audio.wav import Recording, read_wav
from core.calls import Speaker
from core.clock import utc_now_iso
from core.config import Settings
from core.rubric.redaction import redactor_for
from core.scoring.pipeline import ProgressFn, ScoredCall, legs_from_recording, score_legs
from core.storage import repository
from core.storage.filing import store_call
from core.storage.redacted_audio import redaction_meta
from core.storage.rubric_catalog import ResolvedRubric, resolve_rubric
from core.storage.writer import StorageWriter

logger = logging.getLogger(__name__)


@dataclass
class ScoreRequest:
    path: Path
    rubric_ref: str
    agent_id: str | None = None
    team_id: str | None = None
    agent_channel: str = "left"
    speaker: Speaker | None = None
    started_at: str | None = None
    store: bool = True
    source: str = "file"  # how the call reached the box (see repository.SOURCES)
    caller: str | None = None
    callee: str | None = None
    meta: dict[str, object] | None = None  # stored with the call beside the file's facts
    move: bool = False  # move the file under the data directory instead of copying it


@dataclass
class ScoreOutcome:
    call_id: str | None
    scored: ScoredCall
    recording_path: Path | None


@lru_cache(maxsize=4)
def _engine(
    model_dir: str, device: str, compute_type: str, threads: int, beam: int, window_min_s: float,
    inter_threads: int, batch: int, verify_margin: float = 4.0, speech_check: bool = False,
    speech_threshold: float = 0.5, draft_beam: int = 1,
) -> AsrEngine:  # fmt: skip
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"asr_device must be auto, cpu or cuda, got {device!r}")
    chosen: Device = "cpu" if device == "cpu" else "cuda" if device == "cuda" else "auto"
    options = AsrOptions(
        device=chosen, compute_type=compute_type, cpu_threads=threads, beam_size=beam,
        window_min_s=window_min_s, inter_threads=inter_threads, max_batch_size=batch,
        verify_margin=verify_margin, speech_check=speech_check,
        speech_threshold=speech_threshold, draft_beam_size=draft_beam,
    )  # fmt: skip
    return AsrEngine(Path(model_dir), options)


def get_engine(config: Settings) -> AsrEngine:
    """The one ASR engine of this process for the configured model and device."""
    info = resolve_model(config.model, config.data_dir)
    return _engine(
        str(info.path),
        config.asr_device,
        config.asr_compute_type,
        config.asr_cpu_threads,
        config.asr_beam_size,
        config.asr_window_min_s,
        config.asr_inter_threads,
        config.asr_batch_size,
        config.asr_verify_margin_nats,
        config.asr_speech_check,
        config.asr_speech_threshold,
        config.asr_part_beam_size,
    )


@dataclass(frozen=True)
class ScoringContext:
    """Where one recording is scored and stored; the flow is the same for every caller.

    ``callqa score`` transcribes with its own engine and writes to its own connection; the
    daemon (ScoreRecording, recovery of interrupted calls) transcribes through its scheduler,
    behind the live lines, and writes through its storage writer thread.
    """

    config: Settings
    transcriber: Transcriber
    resolve_rubric: Callable[[str], ResolvedRubric]
    write: Callable[[Callable[[Database], Any]], Any]
    """Runs a storage function with the database connection and returns its result."""
    batch_size: int


def file_context(config: Settings, db: Database) -> ScoringContext:
    """Scoring in this process: its own ASR engine, writes on `db`."""
    engine = get_engine(config)
    return ScoringContext(
        config=config, transcriber=engine, resolve_rubric=lambda ref: resolve_rubric(db, ref),
        write=lambda store: store(db), batch_size=engine.max_batch_size,
    )


def writer_context(config: Settings, writer: StorageWriter, transcriber: Transcriber,
                   batch_size: int | None = None) -> ScoringContext:
    """Scoring inside the daemon: rubric and rows through the writer thread."""
    return ScoringContext(
        config=config, transcriber=transcriber,
        resolve_rubric=lambda ref: writer.submit(resolve_rubric, ref).result(),
        write=lambda store: writer.submit(store).result(),
        batch_size=batch_size or config.asr_batch_size or DEFAULT_BATCH,
    )


def score_recording(
    ctx: ScoringContext, req: ScoreRequest, *, progress: ProgressFn | None = None,
    record: repository.CallRecord | None = None,
) -> ScoreOutcome:
    """Score the recording `req` names, and (unless ``req.store`` is false) store the call.

    A new call gets its record from the request (`make_record`) and a copy (or, with
    ``req.move``, the file itself) under the data folder. `record` is an existing call's row
    (a live call a stop interrupted), whose recording is filed in its place.
    """
    recording = read_wav(req.path)
    legs = legs_from_recording(recording, agent_channel=req.agent_channel, mono_speaker=req.speaker)
    resolved = ctx.resolve_rubric(req.rubric_ref)
    scored = score_legs(
        ctx.transcriber, resolved.rubric, legs, rubric_version=resolved.version,
        min_silence_s=ctx.config.min_silence_s, max_utterance_s=ctx.config.max_utterance_s,
        batch_size=ctx.batch_size, progress=progress,
        redactor=redactor_for(resolved.rubric, ctx.config),
    )  # fmt: skip
    if not req.store:
        return ScoreOutcome(call_id=None, scored=scored, recording_path=None)
    if record is None:
        new = make_record(req, recording, scored)
        target = ctx.write(lambda db: store_call(
            ctx.config, db, req.path, new, scored.result, move=req.move))
        return ScoreOutcome(call_id=new.id, scored=scored, recording_path=target)
    existing = record
    existing.language = scored.evidence.language
    existing.meta = {**(existing.meta or {}), **_redaction_facts(scored)}
    target = ctx.write(lambda db: store_call(
        ctx.config, db, req.path, existing, scored.result, move=True, existing=True))
    return ScoreOutcome(call_id=existing.id, scored=scored, recording_path=target)


def score_file(
    config: Settings, db: Database, req: ScoreRequest, progress: ProgressFn | None = None
) -> ScoreOutcome:
    """`callqa score`, `callqa receive` and `callqa import-pcap`: score and store here."""
    return score_recording(file_context(config, db), req, progress=progress)


def new_record(
    req: ScoreRequest, *, duration_s: float | None, language: str | None = None,
    status: str = repository.DEFAULT_STATUS, facts: dict[str, object] | None = None,
) -> repository.CallRecord:
    """The stored call's fields for a recording that reached the box, scored or not: the
    one place a new recorded call's record is made."""
    return repository.CallRecord(
        id=repository.new_call_id(), source=req.source, recording_path=None,
        duration_s=duration_s, started_at=req.started_at or utc_now_iso(),
        agent_id=req.agent_id, team_id=req.team_id, language=language,
        meta={**(req.meta or {"original_file": str(req.path)}), **(facts or {})},
        status=status, caller=req.caller, callee=req.callee,
    )  # fmt: skip


def make_record(
    req: ScoreRequest, recording: Recording, scored: ScoredCall
) -> repository.CallRecord:
    """The stored call's fields for a scored recording."""
    return new_record(
        req, duration_s=recording.duration_s, language=scored.evidence.language,
        facts={
            "encoding": recording.encoding,
            "sample_rate": recording.sample_rate,
            "channels": len(recording.channels),
            "agent_channel": req.agent_channel if len(recording.channels) == 2 else None,
            "mono_speaker": req.speaker,
            "dropped_utterances": len(scored.dropped),
            "not_speech_utterances": sum(r == "not_speech" for _, r in scored.dropped),
            **_redaction_facts(scored),
        },
    )


def _redaction_facts(scored: ScoredCall) -> dict[str, object]:
    """The row's ``redaction`` (what the recording's filing silences), when there is one."""
    if not scored.redacted:
        return {}
    kinds = sorted({s.kind for s in scored.redacted})
    return {"redaction": redaction_meta(kinds, [s.to_json() for s in scored.redacted])}
