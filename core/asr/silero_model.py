"""The Silero VAD model (MIT) of the speech check: fetched at set-up, checked, kept in place.

Silero VAD ships as ONNX inside the ``silero-vad`` wheel on PyPI, but that package depends on
torch, which callqa does not use. So the wheel itself is downloaded without its dependencies
(``pip download --no-deps``), its SHA-256 is compared with the one pinned here, and the one
model file the speech check runs, ``silero_vad/data/silero_vad.onnx`` (the streaming model
that takes 8 kHz and 16 kHz audio; the wheel's other ONNX files are 16 kHz only, half
precision or a sequence variant), is extracted, checked against its own pinned SHA-256 and
written into ``<sys.prefix>/share/callqa/models/silero-vad/`` (the installation's model
folder: the daemon, ``callqa score`` and the tests of one virtual environment share it).

``scripts/setup`` runs this module; ``python -m core.asr.silero_model --wheel FILE`` installs
from a wheel fetched elsewhere (a box without Internet access), ``--onnx FILE`` from another
installation's model (``systemd/install.sh`` copies the checkout's). Nothing is fetched at
run time: the speech check only reads the installed file.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from core.asr.models import ModelStoreError

logger = logging.getLogger(__name__)

SILERO_DIST = "silero-vad"
SILERO_VERSION = "6.2.3"
SILERO_WHEEL_NAME = f"silero_vad-{SILERO_VERSION}-py3-none-any.whl"
SILERO_WHEEL_SHA256 = "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8"
SILERO_MEMBER = "silero_vad/data/silero_vad.onnx"
SILERO_ONNX_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
SILERO_FILE_NAME = "silero_vad.onnx"
MAX_MEMBER_BYTES = 16 * 1024 * 1024
PIP_TIMEOUT_S = 300.0


def default_model_dir() -> Path:
    """The installation's folder for the Silero model."""
    return Path(sys.prefix) / "share" / "callqa" / "models" / "silero-vad"


def silero_model_path(model_dir: Path | None = None) -> Path:
    """The installed ``silero_vad.onnx``; ModelStoreError says how to install it if absent."""
    path = (model_dir or default_model_dir()) / SILERO_FILE_NAME
    if not path.is_file():
        raise ModelStoreError(
            f"the Silero VAD model of the speech check is not installed ({path} is missing): "
            "run scripts/setup, or `python -m core.asr.silero_model` (it downloads the "
            f"{SILERO_DIST} {SILERO_VERSION} wheel from PyPI; --wheel FILE uses one fetched "
            "elsewhere), or set asr_speech_check to false"
        )
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_wheel(dest: Path, pip_args: tuple[str, ...] = ()) -> Path:
    """Download the pinned ``silero-vad`` wheel into ``dest`` with pip, without dependencies."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "-q", "-d", str(dest), *pip_args,
        f"{SILERO_DIST}=={SILERO_VERSION}",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelStoreError(f"pip download of {SILERO_DIST} failed: {exc}") from exc
    wheel = dest / SILERO_WHEEL_NAME
    if done.returncode != 0 or not wheel.is_file():
        raise ModelStoreError(
            f"pip download of {SILERO_DIST}=={SILERO_VERSION} failed (exit {done.returncode}): "
            f"{done.stderr.strip()[-500:]}; fetch {SILERO_WHEEL_NAME} elsewhere and give it "
            "with --wheel"
        )
    return wheel


def install_from_wheel(wheel: Path, model_dir: Path | None = None) -> Path:
    """Check ``wheel`` against the pinned hash and put its ``silero_vad.onnx`` in place.

    The file is written under a temporary name beside its place and renamed, so a reader
    never sees half of it. Returns the installed path.
    """
    actual = sha256_of(wheel)
    if actual != SILERO_WHEEL_SHA256:
        raise ModelStoreError(
            f"{wheel} is not the pinned {SILERO_WHEEL_NAME}: its SHA-256 is {actual}, "
            f"expected {SILERO_WHEEL_SHA256}; download it again from PyPI"
        )
    target_dir = model_dir or default_model_dir()
    try:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo(SILERO_MEMBER)
            if info.file_size > MAX_MEMBER_BYTES:
                raise ModelStoreError(f"{wheel}: {SILERO_MEMBER} is {info.file_size} bytes")
            data = archive.read(info)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise ModelStoreError(f"{wheel} holds no readable {SILERO_MEMBER}: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != SILERO_ONNX_SHA256:
        raise ModelStoreError(f"{SILERO_MEMBER} in {wheel} differs from the pinned model")
    return _write(data, target_dir, wheel.name)


def _write(data: bytes, target_dir: Path, source: str) -> Path:
    """Write the model into ``target_dir`` under a temporary name and rename it into place."""
    target_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{SILERO_FILE_NAME}.", dir=target_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        target = target_dir / SILERO_FILE_NAME
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.info("installed %s from %s", target, source)
    return target


def install_from_onnx(onnx: Path, model_dir: Path | None = None) -> Path:
    """Put an already extracted ``silero_vad.onnx`` (another installation's) in place, after
    checking it against the pinned hash."""
    try:
        data = onnx.read_bytes()
    except OSError as exc:
        raise ModelStoreError(f"cannot read {onnx}: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != SILERO_ONNX_SHA256:
        raise ModelStoreError(f"{onnx} is not the pinned Silero model (its SHA-256 differs)")
    return _write(data, model_dir or default_model_dir(), onnx.name)


def ensure_installed(
    model_dir: Path | None = None,
    wheel: Path | None = None,
    pip_args: tuple[str, ...] = (),
    onnx: Path | None = None,
) -> Path:
    """The installed model; fetched (or taken from ``wheel`` or ``onnx``) when missing or not
    the pinned one. Safe to run again: an installed file that matches the pin is left as is."""
    target = (model_dir or default_model_dir()) / SILERO_FILE_NAME
    if target.is_file() and sha256_of(target) == SILERO_ONNX_SHA256:
        return target
    if onnx is not None:
        return install_from_onnx(onnx, model_dir)
    if wheel is not None:
        return install_from_wheel(wheel, model_dir)
    with tempfile.TemporaryDirectory(prefix="callqa-silero-") as tmp:
        return install_from_wheel(fetch_wheel(Path(tmp), pip_args), model_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.asr.silero_model",
        description=f"Install the Silero VAD model of the speech check from the {SILERO_DIST} "
        f"{SILERO_VERSION} wheel (downloaded from PyPI without its dependencies).",
    )
    parser.add_argument("--wheel", type=Path, help="use this wheel instead of downloading it")
    parser.add_argument("--onnx", type=Path, help="copy this silero_vad.onnx (hash-checked)")
    parser.add_argument("--dest", type=Path, help=f"folder (default: {default_model_dir()})")
    parser.add_argument(
        "--pip-arg", action="append", default=[], help="more arguments for pip download"
    )
    args = parser.parse_args(argv)
    try:
        path = ensure_installed(args.dest, args.wheel, tuple(args.pip_arg), args.onnx)
    except ModelStoreError as exc:
        print(f"silero_model: {exc}", file=sys.stderr)
        return 1
    print(f"silero_model: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
