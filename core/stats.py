"""The one percentile: every latency figure (p50, p95, p99) the project reports.

Linear interpolation between the two closest ranks (numpy's default, "type 7"): the
percentile of one value is that value, of ``[0, 10]`` the 95th is 9.5. The capacity
benchmarks, the daemon's `GetCapacity` and the latency benchmarks all read their figures
through `percentile`, so a p95 means the same thing on every page.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0 to 100) of ``values``; None when there are none."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q is a percentage from 0 to 100, got {q!r}")
    data = np.fromiter(values, dtype=np.float64)
    if data.size == 0:
        return None
    return float(np.percentile(data, q))
