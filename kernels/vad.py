"""Streaming voice activity detection for telephone legs (8 or 16 kHz float32 PCM).

Per frame the kernel removes DC and rumble with a one-pole high-pass (~100 Hz), measures the
energy of two bands split at a quarter of the sample rate with a two-tap filter pair
(``y[n] + y[n-1]`` low, ``y[n] - y[n-1]`` high), compares each band with its own adaptive
noise floor, and decides speech when the low band (voiced speech) or, with a stricter
threshold, the high band (fricatives) rises clearly above its floor.
Comparing each band with its own floor is what makes the detector spectral: steady noise of
any colour sits at 0 dB in both bands, whatever its level; voiced speech lifts the low band
far more than the high band.

The noise floors follow the band energies down quickly and up slowly (more slowly while
speech is declared), so speech does not raise them, a quieter line is learnt within a few
frames and a louder one within seconds; a level that is steady from frame to frame (noise
is, speech is not) is learnt faster. An absolute gate keeps G.711 idle noise and digital
silence out. Decisions go through an onset rule (a few consecutive speech-like frames, or
one strong frame) and a hangover that bridges the short pauses between words and clauses.
A frame holding NaN or infinity counts as silence and leaves the noise floors untouched.

All state of one leg (noise floors, filter memory, counters, hangover and, for a
:class:`StreamingVad`, the samples left over from the last chunk) lives in one small float64
array, so a bank of legs (`kernels.vad_bank.VadBank`) holds many as rows of one matrix and
decides one frame for every leg in a single kernel call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
from numba import njit

from kernels._checks import (
    as_array,
    check_ndim,
    check_positive_int,
)
from kernels.levels import LEVEL_FLOOR_DBFS, frame_level_db

SAMPLE_RATE_HZ = 8000
FRAME_MS = 20
SUPPORTED_RATES_HZ = (8000, 16000)
MIN_FRAME_MS = 5
MAX_FRAME_MS = 100
LOG_EPS = 1e-12
_DB_PER_NEPER_POWER = 10.0 / math.log(10.0)

# Parameter vector layout (float64), built by VadConfig.as_params().
P_GATE_POWER = 0
P_SNR_LOW_DB = 1
P_SNR_HIGH_DB = 2
P_SNR_STRONG_DB = 3
P_ONSET_FRAMES = 4
P_HANG_FRAMES = 5
P_SHORT_HANG_FRAMES = 6
P_LONG_BURST_FRAMES = 7
P_FALL_ALPHA = 8
P_RISE_SPEECH_DB = 9
P_RISE_NOISE_DB = 10
P_RISE_STEADY_DB = 11
P_STEADY_DB = 12
P_STEADY_ALPHA = 13
P_FLOOR_MIN_DB = 14
P_FLOOR_INIT_MAX_DB = 15
P_HP_POLE = 16
N_PARAMS = 17

# State vector layout (float64): scalars, then the leftover samples of a partial frame.
S_PREV = 0  # last high-passed sample of the previous frame (filter and two-tap state)
S_NOISE_LOW = 1  # low-band noise floor, dBFS
S_NOISE_HIGH = 2  # high-band noise floor, dBFS
S_STARTED = 3  # 1 once the floors were seeded from a first frame
S_RUN = 4  # consecutive speech-like frames
S_HANG = 5  # hangover frames left
S_ACTIVE = 6  # 1 while speech is declared
S_BURST = 7  # speech-like frames in the current active stretch
S_LAST_DB = 8  # low-band level of the previous frame, dBFS
S_MOTION = 9  # smoothed |frame-to-frame change| of the low-band level, dB
S_FILL = 10  # number of leftover samples held in the buffer
S_LIKE = 11  # 1 when the last frame was speech-like (before onset and hangover)
S_HP_IN = 12  # last raw input sample (for the DC-blocking high-pass)
N_SCALARS = 13


_SIGNED_FIELDS = frozenset({"gate_dbfs", "floor_min_dbfs", "floor_init_max_dbfs"})


@dataclass(frozen=True)
class VadConfig:
    """Knobs of the detector; every level is in dB, every duration in milliseconds.

    The defaults were chosen on aggregate frame agreement over the labelled development
    corpus (G.711 legs, clean and with faint white noise) and on the false-alarm rate on
    synthetic faint noise.
    """

    gate_dbfs: float = -60.0
    """Frames whose total energy is below this are never speech (G.711 idle noise: ~-72)."""
    snr_low_db: float = 9.0
    """Low-band (< fs/4) energy over its noise floor that marks a speech-like frame."""
    snr_high_db: float = 14.0
    """High-band (> fs/4) energy over its noise floor that marks a speech-like frame."""
    snr_strong_db: float = 18.0
    """Low-band excess that declares speech at once, without waiting for the onset."""
    onset_ms: int = 40
    """Consecutive speech-like time needed to declare speech."""
    hangover_ms: int = 320
    """Speech stays declared this long after the last speech-like frame of a long burst."""
    short_hangover_ms: int = 60
    """Hangover after a burst shorter than ``long_burst_ms`` (clicks, blips)."""
    long_burst_ms: int = 100
    """A burst with at least this much speech-like time earns the full hangover."""
    floor_fall_ms: float = 40.0
    """Time constant with which a floor follows the band energy down."""
    floor_rise_speech_db_per_s: float = 0.5
    """Largest rise of a floor while speech is declared."""
    floor_rise_noise_db_per_s: float = 4.0
    """Largest rise of a floor while no speech is declared."""
    floor_rise_steady_db_per_s: float = 10.0
    """Largest rise of a floor while the level is steady (see ``steady_db``)."""
    steady_db: float = 1.5
    """Smoothed frame-to-frame level change below which the signal counts as steady noise."""
    steady_ms: float = 200.0
    """Time constant of that smoothing."""
    floor_min_dbfs: float = -90.0
    """Lowest value a noise floor can take (digital silence)."""
    floor_init_max_dbfs: float = -50.0
    """A floor seeded from a loud first frame starts no higher than this."""
    highpass_hz: float = 100.0
    """Corner of the one-pole high-pass that removes DC and rumble before the band split."""

    def __post_init__(self) -> None:
        defaults = {f.name: f.default for f in fields(self)}
        for name, default in defaults.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(
                    f"VadConfig.{name} must be a number, got {value!r}; the default is {default}"
                )
            if not math.isfinite(value):
                raise ValueError(f"VadConfig.{name} must be finite, got {value}")
            positive = name in ("onset_ms", "long_burst_ms", "floor_fall_ms", "steady_ms")
            if name in _SIGNED_FIELDS or (value > 0 if positive else value >= 0):
                continue
            raise ValueError(
                f"VadConfig.{name} must be {'> 0' if positive else '>= 0'}, got {value}; "
                f"the default is {default}"
            )
        if self.short_hangover_ms > self.hangover_ms:
            raise ValueError(
                f"VadConfig.short_hangover_ms ({self.short_hangover_ms}) must not exceed "
                f"hangover_ms ({self.hangover_ms}); lower it or raise hangover_ms"
            )
        if self.highpass_hz >= 1000.0:
            raise ValueError(
                f"VadConfig.highpass_hz must be below 1000 Hz (speech lives above ~100 Hz), "
                f"got {self.highpass_hz}; use 0 to switch the high-pass off"
            )

    def as_params(self, frame_ms: int, sample_rate: int = SAMPLE_RATE_HZ) -> np.ndarray:
        """The float64 parameter vector the kernel reads, for frames of ``frame_ms``."""
        fps = 1000.0 / frame_ms
        p = np.empty(N_PARAMS, dtype=np.float64)
        p[P_GATE_POWER] = 10.0 ** (self.gate_dbfs / 10.0)
        p[P_SNR_LOW_DB] = self.snr_low_db
        p[P_SNR_HIGH_DB] = self.snr_high_db
        p[P_SNR_STRONG_DB] = self.snr_strong_db
        p[P_ONSET_FRAMES] = max(1, round(self.onset_ms / frame_ms))
        p[P_HANG_FRAMES] = max(0, round(self.hangover_ms / frame_ms))
        p[P_SHORT_HANG_FRAMES] = max(0, round(self.short_hangover_ms / frame_ms))
        p[P_LONG_BURST_FRAMES] = max(1, round(self.long_burst_ms / frame_ms))
        p[P_FALL_ALPHA] = 1.0 - math.exp(-frame_ms / max(self.floor_fall_ms, 1e-3))
        p[P_RISE_SPEECH_DB] = self.floor_rise_speech_db_per_s / fps
        p[P_RISE_NOISE_DB] = self.floor_rise_noise_db_per_s / fps
        p[P_RISE_STEADY_DB] = self.floor_rise_steady_db_per_s / fps
        p[P_STEADY_DB] = self.steady_db
        p[P_STEADY_ALPHA] = 1.0 - math.exp(-frame_ms / max(self.steady_ms, 1e-3))
        p[P_FLOOR_MIN_DB] = self.floor_min_dbfs
        p[P_FLOOR_INIT_MAX_DB] = self.floor_init_max_dbfs
        p[P_HP_POLE] = math.exp(-2.0 * math.pi * max(self.highpass_hz, 0.0) / sample_rate)
        return p


DEFAULT_CONFIG = VadConfig()
_NO_FLAGS = np.empty(0, dtype=np.bool_)
_NO_LEVELS = np.empty(0, dtype=np.float32)
_LEVEL_FLOOR_POWER = 10.0 ** (LEVEL_FLOOR_DBFS / 10.0)


@njit(nogil=True, cache=True, inline="always")
def _update_floor(
    floor: float, level: float, rise: float, fall_alpha: float, floor_min: float
) -> float:
    if level < floor:
        floor += fall_alpha * (level - floor)
    else:
        floor += min(rise, level - floor)
    return max(floor, floor_min)


@njit(nogil=True, cache=True, inline="always")
def _band_powers(
    x: np.ndarray, start: int, n: int, st: np.ndarray, pole: float
) -> tuple[float, float]:
    # One-pole DC-blocking high-pass y[k] = x[k] - x[k-1] + pole * y[k-1], then the
    # two-tap sum (low band) and difference (high band) of consecutive y. The recurrence is
    # unrolled by four so that only one multiply-add per four samples is on the critical path
    # (y4 = pole^4 * y0 + c4, with c4 computed from the inputs alone), and the sums use four
    # partial accumulators each. The filter state (last input, last output) lives in st, so
    # the result does not depend on how the signal was cut into chunks.
    p1 = pole
    p2 = p1 * p1
    p3 = p2 * p1
    p4 = p2 * p2
    y0 = st[S_PREV]
    x0 = st[S_HP_IN]
    lo0 = lo1 = lo2 = lo3 = 0.0
    hi0 = hi1 = hi2 = hi3 = 0.0
    stop = start + n
    stop4 = start + n - n % 4
    for i in range(start, stop4, 4):
        x1 = np.float64(x[i])
        x2 = np.float64(x[i + 1])
        x3 = np.float64(x[i + 2])
        x4 = np.float64(x[i + 3])
        u1 = x1 - x0
        c2 = p1 * u1 + (x2 - x1)
        c3 = p1 * c2 + (x3 - x2)
        c4 = p1 * c3 + (x4 - x3)
        y1 = p1 * y0 + u1
        y2 = p2 * y0 + c2
        y3 = p3 * y0 + c3
        y4 = p4 * y0 + c4
        s = y1 + y0
        lo0 += s * s
        s = y2 + y1
        lo1 += s * s
        s = y3 + y2
        lo2 += s * s
        s = y4 + y3
        lo3 += s * s
        d = y1 - y0
        hi0 += d * d
        d = y2 - y1
        hi1 += d * d
        d = y3 - y2
        hi2 += d * d
        d = y4 - y3
        hi3 += d * d
        y0 = y4
        x0 = x4
    for i in range(stop4, stop):
        xi = np.float64(x[i])
        yi = p1 * y0 + (xi - x0)
        s = yi + y0
        lo0 += s * s
        d = yi - y0
        hi0 += d * d
        y0 = yi
        x0 = xi
    st[S_PREV] = y0
    st[S_HP_IN] = x0
    scale = 0.25 / n
    return ((lo0 + lo1) + (lo2 + lo3)) * scale, ((hi0 + hi1) + (hi2 + hi3)) * scale


@njit(nogil=True, cache=True, inline="always")
def decide_frame(x: np.ndarray, start: int, n: int, st: np.ndarray, p: np.ndarray) -> bool:
    p_low, p_high = _band_powers(x, start, n, st, p[P_HP_POLE])
    total = p_low + p_high
    valid = total < 1e30  # False for NaN or inf
    if not valid:  # count the frame as silence, restart the filters, keep the floors
        st[S_PREV] = 0.0
        st[S_HP_IN] = 0.0
        p_low = 0.0
        p_high = 0.0
        total = 0.0
    db_low = _DB_PER_NEPER_POWER * math.log(p_low + LOG_EPS)
    db_high = _DB_PER_NEPER_POWER * math.log(p_high + LOG_EPS)
    floor_min = p[P_FLOOR_MIN_DB]

    if st[S_STARTED] == 0.0 and valid:
        cap = p[P_FLOOR_INIT_MAX_DB]
        st[S_NOISE_LOW] = max(min(db_low, cap), floor_min)
        st[S_NOISE_HIGH] = max(min(db_high, cap), floor_min)
        st[S_LAST_DB] = db_low
        st[S_MOTION] = 10.0 * p[P_STEADY_DB]
        st[S_STARTED] = 1.0

    snr_low = db_low - st[S_NOISE_LOW]
    snr_high = db_high - st[S_NOISE_HIGH]
    like = (
        valid
        and total > p[P_GATE_POWER]
        and (snr_low > p[P_SNR_LOW_DB] or snr_high > p[P_SNR_HIGH_DB])
    )
    strong = like and snr_low > p[P_SNR_STRONG_DB]
    st[S_LIKE] = 1.0 if like else 0.0

    # Onset, burst length and hangover.
    if like:
        st[S_RUN] += 1.0
    else:
        st[S_RUN] = 0.0
    active = st[S_ACTIVE] != 0.0
    if active:
        if like:
            st[S_BURST] += 1.0
            st[S_HANG] = p[P_HANG_FRAMES]
            if st[S_BURST] < p[P_LONG_BURST_FRAMES]:
                st[S_HANG] = p[P_SHORT_HANG_FRAMES]
        elif st[S_HANG] > 0.0:
            st[S_HANG] -= 1.0
        else:
            active = False
    elif like and (strong or st[S_RUN] >= p[P_ONSET_FRAMES]):
        active = True
        st[S_BURST] = st[S_RUN]
        if st[S_BURST] >= p[P_LONG_BURST_FRAMES]:
            st[S_HANG] = p[P_HANG_FRAMES]
        else:
            st[S_HANG] = p[P_SHORT_HANG_FRAMES]
    if not active:
        st[S_BURST] = 0.0
        st[S_HANG] = 0.0
    st[S_ACTIVE] = 1.0 if active else 0.0

    if not valid:
        return active

    # Noise floors: fast down, slow up; the allowed rise depends on what the frame is.
    motion = st[S_MOTION] + p[P_STEADY_ALPHA] * (abs(db_low - st[S_LAST_DB]) - st[S_MOTION])
    st[S_MOTION] = motion
    st[S_LAST_DB] = db_low
    if motion < p[P_STEADY_DB]:
        rise = p[P_RISE_STEADY_DB]
    elif active:
        rise = p[P_RISE_SPEECH_DB]
    else:
        rise = p[P_RISE_NOISE_DB]
    fall = p[P_FALL_ALPHA]
    st[S_NOISE_LOW] = _update_floor(st[S_NOISE_LOW], db_low, rise, fall, floor_min)
    st[S_NOISE_HIGH] = _update_floor(st[S_NOISE_HIGH], db_high, rise, fall, floor_min)
    return active


@njit(nogil=True, cache=True)
def _process(
    chunk: np.ndarray,
    frame_len: int,
    st: np.ndarray,
    p: np.ndarray,
    out: np.ndarray,
    like_out: np.ndarray,
    level_out: np.ndarray,
    level_floor_power: float,
) -> int:
    # st[N_SCALARS:] holds up to frame_len - 1 leftover samples of a partial frame;
    # like_out and level_out are either empty (not wanted) or as long as out.
    want_like = like_out.shape[0] > 0
    want_level = level_out.shape[0] > 0
    buf = st[N_SCALARS : N_SCALARS + frame_len]
    fill = int(st[S_FILL])
    n = chunk.shape[0]
    pos = 0
    k = 0
    if fill > 0:
        take = min(frame_len - fill, n)
        for i in range(take):
            buf[fill + i] = chunk[i]
        fill += take
        pos = take
        if fill == frame_len:
            if want_level:
                level_out[k] = frame_level_db(buf, 0, frame_len, level_floor_power)
            out[k] = decide_frame(buf, 0, frame_len, st, p)
            if want_like:
                like_out[k] = st[S_LIKE] != 0.0
            k += 1
            fill = 0
    while pos + frame_len <= n:
        if want_level:
            level_out[k] = frame_level_db(chunk, pos, frame_len, level_floor_power)
        out[k] = decide_frame(chunk, pos, frame_len, st, p)
        if want_like:
            like_out[k] = st[S_LIKE] != 0.0
        k += 1
        pos += frame_len
    for i in range(n - pos):
        buf[fill + i] = chunk[pos + i]
    fill += n - pos
    st[S_FILL] = fill
    return k


def frame_len_of(sample_rate: object, frame_ms: object) -> int:
    rate = check_positive_int(sample_rate, "sample_rate")
    ms = check_positive_int(frame_ms, "frame_ms")
    if rate not in SUPPORTED_RATES_HZ:
        raise ValueError(
            f"sample_rate must be one of {SUPPORTED_RATES_HZ} Hz, got {rate} Hz; resample "
            f"the leg to 8000 Hz first"
        )
    if not MIN_FRAME_MS <= ms <= MAX_FRAME_MS or (rate * ms) % 1000:
        raise ValueError(
            f"frame_ms must be {MIN_FRAME_MS}..{MAX_FRAME_MS} ms and give a whole number of "
            f"samples at {rate} Hz, got {ms} ms; use 10, 20 or 30"
        )
    return rate * ms // 1000


def check_config(config: object) -> VadConfig:
    if not isinstance(config, VadConfig):
        raise TypeError(
            f"config must be a VadConfig, got {type(config).__name__}; build one with "
            f"VadConfig(...) (every field has a default)"
        )
    return config


def _as_samples(x: object, name: str) -> np.ndarray:
    if type(x) is np.ndarray and x.dtype == np.float32 and x.ndim == 1:
        return x  # the common case, checked cheaply: this runs for every 20 ms chunk
    arr = as_array(x, name)
    check_ndim(arr, 1, name)
    if arr.dtype == np.float32:
        return arr
    if arr.dtype == np.float64:
        return arr.astype(np.float32)
    raise TypeError(
        f"{name} must hold float32 samples in [-1, 1], got dtype {arr.dtype}; "
        f"for int16 PCM pass {name}.astype(numpy.float32) / 32768"
    )


class StreamingVad:
    """Voice activity of one leg, fed chunk by chunk.

    ``process`` accepts chunks of any length, returns one decision per frame completed by
    the chunk, and keeps the samples of an unfinished frame for the next call, so feeding a
    signal in pieces gives exactly the decisions of feeding it whole.
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE_HZ,
        frame_ms: int = FRAME_MS,
        config: VadConfig = DEFAULT_CONFIG,
    ) -> None:
        self.sample_rate = int(sample_rate)
        self.frame_ms = int(frame_ms)
        self.frame_len = frame_len_of(sample_rate, frame_ms)
        self.config = check_config(config)
        self._params = config.as_params(self.frame_ms, self.sample_rate)
        self._state = np.zeros(N_SCALARS + self.frame_len, dtype=np.float64)

    @property
    def frame_s(self) -> float:
        """Length of one frame in seconds."""
        return self.frame_ms / 1000.0

    @property
    def pending_samples(self) -> int:
        """Samples held back from the last chunk, waiting to complete a frame."""
        return int(self._state[S_FILL])

    @property
    def noise_floor_dbfs(self) -> tuple[float, float]:
        """Current (low band, high band) noise-floor estimates in dBFS."""
        return float(self._state[S_NOISE_LOW]), float(self._state[S_NOISE_HIGH])

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Decide every frame that ``chunk`` completes; returns a bool array, one per frame."""
        x = _as_samples(chunk, "chunk")
        n_out = (int(self._state[S_FILL]) + x.shape[0]) // self.frame_len
        out = np.empty(n_out, dtype=np.bool_)
        _process(x, self.frame_len, self._state, self._params, out, _NO_FLAGS, _NO_LEVELS, 0.0)
        return out

    def process_detail(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`process`, plus the raw per-frame "speech-like" flags.

        Returns ``(voice, speech_like)``: ``voice`` are the decisions (after onset and
        hangover); ``speech_like`` marks the frames whose own energy passed the thresholds,
        so ``voice & ~speech_like`` are the hangover frames. An endpointer uses the latter
        to place an utterance's end at the end of speech rather than of the hangover.
        """
        x = _as_samples(chunk, "chunk")
        n_out = (int(self._state[S_FILL]) + x.shape[0]) // self.frame_len
        out = np.empty(n_out, dtype=np.bool_)
        like = np.empty(n_out, dtype=np.bool_)
        _process(x, self.frame_len, self._state, self._params, out, like, _NO_LEVELS, 0.0)
        return out, like

    def process_levels(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`process_detail`, plus the level of each frame, in one kernel call.

        Returns ``(voice, speech_like, level_dbfs)``; ``level_dbfs`` (float32) is each
        completed frame's RMS level in dBFS, floored at ``kernels.levels.LEVEL_FLOOR_DBFS``,
        exactly what :func:`kernels.levels.frame_level_dbfs` gives for the same frames of
        the whole signal (frames are counted from the first sample the VAD was fed). A live
        leg calls this once per chunk instead of two kernels.
        """
        x = _as_samples(chunk, "chunk")
        n_out = (int(self._state[S_FILL]) + x.shape[0]) // self.frame_len
        out = np.empty(n_out, dtype=np.bool_)
        like = np.empty(n_out, dtype=np.bool_)
        levels = np.empty(n_out, dtype=np.float32)
        _process(
            x, self.frame_len, self._state, self._params, out, like, levels, _LEVEL_FLOOR_POWER
        )
        return out, like, levels

    def reset(self) -> None:
        """Forget everything: noise floors, hangover, onset and leftover samples."""
        self._state[:] = 0.0


def detect_voice(
    x: np.ndarray,
    sample_rate: int = SAMPLE_RATE_HZ,
    frame_ms: int = FRAME_MS,
    config: VadConfig = DEFAULT_CONFIG,
) -> np.ndarray:
    """One-shot VAD of a whole leg: one bool per complete frame (a trailing partial frame
    is ignored)."""
    vad = StreamingVad(sample_rate, frame_ms, config)
    return vad.process(_as_samples(x, "x"))
