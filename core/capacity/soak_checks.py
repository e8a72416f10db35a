"""What an overload soak proves, read from what the box stored and what the soak saw.

Each check is a line of the report with its figures and whether it held; anything lost (a
call not stored or not scored, an utterance dropped, a recording that differs from what
was sent, the daemon gone) fails the soak, and so does a claim not shown (memory growing
to the end, the backlog never on disk or still there, no 503 beyond the limit, an alert
past the deadline not marked late).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.capacity.sent_audio import compare_file
from core.capacity.soak import SoakRun

RSS_GROWTH_FRACTION = 0.10
RSS_GROWTH_MB = 64.0
"""Memory is bounded when its peak in the last third of the load is at most this much
(fraction, plus megabytes) above its peak before."""


@dataclass(frozen=True)
class Check:
    name: str
    held: bool
    figures: str


def stored_calls(db_path: Path) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Stored calls by SIP Call-ID, and what the database check found wrong."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        problems = []
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            problems.append(f"integrity_check: {integrity}")
        twice = con.execute(
            "SELECT count(*) FROM (SELECT 1 FROM findings GROUP BY call_id, item_id, start_s,"
            " end_s HAVING count(*) > 1 UNION ALL SELECT 1 FROM utterances"
            " GROUP BY call_id, speaker, start_s HAVING count(*) > 1)"
        ).fetchone()[0]  # fmt: skip
        if twice:
            problems.append(f"{twice} findings or utterances stored twice")
        rows = con.execute(
            "SELECT c.id, c.status, c.recording_path, c.meta, s.score,"
            " (SELECT count(*) FROM utterances u WHERE u.call_id = c.id) AS utterances"
            " FROM calls c LEFT JOIN scores s ON s.call_id = c.id"
        ).fetchall()  # fmt: skip
    finally:
        con.close()
    calls: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        item = dict(row)
        item["meta"] = json.loads(item["meta"] or "{}")
        calls.setdefault(str(item["meta"].get("sip_call_id", "")), []).append(item)
    return calls, problems


def check_soak(run: SoakRun) -> list[Check]:
    """Every check of the soak, in the order the report prints them."""
    checks = [_daemon(run), _memory(run), _backlog(run)]
    checks += _calls(run)
    checks += [_alerts(run), _limit(run)]
    return checks


def _daemon(run: SoakRun) -> Check:
    up = not run.died and run.exit_code == 0
    how = run.died or f"stopped with SIGTERM at the end, exit status {run.exit_code}"
    return Check("daemon stayed up", up, f"{run.load_s / 60:.1f} min of load; {how}")


def _memory(run: SoakRun) -> Check:
    load = [s for s in run.samples if s.mono - run.samples[0].mono <= run.load_s] if (
        run.samples) else []  # fmt: skip
    if len(load) < 3:
        return Check("peak RSS bounded", False, "too few memory samples")
    third = len(load) // 3
    before = max(s.rss_bytes for s in load[: 2 * third]) / 2**20
    last = max(s.rss_bytes for s in load[2 * third :]) / 2**20
    held = last <= before * (1 + RSS_GROWTH_FRACTION) + RSS_GROWTH_MB
    thirds = [max(s.rss_bytes for s in part) / 2**20
              for part in (load[:third], load[third : 2 * third], load[2 * third :])]  # fmt: skip
    return Check("peak RSS bounded", held,
                 f"peak {run.peak_rss_bytes / 2**20:,.0f} MB; peak per third of the load "
                 + " / ".join(f"{v:,.0f}" for v in thirds) + " MB")  # fmt: skip


def _backlog(run: SoakRun) -> Check:
    most = max(run.samples, key=lambda s: s.backlog_audio_s, default=None)
    on_disk = max((s.on_disk for s in run.samples), default=0)
    held = on_disk > 0 and run.drained and run.on_disk_at_end == 0
    figures = (
        f"most queued {most.backlog if most else 0} utterances "
        f"({max(most.backlog_audio_s, 0.0) if most else 0:.0f} s of audio), most on disk "
        f"{on_disk}; "
        f"{'all done' if run.drained else 'NOT done'} {run.drain_s:.0f} s after the load, "
        f"{max(run.on_disk_at_end, 0)} left on disk"
    )
    return Check("backlog went to disk and came back", held, figures)


def _calls(run: SoakRun) -> list[Check]:
    db = run.data_dir / "callqa.db"
    stored, db_problems = stored_calls(db) if db.is_file() else ({}, ["no database"])
    files = {}
    sent = []
    for call in run.load.calls:
        files[call["call_id"]] = run.files[call["index"] % len(run.files)]
        sent.append(call)
    for probe in run.probe_runs:
        for call in probe.calls:
            files[call["call_id"]] = run.probe_file
            sent.append(call)
    answered = [c for c in sent if c.get("status") == "ok"]
    refused_load = [c for c in run.load.calls if _refused(c)]
    failed_load = [c for c in run.load.calls if c.get("status") != "ok" and not _refused(c)]
    lost: list[str] = []
    utterances = heard = wordless = asr_errors = 0
    compared = samples = mismatches = incomplete = 0
    for call in answered:
        rows = stored.get(call["call_id"], [])
        if len(rows) != 1:
            lost.append(f"{call['call_id']}: stored {len(rows)} times")
            continue
        row = rows[0]
        if row["status"] != "scored" or row["score"] is None:
            lost.append(f"{call['call_id']}: {row['status']}, score {row['score']}")
        wordless += int((row["meta"].get("live") or {}).get("dropped_utterances") or 0)
        asr_errors += len(row["meta"].get("asr_errors") or [])
        utterances += int(row["utterances"])
        heard_here = run.heard.get(call["call_id"], 0)
        heard += heard_here
        if row["utterances"] < heard_here:
            lost.append(f"{call['call_id']}: {row['utterances']} utterances stored, "
                        f"{heard_here} transcribed live")  # fmt: skip
        path = Path(row["recording_path"] or "")
        if not path.is_file():
            lost.append(f"{call['call_id']}: no recording at {path}")
            continue
        result = compare_file(path, files[call["call_id"]], cut=False)
        compared += 1
        samples += result.samples_compared
        mismatches += result.mismatches
        incomplete += not result.complete
    stray = [r for rows in stored.values() for r in rows if r["status"] != "scored"]
    scored = Check(
        "every call ended scored, with all its utterances",
        not lost and not failed_load and not stray and asr_errors == 0,
        f"{len(answered)} calls answered ({len(run.load.calls)} placed as load, "
        f"{len(refused_load)} of them refused at the limit, {len(failed_load)} failed), "
        f"{sum(len(r) for r in stored.values())} stored, "
        f"{len(answered) - len(lost)} scored complete; {utterances} utterances stored, "
        f"{heard} transcripts heard live, {asr_errors} failed in the ASR, {wordless} without "
        "words (silence, noise)"
        + "".join(f"\n      {x}" for x in (lost + db_problems)[:10]),
    )  # fmt: skip
    database = Check("database intact, nothing stored twice", not db_problems,
                     "; ".join(db_problems) or "integrity_check ok, no finding or utterance "
                     "twice, every call once")  # fmt: skip
    recordings = Check(
        "recordings equal the audio sent, sample for sample",
        compared == len(answered) and mismatches == 0 and incomplete == 0 and compared > 0,
        f"{compared} calls compared, {samples:,} samples compared, {mismatches} mismatches, "
        f"{incomplete} incomplete",
    )  # fmt: skip
    return [scored, database, recordings]


def _alerts(run: SoakRun) -> Check:
    deadline_ms = 1000.0 * run.plan.deadline_s
    live = [a for a in run.alerts if a.live]
    past = [a for a in live if a.latency_ms > deadline_ms]
    wrong = [a for a in live if a.late != (a.latency_ms > deadline_ms)]
    return Check("alerts past the deadline marked late", not wrong,
                 f"{len(live)} alerts, {len(past)} past the {deadline_ms:.0f} ms deadline, "
                 f"{sum(a.late for a in live)} marked late, {len(wrong)} marked wrong")  # fmt: skip


def _limit(run: SoakRun) -> Check:
    offered = [c for r in run.probe_runs for c in r.calls]
    refused = [c for c in offered if _refused(c)]
    taken = [c for c in offered if c.get("status") == "ok"]
    other = len(offered) - len(refused) - len(taken)
    held = bool(refused) and other == 0
    return Check(
        "INVITEs beyond sip_max_sessions got 503 with Retry-After", held,
        f"{len(offered)} offered at the limit of {run.plan.lines}: {len(refused)} got 503 with "
        f"Retry-After, {len(taken)} found a line free between two calls, {other} other",
    )  # fmt: skip


def _refused(call: dict[str, Any]) -> bool:
    """Refused as the box should at its session limit: 503 with Retry-After (a load call too,
    when its line's next call came before the last one had ended; the SBC sends it elsewhere,
    nothing of it is lost)."""
    return call.get("sip_status") == 503 and bool(call.get("retry_after_s"))


def report(run: SoakRun, checks: list[Check]) -> str:
    lines = [f"overload soak: {run.plan.lines} lines for {run.plan.minutes:g} min "
             f"({run.load_s / 60:.1f} min of load), calls of {run.plan.call_s:g} s"]  # fmt: skip
    for check in checks:
        lines.append(f"  [{'ok' if check.held else 'FAIL'}] {check.name}: {check.figures}")
    return "\n".join(lines)
