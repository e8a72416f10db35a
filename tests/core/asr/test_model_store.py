"""Model store: assembly of the embedded base model, named models, configured paths."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core.asr.models import (
    ModelStoreError,
    ensure_embedded_base,
    inspect_model_dir,
    resolve_model,
    verify_model_dir,
)

KNOWN_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"


def _fake_model(path: Path, vocab_size: int = 51865, **extra: dict) -> Path:
    path.mkdir(parents=True)
    (path / "model.bin").write_bytes(b"\0" * 16)
    (path / "config.json").write_text("{}")
    (path / "vocabulary.json").write_text(json.dumps([f"t{i}" for i in range(vocab_size)]))
    for name, content in extra.items():
        (path / f"{name}.json").write_text(json.dumps(content))
    return path


def test_unknown_name_or_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelStoreError, match=r"unknown model 'large-v9'.*'base', 'tiny\.en'"):
        resolve_model("large-v9", tmp_path)
    with pytest.raises(ModelStoreError, match="unknown model"):
        resolve_model(str(tmp_path / "nowhere"), tmp_path)


def test_path_that_is_not_a_model(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelStoreError, match=r"lacks model\.bin, config\.json, vocabulary\.json"):
        resolve_model(str(empty), tmp_path)
    a_file = tmp_path / "model.bin"
    a_file.write_bytes(b"x")
    with pytest.raises(ModelStoreError, match="is not a directory"):
        resolve_model(str(a_file), tmp_path)
    broken = _fake_model(tmp_path / "broken")
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelStoreError, match="cannot read"):
        resolve_model(str(broken), tmp_path)


def test_configured_path_is_inspected(tmp_path: Path) -> None:
    info = resolve_model(str(_fake_model(tmp_path / "small")), tmp_path)
    assert (info.name, info.multilingual, info.n_mels, info.vocabulary_size) == (
        "small",
        True,
        80,
        51865,
    )
    en = inspect_model_dir(_fake_model(tmp_path / "small.en", 51864), "small.en")
    assert not en.multilingual
    v3 = inspect_model_dir(_fake_model(tmp_path / "v3", 51866), "v3")
    assert v3.n_mels == 128
    pre = inspect_model_dir(
        _fake_model(tmp_path / "pre", preprocessor_config={"feature_size": 128}), "pre"
    )
    assert pre.n_mels == 128


@pytest.mark.model
def test_tiny_en_is_a_named_model(tmp_path: Path) -> None:
    info = resolve_model("tiny.en", tmp_path)
    assert info.name == "tiny.en" and not info.multilingual and info.n_mels == 80
    assert (info.path / "model.bin").is_file()
    assert not (tmp_path / "models").exists()


@pytest.mark.model
def test_embedded_base_is_assembled_verified_and_repaired(tmp_path: Path) -> None:
    info = resolve_model("base", tmp_path)
    target = tmp_path / "models" / "whisper-base"
    assert info.path == target and info.multilingual and info.n_mels == 80
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["files"]["model.bin"]["sha256"] == KNOWN_SHA256
    assert manifest["files"]["model.bin"]["size"] == (target / "model.bin").stat().st_size
    assert {"config.json", "tokenizer.json", "vocabulary.json"} <= set(manifest["files"])
    assert verify_model_dir(target) == []
    assert [p.name for p in (tmp_path / "models").iterdir() if p.is_dir()] == ["whisper-base"]

    # A second load only checks sizes and leaves the files alone.
    mtime = (target / "model.bin").stat().st_mtime_ns
    assert ensure_embedded_base(tmp_path) == target
    assert (target / "model.bin").stat().st_mtime_ns == mtime

    # Without a manifest the files are hashed, found good and a manifest written again.
    (target / "manifest.json").unlink()
    ensure_embedded_base(tmp_path)
    assert (target / "model.bin").stat().st_mtime_ns == mtime
    assert json.loads((target / "manifest.json").read_text())["files"] == manifest["files"]

    # A truncated model.bin is noticed by its size and the folder assembled again.
    with open(target / "model.bin", "r+b") as f:
        f.truncate(1000)
    ensure_embedded_base(tmp_path)
    assert (target / "model.bin").stat().st_size == manifest["files"]["model.bin"]["size"]
    assert verify_model_dir(target) == []

    # Same size, different bytes, no manifest: the full hash catches it.
    (target / "manifest.json").unlink()
    with open(target / "config.json", "r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(b"[" if first != b"[" else b"{")
    ensure_embedded_base(tmp_path)
    assert verify_model_dir(target) == []
    assert json.loads((target / "config.json").read_text())  # valid JSON again
    leftovers = [p.name for p in (tmp_path / "models").iterdir() if p.name != "whisper-base"]
    assert leftovers == [".whisper-base.lock"]


@pytest.mark.model
def test_half_written_temp_folder_is_ignored(tmp_path: Path) -> None:
    models = tmp_path / "models"
    partial = models / ".whisper-base.tmp-crashed"
    partial.mkdir(parents=True)
    (partial / "model.bin").write_bytes(b"partial")
    path = ensure_embedded_base(tmp_path)
    assert path.name == "whisper-base"
    assert os.path.getsize(path / "model.bin") > 100_000_000
