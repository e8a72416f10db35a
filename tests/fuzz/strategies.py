"""Hypothesis strategies and settings shared by the parsers' property tests."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# No example database in the working tree; two seconds an example is far beyond any parser's
# need (a hang fails the test), even on a loaded machine.
PROPERTY_SETTINGS = settings(
    max_examples=120,
    deadline=2000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few bytes overwritten, inserted or deleted, and perhaps cut short."""
    data = bytearray(draw(st.sampled_from(seeds)))
    edits = draw(
        st.lists(
            st.tuples(st.integers(0, 2), st.integers(0, 2**16), st.binary(min_size=1, max_size=8)),
            max_size=6,
        )
    )
    for kind, where, chunk in edits:
        at = where % (len(data) + 1)
        if kind == 0:
            data[at : at + len(chunk)] = chunk
        elif kind == 1:
            data[at:at] = chunk
        else:
            del data[at : at + len(chunk)]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def any_input(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """Random bytes, or a fixture damaged here and there."""
    return st.one_of(st.binary(max_size=512), mutated(seeds))
