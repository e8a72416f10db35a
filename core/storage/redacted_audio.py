"""The stored recording with the spoken numbers silenced, and the original where kept.

A call's row carries ``meta["redaction"]``: the kinds it redacts and the time spans
(``spans``: speaker, start, end, kind; seconds of the recording) of the utterances that held
a masked number. Before a recording is filed, those spans (widened by
``redaction_margin_s``) are overwritten with silence on every channel, in the file itself.
With ``redaction_keep_original`` the file is first copied, unredacted, to
``originals/YYYY/MM/DD/<id>.wav`` (folders 0700, file 0600), and the copy's path is written
to ``meta["redaction"]["original"]``; the admin web serves it only to a role that may, and
audit-logs each read.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.audio.wav import AudioFileError, silence_spans
from core.config import Settings
from core.rubric.redaction import TimeSpan
from core.storage import repository

logger = logging.getLogger(__name__)

ORIGINALS_DIR = "originals"
ORIGINAL_FILE_MODE = 0o600
ORIGINAL_DIR_MODE = 0o700


def original_path(data_dir: Path, call_id: str, started_at: str) -> Path:
    """Where an unredacted original is kept: beside ``recordings/``, under ``originals/``."""
    filed = repository.recording_path(data_dir, call_id, started_at)
    return Path(data_dir) / ORIGINALS_DIR / filed.relative_to(Path(data_dir) / "recordings")


def redaction_meta(kinds: list[str], spans: list[dict[str, Any]]) -> dict[str, Any]:
    """What a call's row says of its redaction."""
    return {"kinds": sorted(kinds), "spans": spans}


def redact_recording(config: Settings, path: Path, record: repository.CallRecord) -> int:
    """Silence the redacted spans of ``record`` in the WAV at ``path`` (keeping the original
    first when the settings say so); returns the frames silenced."""
    info = (record.meta or {}).get("redaction")
    spans = info.get("spans") if isinstance(info, dict) else None
    if not spans:
        return 0
    assert isinstance(info, dict)
    if config.redaction_keep_original and not info.get("original"):
        keep = original_path(config.data_dir, record.id, record.started_at)
        _make_private_dirs(keep.parent, Path(config.data_dir))
        if not keep.exists():
            tmp = keep.with_name(keep.name + ".part")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, ORIGINAL_FILE_MODE)
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                shutil.copyfileobj(src, out)
            tmp.replace(keep)
        info["original"] = str(keep)
    margin = config.redaction_margin_s
    done = silence_spans(path, [(float(s["start"]) - margin, float(s["end"]) + margin)
                                for s in spans])  # fmt: skip
    seconds = done / max(1, _rate_of(path))
    logger.info("call %s: %d span(s) silenced in the recording (%.1f s)", record.id,
                len(spans), seconds, extra={"call_id": record.id})  # fmt: skip
    return done


def silence_in_spool(
    config: Settings, path: Path, spans: list[TimeSpan], leg_start_s: Mapping[str, float]
) -> int:  # fmt: skip
    """Silence, in a live call's spool recording, the utterances just found to hold a
    number (times on their leg, placed at the leg's start in the file), as soon as they are
    transcribed; the filing silences them again. Not while the original is to be kept (it is
    copied from the spool when the call is filed). Returns the frames silenced."""
    if not spans or config.redaction_keep_original or not path.is_file():
        return 0
    margin = config.redaction_margin_s
    placed = [(s.start + leg_start_s.get(s.speaker, 0.0) - margin,
               s.end + leg_start_s.get(s.speaker, 0.0) + margin) for s in spans]  # fmt: skip
    try:
        return silence_spans(path, placed)
    except (OSError, AudioFileError) as exc:
        logger.warning("could not silence a number in %s yet (it is at filing): %s", path, exc)
        return 0


def _rate_of(path: Path) -> int:
    with open(path, "rb") as f:
        head = f.read(28)
    return int.from_bytes(head[24:28], "little") if len(head) >= 28 else 0


def _make_private_dirs(folder: Path, data_dir: Path) -> None:
    missing = []
    at = folder
    while not at.exists() and at != data_dir and at.parent != at:
        missing.append(at)
        at = at.parent
    for d in reversed(missing):
        d.mkdir(mode=ORIGINAL_DIR_MODE, exist_ok=True)
        os.chmod(d, ORIGINAL_DIR_MODE)
