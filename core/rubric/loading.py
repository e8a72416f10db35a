"""Reading a rubric file (format 1): YAML text in, a checked `Rubric` out.

Every problem of the file is reported at once, in one `RubricError`
(`core.rubric.validate` collects them); the format itself is `core.rubric.schema`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from core.rubric.schema import Rubric, RubricError
from core.rubric.validate import RubricValidator

RECENT_RUBRIC_TEXTS = 64


def load_rubric_file(path: str | Path) -> Rubric:
    """Load and validate a rubric YAML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RubricError([f"{p}: cannot read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise RubricError([f"{p}: not UTF-8 text (byte {exc.start}: {exc.reason})"]) from exc
    return load_rubric_text(text)


def load_rubric_text(yaml_text: str) -> Rubric:
    """Parse and validate rubric YAML text; raise `RubricError` listing every problem.

    A text seen lately is not parsed again: every call that starts resolves its rubric, and
    parsing YAML costs milliseconds of CPU (a burst of a thousand call set-ups spent a fifth
    of a core on it). A Rubric is immutable, so the same one is shared; errors are not kept.
    """
    return _load_rubric_text(yaml_text)


@functools.lru_cache(maxsize=RECENT_RUBRIC_TEXTS)
def _load_rubric_text(yaml_text: str) -> Rubric:
    try:
        data = yaml.safe_load(yaml_text)
    except yaml.YAMLError as exc:
        raise RubricError([f"not valid YAML: {exc}"]) from exc
    except RecursionError as exc:
        raise RubricError(["the YAML is nested too deeply to be a rubric"]) from exc
    return rubric_from_dict(data)


def rubric_from_dict(data: Any) -> Rubric:
    """Validate a parsed rubric (the YAML's mapping) and build the `Rubric`."""
    return RubricValidator().rubric(data)
