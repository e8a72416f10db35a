"""What a dry run found: per call the changes, and the totals per team and per item.

A call's findings before are the ones stored with it (the daemon's, from the rubric it was
scored with); after, those of the draft on the same evidence. Two findings are the same
when they have the same item and the same start and end (to the millisecond); what is left
on either side is removed or added.

Against the inspectors' review (人工复核), counted over calls whose review is done (reviewed,
appealed or final, as on the agreement page): the verdicts on the removed findings
("this change would have removed 12 findings inspectors rejected and 1 they confirmed"),
precision (准确率) before and after on the findings the inspectors judged, and how many of
the findings the inspectors added as missed the draft finds (same item, overlapping times
within `MATCH_TOLERANCE_S`).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from admin_web.agreement import REVIEWED_STATES
from core.calls import CallResult, Finding
from core.storage.evidence import StoredCall

MATCH_TOLERANCE_S = 1.0
SCORE_EPSILON = 1e-6
TIMELINE_SOURCES = ("stored", "cached", "derived", "none")
"""Where a call's voice timelines came from: stored with it, the site's cache, derived from
the recording now, or none (no recording: the utterance spans stand in for them)."""


def finding_key(item_id: str, start: float, end: float) -> tuple[str, int, int]:
    return (item_id, round(start * 1000), round(end * 1000))


def _draft_finding(f: Finding) -> dict[str, Any]:
    return {"item_id": f.item_id, "name": f.name, "speaker": f.speaker,
            "start": round(f.start, 3), "end": round(f.end, 3), "evidence": f.evidence,
            "severity": f.severity, "deduct": f.deduct}


@dataclass
class CallChange:
    """One call before and after the draft."""

    call_id: str
    team_id: str | None
    agent_id: str | None
    started_at: str | None
    score_before: float | None
    passed_before: bool | None
    fatal_before: bool | None
    timeline: str
    score_after: float | None = None
    passed_after: bool | None = None
    fatal_after: bool | None = None
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    after: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def changed(self) -> bool:
        if self.error is not None:
            return False
        moved = (self.score_before is None or self.score_after is None
                 or abs(self.score_before - self.score_after) > SCORE_EPSILON)
        return bool(self.added or self.removed or moved or self.passed_before != self.passed_after
                    or self.fatal_before != self.fatal_after)

    def row(self, run_id: int) -> tuple[Any, ...]:
        def flag(v: bool | None) -> int | None:
            return None if v is None else int(v)

        return (run_id, self.call_id, self.team_id, self.agent_id, self.started_at,
                self.score_before, self.score_after, flag(self.passed_before),
                flag(self.passed_after), flag(self.fatal_before), flag(self.fatal_after),
                int(self.changed), json.dumps(self.added, ensure_ascii=False),
                json.dumps(self.removed, ensure_ascii=False), self.timeline, self.error)


ROW_COLUMNS = ("run_id", "call_id", "team_id", "agent_id", "started_at", "score_before",
               "score_after", "passed_before", "passed_after", "fatal_before", "fatal_after",
               "changed", "added", "removed", "timeline", "error")


def compare(call: StoredCall, result: CallResult | None, timeline: str,
            error: str | None = None) -> CallChange:
    """The change the draft's `result` makes to the stored `call`."""
    change = CallChange(call_id=call.id, team_id=call.team_id, agent_id=call.agent_id,
                        started_at=call.started_at, score_before=call.score,
                        passed_before=call.passed, fatal_before=call.fatal, timeline=timeline,
                        error=error)
    if result is None:
        return change
    change.score_after = float(result.score)
    change.passed_after = bool(result.passed)
    change.fatal_after = bool(result.fatal)
    after = [_draft_finding(f) for f in result.findings]
    change.after = after
    left = Counter(finding_key(f["item_id"], f["start"], f["end"]) for f in call.findings)
    for f in after:
        key = finding_key(f["item_id"], f["start"], f["end"])
        if left[key] > 0:
            left[key] -= 1
        else:
            change.added.append(f)
    for f in call.findings:
        key = finding_key(f["item_id"], f["start"], f["end"])
        if left[key] > 0:
            left[key] -= 1
            change.removed.append({k: f[k] for k in ("seq", "item_id", "name", "speaker",
                                                      "start", "end", "evidence", "severity")})
    return change


# ---------------------------------------------------------------- inspectors' review


@dataclass
class Review:
    """What the inspectors said about one reviewed call."""

    verdicts: dict[int, str]  # finding seq -> 'confirmed' | 'rejected'
    added: list[tuple[str, float, float]]  # missed findings: (item_id, start, end)


def reviews_of(conn: sqlite3.Connection, call_ids: Sequence[str]) -> dict[str, Review]:
    """The done reviews among `call_ids` (a call without one is absent)."""
    out: dict[str, Review] = {}
    if not call_ids:
        return out
    marks = ", ".join("?" for _ in call_ids)
    states = ", ".join("?" for _ in REVIEWED_STATES)
    for r in conn.execute(f"SELECT call_id FROM call_reviews WHERE call_id IN ({marks})"
                          f" AND state IN ({states})", [*call_ids, *REVIEWED_STATES]):
        out[r[0]] = Review({}, [])
    if not out:
        return out
    done = list(out)
    marks = ", ".join("?" for _ in done)
    for r in conn.execute("SELECT call_id, finding_seq, verdict FROM finding_verdicts"
                          f" WHERE call_id IN ({marks})", done):
        out[r[0]].verdicts[int(r[1])] = r[2]
    for r in conn.execute("SELECT call_id, item_id, start_s, end_s FROM added_findings"
                          f" WHERE removed = 0 AND call_id IN ({marks}) ORDER BY id", done):
        out[r[0]].added.append((r[1], float(r[2]), float(r[3])))
    return out


def _overlaps(a_start: float, a_end: float, b_start: float, b_end: float) -> bool:
    return a_start <= b_end + MATCH_TOLERANCE_S and b_start <= a_end + MATCH_TOLERANCE_S


# ---------------------------------------------------------------- totals


ITEM_KEYS = ("before", "after", "added", "removed", "confirmed", "rejected",
             "removed_confirmed", "removed_rejected", "missed", "caught", "new_on_reviewed")


def _ratio(num: int, den: int) -> float | None:
    return None if den <= 0 else num / den


@dataclass
class Totals:
    """Running totals over the calls of a run, kept as plain numbers (JSON as is)."""

    calls: int = 0
    changed: int = 0
    errors: int = 0
    reviewed: int = 0
    pass_to_fail: int = 0
    fail_to_pass: int = 0
    sum_before: float = 0.0
    sum_after: float = 0.0
    timelines: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIMELINE_SOURCES, 0))
    teams: dict[str, dict[str, float]] = field(default_factory=dict)
    items: dict[str, dict[str, int]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def _item(self, item_id: str) -> dict[str, int]:
        entry = self.items.get(item_id)
        if entry is None:
            entry = self.items[item_id] = dict.fromkeys(ITEM_KEYS, 0)
        return entry

    def add(self, call: StoredCall, change: CallChange, review: Review | None) -> None:
        self.timelines[change.timeline] = self.timelines.get(change.timeline, 0) + 1
        if change.error is not None or change.score_after is None:
            self.errors += 1
            return
        before = float(change.score_before or 0.0)
        self.calls += 1
        self.changed += int(change.changed)
        self.sum_before += before
        self.sum_after += change.score_after
        flip_down = bool(change.passed_before) and not change.passed_after
        flip_up = not change.passed_before and bool(change.passed_after)
        self.pass_to_fail += int(flip_down)
        self.fail_to_pass += int(flip_up)
        team = self.teams.setdefault(call.team_id or "", {
            "calls": 0, "changed": 0, "sum_before": 0.0, "sum_after": 0.0,
            "passed_before": 0, "passed_after": 0, "pass_to_fail": 0, "fail_to_pass": 0})
        team["calls"] += 1
        team["changed"] += int(change.changed)
        team["sum_before"] += before
        team["sum_after"] += change.score_after
        team["passed_before"] += int(bool(change.passed_before))
        team["passed_after"] += int(bool(change.passed_after))
        team["pass_to_fail"] += int(flip_down)
        team["fail_to_pass"] += int(flip_up)
        for f in call.findings:
            self._item(f["item_id"])["before"] += 1
            self.names.setdefault(f["item_id"], f.get("name") or f["item_id"])
        for f in change.after:
            self._item(f["item_id"])["after"] += 1
            if f.get("name"):
                self.names[f["item_id"]] = f["name"]
        for f in change.added:
            self._item(f["item_id"])["added"] += 1
        removed_seqs = {int(f["seq"]) for f in change.removed}
        for f in change.removed:
            self._item(f["item_id"])["removed"] += 1
        if review is None:
            return
        self.reviewed += 1
        items = {int(f["seq"]): f["item_id"] for f in call.findings}
        for seq, verdict in review.verdicts.items():
            item_id = items.get(seq)
            if item_id is None or verdict not in ("confirmed", "rejected"):
                continue
            entry = self._item(item_id)
            entry[verdict] += 1
            if seq in removed_seqs:
                entry[f"removed_{verdict}"] += 1
        used: set[int] = set()
        for item_id, start, end in review.added:
            entry = self._item(item_id)
            entry["missed"] += 1
            for k, f in enumerate(change.after):
                if (k not in used and f["item_id"] == item_id
                        and _overlaps(start, end, f["start"], f["end"])):
                    used.add(k)
                    entry["caught"] += 1
                    break
        added_ids = {id(f) for f in change.added}
        for k, f in enumerate(change.after):
            if id(f) in added_ids and k not in used:
                self._item(f["item_id"])["new_on_reviewed"] += 1

    def to_json(self) -> dict[str, Any]:
        """The run's summary as stored (``dry_runs.summary``) and shown."""
        teams = []
        for team_id, t in sorted(self.teams.items()):
            n = int(t["calls"])
            teams.append({
                "team_id": team_id, "calls": n, "changed": int(t["changed"]),
                "mean_before": t["sum_before"] / n if n else None,
                "mean_after": t["sum_after"] / n if n else None,
                "shift": (t["sum_after"] - t["sum_before"]) / n if n else None,
                "passed_before": int(t["passed_before"]), "passed_after": int(t["passed_after"]),
                "pass_to_fail": int(t["pass_to_fail"]), "fail_to_pass": int(t["fail_to_pass"]),
            })
        items: list[dict[str, Any]] = []
        for item_id, c in self.items.items():
            kept_c = c["confirmed"] - c["removed_confirmed"]
            kept_r = c["rejected"] - c["removed_rejected"]
            items.append({
                "item_id": item_id, "name": self.names.get(item_id, item_id), **c,
                "precision_before": _ratio(c["confirmed"], c["confirmed"] + c["rejected"]),
                "precision_after": _ratio(kept_c, kept_c + kept_r),
            })
        items.sort(key=lambda i: (-(i["added"] + i["removed"]), -i["before"], i["item_id"]))
        totals = {k: sum(int(c[k]) for c in self.items.values()) for k in ITEM_KEYS}
        n = self.calls
        return {
            "calls": n, "changed": self.changed, "errors": self.errors,
            "reviewed": self.reviewed, "pass_to_fail": self.pass_to_fail,
            "fail_to_pass": self.fail_to_pass,
            "mean_before": self.sum_before / n if n else None,
            "mean_after": self.sum_after / n if n else None,
            "shift": (self.sum_after - self.sum_before) / n if n else None,
            "timelines": dict(self.timelines), "teams": teams, "items": items,
            "totals": totals,
        }
