"""Properties of the rubric loader, checked with hypothesis: a rubric the loader accepts dumps
to YAML that loads back to the same rubric, and any other text or file is refused with a
RubricError listing what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from core.rubric.loading import load_rubric_file, load_rubric_text
from core.rubric.schema import SEVERITIES, RubricError, dump_rubric
from tests.fuzz import seeds
from tests.fuzz.strategies import PROPERTY_SETTINGS, any_input
from tests.fuzz.targets import TARGETS

IDS = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=10)
PHRASES = st.lists(
    st.text(st.characters(whitelist_categories=("Lo", "Ll", "Lu", "Nd")), min_size=1, max_size=8),
    min_size=1,
    max_size=4,
    unique=True,
)
POINTS = st.integers(0, 40) | st.floats(0, 40, allow_nan=False).map(lambda x: round(x, 2))


@st.composite
def rubric_dicts(draw: st.DrawFn) -> dict:
    items = []
    for item_id in draw(st.lists(IDS, min_size=1, max_size=5, unique=True)):
        kind = draw(
            st.sampled_from(["forbidden_phrase", "required_phrase", "silence", "keyword_alert"])
        )
        item: dict = {
            "id": item_id,
            "kind": kind,
            "severity": draw(st.sampled_from(SEVERITIES)),
            "deduct": draw(POINTS),
        }
        if kind == "silence":
            item["min_s"] = draw(st.integers(1, 30))
        else:
            item["phrases"] = draw(PHRASES)
        if draw(st.booleans()):
            item["alert"] = True
        items.append(item)
    return {
        "format": 1,
        "id": draw(IDS),
        "language": draw(st.sampled_from(["zh", "en"])),
        "pass_score": draw(st.integers(0, 100)),
        "items": items,
    }


@PROPERTY_SETTINGS
@given(rubric_dicts())
def test_dump_and_load_round_trip(data: dict) -> None:
    rubric = load_rubric_text(yaml.safe_dump(data, allow_unicode=True))
    assert [i.id for i in rubric.items] == [i["id"] for i in data["items"]]
    again = load_rubric_text(dump_rubric(rubric))
    assert again == rubric
    assert dump_rubric(again) == dump_rubric(rubric)


def test_any_text_is_loaded_or_refused_with_a_rubric_error() -> None:
    run = TARGETS["rubric_yaml"].load()

    @PROPERTY_SETTINGS
    @given(any_input(seeds.rubric_texts()))
    def check(data: bytes) -> None:
        run(data)

    check()


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_yaml_is_refused(depth: int) -> None:
    with pytest.raises(RubricError, match="nested too deeply"):
        load_rubric_text("[" * depth + "]" * depth)


@PROPERTY_SETTINGS
@given(st.binary(min_size=1, max_size=64).filter(lambda b: not _is_utf8(b)))
def test_a_file_that_is_not_utf8_is_refused(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("rubric") / "bad.yaml"
    path.write_bytes(b"format: 1\nid: " + data)
    with pytest.raises(RubricError, match="not UTF-8 text"):
        load_rubric_file(Path(path))


def _is_utf8(data: bytes) -> bool:
    try:
        (b"format: 1\nid: " + data).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
