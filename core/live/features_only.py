"""The front end alone: what the live pipeline does up to the ASR, with the ASR left out.

With ``asr_enabled = false`` the scheduler gets a :class:`FeaturesOnly` in place of the
Whisper engine: each utterance still gets its log-mel features, computed as the engine
would (padded to its encoder window, 80 bins), and is then reported as not transcribed.
Capacity benchmarks use it to measure ingest, DSP and feature extraction per line without
the model's cost; calls are still recorded, cut, stored and scored (on empty transcripts).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.asr.types import SAMPLE_RATE_HZ, AsrOptions, AsrRequest, AsrResult, window_for
from kernels.logmel import log_mel_spectrogram

N_MELS = 80


class FeaturesOnly:
    """A transcriber that computes features and transcribes nothing."""

    def __init__(self, options: AsrOptions | None = None, language: str = "zh") -> None:
        self.options = options or AsrOptions()
        self.language = language
        self.frames = 0

    def transcribe_batch(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
        results = []
        for request in requests:
            audio = np.asarray(request.audio, dtype=np.float32)
            duration = len(audio) / SAMPLE_RATE_HZ
            window = window_for(duration, self.options)
            n_samples = int(window * SAMPLE_RATE_HZ)
            mel = log_mel_spectrogram(audio[:n_samples], N_MELS, max(0, n_samples - len(audio)))
            self.frames += int(mel.shape[1])
            results.append(AsrResult(
                id=request.id, text="", language=request.language or self.language,
                filtered=True, filter_reason="empty", duration_s=duration, window_s=window,
            ))  # fmt: skip
        return results
