"""The rubric engine: rubric files (format 1), phrase matching, rules and scoring.

Typical use::

    from core.rubric import evaluate, load_rubric_file
    result = evaluate(load_rubric_file("rubric.yaml"), evidence)
"""

from core.rubric.engine import evaluate, live_findings
from core.rubric.loading import load_rubric_file, load_rubric_text
from core.rubric.rules import END_OF_CALL_KINDS, LIVE_KINDS, evaluate_items, run_item
from core.rubric.schema import Category, Item, Rubric, RubricError, dump_rubric

__all__ = [
    "END_OF_CALL_KINDS",
    "LIVE_KINDS",
    "Category",
    "Item",
    "Rubric",
    "RubricError",
    "dump_rubric",
    "evaluate",
    "evaluate_items",
    "live_findings",
    "load_rubric_file",
    "load_rubric_text",
    "run_item",
]
