"""Shared fixtures: the labelled corpus beside the checkout and the embedded model, built once."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS_DIR = REPO.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not (CORPUS_DIR / "rubric.yaml").is_file():
        pytest.skip(f"labelled corpus not found at {CORPUS_DIR} (it lives in ../shared/corpus)")
    return CORPUS_DIR


@pytest.fixture(scope="session")
def model_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding the embedded base model, assembled once for the session."""
    from core.asr.models import resolve_model

    data_dir = tmp_path_factory.mktemp("model-data")
    resolve_model("base", data_dir)
    return data_dir


@pytest.fixture(scope="session")
def base_model_dir(model_data_dir: Path) -> Path:
    from core.asr.models import resolve_model

    return resolve_model("base", model_data_dir).path
