"""Log-mel spectrogram: the kernel against faster-whisper's own feature extractor.

An optional comparison: faster-whisper is not a dependency (it needs onnxruntime, which
would sit beside CTranslate2 for nothing), so this module runs only where it is installed
(``pip install --no-deps faster-whisper`` is enough: its extractor needs only NumPy), and
otherwise is skipped as a whole with that reason. The kernel is checked against its own
NumPy reference in test_logmel.py either way.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kernels.logmel import log_mel_spectrogram
from tests.kernels.test_logmel import RATE, TOL, noise, speechy

NOT_INSTALLED = "faster-whisper is not installed (optional: pip install --no-deps faster-whisper)"


def _feature_extractor_class() -> Any:
    """faster-whisper's FeatureExtractor; its module needs only NumPy, so when the package
    itself cannot be imported (optional decoders missing) the module is loaded on its own."""
    try:
        from faster_whisper.feature_extractor import FeatureExtractor
    except ImportError:
        spec = importlib.util.find_spec("faster_whisper")
        if spec is None or not spec.submodule_search_locations:
            pytest.skip(NOT_INSTALLED, allow_module_level=True)
        path = Path(next(iter(spec.submodule_search_locations))) / "feature_extractor.py"
        mod_spec = importlib.util.spec_from_file_location("_fw_feature_extractor", path)
        if mod_spec is None or mod_spec.loader is None or not path.is_file():
            pytest.skip(f"{path} cannot be loaded", allow_module_level=True)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        FeatureExtractor = module.FeatureExtractor
    return FeatureExtractor


FeatureExtractor = _feature_extractor_class()


@pytest.mark.parametrize("n_mels", [80, 128])
def test_matches_faster_whisper_feature_extractor(n_mels: int) -> None:
    extractor = FeatureExtractor(feature_size=n_mels)
    for x in (speechy(3.0), noise(5 * RATE + 123, seed=3)):
        ref = extractor(x, padding=0)
        got = log_mel_spectrogram(x, n_mels)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=TOL, rtol=0)
        # faster-whisper pads 160 samples by default; so does padding=160 here.
        np.testing.assert_allclose(log_mel_spectrogram(x, n_mels, 160), extractor(x),
                                   atol=TOL, rtol=0)
