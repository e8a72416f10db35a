"""Score a recording and store the call with its recording: `callqa score FILE`, and the
calls that `callqa receive` and `callqa import-pcap` record.

Filing the call and its recording is `core.storage.filing.store_call`: nothing is
half-stored.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlite_utils import Database

from core.asr.engine import AsrEngine, AsrOptions
from core.asr.models import resolve_model
from core.asr.types import DEFAULT_BATCH, Device, Transcriber
from core.audio.wav import Recording, read_wav
from core.calls import Speaker
from core.config import Config
from core.scoring.pipeline import ProgressFn, ScoredCall, legs_from_recording, score_legs
from core.storage import repository
from core.storage.filing import store_call
from core.storage.rubric_catalog import resolve_rubric
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
    inter_threads: int, batch: int,
) -> AsrEngine:  # fmt: skip
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"asr_device must be auto, cpu or cuda, got {device!r}")
    chosen: Device = "cpu" if device == "cpu" else "cuda" if device == "cuda" else "auto"
    options = AsrOptions(
        device=chosen, compute_type=compute_type, cpu_threads=threads, beam_size=beam,
        window_min_s=window_min_s, inter_threads=inter_threads, max_batch_size=batch,
    )  # fmt: skip
    return AsrEngine(Path(model_dir), options)


def get_engine(config: Config) -> AsrEngine:
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
    )


def score_file(
    config: Config, db: Database, req: ScoreRequest, progress: ProgressFn | None = None
) -> ScoreOutcome:
    recording = read_wav(req.path)
    legs = legs_from_recording(recording, agent_channel=req.agent_channel, mono_speaker=req.speaker)
    resolved = resolve_rubric(db, req.rubric_ref)
    engine = get_engine(config)
    scored = score_legs(
        engine,
        resolved.rubric,
        legs,
        rubric_version=resolved.version,
        min_silence_s=config.min_silence_s,
        max_utterance_s=config.max_utterance_s,
        batch_size=engine.max_batch_size,
        progress=progress,
    )
    if not req.store:
        return ScoreOutcome(call_id=None, scored=scored, recording_path=None)

    record = make_record(req, recording, scored)
    target = store_call(config, db, req.path, record, scored.result, move=req.move)
    call_id = record.id
    return ScoreOutcome(call_id=call_id, scored=scored, recording_path=target)



def make_record(
    req: ScoreRequest, recording: Recording, scored: ScoredCall
) -> repository.CallRecord:
    """The stored call's fields for a scored recording."""
    started = req.started_at or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    record = repository.CallRecord(
        id=repository.new_call_id(),
        source=req.source,
        recording_path=None,
        duration_s=recording.duration_s,
        started_at=started,
        agent_id=req.agent_id,
        team_id=req.team_id,
        language=scored.evidence.language,
        meta={
            **(req.meta or {"original_file": str(req.path)}),
            "encoding": recording.encoding,
            "sample_rate": recording.sample_rate,
            "channels": len(recording.channels),
            "agent_channel": req.agent_channel if len(recording.channels) == 2 else None,
            "mono_speaker": req.speaker,
            "dropped_utterances": len(scored.dropped),
        },
        caller=req.caller,
        callee=req.callee,
    )
    return record


def score_with(
    config: Config, writer: StorageWriter, req: ScoreRequest, transcriber: Transcriber
) -> ScoreOutcome:
    """`score_file` inside the daemon: the rubric and the rows go through the writer thread,
    and the ASR through the daemon's scheduler (``transcriber``), behind the live lines."""
    recording = read_wav(req.path)
    legs = legs_from_recording(recording, agent_channel=req.agent_channel, mono_speaker=req.speaker)
    resolved = writer.submit(resolve_rubric, req.rubric_ref).result()
    scored = score_legs(
        transcriber,  # type: ignore[arg-type]
        resolved.rubric,
        legs,
        rubric_version=resolved.version,
        min_silence_s=config.min_silence_s,
        max_utterance_s=config.max_utterance_s,
        batch_size=config.asr_batch_size or DEFAULT_BATCH,
    )
    if not req.store:
        return ScoreOutcome(call_id=None, scored=scored, recording_path=None)
    record = make_record(req, recording, scored)
    target = writer.submit(
        lambda db: store_call(config, db, req.path, record, scored.result, move=req.move)
    ).result()
    return ScoreOutcome(call_id=record.id, scored=scored, recording_path=target)
