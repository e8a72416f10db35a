"""Input validation shared by the public kernel wrappers.

Every helper raises ``TypeError`` for a wrong type or dtype and ``ValueError`` for a wrong
shape, length or rate, with a message that names the argument and says how to fix it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def as_array(x: Any, name: str) -> np.ndarray:
    """Return ``x`` if it is a NumPy array, else raise ``TypeError``."""
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy.ndarray, got {type(x).__name__}; "
            f"wrap it with numpy.asarray(...) and the dtype this function expects"
        )
    return x


def check_dtype(x: np.ndarray, dtype: type[np.generic], name: str, hint: str = "") -> None:
    """Raise ``TypeError`` unless ``x`` has exactly ``dtype``."""
    want = np.dtype(dtype)
    if x.dtype != want:
        fix = hint or f"convert it with {name}.astype(numpy.{want.name})"
        raise TypeError(f"{name} must have dtype {want.name}, got {x.dtype}; {fix}")


def check_ndim(x: np.ndarray, ndim: int, name: str, hint: str = "") -> None:
    """Raise ``ValueError`` unless ``x`` has ``ndim`` dimensions."""
    if x.ndim != ndim:
        if ndim == 1:
            fix = hint or (
                f"pass one channel as a 1-D array (e.g. {name}[:, 0] for the left "
                f"channel of a stereo array, or {name}.ravel())"
            )
        else:
            fix = hint or f"reshape it to {ndim} dimensions"
        raise ValueError(f"{name} must be {ndim}-D, got shape {x.shape}; {fix}")


def check_contiguous(x: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` unless ``x`` is C-contiguous (needed for in-place outputs)."""
    if not x.flags.c_contiguous:
        raise ValueError(
            f"{name} must be C-contiguous; allocate it with numpy.empty(...) "
            f"or pass numpy.ascontiguousarray({name})"
        )


def check_writeable(x: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` unless ``x`` can be written to."""
    if not x.flags.writeable:
        raise ValueError(f"{name} is read-only; pass a writeable array such as {name}.copy()")


def check_rate(rate: Any, expected: int, name: str = "sample_rate") -> None:
    """Raise ``ValueError`` unless ``rate`` equals ``expected`` Hz."""
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer):
        raise TypeError(f"{name} must be an int in Hz, got {type(rate).__name__}")
    if int(rate) != expected:
        raise ValueError(
            f"{name} must be {expected} Hz, got {int(rate)} Hz; resample the audio to "
            f"{expected} Hz first"
        )


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` as ``int`` if it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {int(value)}")
    return int(value)


def check_out(
    out: Any, shape: tuple[int, ...], dtype: type[np.generic], name: str = "out"
) -> None:
    """Validate a caller-provided output buffer: array, dtype, exact shape, writeable."""
    as_array(out, name)
    alloc = f"allocate it with numpy.empty({shape}, numpy.{np.dtype(dtype).name})"
    check_dtype(out, dtype, name, hint=alloc)
    if out.shape != shape:
        raise ValueError(
            f"{name} must have shape {shape}, got {out.shape}; allocate it with "
            f"numpy.empty({shape}, numpy.{np.dtype(dtype).name})"
        )
    check_contiguous(out, name)
    check_writeable(out, name)
