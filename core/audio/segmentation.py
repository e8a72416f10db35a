"""Cutting one leg's audio into utterances for ASR: an endpointer over the streaming VAD.

:class:`Endpointer` consumes per-frame VAD decisions (plus frame levels and, optionally,
pitch) incrementally and emits finished utterances; the live daemon feeds it a chunk of
100-200 ms at a time and :func:`segment_leg` feeds it a whole recorded leg, so both run the
same code, and however the frames are cut into pushes the decisions are the same.

Rules, in the order they act:

* an utterance opens on the first frame the VAD declares speech; its speech starts at the
  first speech-like frame of the onset run that led to that decision;
* it ends once the VAD has declared ``min_silence_s`` of silence (that silence comes after
  the VAD's own hangover, so pauses between clauses stay inside the utterance); its speech
  ends with its last speech-like frame, so the hangover is not counted as speech;
* an utterance that would grow past ``max_utterance_s`` (padding included) is cut at the
  quietest non-speech frame of its last ``cut_search_s`` rather than mid-word, and the rest
  goes on as the next utterance;
* an utterance with less than ``min_utterance_s`` of speech is dropped (clicks, blips);
* ``pad_s`` of audio is kept on both sides for ASR, without overlapping the previous
  utterance of the leg and without padding a forced cut.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from core.calls import LegActivity, Segment, Speaker, Utterance
from kernels.levels import frame_level_dbfs, frame_pitch_hz
from kernels.vad import FRAME_MS, StreamingVad

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 8000
FRAME_S = FRAME_MS / 1000.0
MIN_SILENCE_S = 0.5
MAX_UTTERANCE_S = 15.0
"""ASR windows of 6-15 s read correctly (longer ones pad to 30 s, shorter fell into loops)."""
MIN_UTTERANCE_S = 0.2
PAD_S = 0.15
CUT_SEARCH_S = 4.0
"""A forced cut lands in the last 4 s before the limit, so forced pieces are 11-15 s long."""
LEVEL_FLOOR_DBFS = -120.0
_CUT_SPEECH_PENALTY_DB = 30.0
_CUT_EARLY_PENALTY_DB_PER_S = 1.0
_CUT_SMOOTH_FRAMES = 2
_RECENT_FRAMES = 8


@dataclass(frozen=True)
class UtteranceSpan:
    """One finished utterance of a leg; times in seconds from the start of the leg."""

    start: float
    """Start of the audio to transcribe (speech start minus padding)."""
    end: float
    """End of the audio to transcribe (speech end plus padding, none at a forced cut)."""
    speech_start: float
    """First speech-like frame."""
    speech_end: float
    """End of the last speech-like frame (or the forced cut)."""
    voiced_s: float
    """Time of the frames the VAD declared speech inside the speech span (pauses the VAD
    bridged included, longer pauses excluded)."""
    level_db: float | None
    """Active-speech level: power mean of the speech-like frames, dBFS."""
    pitch_hz: float | None
    """Median pitch of the speech-like frames with a pitch; None when pitch was not given,
    0.0 when no frame had one."""
    forced_cut: bool
    """True when the utterance was cut at ``max_utterance_s`` rather than by silence."""


def _check_seconds(name: str, value: float, minimum: float) -> float:
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number of seconds, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum} s, got {value} s")
    return float(value)


class Endpointer:
    """Streaming endpointer: per-frame VAD decisions in, finished utterance spans out.

    Feed frames with :meth:`push` (any number at a time), call :meth:`flush` when the leg
    ends. Voiced segments (runs of VAD speech, hangover included) are collected alongside
    and handed out by :meth:`take_voiced`.
    """

    def __init__(
        self,
        frame_s: float = FRAME_S,
        *,
        min_silence_s: float = MIN_SILENCE_S,
        max_utterance_s: float = MAX_UTTERANCE_S,
        min_utterance_s: float = MIN_UTTERANCE_S,
        pad_s: float = PAD_S,
        cut_search_s: float = CUT_SEARCH_S,
    ) -> None:
        self.frame_s = _check_seconds("frame_s", frame_s, 1e-3)
        self.min_silence_s = _check_seconds("min_silence_s", min_silence_s, 0.0)
        self.max_utterance_s = _check_seconds("max_utterance_s", max_utterance_s, 1.0)
        self.min_utterance_s = _check_seconds("min_utterance_s", min_utterance_s, 0.0)
        self.pad_s = _check_seconds("pad_s", pad_s, 0.0)
        self.cut_search_s = _check_seconds("cut_search_s", cut_search_s, 0.0)
        if 2 * self.pad_s + self.cut_search_s >= self.max_utterance_s:
            raise ValueError(
                f"max_utterance_s ({self.max_utterance_s} s) must exceed 2 * pad_s + "
                f"cut_search_s ({2 * self.pad_s + self.cut_search_s} s); raise it or shorten "
                f"the padding or the cut search"
            )
        self._silence_frames = max(1, round(self.min_silence_s / self.frame_s))
        self._pad_frames = round(self.pad_s / self.frame_s)
        self._max_frames = int(self.max_utterance_s / self.frame_s + 1e-9)
        self._search_frames = round(self.cut_search_s / self.frame_s)
        self._min_frames = round(self.min_utterance_s / self.frame_s)
        self.reset()

    def reset(self) -> None:
        """Forget everything, as at the start of a new leg."""
        self._frame = 0  # index of the next frame to arrive
        self._like_run_start = -1  # first frame of the current run of speech-like frames
        self._recent: deque[tuple[bool, float, float]] = deque(maxlen=_RECENT_FRAMES)
        self._has_pitch = False
        self._prev_end = 0  # padded end (frame) of the last emitted utterance
        self._open = False
        self._start = 0  # first frame of the open utterance's speech
        self._lead = 0  # padding frames before _start
        self._last_speech = -1  # last frame that was voice and speech-like
        self._silence = 0  # consecutive VAD-silent frames
        self._hist_voice: list[bool] = []  # per frame since _start
        self._hist_like: list[bool] = []
        self._hist_level: list[float] = []
        self._hist_pitch: list[float] = []
        self._voice_start = -1  # first frame of the current voiced run, -1 outside one
        self._voiced: list[Segment] = []

    @property
    def frames_seen(self) -> int:
        """Number of frames pushed since the start (or the last reset)."""
        return self._frame

    @property
    def open_since_s(self) -> float | None:
        """Start (padding included) of the utterance in progress, or None between them.

        Audio from here on may still be needed to transcribe it; a live leg keeps it.
        """
        if not self._open:
            return None
        return (self._start - self._lead) * self.frame_s

    @property
    def open_speech_start_s(self) -> float | None:
        """First speech frame of the utterance in progress, or None between them."""
        return self._start * self.frame_s if self._open else None

    def push(
        self,
        voice: np.ndarray,
        speech_like: np.ndarray,
        level_db: np.ndarray,
        pitch_hz: np.ndarray | None = None,
    ) -> list[UtteranceSpan]:
        """Consume the next frames; return the utterances they finished (often none).

        ``voice`` and ``speech_like`` come from :meth:`StreamingVad.process_detail`,
        ``level_db`` is each frame's RMS level in dBFS and ``pitch_hz`` (optional) each
        frame's pitch, 0 where there is none. All four have one entry per frame.
        """
        n = len(voice)
        if (
            len(speech_like) != n
            or len(level_db) != n
            or (pitch_hz is not None and len(pitch_hz) != n)
        ):
            raise ValueError(
                "voice, speech_like, level_db (and pitch_hz) must have one entry per frame; "
                f"got lengths {len(voice)}, {len(speech_like)}, {len(level_db)}"
                + ("" if pitch_hz is None else f", {len(pitch_hz)}")
            )
        self._has_pitch = self._has_pitch or pitch_hz is not None
        voice_l = np.asarray(voice, dtype=bool).tolist()
        like_l = np.asarray(speech_like, dtype=bool).tolist()
        level_l = np.asarray(level_db, dtype=np.float64).tolist()
        pitch_l = [0.0] * n if pitch_hz is None else np.asarray(pitch_hz, np.float64).tolist()
        # Two common runs take one step for all their frames (the same as frame by frame):
        # no VAD speech between utterances, and VAD speech inside one that cannot reach the
        # forced cut within the run.
        if not self._open:
            if True not in voice_l:
                self._skip_closed(like_l, level_l, pitch_l)
                return []
        elif (
            False not in voice_l
            and self._lead + (self._frame + n - self._start) + self._pad_frames < self._max_frames
        ):
            self._extend_open(like_l, level_l, pitch_l)
            return []
        done: list[UtteranceSpan] = []
        for i in range(n):
            span = self._step(voice_l[i], like_l[i], level_l[i], pitch_l[i])
            if span is not None:
                done.append(span)
        return done

    def flush(self) -> list[UtteranceSpan]:
        """End of the leg: close the open utterance and the open voiced run."""
        if self._voice_start >= 0:
            self._voiced.append(self._segment(self._voice_start, self._frame))
            self._voice_start = -1
        if not self._open:
            return []
        span = self._close(self._last_speech + 1, forced=False)
        return [] if span is None else [span]

    def take_voiced(self) -> list[Segment]:
        """Voiced segments finished since the last call (VAD speech, hangover included)."""
        out, self._voiced = self._voiced, []
        return out

    def _segment(self, first: int, stop: int) -> Segment:
        return Segment(first * self.frame_s, stop * self.frame_s)

    def _skip_closed(self, like: list[bool], level: list[float], pitch: list[float]) -> None:
        """What :meth:`_step` does for frames without VAD speech between utterances, in one
        go: move on, end the voiced run, track the run of speech-like frames and keep the
        last few frames for the next onset."""
        n = len(like)
        if n == 0:
            return
        first = self._frame
        self._frame = first + n
        if self._voice_start >= 0:
            self._voiced.append(self._segment(self._voice_start, first))
            self._voice_start = -1
        self._track_like(like, first)
        tail = max(0, n - _RECENT_FRAMES)
        self._recent.extend(zip(like[tail:], level[tail:], pitch[tail:], strict=True))

    def _extend_open(self, like: list[bool], level: list[float], pitch: list[float]) -> None:
        """What :meth:`_step` does for frames that are all VAD speech inside an utterance
        that neither closes nor reaches the forced cut within them, in one go."""
        n = len(like)
        if n == 0:
            return
        first = self._frame
        self._frame = first + n
        if self._voice_start < 0:
            self._voice_start = first
        self._track_like(like, first)
        for k in range(n - 1, -1, -1):
            if like[k]:
                self._last_speech = first + k
                break
        self._silence = 0
        self._hist_voice.extend([True] * n)
        self._hist_like.extend(like)
        self._hist_level.extend(level)
        self._hist_pitch.extend(pitch)

    def _track_like(self, like: list[bool], first: int) -> None:
        """The run of speech-like frames after frames ``first..`` (flags ``like``)."""
        if like[-1]:
            k = len(like) - 1
            while k > 0 and like[k - 1]:
                k -= 1
            if k > 0:
                self._like_run_start = first + k
            elif self._like_run_start < 0:
                self._like_run_start = first
        else:
            self._like_run_start = -1

    def _step(self, voice: bool, like: bool, level: float, pitch: float) -> UtteranceSpan | None:
        i = self._frame
        self._frame += 1
        if not like:
            self._like_run_start = -1
        elif self._like_run_start < 0:
            self._like_run_start = i
        if voice and self._voice_start < 0:
            self._voice_start = i
        elif not voice and self._voice_start >= 0:
            self._voiced.append(self._segment(self._voice_start, i))
            self._voice_start = -1

        if not self._open:
            if not voice:
                self._recent.append((like, level, pitch))
                return None
            start = i
            if self._like_run_start >= 0:
                start = max(self._like_run_start, i - len(self._recent))
            self._open_at(start, lead_limit=self._prev_end)
            # The onset frames before this one were seen while closed: take them back.
            for r_like, r_level, r_pitch in list(self._recent)[len(self._recent) - (i - start) :]:
                self._append(True, r_like, r_level, r_pitch)
            self._recent.clear()
            self._append(voice, like, level, pitch)
            if like:
                self._last_speech = i
            return None

        self._append(voice, like, level, pitch)
        if voice and like:
            self._last_speech = i
        self._silence = 0 if voice else self._silence + 1
        if self._silence >= self._silence_frames:
            return self._close(self._last_speech + 1, forced=False)
        if self._lead + (self._frame - self._start) + self._pad_frames >= self._max_frames:
            return self._forced_cut()
        return None

    def _open_at(self, start: int, lead_limit: int) -> None:
        self._open = True
        self._start = start
        self._lead = max(0, min(self._pad_frames, start - lead_limit))
        self._last_speech = start - 1
        self._silence = 0
        self._hist_voice = []
        self._hist_like = []
        self._hist_level = []
        self._hist_pitch = []

    def _append(self, voice: bool, like: bool, level: float, pitch: float) -> None:
        self._hist_voice.append(voice)
        self._hist_like.append(like)
        self._hist_level.append(level)
        self._hist_pitch.append(pitch)

    def _forced_cut(self) -> UtteranceSpan | None:
        levels = np.asarray(self._hist_level)
        like = np.asarray(self._hist_like)
        n = len(levels)
        lo = max(1, n - self._search_frames)
        k = _CUT_SMOOTH_FRAMES
        padded = np.concatenate([np.full(k, levels[0]), levels, np.full(k, levels[-1])])
        smooth = np.convolve(padded, np.ones(2 * k + 1) / (2 * k + 1), mode="valid")
        cand = np.arange(lo, n)
        cost = (
            smooth[cand]
            + _CUT_SPEECH_PENALTY_DB * like[cand]
            + _CUT_EARLY_PENALTY_DB_PER_S * (n - cand) * self.frame_s
        )
        cut_rel = int(cand[np.argmin(cost)])
        cut = self._start + cut_rel
        rest = (
            self._hist_voice[cut_rel:],
            self._hist_like[cut_rel:],
            self._hist_level[cut_rel:],
            self._hist_pitch[cut_rel:],
        )
        last_speech = self._last_speech
        span = self._close(cut, forced=True)
        self._open_at(cut, lead_limit=cut)
        self._hist_voice, self._hist_like, self._hist_level, self._hist_pitch = (
            list(rest[0]),
            list(rest[1]),
            list(rest[2]),
            list(rest[3]),
        )
        self._last_speech = last_speech if last_speech >= cut else cut - 1
        return span

    def pending_span(self, min_silent_frames: int) -> UtteranceSpan | None:
        """The span the open utterance will have if it ends in the silence it is in now.

        None unless an utterance is open, the VAD has declared at least
        ``min_silent_frames`` frames of silence (short of ``min_silence_s``, else it would
        have ended) and its padding after the speech has arrived. Nothing changes: if the
        utterance does end without more speech, :meth:`push` returns this very span (its
        speech ends at the same frame, and the frames after it are not part of it), so its
        audio can be transcribed before the end is certain.
        """
        if not self._open or self._silence < max(1, min_silent_frames):
            return None
        stop = self._last_speech + 1
        if self._frame < stop + self._pad_frames:
            return None
        return self._span(stop, forced=False)

    def _close(self, stop: int, *, forced: bool) -> UtteranceSpan | None:
        """Emit the open utterance's speech frames [_start, stop) and close it."""
        span = self._span(stop, forced=forced)
        self._open = False
        self._silence = 0
        if span is not None:
            self._prev_end = round(span.end / self.frame_s)
        return span

    def _span(self, stop: int, *, forced: bool) -> UtteranceSpan | None:
        """The open utterance's speech frames [_start, stop) as a span (None when too short
        or without speech-like frames); the state is left as it is."""
        n = stop - self._start
        if n <= 0 or n < self._min_frames:
            return None
        voice = np.asarray(self._hist_voice[:n], dtype=bool)
        like = np.asarray(self._hist_like[:n], dtype=bool)
        levels = np.asarray(self._hist_level[:n], dtype=np.float64)
        if not like.any():
            return None
        tail = 0 if forced else self._pad_frames
        end = min(stop + tail, self._frame)
        first = self._start - self._lead
        fs = self.frame_s
        power = np.mean(np.power(10.0, levels[like] / 10.0))
        level = float(10.0 * np.log10(power)) if power > 0 else LEVEL_FLOOR_DBFS
        pitch: float | None = None
        if self._has_pitch:
            p = np.asarray(self._hist_pitch[:n], dtype=np.float64)[like]
            p = p[p > 0]
            pitch = float(np.median(p)) if p.size else 0.0
        return UtteranceSpan(
            start=first * fs,
            end=end * fs,
            speech_start=self._start * fs,
            speech_end=stop * fs,
            voiced_s=float(voice.sum()) * fs,
            level_db=level,
            pitch_hz=pitch,
            forced_cut=forced,
        )


def _leg_samples(audio: object) -> np.ndarray:
    """One leg as float32 samples, or an error that says what to pass instead."""
    if not isinstance(audio, np.ndarray) or audio.ndim != 1:
        raise ValueError(
            "audio must be a 1-D numpy array holding one leg; pass one channel, "
            "e.g. recording.channels[0]"
        )
    if audio.dtype == np.float32:
        return audio
    if audio.dtype == np.float64:
        return audio.astype(np.float32)
    raise TypeError(
        f"audio must hold float samples in [-1, 1], got dtype {audio.dtype}; for int16 PCM "
        f"pass audio.astype(numpy.float32) / 32768, for G.711 bytes decode them first"
    )


def frame_levels_dbfs(
    audio: np.ndarray, sample_rate: int = SAMPLE_RATE_HZ, frame_ms: int = FRAME_MS
) -> np.ndarray:
    """RMS level of every complete frame in dBFS (floored at ``LEVEL_FLOOR_DBFS``): the
    ``level_db`` input of :meth:`Endpointer.push`, computed as :func:`segment_leg` does."""
    levels = frame_level_dbfs(_leg_samples(audio), sample_rate, frame_ms)
    return np.asarray(levels, dtype=np.float64)


def segment_leg(
    audio: np.ndarray,
    speaker: Speaker,
    sample_rate: int = SAMPLE_RATE_HZ,
    *,
    min_silence_s: float = MIN_SILENCE_S,
    max_utterance_s: float = MAX_UTTERANCE_S,
    min_utterance_s: float = MIN_UTTERANCE_S,
    pad_s: float = PAD_S,
) -> tuple[list[Utterance], LegActivity]:
    """Cut one leg (float32 mono PCM in [-1, 1]) into utterances, and report its activity.

    Utterance times include ``pad_s`` of padding; ``level_db``, ``voiced_s`` and
    ``pitch_hz`` describe the speech inside. ``LegActivity.voiced`` holds the VAD's speech
    runs (hangover included) for silence and overtalk metrics.
    """
    x = _leg_samples(audio)
    vad = StreamingVad(sample_rate, FRAME_MS)
    voice, like = vad.process_detail(x)
    levels = frame_levels_dbfs(x, sample_rate)[: len(voice)]
    hz = np.asarray(frame_pitch_hz(x, sample_rate, FRAME_MS), dtype=np.float64)[: len(like)]
    pitch = np.where(like[: len(hz)], np.nan_to_num(hz), 0.0)[: len(voice)]
    ep = Endpointer(
        vad.frame_s,
        min_silence_s=min_silence_s,
        max_utterance_s=max_utterance_s,
        min_utterance_s=min_utterance_s,
        pad_s=pad_s,
    )
    spans = ep.push(voice, like, levels, pitch)
    spans += ep.flush()
    utterances = [
        Utterance(
            speaker=speaker,
            start=s.start,
            end=s.end,
            level_db=s.level_db,
            voiced_s=s.voiced_s,
            pitch_hz=s.pitch_hz,
        )
        for s in spans
    ]
    activity = LegActivity(
        speaker=speaker, voiced=ep.take_voiced(), duration_s=len(x) / float(sample_rate),
        frame_s=vad.frame_s, levels_db=levels, pitch_hz=pitch,
    )
    logger.debug(
        "%s leg: %d utterances, %d voiced segments", speaker, len(utterances), len(activity.voiced)
    )
    return utterances, activity
