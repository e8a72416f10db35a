"""The one percentile (core.stats), checked against values worked out by hand."""

from __future__ import annotations

from collections import deque

import pytest

from core.stats import percentile


def test_percentile_interpolates_between_the_closest_ranks() -> None:
    assert percentile([0.0, 10.0], 95) == pytest.approx(9.5)
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 25) == pytest.approx(1.75)
    assert percentile([7.0], 99) == 7.0
    assert percentile(deque([5.0, 1.0]), 0) == 1.0 and percentile((5.0, 1.0), 100) == 5.0


def test_no_values_have_no_percentile_and_q_is_a_percentage() -> None:
    assert percentile([], 95) is None
    with pytest.raises(ValueError, match="0 to 100"):
        percentile([1.0], 0.95 * 1000)
