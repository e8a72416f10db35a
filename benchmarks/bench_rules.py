"""The live rubric's cost on the rules thread: kept matches against matching every time.

Usage::

    python benchmarks/bench_rules.py ../shared/corpus ../shared/corpus-b [--rubric default-zh]
        [--every-s 0.5] [--repeat 3]

While a call goes on, the daemon runs the live kinds of the rubric (`live_findings`) over the
call's evidence so far each time it grows: each leg's timeline at least every second and on
every voiced stretch that closes, and every finished utterance. This replays that on the
labelled calls' transcripts (their utterance times and texts; each utterance's span stands
for its voiced time), one evaluation per leg every ``--every-s`` of call time and one per
finished utterance, in two ways in the same run:

* ``cold``: each evaluation tokenizes and matches every text again (the matchers'
  ``find`` and ``text_tokens`` bypass what they keep: the cost before matches were kept);
* ``kept``: as the daemon runs (tokens and matches kept across evaluations).

It prints, per way, the median over ``--repeat`` runs of the rules CPU per minute of call
(thread CPU time), the ratio, and whether both ways raised the same findings (they must).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.calls import SPEAKERS, CallEvidence, LegActivity, Segment, Utterance
from core.rubric import matching
from core.rubric.defaults import builtin_rubrics
from core.rubric.engine import live_findings
from core.rubric.loading import load_rubric_text
from core.rubric.schema import Rubric


@dataclass(frozen=True)
class LabelledCall:
    call_id: str
    duration_s: float
    utterances: tuple[Utterance, ...]


def load_calls(folders: list[Path]) -> list[LabelledCall]:
    calls = []
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            if "transcript" not in data:
                continue
            utts = tuple(
                Utterance(u["speaker"], float(u["start"]), float(u["end"]), u["text"])
                for u in data["transcript"]
            )
            calls.append(LabelledCall(data["call_id"], float(data["duration_s"]), utts))
    return calls


def evaluation_times(call: LabelledCall, every_s: float) -> list[float]:
    """Call times at which the live engine evaluates: every ``every_s`` per leg, and at the
    end of each utterance."""
    ticks = [k * every_s for k in range(1, int(call.duration_s / every_s) + 1)]
    times = [t for t in ticks for _ in SPEAKERS] + [u.end for u in call.utterances]
    return sorted(times)


def evidence_at(call: LabelledCall, at_s: float) -> CallEvidence:
    said = [u for u in call.utterances if u.end <= at_s]
    activity: dict[str, LegActivity] = {
        sp: LegActivity(sp, [Segment(u.start, u.end) for u in said if u.speaker == sp], at_s)
        for sp in SPEAKERS
    }
    return CallEvidence(duration_s=at_s, language="zh", utterances=said, activity=activity,
                        ended=False)  # fmt: skip


def forget_kept() -> None:
    matching.text_tokens.cache_clear()
    matching.get_matcher.cache_clear()


@contextlib.contextmanager
def nothing_kept() -> Iterator[None]:
    """Tokenize and match every text again, as if nothing were kept."""
    kept_find, kept_tokens = matching.PhraseMatcher.find, matching.text_tokens

    def find(self: matching.PhraseMatcher, text: str) -> list[matching.Match]:
        return list(self._find(text)) if text else []

    matching.PhraseMatcher.find = find  # type: ignore[method-assign]
    matching.text_tokens = lambda text, language: tuple(matching.tokenize(text, language))  # type: ignore[assignment]
    try:
        yield
    finally:
        matching.PhraseMatcher.find = kept_find  # type: ignore[method-assign]
        matching.text_tokens = kept_tokens


def replay(
    calls: list[LabelledCall], rubric: Rubric, every_s: float, cold: bool
) -> tuple[float, set[tuple[str, str, float]]]:
    """Rules CPU seconds over all calls, and the findings raised (call, item, start)."""
    forget_kept()
    cpu = 0.0
    found: set[tuple[str, str, float]] = set()
    with nothing_kept() if cold else contextlib.nullcontext():
        for call in calls:
            for at in evaluation_times(call, every_s):
                evidence = evidence_at(call, at)
                began = time.thread_time()
                findings = live_findings(rubric, evidence)
                cpu += time.thread_time() - began
                found.update((call.call_id, f.item_id, round(f.start, 2)) for f in findings)
    return cpu, found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpora", nargs="+", type=Path)
    ap.add_argument("--rubric", default="default-zh", choices=sorted(builtin_rubrics()))
    ap.add_argument("--every-s", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    calls = load_calls(args.corpora)
    if not calls:
        folders = ", ".join(map(str, args.corpora))
        print(f"no labelled calls (*.json with a transcript) in {folders}")
        return 2
    rubric = load_rubric_text(builtin_rubrics()[args.rubric])
    minutes = sum(c.duration_s for c in calls) / 60.0
    evaluations = sum(len(evaluation_times(c, args.every_s)) for c in calls)
    print(
        f"{len(calls)} calls, {minutes:.1f} call-minutes, {evaluations} live evaluations "
        f"(every {args.every_s:g} s per leg, and per utterance), rubric {args.rubric}"
    )
    results: dict[str, list[float]] = {"cold": [], "kept": []}
    findings: dict[str, set[tuple[str, str, float]]] = {}
    for _ in range(args.repeat):
        for way in ("cold", "kept"):
            cpu, found = replay(calls, rubric, args.every_s, cold=way == "cold")
            results[way].append(1000.0 * cpu / minutes)
            findings[way] = found
    cold, kept = (statistics.median(results[w]) for w in ("cold", "kept"))
    print(f"{'way':<6} {'ms CPU per call-minute (median)':>32} {'runs':>24}")
    for way in ("cold", "kept"):
        runs = ", ".join(f"{v:.0f}" for v in results[way])
        print(f"{way:<6} {statistics.median(results[way]):>32.1f} {runs:>24}")
    print(f"kept / cold: {kept / cold:.3f} (cold takes {cold / kept:.1f}x the CPU)")
    same = findings["cold"] == findings["kept"]
    verdict = "yes" if same else "NO"
    print(f"findings: {len(findings['kept'])} raised; the same both ways: {verdict}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
