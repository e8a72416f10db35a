"""The speech check: Silero VAD on onnxruntime, run over cut utterances before Whisper.

The Numba VAD (kernels.vad) cuts each leg into utterances on energy and zero crossings; it
cannot tell speech from other sound of speech level: noise bursts, hold music, tones, DTMF.
Whisper, given such a cut, spends a decode on it and sometimes writes a phantom sentence.
This second stage asks Silero VAD (a small recurrent network, ``core.asr.silero_model``)
whether the cut holds speech, for all the utterances of an ASR batch at once, and the
engine drops those that do not (filter reason ``not_speech``).

How the model is run
--------------------
Silero is a streaming model: it reads 32 ms windows (256 samples at 8 kHz, each preceded by
the last 32 samples of the window before it) and carries a recurrent state from one window
to the next. The check runs at 8 kHz, the band of the telephone audio (the 16 kHz requests
are brought down with ``kernels.resample``; at 8 kHz a window costs about 60 % of a 16 kHz
one). A batch of utterances is one tensor: row ``i`` of the input, and column ``i`` of the
state, belong to utterance ``i`` alone, from its first window to its last, so every
utterance is read exactly as if it were run by itself. At step ``t`` the model runs once
over the utterances that still have a window ``t`` and are not yet decided.

The verdict
-----------
A window is speech when its probability is at least ``threshold`` (Silero's own default is
0.5). An utterance is speech once ``min_speech_s`` of its windows are; it is decided then
and reads no further. One that ends before that is not speech.

On a GPU (the engine's device is ``cuda``) the session asks onnxruntime's CUDA provider
first; where it cannot load, onnxruntime falls back to the CPU and the check says so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from kernels.resample import downsample_16k_to_8k

logger = logging.getLogger(__name__)

INPUT_RATE_HZ = 16000
MODEL_RATE_HZ = 8000
WINDOW_SAMPLES = 256
CONTEXT_SAMPLES = 32
STATE_UNITS = 128
WINDOW_S = WINDOW_SAMPLES / MODEL_RATE_HZ
DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_SPEECH_S = 0.25
"""Eight windows (Silero's own shortest speech). On 303 labelled utterances of the corpora
the fewest speech windows were 10 (a 0.5 s utterance), most had over 27; generated hold music
reached 3 windows in one cut of 20, DTMF 1, noise and tones none."""


@dataclass(frozen=True)
class SpeechVerdict:
    """What the check found in one utterance.

    Attributes:
        speech: True when ``min_speech_s`` of its windows were speech.
        speech_s: seconds of speech windows read before the decision.
        read_s: seconds of audio the model read before the decision.
    """

    speech: bool
    speech_s: float
    read_s: float


@dataclass
class SpeechCheckStats:
    """Counters since the check was made (summed over the threads that called it)."""

    utterances: int = 0
    dropped: int = 0
    audio_s: float = 0.0
    dropped_audio_s: float = 0.0
    read_s: float = 0.0
    cpu_s: float = 0.0
    """CPU seconds of the calling threads inside the check (the model runs on them)."""
    runs: int = 0
    """Calls into the model (one per step of a batch)."""


class SpeechCheck:
    """One Silero ONNX session, shared by the threads that call :meth:`check`."""

    def __init__(
        self,
        model_path: Path,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        min_speech_s: float = DEFAULT_MIN_SPEECH_S,
        device: str = "cpu",
        device_index: int = 0,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie between 0 and 1, got {threshold}")
        if min_speech_s <= 0:
            raise ValueError(f"min_speech_s must be > 0, got {min_speech_s}")
        self.threshold = threshold
        self.min_windows = max(1, round(min_speech_s / WINDOW_S))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # a small model: the calling thread runs it
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers: list[str | tuple[str, dict[str, str]]] = ["CPUExecutionProvider"]
        if device == "cuda":
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": str(device_index)}))
        self.session = ort.InferenceSession(str(model_path), options, providers=providers)
        self.provider = self.session.get_providers()[0]
        if device == "cuda" and self.provider != "CUDAExecutionProvider":
            logger.warning("the speech check runs on the CPU: onnxruntime's CUDA provider "
                           "did not load (its CUDA libraries are missing)")  # fmt: skip
        self.stats = SpeechCheckStats()
        self._lock = threading.Lock()
        self._rate = np.array(MODEL_RATE_HZ, dtype=np.int64)
        logger.info("speech check: Silero VAD on %s, threshold %.2f", self.provider, threshold)

    def check(self, audios: Sequence[np.ndarray]) -> list[SpeechVerdict]:
        """The verdict on each utterance (16 kHz float32), all run as one batch."""
        started = time.thread_time()
        windows = [_windows(a) for a in audios]
        counts, read, _ = self._run(windows, stop_early=True)
        verdicts = [
            SpeechVerdict(bool(c >= self.min_windows), float(c * WINDOW_S), float(r * WINDOW_S))
            for c, r in zip(counts, read, strict=True)
        ]
        cpu = time.thread_time() - started
        with self._lock:
            stats = self.stats
            stats.cpu_s += cpu
            for audio, verdict in zip(audios, verdicts, strict=True):
                seconds = len(audio) / INPUT_RATE_HZ
                stats.utterances += 1
                stats.audio_s += seconds
                stats.read_s += verdict.read_s
                if not verdict.speech:
                    stats.dropped += 1
                    stats.dropped_audio_s += seconds
        return verdicts

    def probabilities(self, audios: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Silero's speech probability for every 32 ms window of each utterance (16 kHz
        float32), all run as one batch to the end (no early decision)."""
        _, _, probs = self._run([_windows(a) for a in audios], stop_early=False)
        return probs

    def _run(
        self, windows: list[np.ndarray], *, stop_early: bool
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Stream the utterances' windows through the model together.

        Returns, per utterance, the speech windows counted, the windows read, and the
        probabilities of the windows read.
        """
        n = len(windows)
        lengths = np.array([len(w) for w in windows], dtype=np.int64)
        steps = int(lengths.max()) if n else 0
        frames = np.zeros((n, steps, WINDOW_SAMPLES), dtype=np.float32)
        for i, w in enumerate(windows):
            frames[i, : len(w)] = w
        state = np.zeros((2, n, STATE_UNITS), dtype=np.float32)
        counts = np.zeros(n, dtype=np.int64)
        read = np.zeros(n, dtype=np.int64)
        probs = np.zeros((n, steps), dtype=np.float32)
        open_ = lengths > 0
        runs = 0
        for t in range(steps):
            active = np.flatnonzero(open_ & (lengths > t))
            if not len(active):
                break
            context = (
                frames[active, t - 1, -CONTEXT_SAMPLES:] if t
                else np.zeros((len(active), CONTEXT_SAMPLES), dtype=np.float32)
            )  # fmt: skip
            batch = np.concatenate((context, frames[active, t]), axis=1)
            out, new_state = self.session.run(
                None, {"input": batch, "state": state[:, active], "sr": self._rate}
            )
            runs += 1
            state[:, active] = new_state
            p = out[:, 0]
            probs[active, t] = p
            read[active] += 1
            counts[active] += p >= self.threshold
            if stop_early:
                open_[active[counts[active] >= self.min_windows]] = False
        with self._lock:
            self.stats.runs += runs
        return counts, read, [probs[i, : read[i]] for i in range(n)]


def _windows(audio: np.ndarray) -> np.ndarray:
    """An utterance of 16 kHz samples as (windows, 256) at 8 kHz, the last one zero-padded."""
    if audio.ndim != 1:
        raise ValueError(f"audio must be 1-D, got shape {audio.shape}")
    low = downsample_16k_to_8k(np.ascontiguousarray(audio, dtype=np.float32))
    count = -(-len(low) // WINDOW_SAMPLES)
    out = np.zeros((count, WINDOW_SAMPLES), dtype=np.float32)
    out.reshape(-1)[: len(low)] = low
    return out
