"""Whisper speech recognition on CTranslate2 for pre-cut utterances, many lines at once.

The endpointer cuts each leg into utterances; ``AsrEngine.transcribe_batch`` takes the
finished utterances of many lines (16 kHz float32 each), builds their log-mel features
(kernels.logmel), encodes them once, and decodes them together in ``generate()`` calls.
One ``ctranslate2.models.Whisper`` is loaded per engine, and ``get_engine`` keeps one
engine per (model, options).

Encoder window (measured by benchmarks/asr_window_study.py)
-----------------------------------------------------------
WINDOW_STUDY_RESULTS

What else happens to an utterance:

* Speech check (``AsrOptions.speech_check``): before anything is decoded, Silero VAD
  (``core.asr.speech_check``) reads the batch's utterances together and those without speech
  are dropped (filter reason "not_speech"), so Whisper never decodes them.
* Features: the audio is padded with silence to its window and turned into a log-mel
  spectrogram of ``window_s * 100`` frames (CTranslate2 accepts windows shorter than 30 s;
  the encoder's cost falls with the length). Utterances longer than
  ``max_utterance_s`` are cut into equal pieces that are decoded separately and joined.
* Prompt: ``<|startoftranscript|><|zh|><|transcribe|><|notimestamps|>``, preceded by
  ``<|startofprev|>`` and a short simplified-Chinese sentence when decoding Mandarin (it
  keeps the output simplified; the text is converted with zhconv in any case). Rubric
  phrases are never put in the prompt (see above).
* Fallback: a result whose zlib compression ratio is above the threshold, whose average
  log-probability is below the threshold, or that loops is decoded again at the next
  temperature, at most ``len(temperatures)`` attempts in all (capped at
  MAX_TEMPERATURE_ATTEMPTS). The encoder output is reused.
* Filters: no speech (no-speech probability high and log-probability low: dropped, and no
  retry), phantom phrases (asr_filters.PHANTOM_PHRASES: dropped), repetition loops (the
  best attempt without a loop is kept; when every attempt loops, the first copy of the
  loop is kept, and a result that is still too repetitive is dropped).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np

from core.asr.device import default_batch_size, load_whisper
from core.asr.filters import find_repetition, is_phantom, trim_repetition
from core.asr.models import ModelInfo, ModelStoreError, inspect_model_dir, resolve_model
from core.asr.silero_model import silero_model_path
from core.asr.speech_check import SpeechCheck
from core.asr.tokenizer import WhisperTokenizer
from core.asr.types import (
    FRAMES_PER_S,
    MAX_TEMPERATURE_ATTEMPTS,
    MAX_WINDOW_S,
    MIN_AUDIO_S,
    SAMPLE_RATE_HZ,
    WHISPER_MAX_LENGTH_TOKENS,
    ZH_SIMPLIFIED_PROMPT,
    ZH_VERBATIM_PROMPT,
    AsrOptions,
    AsrRequest,
    AsrResult,
    AsrStats,
    FilterReason,
    split_long,
    window_for,
)
from core.calls import PhraseCheck
from core.text_norm import compression_ratio, join_texts, to_simplified
from kernels.logmel import log_mel_spectrogram

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_TEMPERATURE_ATTEMPTS",
    "ZH_SIMPLIFIED_PROMPT",
    "ZH_VERBATIM_PROMPT",
    "AsrEngine",
    "AsrOptions",
    "AsrRequest",
    "AsrResult",
    "AsrStats",
    "get_engine",
    "split_long",
    "window_for",
]


@dataclass
class _Attempt:
    tokens: list[int]
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float
    looping: bool


@dataclass
class _Item:
    """One piece of audio to decode (an utterance, or a part of a long one)."""

    request_index: int
    audio: np.ndarray
    window_s: float
    language: str = "en"
    draft: bool = False
    language_prob: float | None = None
    attempts: list[_Attempt] = field(default_factory=list)
    encoded: Any = None
    """Its encoder output, kept while its request has phrases to check against the audio."""


class AsrEngine:
    """One CTranslate2 Whisper model and the decoding policy around it."""

    def __init__(self, model: ModelInfo | Path, options: AsrOptions | None = None) -> None:
        if not isinstance(model, ModelInfo):
            model = inspect_model_dir(Path(model), Path(model).name)
        self.model_info = model
        self.options = options or AsrOptions()
        self.tokenizer = WhisperTokenizer(model.path)
        self.model, self.device, self.compute_type = load_whisper(model.path, self.options)
        if self.options.random_seed is not None:
            ctranslate2.set_random_seed(self.options.random_seed)
        self.max_batch_size = self.options.max_batch_size or default_batch_size(self.device)
        self.inter_threads = int(getattr(self.model, "num_workers", 1) or 1)
        """Batches the model decodes at once (CTranslate2 replicas)."""
        self.stats = AsrStats()
        self.speech_check = self._load_speech_check() if self.options.speech_check else None
        self._prompt_cache: dict[str, list[int]] = {}
        logger.info(
            "Whisper %s loaded on %s (%s), batch %d, %d at once",
            model.name,
            self.device,
            self.compute_type,
            self.max_batch_size,
            self.inter_threads,
        )

    # ----------------------------------------------------------------- public

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> AsrResult:
        """Transcribe one utterance (see transcribe_batch)."""
        return self.transcribe_batch([AsrRequest("0", audio, language)])[0]

    def transcribe_batch(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
        """Transcribe utterances from any number of lines; results are in request order."""
        items: list[_Item] = []
        results: list[AsrResult | None] = [None] * len(requests)
        audios = [_check_audio(request) for request in requests]
        languages = [self._request_language(request) for request in requests]
        dropped = self._not_speech(audios)
        for index, request in enumerate(requests):
            audio, language = audios[index], languages[index]
            duration = len(audio) / SAMPLE_RATE_HZ
            reason: FilterReason | None = None
            if duration < MIN_AUDIO_S or not np.any(audio):
                reason = "empty"
            elif index in dropped:
                reason = "not_speech"
            if reason is not None:
                results[index] = AsrResult(
                    id=request.id,
                    text="",
                    language="" if language == "auto" else language,
                    filtered=True,
                    filter_reason=reason,
                    duration_s=duration,
                )
                continue
            piece_s = min(self.options.max_utterance_s, MAX_WINDOW_S - self.options.window_tail_s)
            for piece in split_long(audio, piece_s):
                window = window_for(len(piece) / SAMPLE_RATE_HZ, self.options)
                items.append(_Item(index, piece, window, language, request.draft))
        keep = {
            i for i, request in enumerate(requests)
            if request.candidates is not None and self.options.verify_margin > 0
        }  # fmt: skip
        for batch in self._batches(items):
            self._decode_batch(batch, keep)
        for index, request in enumerate(requests):
            if results[index] is None:
                pieces = [item for item in items if item.request_index == index]
                results[index] = self._check_phrases(request, pieces, self._finish(request, pieces))
        final = [r for r in results if r is not None]
        self._count(final)
        return final

    def _load_speech_check(self) -> SpeechCheck | None:
        """The speech check, or None (an error logged) where its model is not installed: the
        box goes on transcribing everything rather than stop (`callqa doctor` fails on it)."""
        try:
            path = silero_model_path()
        except ModelStoreError as exc:
            logger.error("the speech check is off: %s", exc)
            return None
        return SpeechCheck(path, threshold=self.options.speech_threshold, device=self.device,
                           device_index=self.options.device_index)  # fmt: skip

    def _not_speech(self, audios: list[np.ndarray]) -> set[int]:
        """Indices of the utterances the speech check finds no speech in (all of them run
        as one batch); none when the check is off."""
        if self.speech_check is None:
            return set()
        indices = [i for i, a in enumerate(audios)
                   if len(a) / SAMPLE_RATE_HZ >= MIN_AUDIO_S and np.any(a)]  # fmt: skip
        if not indices:
            return set()
        verdicts = self.speech_check.check([audios[i] for i in indices])
        return {i for i, verdict in zip(indices, verdicts, strict=True) if not verdict.speech}

    # ----------------------------------------------------------------- batching

    def _request_language(self, request: AsrRequest) -> str:
        language = request.language or self.options.language
        if language not in ("zh", "en", "auto") and language not in self.tokenizer.languages:
            raise ValueError(f"request {request.id}: unknown language {language!r}")
        if not self.model_info.multilingual:
            return "en"
        return language

    def _batches(self, items: list[_Item]) -> list[list[_Item]]:
        """Items grouped into generate() calls of at most max_batch_size."""
        if self.options.batch_padding == "max":
            ordered = sorted(items, key=lambda item: item.window_s)
            batches = [
                ordered[i : i + self.max_batch_size]
                for i in range(0, len(ordered), self.max_batch_size)
            ]
            for batch in batches:
                window = max(item.window_s for item in batch)
                for item in batch:
                    item.window_s = window
            return batches
        groups: dict[float, list[_Item]] = {}
        for item in items:
            groups.setdefault(item.window_s, []).append(item)
        return [
            group[i : i + self.max_batch_size]
            for _, group in sorted(groups.items())
            for i in range(0, len(group), self.max_batch_size)
        ]

    def _decode_batch(self, batch: list[_Item], keep: set[int] | None = None) -> None:
        opts = self.options
        window_s = batch[0].window_s
        n_frames = round(window_s * FRAMES_PER_S)
        features = np.stack([self._features(item.audio, n_frames) for item in batch])
        started = time.perf_counter()
        encoded = self.model.encode(
            ctranslate2.StorageView.from_array(features), to_cpu=self.device != "cpu"
        )
        self.stats.encode_s += time.perf_counter() - started
        for row, item in enumerate(batch):
            if keep and item.request_index in keep:
                item.encoded = _select(encoded, [row], len(batch)) if len(batch) > 1 else encoded
        self._detect_languages(batch, encoded)
        pending = list(range(len(batch)))
        for attempt_no, temperature in enumerate(opts.temperatures):
            if not pending:
                break
            if attempt_no > 0:
                self.stats.retries += len(pending)
            attempts = self._generate(
                [batch[i] for i in pending], _select(encoded, pending), temperature
            )
            still = []
            for i, attempt in zip(pending, attempts, strict=True):
                batch[i].attempts.append(attempt)
                if attempt_no == 0 and (attempt.looping or self._too_repetitive(attempt)):
                    self.stats.first_attempt_loops += 1
                if not batch[i].draft and self._needs_retry(attempt):
                    still.append(i)
            pending = still

    def _features(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        n_samples = n_frames * SAMPLE_RATE_HZ // FRAMES_PER_S
        mel = log_mel_spectrogram(
            audio[:n_samples], self.model_info.n_mels, max(0, n_samples - len(audio))
        )
        return np.ascontiguousarray(mel[:, :n_frames])

    def _detect_languages(self, batch: list[_Item], encoded: Any) -> None:
        auto = [i for i, item in enumerate(batch) if item.language == "auto"]
        if not auto:
            return
        detected = self.model.detect_language(_select(encoded, auto, len(batch)))
        for i, ranking in zip(auto, detected, strict=True):
            token, prob = ranking[0]
            batch[i].language = token[2:-2]
            batch[i].language_prob = float(prob)

    def _prompt(self, language: str) -> list[int]:
        if language in self._prompt_cache:
            return self._prompt_cache[language]
        sp = self.tokenizer.special
        prompt: list[int] = []
        prompt_text = self.options.initial_prompt
        if prompt_text is None and language == "zh":
            prompt_text = self.options.zh_prompt
        if prompt_text:
            prompt = [sp.sot_prev, *self.tokenizer.encode(" " + prompt_text.strip())]
        prompt.append(sp.sot)
        if self.model_info.multilingual:
            prompt += [self.tokenizer.language_token(language), sp.transcribe]
        prompt.append(sp.no_timestamps)
        self._prompt_cache[language] = prompt
        return prompt

    def _generate(self, items: list[_Item], encoded: Any, temperature: float) -> list[_Attempt]:
        """One generate() call per prompt length (CTranslate2 needs aligned prompts) and
        beam width (drafts have their own)."""
        opts = self.options
        prompts = [self._prompt(item.language) for item in items]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, prompt in enumerate(prompts):
            beam = opts.draft_beam_size if items[i].draft else opts.beam_size
            groups.setdefault((len(prompt), beam), []).append(i)
        out: list[_Attempt | None] = [None] * len(items)
        for (length, beam), members in groups.items():
            longest_s = max(len(items[i].audio) for i in members) / SAMPLE_RATE_HZ
            budget = self.options.max_tokens_base + self.options.max_tokens_per_s * longest_s
            max_length = min(WHISPER_MAX_LENGTH_TOKENS, length + int(budget))
            sub = encoded if len(members) == len(items) else _select(encoded, members)
            kwargs: dict[str, Any] = {
                "max_length": max_length,
                "return_scores": True,
                "return_no_speech_prob": True,
                "suppress_blank": True,
            }
            if temperature > 0:
                kwargs.update(beam_size=1, sampling_topk=0, sampling_temperature=temperature)
            else:
                kwargs.update(beam_size=beam)
            started = time.perf_counter()
            results = self.model.generate(sub, [prompts[i] for i in members], **kwargs)
            self.stats.decode_s += time.perf_counter() - started
            self.stats.generate_calls += 1
            for i, result in zip(members, results, strict=True):
                out[i] = self._attempt(result, temperature)
        return [a for a in out if a is not None]

    def _attempt(self, result: Any, temperature: float) -> _Attempt:
        tokens = [t for t in result.sequences_ids[0] if t < self.tokenizer.special.eot]
        text = self.tokenizer.decode(tokens).strip()
        n = len(result.sequences_ids[0])
        # CTranslate2's score is the sum of log-probabilities over the length; Whisper
        # averages over the tokens plus the end-of-text token.
        avg_logprob = result.scores[0] * n / (n + 1) if n else result.scores[0]
        return _Attempt(
            tokens=tokens,
            text=text,
            avg_logprob=float(avg_logprob),
            no_speech_prob=float(result.no_speech_prob),
            compression_ratio=compression_ratio(text),
            temperature=temperature,
            looping=find_repetition(text) is not None,
        )

    # ----------------------------------------------------------------- decisions

    def _is_silence(self, attempt: _Attempt) -> bool:
        opts = self.options
        return (
            opts.no_speech_threshold is not None
            and attempt.no_speech_prob > opts.no_speech_threshold
            and (opts.log_prob_threshold is None or attempt.avg_logprob < opts.log_prob_threshold)
        )

    def _too_repetitive(self, attempt: _Attempt) -> bool:
        threshold = self.options.compression_ratio_threshold
        return threshold is not None and attempt.compression_ratio > threshold

    def _needs_retry(self, attempt: _Attempt) -> bool:
        if self._is_silence(attempt):
            return False
        threshold = self.options.log_prob_threshold
        return (
            attempt.looping
            or self._too_repetitive(attempt)
            or (threshold is not None and attempt.avg_logprob < threshold)
        )

    def _choose(self, attempts: list[_Attempt]) -> tuple[_Attempt, str, FilterReason | None, bool]:
        """The attempt kept, its final text, why it is dropped (or None), whether trimmed."""
        first = attempts[0]
        if self._is_silence(first):
            return first, "", "no_speech", False
        clean = [a for a in attempts if not a.looping and not self._too_repetitive(a)]
        if clean:
            best = max(clean, key=lambda a: a.avg_logprob)
            return best, best.text, None, False
        repetition = find_repetition(first.text)
        text = trim_repetition(first.text, repetition) if repetition else first.text
        threshold = self.options.compression_ratio_threshold
        if threshold is not None and compression_ratio(text) > threshold:
            return first, "", "loop" if repetition else "compression", repetition is not None
        return first, text, None, repetition is not None

    def _finish(self, request: AsrRequest, pieces: list[_Item]) -> AsrResult:
        texts: list[str] = []
        raw: list[str] = []
        kept: list[_Attempt] = []
        reasons: list[FilterReason] = []
        trimmed = False
        for piece in pieces:
            attempt, text, reason, was_trimmed = self._choose(piece.attempts)
            trimmed = trimmed or was_trimmed
            raw.append(attempt.text)
            if reason is None and is_phantom(text):
                reason = "phantom"
            if reason is not None:
                reasons.append(reason)
                continue
            kept.append(attempt)
            texts.append(text)
        language = pieces[0].language
        text = join_texts(texts, language)
        if language == "zh":
            text = to_simplified(text)
        chosen = kept or [pieces[0].attempts[0]]
        n_tokens = sum(len(a.tokens) for a in chosen) or 1
        return AsrResult(
            id=request.id,
            text=text,
            language=language,
            language_prob=pieces[0].language_prob,
            avg_logprob=sum(a.avg_logprob * max(len(a.tokens), 1) for a in chosen) / n_tokens,
            no_speech_prob=min(a.no_speech_prob for a in chosen),
            compression_ratio=compression_ratio(join_texts([a.text for a in chosen], language)),
            tokens=[t for a in chosen for t in a.tokens],
            temperature=max(a.temperature for a in chosen),
            attempts=max(len(p.attempts) for p in pieces),
            filtered=not texts,
            filter_reason=reasons[0] if not texts and reasons else None,
            raw_text=join_texts(raw, language),
            repetition_trimmed=trimmed,
            duration_s=sum(len(p.audio) for p in pieces) / SAMPLE_RATE_HZ,
            window_s=max(p.window_s for p in pieces),
        )

    # ----------------------------------------------------------------- phrase checks

    def _check_phrases(
        self, request: AsrRequest, pieces: list[_Item], result: AsrResult
    ) -> AsrResult:
        """Check the request's near-missed phrases against the audio (see `PhraseCheck`).

        Each candidate's text (the decoded text with the phrase put in) and the decoded text
        are scored by forced decoding on the utterance's encoder output; the candidates the
        audio supports within ``verify_margin`` are put in the text, the longest first where
        they overlap. Utterances decoded in pieces, and dropped ones, are left as they are.
        """
        finder = request.candidates
        off = self.options.verify_margin <= 0
        if finder is None or off or result.filtered or len(pieces) != 1 or not result.text:
            for piece in pieces:
                piece.encoded = None
            return result
        piece = pieces[0]
        text = result.text
        found = [c for c in finder(text) if 0 <= c.start < c.end <= len(text)]
        piece.encoded, encoded = None, piece.encoded
        if not found or encoded is None:
            return result
        started = time.perf_counter()
        texts = [text] + [text[: c.start] + c.phrase + text[c.end :] for c in found]
        scores = self._forced_logprob(encoded, piece, texts)
        margin = self.options.verify_margin
        checks = [
            PhraseCheck(c.phrase, text[c.start : c.end], c.start, c.end, gain, gain >= -margin)
            for c, gain in zip(found, (s - scores[0] for s in scores[1:]), strict=True)
        ]
        self.stats.phrase_checks += len(checks)
        self.stats.check_s += time.perf_counter() - started
        accepted = _non_overlapping([c for c in checks if c.accepted])
        if not accepted:
            return dataclasses.replace(result, checks=checks)
        new_text, shift, placed = "", 0, {}
        cursor = 0
        for check in sorted(accepted, key=lambda c: c.start):
            new_text += text[cursor : check.start]
            placed[id(check)] = check.start + shift
            new_text += check.phrase
            shift += len(check.phrase) - (check.end - check.start)
            cursor = check.end
        new_text += text[cursor:]
        checks = [
            dataclasses.replace(c, at=placed[id(c)]) if id(c) in placed else c for c in checks
        ]
        self.stats.phrases_accepted += len(accepted)
        return dataclasses.replace(result, text=new_text, decoded_text=text, checks=checks)

    def _forced_logprob(self, encoded: Any, piece: _Item, texts: list[str]) -> list[float]:
        """Summed log-probability of each text's tokens given the piece's audio."""
        ids = [self.tokenizer.encode(t) for t in texts]
        features = np.asarray(encoded)
        batch = ctranslate2.StorageView.from_array(
            np.ascontiguousarray(np.repeat(features, len(ids), axis=0))
        )
        audio_frames = len(piece.audio) * FRAMES_PER_S // SAMPLE_RATE_HZ
        frames = max(1, min(round(piece.window_s * FRAMES_PER_S), audio_frames))
        prompt = self._prompt(piece.language)
        aligned = self.model.align(batch, prompt, ids, [frames] * len(ids))
        return [
            float(np.log(np.maximum(np.asarray(a.text_token_probs, dtype=np.float64), 1e-12)).sum())
            for a in aligned
        ]

    def _count(self, results: list[AsrResult]) -> None:
        for result in results:
            self.stats.utterances += 1
            self.stats.audio_s += result.duration_s
            self.stats.trimmed += int(result.repetition_trimmed)
            if result.filter_reason:
                reason = result.filter_reason
                self.stats.filtered[reason] = self.stats.filtered.get(reason, 0) + 1


@functools.lru_cache(maxsize=4)
def get_engine(model: str, data_dir: str, options: AsrOptions | None = None) -> AsrEngine:
    """The engine for ``model`` (a name or a path) and ``options``, loaded once."""
    return AsrEngine(resolve_model(model, Path(data_dir)), options)


def _check_audio(request: AsrRequest) -> np.ndarray:
    audio = request.audio
    if not isinstance(audio, np.ndarray) or audio.dtype != np.float32 or audio.ndim != 1:
        raise TypeError(
            f"request {request.id}: audio must be a 1-D float32 numpy array of 16 kHz "
            "samples in [-1, 1] (int16 PCM: x.astype(numpy.float32) / 32768)"
        )
    if not np.all(np.isfinite(audio)):
        raise ValueError(f"request {request.id}: audio holds NaN or infinite samples")
    return audio


def _select(encoded: Any, rows: list[int], total: int | None = None) -> Any:
    """The rows ``rows`` of an encoder output (a CPU StorageView), as a StorageView."""
    if total is not None and rows == list(range(total)):
        return encoded
    array = np.asarray(encoded)
    if len(rows) == array.shape[0]:
        return encoded
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(array[rows]))


def _non_overlapping(checks: list[PhraseCheck]) -> list[PhraseCheck]:
    """The accepted checks to apply: where two overlap, the one with the larger gain."""
    kept: list[PhraseCheck] = []
    for check in sorted(checks, key=lambda c: -c.gain):
        if all(check.end <= k.start or k.end <= check.start for k in kept):
            kept.append(check)
    return kept
