"""A call's decision record: what the recorder decided about it, when, and why.

One entry per decision: which streams were taken (`streams`), who the agent is (`agent`),
each metadata update (`metadata`), each pause and resume (`pause`, `resume`), and whether
the call had audio (`audio`). Entries are plain JSON (time, kind, summary, detail); the
call's storage keeps them, `callqa calls show` and the admin web show them.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

KINDS = ("streams", "agent", "metadata", "pause", "resume", "audio")
MAX_ENTRIES = 200
"""A call that re-INVITEs without end keeps its first entries and a count of the rest."""


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class DecisionLog:
    call_id: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0

    def add(self, kind: str, summary: str, *, warn: bool = False, **detail: Any) -> None:
        """Note a decision (logged at info, or at warning with `warn`)."""
        if kind not in KINDS:
            raise ValueError(f"unknown decision kind {kind!r}")
        logger.log(logging.WARNING if warn else logging.INFO, "call %s: %s: %s", self.call_id,
                   kind, summary)  # fmt: skip
        if len(self.entries) >= MAX_ENTRIES:
            self.dropped += 1
            return
        entry: dict[str, Any] = {"at": _utc_now(), "kind": kind, "summary": summary}
        if detail:
            entry["detail"] = detail
        self.entries.append(entry)

    def to_json(self) -> list[dict[str, Any]]:
        out = [dict(e) for e in self.entries]
        if self.dropped:
            out.append({"at": _utc_now(), "kind": "metadata",
                        "summary": f"{self.dropped} later decisions not kept"})  # fmt: skip
        return out
