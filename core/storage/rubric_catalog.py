"""Finding a rubric by reference: a YAML path, a stored rubric id, or a built-in id.

Whatever rubric a call is scored with is recorded as a version in the database first, so
every stored call names the exact rubric text it was scored against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from core.rubric.defaults import builtin_rubrics
from core.rubric.loading import load_rubric_text
from core.rubric.schema import Rubric, RubricError
from core.storage import repository


@dataclass(frozen=True)
class ResolvedRubric:
    rubric: Rubric
    yaml_text: str
    version: int


def resolve_rubric(db: Database, ref: str) -> ResolvedRubric:
    """Load the rubric `ref` names and record its version.

    Order: an existing file path; the active (else latest) stored version of that id;
    a built-in rubric of that id.
    """
    path = Path(ref)
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise RubricError([f"rubric file {ref} does not exist"])
        text = path.read_text(encoding="utf-8")
    else:
        stored = repository.get_rubric_version(db, ref)
        if stored is not None:
            text = stored["yaml"]
            rubric = load_rubric_text(text)
            if rubric.id == ref:
                # That very version: recording its text again would add a copy of it as a
                # new version whenever the active one is not the latest.
                return ResolvedRubric(rubric=rubric, yaml_text=text,
                                      version=int(stored["version"]))
        else:
            builtins = builtin_rubrics()
            if ref not in builtins:
                known = sorted(
                    set(builtins) | {r["rubric_id"] for r in repository.list_rubrics(db)}
                )
                raise RubricError([f"no rubric {ref!r}; known rubrics: {', '.join(known)}"])
            text = builtins[ref]
    rubric = load_rubric_text(text)
    version = repository.record_rubric_version(db, rubric.id, text)
    return ResolvedRubric(rubric=rubric, yaml_text=text, version=version)
