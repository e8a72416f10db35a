"""Options, requests and results of the ASR engine (core.asr.engine), and the window policy.

Kept apart from the engine so that configuration, the scheduler and storage can use these
types without importing CTranslate2.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from core.calls import PhraseCheck

SAMPLE_RATE_HZ = 16000
FRAMES_PER_S = 100
MAX_WINDOW_S = 30.0
MIN_AUDIO_S = 0.1
MAX_TEMPERATURE_ATTEMPTS = 2
MAX_TEMPERATURE = 1.0
WHISPER_MAX_LENGTH_TOKENS = 448
ZH_SIMPLIFIED_PROMPT = "以下是普通话的句子。"
# A disfluent Mandarin prompt: it tells the decoder to write hesitations and fillers as
# spoken (verbatim), which Whisper otherwise drops, with ASCII commas as Whisper writes
# them (a prompt with full-width punctuation led to stray full-width digits in the output).
ZH_VERBATIM_PROMPT = "嗯,这个,啊,那个,好的呀。"
CPU_MAX_BATCH = 8
CUDA_MAX_BATCH = 64

Language = Literal["zh", "en", "auto"]
Device = Literal["auto", "cpu", "cuda"]
BatchPadding = Literal["group", "max"]
FilterReason = Literal["empty", "no_speech", "not_speech", "phantom", "loop", "compression"]


@dataclass(frozen=True)
class AsrOptions:
    """How utterances are decoded. Defaults are the choices of the window study.

    Attributes:
        language: "zh", "en", or "auto" (detected per utterance with the model's language
            head); a request may override it. English-only models always decode English.
        beam_size: beam width at temperature 0 (1 = greedy). 3 was chosen on the corpus
            (benchmarks/asr_levers.py, eval_corpus.py): every finding as with 5 (CER 13.8 %
            against 13.6 %) for about 10 % less CPU; beams 1 and 2 missed apologies and a
            complaint-risk phrase.
        window_min_s: shortest encoder window, seconds; shorter utterances are padded with
            silence up to it. 30 reproduces Whisper's fixed 30 s window.
        window_tail_s: silence, seconds, always left after the audio inside the window.
        window_round_s: windows are rounded up to a multiple of this many seconds, which
            bounds the number of distinct shapes (utterances of one shape batch together).
        batch_padding: "group" decodes together the utterances that share a window;
            "max" pads every utterance of a batch to the longest window in it.
        max_utterance_s: longer utterances are cut into equal pieces of at most this length
            (and at most 30 s less window_tail_s).
        temperatures: decoding temperatures tried in order; the first is beam search
            (normally 0.0), later ones sample. At most MAX_TEMPERATURE_ATTEMPTS entries.
        compression_ratio_threshold: zlib ratio above which a result is retried
            (a loop); None disables the check.
        log_prob_threshold: average token log-probability below which a result is retried;
            None disables the check.
        no_speech_threshold: a result whose no-speech probability is above this and whose
            average log-probability is below log_prob_threshold is dropped as silence.
        zh_prompt: prompt for Mandarin decoding (None: none). The default, the verbatim
            prompt, was chosen on the corpus: against no prompt it brought filler recall from
            0 to 3 of 3 calls and CER from 14.2% to 13.6% (on the window study's utterance
            cuts it read 15.4% against 14.6%), and never wrote more fillers than were said
            (three wordings gave the same findings); ZH_SIMPLIFIED_PROMPT cost about 2 CER
            points. The output is converted to simplified characters either way.
        initial_prompt: prompt text used for every utterance instead (None: none).
        max_tokens_per_s: cap on generated tokens per second of audio (plus
            max_tokens_base), which bounds the cost of a loop.
        max_tokens_base: tokens always allowed besides max_tokens_per_s.
        device: "auto" (CUDA when ctranslate2 sees a GPU, else CPU), "cpu" or "cuda".
        device_index: GPU index when on CUDA.
        compute_type: "default" (int8 on CPU, float16 on CUDA) or any CTranslate2 type.
        cpu_threads: threads on CPU; 0 uses every core.
        inter_threads: batches the model decodes at once (CTranslate2 replicas); on CPU
            each gets cpu_threads / inter_threads threads; 0 picks (one per core up to 4 on
            the CPU, 1 on a GPU). The live scheduler runs as many workers.
        max_batch_size: utterances per generate() call; 0 picks CPU_MAX_BATCH or
            CUDA_MAX_BATCH.
        random_seed: seed of CTranslate2's sampler (temperature > 0), for repeatable runs.
        verify_margin: a near-missed phrase (AsrRequest.candidates) is put in the text when
            the model scores the text with it at most this many nats (summed log-probability
            over the utterance) below the decoded text on the same audio; see
            `core.calls.PhraseCheck` and the README's "Phrases the audio settles". 0 turns
            the checks off.
        speech_check: run the speech check (`core.asr.speech_check`, Silero VAD) over each
            utterance before it is decoded, and drop those that hold no speech (filter
            reason "not_speech").
        speech_threshold: Silero's speech probability at or above which a 32 ms window is
            speech (the check's threshold).
        draft_beam_size: beam width for drafts (AsrRequest.draft: the parts of a turn still
            going on), which are decoded once, with no temperature fallback.
    """

    language: Language = "zh"
    beam_size: int = 3
    draft_beam_size: int = 1
    window_min_s: float = 10.0
    window_tail_s: float = 1.0
    window_round_s: float = 1.0
    batch_padding: BatchPadding = "group"
    max_utterance_s: float = 28.0
    temperatures: tuple[float, ...] = (0.0, 0.4)
    compression_ratio_threshold: float | None = 2.4
    log_prob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    zh_prompt: str | None = ZH_VERBATIM_PROMPT
    initial_prompt: str | None = None
    max_tokens_per_s: float = 15.0
    max_tokens_base: int = 24
    device: Device = "auto"
    device_index: int = 0
    compute_type: str = "default"
    cpu_threads: int = 0
    inter_threads: int = 0
    max_batch_size: int = 0
    random_seed: int | None = 0
    verify_margin: float = 4.0
    speech_check: bool = False
    speech_threshold: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.speech_threshold < 1.0:
            raise ValueError(f"speech_threshold must lie in (0, 1), got {self.speech_threshold}")
        if self.language not in ("zh", "en", "auto"):
            raise ValueError(f"language must be 'zh', 'en' or 'auto', got {self.language!r}")
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if not self.temperatures or len(self.temperatures) > MAX_TEMPERATURE_ATTEMPTS:
            raise ValueError(
                f"temperatures must hold 1 to {MAX_TEMPERATURE_ATTEMPTS} values "
                f"(e.g. (0.0, 0.4)), got {self.temperatures!r}"
            )
        if any(t < 0 or t > MAX_TEMPERATURE for t in self.temperatures):
            raise ValueError(f"temperatures must lie in [0, {MAX_TEMPERATURE}]")
        if not 0 < self.window_min_s <= MAX_WINDOW_S:
            raise ValueError(f"window_min_s must be in (0, {MAX_WINDOW_S}] s")
        if self.window_tail_s < 0 or self.window_round_s <= 0:
            raise ValueError("window_tail_s must be >= 0 and window_round_s > 0")
        if not 0 < self.max_utterance_s <= MAX_WINDOW_S or self.window_tail_s >= MAX_WINDOW_S:
            raise ValueError(
                f"max_utterance_s must be in (0, {MAX_WINDOW_S}] s and window_tail_s below "
                f"{MAX_WINDOW_S} s, got {self.max_utterance_s} and {self.window_tail_s}"
            )
        if self.batch_padding not in ("group", "max"):
            raise ValueError(f"batch_padding must be 'group' or 'max', got {self.batch_padding!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.cpu_threads < 0 or self.max_batch_size < 0:
            raise ValueError("cpu_threads and max_batch_size must be >= 0")
        if self.inter_threads < 0:
            raise ValueError(f"inter_threads must be >= 0, got {self.inter_threads}")


class PhraseCandidate(Protocol):
    """A stretch ``text[start:end]`` of a transcript that may really have been ``phrase``."""

    @property
    def phrase(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


CandidateFinder = Callable[[str], Sequence[PhraseCandidate]]
"""Given the decoded text of an utterance, the phrases to check against its audio."""


@dataclass(frozen=True)
class AsrRequest:
    """One utterance to transcribe.

    Attributes:
        id: the caller's key for the utterance (e.g. "call42/agent/17").
        audio: 16 kHz mono float32 samples in [-1, 1].
        language: "zh", "en", "auto", or None for AsrOptions.language.
        candidates: finds, in the decoded text, near misses of phrases that matter (a
            rubric's); each is checked against the audio, and put in the text when the audio
            supports it about as well as what was decoded (see `PhraseCheck`).
        draft: a part of a turn still going on, shown until the whole turn is decoded:
            decoded with ``AsrOptions.draft_beam_size``, once (no temperature fallback).
    """

    id: str
    audio: np.ndarray
    language: str | None = None
    candidates: CandidateFinder | None = None
    draft: bool = False


@dataclass
class AsrResult:
    """What the model heard in one utterance.

    Attributes:
        id: the request's id.
        text: the transcript (simplified Chinese for zh); "" when filtered.
        language: the language decoded.
        language_prob: probability of that language when detected, else None.
        avg_logprob: average log-probability of the chosen result's tokens.
        no_speech_prob: probability of the no-speech token at the first step.
        compression_ratio: zlib compression ratio of the raw text.
        tokens: token ids of the chosen result (text tokens only).
        temperature: temperature of the chosen attempt.
        attempts: decoding attempts made (1 + retries).
        filtered: True when the text was dropped.
        filter_reason: why it was dropped ("no_speech", "not_speech" (the speech check),
            "phantom", "loop", "compression", "empty"), else None.
        raw_text: the decoded text before filtering and loop trimming.
        repetition_trimmed: True when a loop was cut from the text.
        duration_s: length of the audio.
        window_s: encoder window used (seconds of audio and padding).
    """

    id: str
    text: str
    language: str
    language_prob: float | None = None
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    tokens: list[int] = field(default_factory=list)
    temperature: float = 0.0
    attempts: int = 0
    filtered: bool = False
    filter_reason: FilterReason | None = None
    raw_text: str = ""
    repetition_trimmed: bool = False
    duration_s: float = 0.0
    window_s: float = 0.0
    decoded_text: str | None = None
    """The text as decoded, where accepted phrase checks changed `text`; else None."""
    checks: list[PhraseCheck] = field(default_factory=list)
    """Near-missed phrases checked against the audio, accepted or not."""

    @property
    def dropped_reason(self) -> FilterReason | None:
        """Same as filter_reason."""
        return self.filter_reason


@dataclass
class AsrStats:
    """Counters of an engine since it was created (for benchmarks and metrics)."""

    utterances: int = 0
    audio_s: float = 0.0
    encode_s: float = 0.0
    decode_s: float = 0.0
    generate_calls: int = 0
    retries: int = 0
    first_attempt_loops: int = 0
    filtered: dict[str, int] = field(default_factory=dict)
    trimmed: int = 0
    phrase_checks: int = 0
    phrases_accepted: int = 0
    check_s: float = 0.0


def window_for(duration_s: float, options: AsrOptions) -> float:
    """Encoder window, seconds, for ``duration_s`` of audio under ``options``."""
    need = max(duration_s + options.window_tail_s, options.window_min_s)
    window = math.ceil(need / options.window_round_s - 1e-9) * options.window_round_s
    return min(window, MAX_WINDOW_S)


def split_long(audio: np.ndarray, max_s: float) -> list[np.ndarray]:
    """``audio`` cut into equal consecutive pieces of at most ``max_s`` seconds."""
    max_len = int(max_s * SAMPLE_RATE_HZ)
    if len(audio) <= max_len:
        return [audio]
    pieces = math.ceil(len(audio) / max_len)
    bounds = np.linspace(0, len(audio), pieces + 1).astype(int)
    return [audio[a:b] for a, b in itertools.pairwise(bounds)]


DEFAULT_BATCH = 8
"""Batch size when it is 0 and the model does not say its own (``max_batch_size``)."""


class Transcriber(Protocol):
    """What transcribes utterances: the engine, or a stand-in that replays known text."""

    def transcribe_batch(self, requests: Sequence[AsrRequest]) -> list[AsrResult]: ...
