"""Scoring one call against one rubric: rules, metrics and score in one `CallResult`.

`evaluate` is what offline scoring and the end-of-call pass run. The live daemon calls
`live_findings` on its growing evidence (``ended=False``) to raise alerts as the call goes
on, and `evaluate` once the call has ended.
"""

from __future__ import annotations

from core.calls import CallEvidence, CallResult, Finding
from core.rubric.metrics import CallMetrics, compute_metrics
from core.rubric.rules import LIVE_KINDS, TIMELINE_LIVE_KINDS, evaluate_items
from core.rubric.schema import Rubric
from core.rubric.scoring import score_findings


def evaluate(
    rubric: Rubric,
    evidence: CallEvidence,
    *,
    rubric_version: int | None = None,
    metrics: CallMetrics | None = None,
) -> CallResult:
    """Run every enabled item over the evidence, compute the metrics and score the call."""
    m = metrics if metrics is not None else compute_metrics(evidence)
    findings = evaluate_items(rubric, evidence, metrics=m)
    sheet = score_findings(rubric, findings)
    transcript = sorted(evidence.utterances, key=lambda u: (u.start, u.end))
    return CallResult(
        rubric_id=rubric.id,
        rubric_version=rubric_version,
        score=sheet.score,
        passed=sheet.passed,
        fatal=sheet.fatal,
        findings=sheet.findings,
        transcript=transcript,
        metrics=m.to_json(),
        category_scores=sheet.category_scores(),
        scoring=sheet.to_json(),
        evidence=evidence,
    )


def live_findings(
    rubric: Rubric,
    evidence: CallEvidence,
    *,
    metrics: CallMetrics | None = None,
    timeline_only: bool = False,
) -> list[Finding]:
    """The findings that the kinds able to fire during the call produce on `evidence` so far;
    with `timeline_only` (nothing but a leg's timeline grew since the last time), only those
    of the kinds that read more than the utterances.

    Deterministic for a given evidence: the caller tells new findings from those already
    raised by (item_id, start).
    """
    kinds = TIMELINE_LIVE_KINDS if timeline_only else LIVE_KINDS
    if metrics is None and timeline_only:  # those kinds read no per-utterance metrics
        metrics = compute_metrics(evidence, utterances=False)
    return evaluate_items(rubric, evidence, metrics=metrics, kinds=kinds)
