"""Which rubric scores a call: chosen by agent, skill group or team, else the default.

The ``rubric_routes`` setting lists rules, comma-separated, each ``KIND:VALUE=RUBRIC``
where KIND is ``agent``, ``skill`` or ``team``, e.g.
``team:sales=sales-zh, skill:billing=billing-zh, agent:1001=coaching-zh``. The most specific
rule wins (agent, then skill, then team); a call that matches none gets the ``rubric``
setting. A rubric the sender names for a call (a gRPC stream's setup) comes first of all.

The ``rubric_routes`` table (`core.storage.routes`, set from the admin web through the gRPC
API) holds rules of the same shape; they are laid over the setting's (`RubricRoutes.overlay`):
for one key (kind and value) the table's rule wins, and the setting's rules apply where the
table has none for their key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

KINDS = ("agent", "skill", "team")


@dataclass(frozen=True)
class RubricRoutes:
    rules: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> RubricRoutes:
        """Parse the setting; raises ValueError naming the rule that cannot be read."""
        rules: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
        for raw in (text or "").split(","):
            rule = raw.strip()
            if not rule:
                continue
            head, sep, rubric = rule.partition("=")
            kind, colon, value = head.partition(":")
            kind, value, rubric = kind.strip().lower(), value.strip(), rubric.strip()
            if not sep or not colon or kind not in KINDS or not value or not rubric:
                raise ValueError(
                    f"rubric route {rule!r} must read KIND:VALUE=RUBRIC with KIND one of "
                    f"{', '.join(KINDS)} (e.g. team:sales=sales-zh)"
                )
            rules[kind][value] = rubric
        return cls(rules)

    def overlay(self, table: Mapping[str, Mapping[str, str]]) -> RubricRoutes:
        """These rules with `table`'s laid over them, key by key (kind and value)."""
        if not any(table.values()):
            return self
        rules = {kind: dict(self.rules.get(kind, {})) for kind in KINDS}
        for kind, by_value in table.items():
            if kind in rules:
                rules[kind].update(by_value)
        return RubricRoutes(rules)

    def choose(
        self,
        *,
        agent_id: str | None,
        team_id: str | None,
        skill: str | None,
        default: str,
    ) -> str:
        for kind, value in (("agent", agent_id), ("skill", skill), ("team", team_id)):
            if value is not None and value in self.rules.get(kind, {}):
                return self.rules[kind][value]
        return default
