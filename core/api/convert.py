"""Between the daemon's data (core.calls, core.live.events, stored rows) and the API's
messages (proto/callqa.proto)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from core.calls import CallResult, Finding, Utterance, asr_confidence
from core.live.call import LiveCall
from core.live.events import CallEvent, LiveAlert, TranscriptLine
from proto import callqa_pb2 as pb

SPEAKERS: dict[str, Any] = {"agent": pb.SPEAKER_AGENT, "customer": pb.SPEAKER_CUSTOMER}
SPEAKER_NAMES = {v: k for k, v in SPEAKERS.items()}
SEVERITIES: dict[str, Any] = {"A": pb.SEVERITY_A, "B": pb.SEVERITY_B, "C": pb.SEVERITY_C}
SEVERITY_NAMES = {v: k for k, v in SEVERITIES.items()}
SOURCES: dict[str, Any] = {
    "siprec": pb.CALL_SOURCE_SIPREC, "sip": pb.CALL_SOURCE_SIP, "grpc": pb.CALL_SOURCE_GRPC,
    "mirror": pb.CALL_SOURCE_MIRROR, "file": pb.CALL_SOURCE_FILE, "pcap": pb.CALL_SOURCE_PCAP,
}  # fmt: skip
STATUSES: dict[str, Any] = {
    "live": pb.CALL_STATUS_LIVE, "recorded": pb.CALL_STATUS_RECORDED,
    "scoring": pb.CALL_STATUS_SCORING, "scored": pb.CALL_STATUS_SCORED,
    "failed": pb.CALL_STATUS_FAILED, "ending": pb.CALL_STATUS_ENDING,
    "interrupted": pb.CALL_STATUS_INTERRUPTED,
}  # fmt: skip
STATUS_NAMES = {v: k for k, v in STATUSES.items()}
END_REASONS = {
    "end": pb.END_REASON_END_MESSAGE, "half_close": pb.END_REASON_HALF_CLOSE,
    "cancelled": pb.END_REASON_CANCELLED, "rtp_timeout": pb.END_REASON_IDLE_TIMEOUT,
    "shutdown": pb.END_REASON_SHUTDOWN, "error": pb.END_REASON_ERROR,
}  # fmt: skip


def ts(value: float | str | None) -> Timestamp | None:
    """A Timestamp from epoch seconds or an ISO 8601 text (None stays None)."""
    if value is None or value == "":
        return None
    out = Timestamp()
    if isinstance(value, str):
        when = dt.datetime.fromisoformat(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        out.FromDatetime(when.astimezone(dt.UTC))
    else:
        out.FromNanoseconds(int(value * 1e9))
    return out


def iso(stamp: Timestamp) -> str:
    return stamp.ToDatetime(tzinfo=dt.UTC).isoformat(timespec="seconds")


def speaker(name: str | None) -> Any:
    return SPEAKERS.get(name or "", pb.SPEAKER_ANY)


def utterance(u: Utterance, *, partial: bool = False, seq: int = 0) -> pb.Utterance:
    msg = pb.Utterance(speaker=speaker(u.speaker), start_s=u.start, end_s=u.end, text=u.text,
                       partial=partial, seq=seq)  # fmt: skip
    if u.level_db is not None:
        msg.level_db = u.level_db
    _opt(msg, "confidence", u.confidence)
    if u.checks:
        msg.phrase_checks_json = json.dumps([c.to_json() for c in u.checks], ensure_ascii=False)
    return msg


def finding(f: Finding) -> pb.Finding:
    msg = pb.Finding(
        item_id=f.item_id, item_name=f.name, kind=f.kind, category=f.category or "",
        severity=SEVERITIES.get(f.severity, pb.SEVERITY_UNSPECIFIED), speaker=speaker(f.speaker),
        start_s=f.start, end_s=f.end, evidence=f.evidence, deduct_points=f.deduct,
        alert=f.alert, detail_json=json.dumps(f.detail, ensure_ascii=False) if f.detail else "",
    )  # fmt: skip
    _opt(msg, "confidence", f.confidence)
    return msg


def alert(a: LiveAlert) -> pb.Alert:
    f = a.finding
    msg = pb.Alert(
        alert_id=a.alert_id, call_id=a.call_id, agent_id=a.agent_id or "",
        team_id=a.team_id or "", item_id=f.item_id, item_name=f.name, kind=f.kind,
        category=f.category or "", severity=SEVERITIES.get(f.severity, pb.SEVERITY_UNSPECIFIED),
        speaker=speaker(f.speaker), start_s=f.start, end_s=f.end, evidence=f.evidence,
        deduct_points=f.deduct, utterance_end_at=ts(a.utterance_end_at),
        raised_at=ts(a.raised_at), latency_ms=a.latency_ms, late=a.late, live=a.live,
    )  # fmt: skip
    _opt(msg, "confidence", f.confidence)
    return msg


def scored(result: CallResult) -> pb.CallScored:
    return pb.CallScored(
        score=result.score, passed=result.passed, fatal=result.fatal,
        finding_count=len(result.findings),
        category_scores={k: float(v) for k, v in result.category_scores.items()},
    )  # fmt: skip


def event(e: CallEvent, call: LiveCall | None = None) -> pb.CallEvent:
    msg = pb.CallEvent(call_id=e.call_id, emitted_at=ts(e.emitted_at))
    if e.kind == "started":
        msg.started.CopyFrom(pb.CallStarted(
            rubric_id=e.data["rubric_id"], rubric_version=e.data["rubric_version"] or 0,
            external_call_id=(call.setup.external_id or "") if call else "",
            started_at=ts(call.started_at) if call else None,
            language=call.language if call else "",
        ))  # fmt: skip
    elif e.kind == "transcript":
        line: TranscriptLine = e.data
        msg.transcript.utterance.CopyFrom(utterance(line.utterance, partial=line.partial,
                                                    seq=line.seq))  # fmt: skip
        msg.transcript.latency_ms = line.latency_ms or 0.0
        msg.transcript.leg_start_s = line.leg_start_s
    elif e.kind == "finding":
        msg.finding.finding.CopyFrom(finding(e.data))
    elif e.kind == "alert":
        msg.alert.CopyFrom(alert(e.data))
    elif e.kind == "scored":
        msg.scored.CopyFrom(scored(e.data))
    elif e.kind == "ended":
        stored = e.data.get("status") in ("stored", "not kept")
        msg.ended.CopyFrom(pb.CallEnded(
            status=pb.CALL_STATUS_SCORED if stored else pb.CALL_STATUS_FAILED,
            reason=END_REASONS.get(e.data.get("reason") or "", pb.END_REASON_UNSPECIFIED),
            detail=f"{e.data.get('reason')}: {e.data.get('status')}",
            duration_s=call.duration_s if call else 0.0,
        ))  # fmt: skip
    return msg


def live_call(call: LiveCall) -> pb.LiveCall:
    msg = pb.LiveCall(
        call_id=call.call_id, source=SOURCES.get(call.setup.source, pb.CALL_SOURCE_UNSPECIFIED),
        agent_id=call.agent_id or "", team_id=call.team_id or "",
        started_at=ts(call.started_at), duration_s=call.duration_s,
        rubric_id=call.rubric.id, rubric_version=call.rubric_version or 0,
        utterance_count=len(call.utterances), finding_count=len(call.raised),
        alert_count=len(call.alerts), asr_backlog_utterances=max(0, call.pending_asr),
    )  # fmt: skip
    if call.setup.leg_stats is not None:
        try:
            stats = call.setup.leg_stats()
        except Exception:
            stats = {}
        for role, (received, lost) in stats.items():
            leg = pb.LEG_AGENT if role == "agent" else pb.LEG_CUSTOMER
            msg.legs.append(pb.LegStats(leg=leg, packets_received=received, packets_lost=lost))
    return msg


def _opt(msg: Any, name: str, value: Any) -> None:
    if value is not None:
        setattr(msg, name, value)


def stored_summary(row: dict[str, Any]) -> pb.CallSummary:
    msg = pb.CallSummary(
        call_id=row["id"], source=SOURCES.get(row.get("source") or "", 0),
        status=STATUSES.get(row.get("status") or "", 0), started_at=ts(row.get("started_at")),
        agent_id=row.get("agent_id") or "", team_id=row.get("team_id") or "",
        language=row.get("language") or "", rubric_id=row.get("rubric_id") or "",
    )  # fmt: skip
    for name in ("duration_s", "rubric_version", "score", "passed", "fatal"):
        _opt(msg, name, row.get(name))
    return msg


def stored_call(row: dict[str, Any]) -> pb.Call:
    msg = pb.Call(
        call_id=row["id"], source=SOURCES.get(row.get("source") or "", 0),
        status=STATUSES.get(row.get("status") or "", 0), started_at=ts(row.get("started_at")),
        agent_id=row.get("agent_id") or "", team_id=row.get("team_id") or "",
        language=row.get("language") or "", caller=row.get("caller") or "",
        callee=row.get("callee") or "", recording_path=row.get("recording_path") or "",
        rubric_id=row.get("rubric_id") or "",
        category_scores={k: float(v) for k, v in (row.get("category_scores") or {}).items()},
        metrics_json=json.dumps(row.get("metrics") or {}, ensure_ascii=False),
        metadata_json=json.dumps(row.get("meta") or {}, ensure_ascii=False),
        scored_at=ts(row.get("scored_at")),
    )  # fmt: skip
    for name in ("duration_s", "rubric_version", "score", "passed", "fatal"):
        _opt(msg, name, row.get(name))
    for f in row.get("findings") or []:
        msg.findings.append(pb.Finding(
            item_id=f["item_id"], item_name=f.get("name") or "", kind=f.get("kind") or "",
            category=f.get("category") or "",
            severity=SEVERITIES.get(f.get("severity") or "", 0), speaker=speaker(f["speaker"]),
            start_s=f["start_s"], end_s=f["end_s"], evidence=f.get("evidence") or "",
            deduct_points=f.get("deduct") or 0.0, alert=bool(f.get("alert")),
            detail_json=json.dumps(f["detail"], ensure_ascii=False) if f.get("detail") else "",
        ))  # fmt: skip
        _opt(msg.findings[-1], "confidence", f.get("confidence"))
    for i, u in enumerate(row.get("utterances") or []):
        m = pb.Utterance(speaker=speaker(u["speaker"]), start_s=u["start_s"], end_s=u["end_s"],
                         text=u["text"] or "", seq=i)  # fmt: skip
        _opt(m, "level_db", u.get("level_db"))
        _opt(m, "confidence", asr_confidence(u.get("avg_logprob")))
        if u.get("checks"):
            m.phrase_checks_json = json.dumps(u["checks"], ensure_ascii=False)
        msg.transcript.append(m)
    return msg
