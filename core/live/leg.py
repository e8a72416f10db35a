"""One live leg: audio in, as it arrives; finished utterances and voice activity out.

The per-leg half of the daemon's pipeline (ARCHITECTURE.md, "One packet's way", steps 4-5):
streaming VAD and frame levels over 20 ms frames, the same :class:`Endpointer` that offline
scoring uses, and the audio of each finished utterance at 16 kHz for ASR. A leg keeps only
the audio it may still need (the utterance in progress, plus padding), so an hour-long call
costs no more memory than a short one.

:meth:`LiveLeg.push` stores the audio at once but runs the DSP (VAD, levels, endpointer)
only once ``DSP_CHUNK_FRAMES`` whole frames (100 ms) are new, so its per-call costs are paid
once per 100 ms rather than per 20 ms packet; the decisions are the same frame by frame
whatever the chunking, and :meth:`LiveLeg.flush` processes what is left.

An utterance that goes on for long is also handed out in parts (:attr:`LegOutput.partials`)
every ``partial_every_s`` seconds of speech, so that a forbidden phrase said early in a long
turn raises its alert before the turn ends. Each part holds only the audio that is new since
the part before it, cut at the last pause (a frame that is not speech-like) of its final
``PART_CUT_LOOKBACK_S``, so that a word is rarely split between two parts: the ASR decodes
every second of a long turn once as parts, not again and again from its start. The
transcripts of the parts are joined by the call (:meth:`LiveCall.set_partial`); the finished
utterance, decoded whole, replaces them.

With ``early_after_s``, an utterance whose speaker has paused that long (the VAD's hangover
over) is also handed out as it will be if the pause turns out to end it
(:attr:`LegOutput.early`, from :meth:`Endpointer.pending_span`): the same span and the very
same audio. The engine may transcribe it while the endpointer still waits out
``min_silence_s``, and use that transcript for the finished utterance when its span is the
same; if the speaker goes on, it is thrown away.

Not thread-safe: one ingest thread feeds a leg.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from core.audio.segmentation import MAX_UTTERANCE_S, MIN_SILENCE_S, PAD_S, Endpointer, UtteranceSpan
from core.calls import Segment, Speaker
from kernels.levels import frame_pitch_hz
from kernels.resample import downsample_16k_to_8k, upsample_8k_to_16k
from kernels.vad import FRAME_MS, StreamingVad

VAD_RATE_HZ = 8000
ASR_RATE_HZ = 16000
FRAME_SAMPLES = VAD_RATE_HZ * FRAME_MS // 1000
PARTIAL_EVERY_S = 4.0
PART_CUT_LOOKBACK_S = 0.8
"""A part ends at the last pause within this long before it is due (else where it is due)."""
MIN_PART_S = 1.0
"""A part shorter than this is not cut at a pause (it ends where it is due)."""
KEEP_BEFORE_S = 1.0
"""Audio kept before the utterance in progress (or before now, between utterances)."""
DSP_CHUNK_FRAMES = 5
"""Whole 20 ms frames that must be new before a push runs the DSP (100 ms)."""
_INT16_SCALE = np.float32(1.0 / 32768.0)
_NO_AUDIO = np.zeros(0, dtype=np.float32)


@dataclass(frozen=True)
class LiveUtterance:
    """A piece of speech to transcribe: finished, or a part of one still going on."""

    speaker: Speaker
    span: UtteranceSpan
    audio16: np.ndarray
    """16 kHz float32 audio of ``span.start``..``span.end``."""
    partial: bool
    seq: int
    """Number of the utterance on its leg; the parts of an utterance share its number."""
    ended_at_s: float
    """Leg time (s) of the latest audio the leg had when this was cut."""
    part: int = 0
    """For a part: its number within the utterance (0, 1, ...); its span holds only its own
    audio, which follows the audio of the part before it."""

    def without_audio(self) -> LiveUtterance:
        """The same utterance with no audio: what is kept of it beside its ASR job, whose
        audio the scheduler may move to disk and let go of."""
        return dataclasses.replace(self, audio16=_NO_AUDIO)


@dataclass
class LegOutput:
    """What one :meth:`LiveLeg.push` produced."""

    finished: list[LiveUtterance] = field(default_factory=list)
    partials: list[LiveUtterance] = field(default_factory=list)
    early: LiveUtterance | None = None
    """The utterance in progress as it will be if it ends in the pause it is in now (see
    ``early_after_s``): the same span and audio as the finished one would have."""
    voiced: list[Segment] = field(default_factory=list)
    position_s: float = 0.0
    """Leg time after this push: seconds of audio the leg has seen."""


class LiveLeg:
    """Streaming segmentation of one leg (8 or 16 kHz PCM in, utterances out)."""

    def __init__(
        self,
        speaker: Speaker,
        sample_rate: int = VAD_RATE_HZ,
        *,
        min_silence_s: float = MIN_SILENCE_S,
        max_utterance_s: float = MAX_UTTERANCE_S,
        pad_s: float = PAD_S,
        partial_every_s: float = PARTIAL_EVERY_S,
        early_after_s: float = 0.0,
    ) -> None:
        if sample_rate not in (VAD_RATE_HZ, ASR_RATE_HZ):
            raise ValueError(f"a leg runs at 8000 or 16000 Hz, got {sample_rate}")
        if partial_every_s < 0:
            raise ValueError("partial_every_s must be >= 0 (0: no parts)")
        if not 0.0 <= early_after_s < min_silence_s:
            raise ValueError(
                f"early_after_s must lie in [0, min_silence_s = {min_silence_s}) (0: off), "
                f"got {early_after_s}"
            )
        self.speaker: Speaker = speaker
        self.sample_rate = sample_rate
        self.partial_every_s = partial_every_s
        self._early_frames = round(early_after_s * 1000 / FRAME_MS) if early_after_s > 0 else 0
        self._early_given: tuple[int, float] | None = None  # (seq, end) of the last one given
        self._vad = StreamingVad(VAD_RATE_HZ, FRAME_MS)
        self._endpointer = Endpointer(
            FRAME_MS / 1000.0,
            min_silence_s=min_silence_s,
            max_utterance_s=max_utterance_s,
            pad_s=pad_s,
        )
        # 8 kHz audio kept for levels, pitch and ASR: samples [_base, _base + _len).
        self._audio = np.zeros(VAD_RATE_HZ * 20, dtype=np.float32)
        self._base = 0
        self._len = 0
        self._frames_done = 0  # frames already levelled and pushed to the endpointer
        # Speech-like flags of the kept frames: frames [_like_base, _like_base + _like_len).
        self._like = np.zeros(1024, dtype=bool)
        self._like_len = 0
        self._like_base = 0  # frame index of _like[0]
        self._pending16: np.ndarray | None = None  # odd 16 kHz sample left from a chunk
        self._seq = 0
        self._last_partial_s = 0.0
        self._part_from_s: float | None = None  # where the next part starts (None: at the turn)
        self._part_no = 0
        self.timeline_posted_s = -1.0
        """Leg time of the last timeline update its engine posted (engine's bookkeeping)."""

    # ---------------------------------------------------------------- input

    @property
    def position_s(self) -> float:
        """Seconds of audio this leg has received."""
        return (self._base + self._len) / VAD_RATE_HZ

    @property
    def samples(self) -> int:
        """Samples received so far, at the leg's own rate."""
        return (self._base + self._len) * (self.sample_rate // VAD_RATE_HZ)

    def push(self, pcm: np.ndarray, at_sample: int | None = None) -> LegOutput:
        """Feed audio (int16, or float32 in [-1, 1]) at the leg's rate.

        ``at_sample`` is where the chunk starts in the leg's timeline (samples at the leg's
        rate); a gap before it is filled with silence, audio before the current end is
        dropped (it was already given). None means right after the previous chunk.
        """
        x = _checked(pcm)
        if self.sample_rate == ASR_RATE_HZ:
            x = self._down_to_8k(_as_float(x))
            at8 = None if at_sample is None else at_sample // 2
        else:
            at8 = at_sample
        end = self._base + self._len
        if at8 is not None:
            if at8 > end:
                self._append(None, at8 - end)
            elif at8 < end:
                x = x[end - at8 :]
        if x.size:
            self._append(x, x.size)
        if (self._base + self._len) // FRAME_SAMPLES - self._frames_done < DSP_CHUNK_FRAMES:
            return LegOutput(position_s=self.position_s)  # stored; processed with the next
        return self._process()

    def flush(self) -> LegOutput:
        """The leg has ended: close the utterance in progress."""
        out = self._process()
        for span in self._endpointer.flush():
            out.finished.append(self._utterance(span, partial=False))
        out.voiced.extend(self._endpointer.take_voiced())
        return out

    # ---------------------------------------------------------------- work

    def _down_to_8k(self, x: np.ndarray) -> np.ndarray:
        # For the VAD and levels only; the 16 kHz original is not kept, the 8 kHz copy is
        # upsampled again for ASR (the box records and scores telephone-band audio).
        if self._pending16 is not None:
            x = np.concatenate([self._pending16, x])
            self._pending16 = None
        if x.size % 2:
            self._pending16 = x[-1:].copy()
        return downsample_16k_to_8k(x)

    def _append(self, x: np.ndarray | None, n: int) -> None:
        """Store ``n`` samples: ``x`` (int16 or float32) converted to float32, or silence."""
        need = self._len + n
        if need > self._audio.size:
            grown = np.zeros(max(need, 2 * self._audio.size), dtype=np.float32)
            grown[: self._len] = self._audio[: self._len]
            self._audio = grown
        dst = self._audio[self._len : need]
        if x is None:
            dst.fill(0.0)
        elif x.dtype == np.int16:  # x / 32768 in float32, without a temporary array
            np.multiply(x, _INT16_SCALE, out=dst, casting="unsafe")
        else:
            dst[:] = x
        self._len = need

    def _keep_like(self, like: np.ndarray) -> None:
        need = self._like_len + like.size
        if need > self._like.size:
            grown = np.zeros(max(need, 2 * self._like.size), dtype=bool)
            grown[: self._like_len] = self._like[: self._like_len]
            self._like = grown
        self._like[self._like_len : need] = like
        self._like_len = need

    def _process(self) -> LegOutput:
        out = LegOutput()
        total_frames = (self._base + self._len) // FRAME_SAMPLES
        if total_frames > self._frames_done:
            first = self._frames_done * FRAME_SAMPLES - self._base
            stop = total_frames * FRAME_SAMPLES - self._base
            chunk = self._audio[first:stop]
            voice, like, levels = self._vad.process_levels(chunk)
            n = len(voice)
            self._keep_like(like)
            spans = self._endpointer.push(voice, like, levels)
            self._frames_done += n
            for span in spans:
                out.finished.append(self._utterance(span, partial=False))
            if out.finished:
                self._reset_parts()
            out.voiced = self._endpointer.take_voiced()
            partial = self._maybe_partial()
            if partial is not None:
                out.partials.append(partial)
            out.early = self._maybe_early()
            self._trim()
        out.position_s = self.position_s
        return out

    def _maybe_partial(self) -> LiveUtterance | None:
        if self.partial_every_s <= 0:
            return None
        since = self._endpointer.open_since_s
        speech = self._endpointer.open_speech_start_s
        if since is None or speech is None:
            self._reset_parts()
            return None
        now = self._frames_done * FRAME_MS / 1000.0
        length = now - speech
        if length < self.partial_every_s * (1 + int(self._last_partial_s / self.partial_every_s)):
            return None
        self._last_partial_s = length
        start = since if self._part_from_s is None else self._part_from_s
        end = self._pause_before(now, not_before=start + MIN_PART_S)
        if end <= start:
            return None
        span = UtteranceSpan(
            start=start, end=end, speech_start=max(start, speech), speech_end=end,
            voiced_s=end - max(start, speech), level_db=None, pitch_hz=None, forced_cut=False,
        )  # fmt: skip
        part = LiveUtterance(
            self.speaker, span, self._audio16(start, end), True, self._seq, now, self._part_no
        )  # fmt: skip
        self._part_from_s = end
        self._part_no += 1
        return part

    def _maybe_early(self) -> LiveUtterance | None:
        """The open utterance as it ends if its pause goes on, once per pause."""
        if not self._early_frames:
            return None
        span = self._endpointer.pending_span(self._early_frames)
        if span is None or self._early_given == (self._seq, span.end):
            return None
        self._early_given = (self._seq, span.end)
        # Its audio is what the ASR needs; the finished utterance brings its own pitch.
        return LiveUtterance(
            self.speaker, span, self._audio16(span.start, span.end), False, self._seq,
            self._frames_done * FRAME_MS / 1000.0,
        )  # fmt: skip

    def _reset_parts(self) -> None:
        self._last_partial_s = 0.0
        self._part_from_s = None
        self._part_no = 0

    def _pause_before(self, now_s: float, *, not_before: float) -> float:
        """Start of the last frame that is not speech-like in the ``PART_CUT_LOOKBACK_S``
        before ``now_s`` (and after ``not_before``); ``now_s`` when there is none."""
        hi = min(round(now_s * 1000 / FRAME_MS), self._like_base + self._like_len)
        lo = max(round(max(now_s - PART_CUT_LOOKBACK_S, not_before) * 1000 / FRAME_MS),
                 self._like_base)  # fmt: skip
        if hi <= lo:
            return now_s
        quiet = np.flatnonzero(~self._like[lo - self._like_base : hi - self._like_base])
        if quiet.size == 0:
            return now_s
        return (lo + int(quiet[-1])) * FRAME_MS / 1000.0

    def _utterance(self, span: UtteranceSpan, *, partial: bool) -> LiveUtterance:
        pitch = self._pitch(span)
        span = UtteranceSpan(
            start=span.start, end=span.end, speech_start=span.speech_start,
            speech_end=span.speech_end, voiced_s=span.voiced_s, level_db=span.level_db,
            pitch_hz=pitch, forced_cut=span.forced_cut,
        )  # fmt: skip
        utt = LiveUtterance(
            self.speaker, span, self._audio16(span.start, span.end), partial, self._seq,
            self._frames_done * FRAME_MS / 1000.0,
        )  # fmt: skip
        self._seq += 1
        return utt

    def _slice8(self, start_s: float, end_s: float) -> np.ndarray:
        a = max(self._base, round(start_s * VAD_RATE_HZ))
        b = min(self._base + self._len, round(end_s * VAD_RATE_HZ))
        if b <= a:
            return np.zeros(0, dtype=np.float32)
        return self._audio[a - self._base : b - self._base]

    def _audio16(self, start_s: float, end_s: float) -> np.ndarray:
        x = self._slice8(start_s, end_s)
        if x.size == 0:
            return np.zeros(0, dtype=np.float32)
        return upsample_8k_to_16k(np.ascontiguousarray(x))

    def _pitch(self, span: UtteranceSpan) -> float:
        """Median pitch of the speech-like frames of the span, 0.0 when none has one."""
        f0 = round(span.speech_start * 1000 / FRAME_MS)
        f1 = round(span.speech_end * 1000 / FRAME_MS)
        lo = max(f0 - 2, self._base // FRAME_SAMPLES + 1, self._like_base)
        hi = min(f1 + 2, self._frames_done)
        if hi <= lo:
            return 0.0
        x = self._audio[lo * FRAME_SAMPLES - self._base : hi * FRAME_SAMPLES - self._base]
        hz = np.asarray(frame_pitch_hz(np.ascontiguousarray(x), VAD_RATE_HZ, FRAME_MS))
        a, b = max(f0, lo), min(f1, hi)
        if b <= a:
            return 0.0
        like = self._like[a - self._like_base : b - self._like_base]
        sel = hz[a - lo : b - lo][like[: b - a]]
        sel = sel[sel > 0]
        return float(np.median(sel)) if sel.size else 0.0

    def _trim(self) -> None:
        since = self._endpointer.open_since_s
        keep_from_s = (since if since is not None else self.position_s) - KEEP_BEFORE_S
        keep_from = max(0, int(keep_from_s * VAD_RATE_HZ))
        keep_from = min(keep_from, self._frames_done * FRAME_SAMPLES)
        drop = keep_from - self._base
        if drop < VAD_RATE_HZ * 5:  # move memory only now and then
            return
        self._audio[: self._len - drop] = self._audio[drop : self._len]
        self._len -= drop
        self._base = keep_from
        frame_drop = min(keep_from // FRAME_SAMPLES - self._like_base, self._like_len)
        if frame_drop > 0:
            rest = self._like_len - frame_drop
            self._like[:rest] = self._like[frame_drop : self._like_len]
            self._like_len = rest
            self._like_base += frame_drop


def _checked(pcm: np.ndarray) -> np.ndarray:
    """``pcm`` as a 1-D int16 or float32 array (float64 is converted to float32)."""
    a = np.asarray(pcm)
    if a.ndim != 1:
        raise ValueError("a leg takes mono audio: one 1-D array per leg")
    if a.dtype == np.int16 or a.dtype == np.float32:
        return a
    if a.dtype == np.float64:
        return a.astype(np.float32)
    raise TypeError(f"leg audio must be int16 PCM or float32 in [-1, 1], got dtype {a.dtype}")


def _as_float(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) / 32768.0 if a.dtype == np.int16 else a
