"""Filing a call: its recording under the data folder and its rows, as one step.

Nothing is half-stored: the recording is copied (or moved) into place first, and if the
database write fails it is removed (or moved back), so a call is never stored without its
recording nor the other way round.

A kill between the move and the row (they cannot share one transaction) leaves the row
naming the recording's old place while the file is already where it is filed
(`repository.recording_path`); recovery looks in both places, and filing a recording that is
already in its place leaves it there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlite_utils import Database

from core.calls import CallResult
from core.config import Settings
from core.stop_points import stop_point
from core.storage import repository
from core.storage.redacted_audio import redact_recording


def store_call(
    config: Settings,
    db: Database,
    recording: Path,
    record: repository.CallRecord,
    result: CallResult | None,
    *,
    move: bool = False,
    existing: bool = False,
) -> Path:
    """File `recording` under the data directory as `record`'s call and store the call (with
    `result`, or unscored when it is None) in one transaction; returns the filed path.

    ``existing``: the call's row was made earlier (a live call) and is rewritten.

    The file is copied (or moved) first; if the database write fails it is removed (or
    moved back), so a call is never stored without its recording nor the other way round.
    """
    target = repository.recording_path(config.data_dir, record.id, record.started_at)
    target.parent.mkdir(parents=True, exist_ok=True)
    if move and Path(recording) == target:
        redact_recording(config, target, record)  # filed already (re-scored after a stop)
    elif move:
        redact_recording(config, Path(recording), record)  # the spoken numbers silenced
        shutil.move(str(recording), target)
        stop_point("filed")
    else:
        tmp = target.with_name(target.name + ".part")
        shutil.copyfile(recording, tmp)
        redact_recording(config, tmp, record)
        tmp.replace(target)
    record.recording_path = str(target)
    try:
        if result is not None:
            repository.save_scored_call(db, record, result)
        elif existing:
            repository.update_call(db, record)
        else:
            repository.create_call(db, record)
    except BaseException:
        if move and Path(recording) != target:
            shutil.move(str(target), recording)
        elif not move:
            target.unlink(missing_ok=True)
        raise
    return target
