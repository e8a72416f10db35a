"""Live findings against offline scoring of the same calls, after a capacity step.

Under load the live path takes shortcuts that offline scoring does not: parts of turns are
dropped, timeline checks are coalesced, utterances are batched with other lines'. What a
call center keeps is the score and findings stored when the call ends, so the check that
matters is whether those are the ones ``callqa score`` gives for the same recording.

:func:`check_findings` scores each call's stored recording again in this process (the same
model and ASR settings as the daemon, the very rubric version the call was scored with,
nothing stored) and compares the findings: a live finding and an offline one agree when
they are of the same item and speaker and start within ``START_TOLERANCE_S`` of each other
(live, a leg's audio is placed on the call's timeline by packet arrival, offline by the
file, so times may differ by a frame or two). The score is compared too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import Settings

START_TOLERANCE_S = 1.0
"""A live and an offline finding of one item and speaker agree when their starts are
this close."""

SCORE_TOLERANCE = 0.01

FindingKey = tuple[str, str, float]  # item_id, speaker, start_s


@dataclass(frozen=True)
class CallAgreement:
    """One call: its findings live (stored at the call's end) and offline."""

    call_id: str
    live_score: float | None
    offline_score: float | None
    only_live: tuple[FindingKey, ...] = ()
    only_offline: tuple[FindingKey, ...] = ()
    error: str = ""

    @property
    def same(self) -> bool:
        return (
            not self.error and not self.only_live and not self.only_offline
            and self.live_score is not None and self.offline_score is not None
            and abs(self.live_score - self.offline_score) < SCORE_TOLERANCE
        )  # fmt: skip

    def describe(self) -> str:
        if self.error:
            return f"{self.call_id}: not checked: {self.error}"
        parts = []
        if self.live_score is None or self.offline_score is None or (
            abs(self.live_score - self.offline_score) >= SCORE_TOLERANCE
        ):
            parts.append(f"score {self.live_score} live, {self.offline_score} offline")
        parts += [f"{i} ({s}, {t:.1f} s) live only" for i, s, t in self.only_live]
        parts += [f"{i} ({s}, {t:.1f} s) offline only" for i, s, t in self.only_offline]
        return f"{self.call_id}: " + "; ".join(parts)


@dataclass
class FindingsCheck:
    """The calls of one step checked against offline scoring."""

    lines: int
    calls: list[CallAgreement] = field(default_factory=list)

    @property
    def same(self) -> int:
        return sum(1 for c in self.calls if c.same)

    def summary(self) -> str:
        text = (f"findings against offline scoring at {self.lines} lines: "
                f"{self.same} of {len(self.calls)} calls the same")  # fmt: skip
        differing = [c.describe() for c in self.calls if not c.same]
        return text + ("" if not differing else "; " + "; ".join(differing))

    def to_json(self) -> dict[str, Any]:
        return {
            "lines": self.lines, "calls": len(self.calls), "same": self.same,
            "differing": [c.describe() for c in self.calls if not c.same],
            "summary": self.summary(),
        }  # fmt: skip


def pair_findings(
    live: Sequence[FindingKey], offline: Sequence[FindingKey],
    tolerance_s: float = START_TOLERANCE_S,
) -> tuple[list[FindingKey], list[FindingKey]]:  # fmt: skip
    """The live findings with no offline partner, and the offline ones with no live one.

    Each finding pairs with at most one of the other side: the nearest unpaired one of the
    same item and speaker within ``tolerance_s``, taken in time order.
    """
    left = sorted(offline, key=lambda k: k[2])
    only_live = []
    for item, speaker, start in sorted(live, key=lambda k: k[2]):
        best = None
        for j, (o_item, o_speaker, o_start) in enumerate(left):
            near = o_item == item and o_speaker == speaker and abs(o_start - start) <= tolerance_s
            if near and (best is None or abs(o_start - start) < abs(left[best][2] - start)):
                best = j
        if best is None:
            only_live.append((item, speaker, start))
        else:
            del left[best]
    return only_live, left


def _key(item_id: str, speaker: str | None, start_s: float) -> FindingKey:
    return (item_id, speaker or "", round(float(start_s), 2))


def check_findings(config: Settings, call_ids: Sequence[str], *, lines: int) -> FindingsCheck:
    """Score each call of ``call_ids`` (stored under ``config.data_dir``) again offline and
    compare; ``config`` is the daemon's settings (model, ASR, endpointer)."""
    from core.scoring.recording import get_engine
    from core.storage import repository
    from core.storage.db import open_db

    check = FindingsCheck(lines=lines)
    db = open_db(config.db_path)
    try:
        engine = get_engine(config)
        for call_id in call_ids:
            call = repository.get_call(db, call_id)
            if call is None:
                agreement = CallAgreement(call_id, None, None, error="not stored")
            elif not call.get("rubric_id"):
                agreement = CallAgreement(call_id, None, None, error=f"status {call['status']}")
            elif not call.get("recording_path") or not Path(call["recording_path"]).is_file():
                agreement = CallAgreement(call_id, call["score"], None, error="no recording")
            else:
                agreement = _compare(config, db, engine, call)
            check.calls.append(agreement)
    finally:
        db.close()
    return check


def _compare(config: Settings, db: Any, engine: Any, call: dict[str, Any]) -> CallAgreement:
    """One stored call (`core.storage.repository.get_call`) scored again from its recording
    with the rubric version it was scored with; nothing is stored."""
    from core.rubric.loading import load_rubric_text
    from core.scoring.recording import ScoreRequest, ScoringContext, score_recording
    from core.scoring.rescore import recording_legs_of
    from core.storage import repository
    from core.storage.rubric_catalog import ResolvedRubric

    stored = repository.get_rubric_version(db, call["rubric_id"], call["rubric_version"])
    if stored is None:
        return CallAgreement(call["id"], call["score"], None, error="rubric version not stored")
    resolved = ResolvedRubric(rubric=load_rubric_text(stored["yaml"]), yaml_text=stored["yaml"],
                              version=int(stored["version"]))  # fmt: skip
    ctx = ScoringContext(
        config=config, transcriber=engine, resolve_rubric=lambda _ref: resolved,
        write=lambda _store: None, batch_size=engine.max_batch_size,
    )  # fmt: skip
    agent_channel, mono = recording_legs_of(call.get("meta") or {})
    req = ScoreRequest(path=Path(call["recording_path"]), rubric_ref=call["rubric_id"],
                       agent_channel=agent_channel, speaker=mono, store=False)  # fmt: skip
    result = score_recording(ctx, req).scored.result
    only_live, only_offline = pair_findings(
        [_key(f["item_id"], f["speaker"], f["start_s"]) for f in call["findings"]],
        [_key(f.item_id, f.speaker, f.start) for f in result.findings],
    )
    return CallAgreement(call["id"], call["score"], float(result.score), tuple(only_live),
                         tuple(only_offline))  # fmt: skip
