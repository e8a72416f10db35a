"""From findings to a score: deductions, caps per item, fatal items, categories, A/B/C counts.

* Each finding deducts its item's `deduct`, in time order, until the item's `max_deduct`
  is reached; the finding then carries what was actually deducted (its `deduct` is
  rewritten, the item's nominal value kept in ``detail["nominal_deduct"]``), so that the
  findings' deductions add up to the points lost.
* score = max(0, total - deducted). A finding of a fatal item makes the score 0, `fatal`
  true and the call failed. Otherwise the call passes when score >= pass_score.
* Per category: points deducted by its items, and what remains of the total after them
  (``total - deducted``, floored at 0).
* Severity counts: findings of A, B and C items that count against the agent (their item
  deducts or is fatal); alert-only findings (keyword_alert without `deduct`) do not.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from core.calls import Finding
from core.rubric.schema import SEVERITIES, Rubric


@dataclass(frozen=True)
class CategoryScore:
    id: str
    name: str
    deducted: float
    remaining: float
    findings: int


@dataclass(frozen=True)
class ItemScore:
    id: str
    hits: int
    deducted: float
    capped: bool


@dataclass(frozen=True)
class ScoreSheet:
    score: float
    passed: bool
    fatal: bool
    deducted: float
    findings: list[Finding]
    categories: dict[str, CategoryScore] = field(default_factory=dict)
    items: dict[str, ItemScore] = field(default_factory=dict)
    severity_counts: dict[str, int] = field(default_factory=dict)

    def category_scores(self) -> dict[str, float]:
        """Remaining points per category (CallResult.category_scores)."""
        return {cid: c.remaining for cid, c in self.categories.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "deducted": _r(self.deducted),
            "categories": {
                cid: {
                    "name": c.name,
                    "deducted": _r(c.deducted),
                    "remaining": _r(c.remaining),
                    "findings": c.findings,
                }
                for cid, c in self.categories.items()
            },
            "items": {
                iid: {"hits": s.hits, "deducted": _r(s.deducted), "capped": s.capped}
                for iid, s in self.items.items()
            },
            "severity_counts": dict(self.severity_counts),
        }


def _r(x: float) -> float:
    return round(x, 3)


def score_findings(rubric: Rubric, findings: list[Finding]) -> ScoreSheet:
    """Apply the rubric's deductions, caps and fatal items to `findings`."""
    items = {it.id: it for it in rubric.items}
    spent: dict[str, float] = {}
    hits: Counter[str] = Counter()
    capped: set[str] = set()
    fatal = False
    applied: list[Finding] = []
    severity: Counter[str] = Counter()
    for f in sorted(findings, key=lambda f: (f.start, f.end, f.item_id)):
        item = items.get(f.item_id)
        if item is None:
            applied.append(f)
            continue
        hits[item.id] += 1
        nominal = item.deduct
        used = spent.get(item.id, 0.0)
        amount = nominal
        if item.max_deduct is not None:
            amount = max(0.0, min(nominal, item.max_deduct - used))
        spent[item.id] = used + amount
        detail = dict(f.detail)
        if amount != nominal:
            capped.add(item.id)
            detail["nominal_deduct"] = nominal
        applied.append(replace(f, deduct=amount, detail=detail))
        if item.fatal:
            fatal = True
        if nominal > 0 or item.fatal:
            severity[item.severity] += 1
    deducted = sum(spent.values())
    score = 0.0 if fatal else max(0.0, rubric.total - deducted)
    passed = not fatal and score >= rubric.pass_score
    categories: dict[str, CategoryScore] = {}
    for cat in rubric.categories:
        ids = [it.id for it in rubric.items if it.category == cat.id]
        cat_deducted = sum(spent.get(i, 0.0) for i in ids)
        categories[cat.id] = CategoryScore(
            id=cat.id,
            name=cat.name,
            deducted=cat_deducted,
            remaining=max(0.0, rubric.total - cat_deducted),
            findings=sum(hits[i] for i in ids),
        )
    item_scores = {
        iid: ItemScore(id=iid, hits=hits[iid], deducted=spent.get(iid, 0.0), capped=iid in capped)
        for iid in hits
    }
    return ScoreSheet(
        score=score,
        passed=passed,
        fatal=fatal,
        deducted=deducted,
        findings=applied,
        categories=categories,
        items=item_scores,
        severity_counts={s: severity.get(s, 0) for s in SEVERITIES},
    )
