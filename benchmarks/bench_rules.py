"""The live rubric's cost on the rules thread, as the daemon runs it and as it ran before.

Usage::

    python benchmarks/bench_rules.py ../shared/corpus ../shared/corpus-b [--rubric default-zh]
        [--every-s 0.5] [--repeat 3] [--join N]

While a call goes on, the daemon runs the live kinds of the rubric (`live_findings`) over the
call's evidence so far each time it grows: each leg's timeline at least every second and on
every voiced stretch that closes, and every finished utterance. This replays that on the
labelled calls' transcripts (their utterance times and texts; each utterance's span stands
for its voiced time), one evaluation per leg every ``--every-s`` of call time and one per
finished utterance, in two ways in the same run:

* ``before``: each evaluation tokenizes, matches and counts every text again (the
  matchers' ``find``, ``text_tokens`` and ``speech_units`` bypass what they keep), and runs
  every live kind on a timeline update too;
* ``now``: as the daemon runs: tokens, matches and counts kept across evaluations, and a
  timeline update runs only the kinds that read more than the utterances
  (``timeline_only``).

``--join N`` joins every N calls into one (times laid end to end): the rules run over all
of a call's utterances each time, so their cost per minute grows with the length of calls.

It prints, per way, the median over ``--repeat`` runs of the rules CPU per minute of call
(thread CPU time), the ratio, and whether both ways raised the same findings (they must).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.calls import SPEAKERS, CallEvidence, LegActivity, Segment, Utterance
from core.rubric import matching, metrics
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


def joined(calls: list[LabelledCall], n: int) -> list[LabelledCall]:
    """Every ``n`` calls laid end to end as one (the last calls, fewer than ``n``, left out)."""
    out = []
    for i in range(0, len(calls) - n + 1, n):
        group, utts, offset = calls[i : i + n], [], 0.0
        for call in group:
            utts += [dataclasses.replace(u, start=u.start + offset, end=u.end + offset)
                     for u in call.utterances]  # fmt: skip
            offset += call.duration_s
        out.append(LabelledCall("+".join(c.call_id for c in group), offset, tuple(utts)))
    return out


def evaluation_times(call: LabelledCall, every_s: float) -> list[tuple[float, bool]]:
    """(call time, timeline only) of each evaluation the live engine makes: every
    ``every_s`` per leg, and at the end of each utterance."""
    ticks = [k * every_s for k in range(1, int(call.duration_s / every_s) + 1)]
    times = [(t, True) for t in ticks for _ in SPEAKERS]
    return sorted(times + [(u.end, False) for u in call.utterances])


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
    matching._kept_matches.cache_clear()
    matching.get_matcher.cache_clear()
    metrics.speech_units.cache_clear()


@contextlib.contextmanager
def nothing_kept() -> Iterator[None]:
    """Tokenize, match and count every text again, as if nothing were kept."""
    kept = matching.PhraseMatcher.find, matching.text_tokens, metrics.speech_units

    def find(self: matching.PhraseMatcher, text: str) -> list[matching.Match]:
        return list(self._find(text)) if text else []

    matching.PhraseMatcher.find = find  # type: ignore[method-assign]
    matching.text_tokens = lambda text, language: tuple(matching.tokenize(text, language))  # type: ignore[assignment]
    metrics.speech_units = metrics.speech_units.__wrapped__  # type: ignore[assignment]
    try:
        yield
    finally:
        matching.PhraseMatcher.find, matching.text_tokens, metrics.speech_units = kept  # type: ignore[method-assign]


def replay(
    calls: list[LabelledCall], rubric: Rubric, every_s: float, before: bool
) -> tuple[float, set[tuple[str, str, float]]]:
    """Rules CPU seconds over all calls, and the findings raised (call, item, start)."""
    forget_kept()
    cpu = 0.0
    found: set[tuple[str, str, float]] = set()
    with nothing_kept() if before else contextlib.nullcontext():
        for call in calls:
            for at, timeline_only in evaluation_times(call, every_s):
                evidence = evidence_at(call, at)
                began = time.thread_time()
                findings = live_findings(
                    rubric, evidence, timeline_only=timeline_only and not before
                )
                cpu += time.thread_time() - began
                found.update((call.call_id, f.item_id, round(f.start, 2)) for f in findings)
    return cpu, found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpora", nargs="+", type=Path)
    ap.add_argument("--rubric", default="default-zh", choices=sorted(builtin_rubrics()))
    ap.add_argument("--every-s", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--join", type=int, default=1, help="join every N calls into one")
    args = ap.parse_args(argv)
    calls = joined(load_calls(args.corpora), max(1, args.join))
    if not calls:
        folders = ", ".join(map(str, args.corpora))
        print(f"no labelled calls (*.json with a transcript) in {folders}")
        return 2
    rubric = load_rubric_text(builtin_rubrics()[args.rubric])
    minutes = sum(c.duration_s for c in calls) / 60.0
    evaluations = sum(len(evaluation_times(c, args.every_s)) for c in calls)
    print(
        f"{len(calls)} calls of {minutes / len(calls):.1f} min on average ({minutes:.1f} "
        f"call-minutes), {evaluations} live evaluations "
        f"(every {args.every_s:g} s per leg, and per utterance), rubric {args.rubric}"
    )
    ways = ("before", "now")
    results: dict[str, list[float]] = {w: [] for w in ways}
    findings: dict[str, set[tuple[str, str, float]]] = {}
    for _ in range(args.repeat):
        for way in ways:
            cpu, found = replay(calls, rubric, args.every_s, before=way == "before")
            results[way].append(1000.0 * cpu / minutes)
            findings[way] = found
    before, now = (statistics.median(results[w]) for w in ways)
    print(f"{'way':<7} {'ms CPU per call-minute (median)':>32} {'runs':>24}")
    for way in ways:
        runs = ", ".join(f"{v:.0f}" for v in results[way])
        print(f"{way:<7} {statistics.median(results[way]):>32.1f} {runs:>24}")
    print(f"now / before: {now / before:.3f} (before took {before / now:.1f}x the CPU)")
    same = findings["before"] == findings["now"]
    verdict = "yes" if same else "NO"
    print(f"findings: {len(findings['now'])} raised; the same both ways: {verdict}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
