"""Voice activity of many legs in lockstep: one frame per leg per tick, in one kernel call.

Each leg's state is a row of one matrix, the state a `kernels.vad.StreamingVad` keeps for
one leg (without leftover samples: every tick brings exactly one frame a leg), and each
frame is decided by the same kernel (`kernels.vad.decide_frame`), so a leg of a bank and a
streaming leg fed the same frames decide the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

from kernels._checks import as_array, check_contiguous, check_out, check_positive_int
from kernels.vad import (
    DEFAULT_CONFIG,
    FRAME_MS,
    N_SCALARS,
    S_LIKE,
    SAMPLE_RATE_HZ,
    VadConfig,
    check_config,
    decide_frame,
    frame_len_of,
)

_NO_FLAGS = np.empty(0, dtype=np.bool_)


@njit(nogil=True, cache=True)
def _process_bank(
    frames: np.ndarray, states: np.ndarray, p: np.ndarray, out: np.ndarray, like_out: np.ndarray
) -> None:
    n_legs, frame_len = frames.shape
    want_like = like_out.shape[0] > 0
    for leg in range(n_legs):
        st = states[leg]
        out[leg] = decide_frame(frames[leg], 0, frame_len, st, p)
        if want_like:
            like_out[leg] = st[S_LIKE] != 0.0


class VadBank:
    """Voice activity of many legs that advance in lockstep, one frame per leg per tick.

    The state of leg ``i`` is row ``i`` of one matrix; :meth:`process` decides one frame for
    every leg in a single kernel call, which avoids a Python call per leg per frame.
    """

    def __init__(
        self,
        n_legs: int,
        sample_rate: int = SAMPLE_RATE_HZ,
        frame_ms: int = FRAME_MS,
        config: VadConfig = DEFAULT_CONFIG,
    ) -> None:
        self.n_legs = check_positive_int(n_legs, "n_legs")
        self.sample_rate = int(sample_rate)
        self.frame_ms = int(frame_ms)
        self.frame_len = frame_len_of(sample_rate, frame_ms)
        self.config = check_config(config)
        self._params = config.as_params(self.frame_ms, self.sample_rate)
        self._states = np.zeros((self.n_legs, N_SCALARS), dtype=np.float64)  # no leftovers
        self._frames_shape = (self.n_legs, self.frame_len)
        self._out_shape = (self.n_legs,)

    def _check_frames(self, frames: object) -> np.ndarray:
        # Fast path first: this runs every tick, the detailed checks only on a bad input.
        if (
            type(frames) is np.ndarray
            and frames.dtype == np.float32
            and frames.shape == self._frames_shape
            and frames.flags.c_contiguous
        ):
            return frames
        f = as_array(frames, "frames")
        if f.dtype != np.float32:
            raise TypeError(
                f"frames must have dtype float32, got {f.dtype}; convert with "
                f"frames.astype(numpy.float32)"
            )
        if f.shape != self._frames_shape:
            raise ValueError(
                f"frames must have shape {self._frames_shape} (one {self.frame_ms} ms frame of "
                f"{self.frame_len} samples per leg), got {f.shape}"
            )
        check_contiguous(f, "frames")
        return f

    def _out(self, out: np.ndarray | None, name: str) -> np.ndarray:
        if out is None:
            return np.empty(self.n_legs, dtype=np.bool_)
        if not (
            type(out) is np.ndarray
            and out.dtype == np.bool_
            and out.shape == self._out_shape
            and out.flags.writeable
        ):
            check_out(out, self._out_shape, np.bool_, name)
        return out

    def process(self, frames: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Decide one frame per leg: ``frames`` is float32 ``(n_legs, frame_len)``.

        Returns one bool per leg, written into ``out`` when given (a bool array of
        ``n_legs``, reused from tick to tick to avoid an allocation).
        """
        f = self._check_frames(frames)
        voice = self._out(out, "out")
        _process_bank(f, self._states, self._params, voice, _NO_FLAGS)
        return voice

    def process_detail(
        self,
        frames: np.ndarray,
        out: np.ndarray | None = None,
        like_out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`process`, plus each leg's raw "speech-like" flag for this frame
        (see :meth:`StreamingVad.process_detail`); returns ``(voice, speech_like)``."""
        f = self._check_frames(frames)
        voice = self._out(out, "out")
        like = self._out(like_out, "like_out")
        if like is voice:
            raise ValueError("out and like_out must be two different arrays")
        _process_bank(f, self._states, self._params, voice, like)
        return voice, like

    def reset(self, legs: Sequence[int] | None = None) -> None:
        """Forget the state of the given legs (all legs when ``legs`` is None)."""
        if legs is None:
            self._states[:] = 0.0
            return
        idx = np.asarray(legs, dtype=np.intp).reshape(-1)
        if idx.size and (idx.min() < -self.n_legs or idx.max() >= self.n_legs):
            raise IndexError(
                f"legs must be row numbers in 0..{self.n_legs - 1}, got {idx.tolist()}; "
                f"a bank of {self.n_legs} legs has no other rows"
            )
        self._states[idx] = 0.0
