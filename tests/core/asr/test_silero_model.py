"""Installing the Silero model from its wheel: the pinned hashes are enforced, the file is
put in place whole, and an installed model that matches the pin is left alone."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from core.asr import silero_model
from core.asr.models import ModelStoreError
from core.asr.silero_model import (
    SILERO_FILE_NAME,
    SILERO_MEMBER,
    SILERO_ONNX_SHA256,
    ensure_installed,
    install_from_onnx,
    install_from_wheel,
    silero_model_path,
)


def make_wheel(path: Path, member: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("silero_vad/__init__.py", "")
        archive.writestr(SILERO_MEMBER, member)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_wheel_with_another_hash_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "silero_vad-6.2.3-py3-none-any.whl", b"not the model")
    dest = tmp_path / "models"
    with pytest.raises(ModelStoreError, match=r"SHA-256 is [0-9a-f]{64}, expected"):
        install_from_wheel(wheel, dest)
    assert not (dest / SILERO_FILE_NAME).exists()


def test_the_member_is_checked_too_and_extracted_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = make_wheel(tmp_path / "wrong.whl", b"a changed model")
    monkeypatch.setattr(silero_model, "SILERO_WHEEL_SHA256", sha256(wrong))
    with pytest.raises(ModelStoreError, match="differs from the pinned model"):
        install_from_wheel(wrong, tmp_path / "a")
    assert not (tmp_path / "a" / SILERO_FILE_NAME).exists()

    model = b"\x08\x07onnx model bytes"
    right = make_wheel(tmp_path / "right.whl", model)
    monkeypatch.setattr(silero_model, "SILERO_WHEEL_SHA256", sha256(right))
    monkeypatch.setattr(silero_model, "SILERO_ONNX_SHA256", hashlib.sha256(model).hexdigest())
    installed = install_from_wheel(right, tmp_path / "b")
    assert installed == tmp_path / "b" / SILERO_FILE_NAME and installed.read_bytes() == model
    assert [p.name for p in (tmp_path / "b").iterdir()] == [SILERO_FILE_NAME]


def test_the_installed_model_matches_the_pin_and_is_not_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = silero_model_path()  # scripts/setup put it there
    assert sha256(path) == SILERO_ONNX_SHA256

    def no_fetch(*_: object) -> Path:
        raise AssertionError("fetched although the pinned model is in place")

    monkeypatch.setattr(silero_model, "fetch_wheel", no_fetch)
    assert ensure_installed(path.parent) == path
    with pytest.raises(ModelStoreError, match=r"not installed.*scripts/setup"):
        silero_model_path(tmp_path)


def test_a_model_file_is_copied_only_when_it_is_the_pinned_one(tmp_path: Path) -> None:
    other = tmp_path / "silero_vad.onnx"
    other.write_bytes(b"another model")
    with pytest.raises(ModelStoreError, match="not the pinned Silero model"):
        install_from_onnx(other, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    copied = install_from_onnx(silero_model_path(), tmp_path / "b")
    assert sha256(copied) == SILERO_ONNX_SHA256
