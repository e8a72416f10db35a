"""The readable report `callqa score` prints: score, findings, metrics and the transcript."""

from __future__ import annotations

from typing import Any

from core.calls import CallResult

SPEAKER_LABEL = {"agent": "AGENT", "customer": "CUST."}


def _clock(seconds: float) -> str:
    m, s = divmod(max(0.0, seconds), 60.0)
    return f"{int(m):02d}:{s:04.1f}"


def format_report(call_id: str | None, result: CallResult, header: dict[str, Any]) -> str:
    lines: list[str] = []
    verdict = "PASS" if result.passed else "FAIL"
    if result.fatal:
        verdict += " (fatal item)"
    title = f"Call {call_id}" if call_id else "Call"
    lines.append(f"{title}: score {result.score:g} - {verdict}")
    for key, value in header.items():
        if value not in (None, ""):
            lines.append(f"  {key}: {value}")
    lines.append(f"  rubric: {result.rubric_id} v{result.rubric_version}")
    lines.append("")
    if result.findings:
        lines.append(f"Findings ({len(result.findings)}):")
        for f in result.findings:
            mark = " [alert]" if f.alert else ""
            lines.append(
                f"  {_clock(f.start)}-{_clock(f.end)}  {f.severity}  -{f.deduct:g}  "
                f"{f.item_id} ({f.name}){mark}: {f.evidence}"
            )
    else:
        lines.append("Findings: none")
    lines.append("")
    metrics = result.metrics
    talk = metrics.get("talk_time_s", {})
    if talk:
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in talk.items())
        lines.append(f"Talk time: {parts}")
    for key, label in (("silence", "Silences"), ("overtalk", "Overtalk")):
        runs = metrics.get(key)
        if isinstance(runs, list):
            lines.append(f"{label}: {len(runs)}")
    lines.append("")
    lines.append("Transcript:")
    for u in result.transcript:
        who = SPEAKER_LABEL.get(u.speaker, u.speaker)
        lines.append(f"  {_clock(u.start)} {who}  {u.text}")
    return "\n".join(lines)
