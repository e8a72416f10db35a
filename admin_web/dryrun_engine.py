"""Dry runs (试运行): a draft rubric scored over stored calls, in a thread of the site.

Nothing is transcribed again: each call's stored transcript and voice timelines are put
back together as the evidence it was scored from (`core.storage.evidence`), the draft runs
over it (`core.scoring.rescore`), and the result is compared with what is stored
(`admin_web.dryrun_results`). A call stored before timelines were kept gets them derived
from its recording once, and cached by the site (`admin_web.timeline_cache`).

The run's state lives in the site database (``dry_runs``, ``dry_run_calls``), so its page
survives reloads: the thread writes its progress and results every `PROGRESS_EVERY_S`, and
checks there whether someone asked it to stop. A run whose thread died with the site (no
heartbeat for `STALE_S`) is shown as interrupted.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flask_babel import gettext as _

from admin_web import site_db
from admin_web.calls_data import FROM_CALLS, CallFilter
from admin_web.dryrun_results import ROW_COLUMNS, CallChange, Totals, compare, reviews_of
from admin_web.site_db import one, rows, write
from admin_web.timeline_cache import TimelineCache
from core.clock import utc_now_iso
from core.rubric import Rubric, load_rubric_text
from core.scoring.rescore import NoRecordingError, derive_timelines, rescore
from core.storage.evidence import StoredCall, stored_calls
from core.storage.timelines import CallTimelines

logger = logging.getLogger(__name__)

CHUNK = 50
"""Calls read and scored per step (between two progress writes at most)."""
PROGRESS_EVERY_S = 0.5
STALE_S = 60.0
MAX_CALLS = 20_000
DEFAULT_LAST = 200
ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("done", "cancelled", "failed")

ProgressHook = Callable[[int, int], None]


class DryRunError(ValueError):
    """A dry run cannot start: the message says why, for the user."""


# ---------------------------------------------------------------- which calls


@dataclass
class Selection:
    """The calls of a dry run: the last `last` scored calls, or those matching a filter
    (the call list's filters), newest first, at most `limit`."""

    mode: str = "last"
    last: int = DEFAULT_LAST
    limit: int = MAX_CALLS
    filters: dict[str, Any] = field(default_factory=dict)

    FILTER_FIELDS = ("since", "until", "team", "agent", "result", "item", "call_source",
                     "min_score", "max_score")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Selection:
        return cls(mode=str(data.get("mode", "last")), last=int(data.get("last", DEFAULT_LAST)),
                   limit=int(data.get("limit", MAX_CALLS)), filters=dict(data.get("filters", {})))

    def call_filter(self) -> CallFilter:
        f = self.filters
        return CallFilter(since=f.get("since"), until=f.get("until"), team=f.get("team"),
                          agent=f.get("agent"), result=f.get("result"), item=f.get("item"),
                          source=f.get("call_source"), min_score=f.get("min_score"),
                          max_score=f.get("max_score"))


def _count(raw: str) -> int:
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_CALLS:
        raise DryRunError(_("The number of calls must be a whole number from 1 to %(most)s.",
                            most=MAX_CALLS))
    return n


def selection_from_form(form: Any) -> Selection:
    """The selection of the start form; DryRunError names a bad field."""
    mode = form.get("mode", "last")
    if mode == "last":
        return Selection(mode="last", last=_count(form.get("last", "") or "0"))
    if mode != "filter":
        raise DryRunError(_("Choose which calls to score."))
    filters: dict[str, Any] = {}
    for name in Selection.FILTER_FIELDS:
        value = (form.get(name) or "").strip()
        if not value:
            continue
        if name in ("min_score", "max_score"):
            try:
                filters[name] = float(value)
            except ValueError:
                raise DryRunError(_("A score must be a number.")) from None
        elif name in ("since", "until"):
            if not (len(value) == 10 and value[4] == "-" and value[7] == "-"
                    and value.replace("-", "").isdigit()):
                raise DryRunError(_("A date must be written YYYY-MM-DD."))
            filters[name] = value
        elif name == "result" and value not in ("passed", "failed"):
            raise DryRunError(_("Choose which calls to score."))
        else:
            filters[name] = value[:100]
    limit = _count(form.get("limit", "") or str(MAX_CALLS))
    return Selection(mode="filter", limit=limit, filters=filters)


def select_call_ids(conn: Any, selection: Selection, *, team_scope: str | None) -> list[str]:
    """The ids of the scored calls `selection` takes, newest first."""
    flt = selection.call_filter() if selection.mode == "filter" else CallFilter()
    clauses, params = flt.where(team_scope)
    clauses.append("s.call_id IS NOT NULL")
    limit = selection.last if selection.mode == "last" else selection.limit
    sql = ("SELECT c.id" + FROM_CALLS + " WHERE " + " AND ".join(clauses)
           + " ORDER BY c.started_at DESC, c.id DESC LIMIT ?")
    return [r[0] for r in conn.execute(sql, [*params, min(limit, MAX_CALLS)])]


# ---------------------------------------------------------------- the rubric


def rubric_versions(conn: Any) -> list[dict[str, Any]]:
    """Every stored rubric version, newest first per rubric (for the start form)."""
    return rows(conn, "SELECT rubric_id, version, active, created_at FROM cq.rubric_versions"
                " ORDER BY rubric_id, version DESC")


def draft_rubric(conn: Any, *, rubric_id: str | None, version: int | None,
                 yaml_text: str | None) -> tuple[Rubric, str, int | None]:
    """(rubric, its YAML, stored version or None) from a stored version or from YAML text."""
    if yaml_text and yaml_text.strip():
        text = yaml_text.replace("\r\n", "\n")
        stored_version = None
    else:
        if not rubric_id or version is None:
            raise DryRunError(_("Choose a stored rubric version or paste a draft rubric."))
        row = one(conn, "SELECT yaml FROM cq.rubric_versions WHERE rubric_id = ? AND version = ?",
                  [rubric_id, int(version)])
        if row is None:
            raise DryRunError(_("There is no stored rubric %(rubric)s version %(version)s.",
                                rubric=rubric_id, version=version))
        text, stored_version = str(row["yaml"]), int(version)
    try:
        rubric = load_rubric_text(text)
    except ValueError as exc:  # RubricError lists every problem
        raise DryRunError(_("The rubric does not load: %(problems)s", problems=str(exc))) from exc
    return rubric, text, stored_version


# ---------------------------------------------------------------- runs


def create_run(conn: Any, *, username: str, rubric: Rubric, yaml_text: str,
               rubric_version: int | None, selection: Selection, total: int) -> int:
    with write(conn):
        cur = conn.execute(
            "INSERT INTO dry_runs (created_by, created_at, rubric_id, rubric_version,"
            " rubric_yaml, selection, state, total, heartbeat_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
            [username, utc_now_iso(), rubric.id, rubric_version, yaml_text,
             json.dumps(selection.to_json()), total, utc_now_iso()],
        )
        return int(cur.lastrowid or 0)


def _age_s(stamp: str | None) -> float:
    if not stamp:
        return float("inf")
    when = dt.datetime.fromisoformat(stamp)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (dt.datetime.now(dt.UTC) - when).total_seconds()


def get_run(conn: Any, run_id: int) -> dict[str, Any] | None:
    """The run's row with its summary and selection parsed; ``shown_state`` is its state,
    or 'interrupted' for an active run without a thread alive nor a recent heartbeat."""
    run = one(conn, "SELECT * FROM dry_runs WHERE id = ?", [run_id])
    if run is None:
        return None
    run["summary"] = json.loads(run["summary"] or "{}")
    run["selection"] = json.loads(run["selection"] or "{}")
    shown = run["state"]
    if shown in ACTIVE_STATES and not is_alive(run_id) and _age_s(run["heartbeat_at"]) > STALE_S:
        shown = "interrupted"
    run["shown_state"] = shown
    run["percent"] = (run["done"] / run["total"]) if run["total"] else 0.0
    return run


def list_runs(conn: Any, limit: int = 20) -> list[dict[str, Any]]:
    out = []
    for r in rows(conn, "SELECT id FROM dry_runs ORDER BY id DESC LIMIT ?", [limit]):
        run = get_run(conn, int(r["id"]))
        if run is not None:
            out.append(run)
    return out


def request_cancel(conn: Any, run_id: int) -> bool:
    """Ask the run to stop; False when it is over already."""
    with write(conn):
        cur = conn.execute("UPDATE dry_runs SET cancel_requested = 1 WHERE id = ?"
                           f" AND state IN ({', '.join('?' * len(ACTIVE_STATES))})",
                           [run_id, *ACTIVE_STATES])
        return bool(cur.rowcount)


def call_changes(conn: Any, run_id: int, *, which: str = "changed", page: int = 1,
                 page_size: int = 50) -> tuple[list[dict[str, Any]], int]:
    """One page of the run's calls ('changed', 'flips' or 'all'), biggest shift first."""
    where = {"changed": " AND changed = 1",
             "flips": " AND changed = 1 AND passed_before IS NOT passed_after",
             "errors": " AND error IS NOT NULL"}.get(which, "")
    total = int(conn.execute(f"SELECT COUNT(*) FROM dry_run_calls WHERE run_id = ?{where}",
                             [run_id]).fetchone()[0])
    found = rows(conn, f"SELECT * FROM dry_run_calls WHERE run_id = ?{where}"
                 " ORDER BY ABS(COALESCE(score_after, 0) - COALESCE(score_before, 0)) DESC,"
                 " started_at DESC, call_id LIMIT ? OFFSET ?",
                 [run_id, page_size, (max(1, page) - 1) * page_size])
    reviews = reviews_of(conn, [r["call_id"] for r in found])
    for r in found:
        r["added"] = json.loads(r["added"] or "[]")
        r["removed"] = json.loads(r["removed"] or "[]")
        review = reviews.get(r["call_id"])
        for f in r["removed"]:
            f["verdict"] = review.verdicts.get(int(f["seq"])) if review else None
    return found, total


# ---------------------------------------------------------------- the thread


_threads: dict[int, threading.Thread] = {}
_threads_lock = threading.Lock()


def is_alive(run_id: int) -> bool:
    with _threads_lock:
        t = _threads.get(run_id)
    return t is not None and t.is_alive()


def busy() -> bool:
    """Whether a dry run is going on in this process (one at a time: the box is shared
    with the daemon)."""
    with _threads_lock:
        return any(t.is_alive() for t in _threads.values())


def start(data_dir: Path, run_id: int, call_ids: list[str]) -> threading.Thread:
    thread = threading.Thread(target=run, args=(Path(data_dir), run_id, call_ids),
                              name=f"dryrun-{run_id}", daemon=True)
    with _threads_lock:
        _threads[run_id] = thread
    thread.start()
    return thread


def join(run_id: int, timeout: float | None = None) -> None:
    with _threads_lock:
        t = _threads.get(run_id)
    if t is not None:
        t.join(timeout)


class _Timelines:
    """Each call's timelines: stored, else cached, else derived (and cached), else none."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.cache: TimelineCache | None = None

    def resolve(self, calls: list[StoredCall]) -> dict[str, tuple[CallTimelines | None, str]]:
        out: dict[str, tuple[CallTimelines | None, str]] = {}
        missing = []
        for c in calls:
            if c.timelines is not None:
                out[c.id] = (c.timelines, "stored")
            else:
                missing.append(c)
        if not missing:
            return out
        if self.cache is None:
            self.cache = TimelineCache(self.data_dir)
        cached = self.cache.get_many([c.id for c in missing])
        for c in missing:
            tl = cached.get(c.id)
            if tl is not None:
                out[c.id] = (tl, "cached")
                continue
            try:
                if not c.recording_path:
                    raise NoRecordingError(f"call {c.id} has no recording")
                tl = derive_timelines(c.recording_path, c.meta, c.language or "zh")
            except Exception as exc:  # no recording, or one that cannot be read
                level = logging.INFO if isinstance(exc, NoRecordingError) else logging.WARNING
                logger.log(level, "dry run: %s: %s; its utterances stand in for its timelines",
                           c.id, exc)
                out[c.id] = (None, "none")
                continue
            self.cache.put(c.id, tl)
            out[c.id] = (tl, "derived")
        return out

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()


def run(data_dir: Path, run_id: int, call_ids: list[str], *, chunk: int = CHUNK,
        hook: ProgressHook | None = None) -> str:
    """Carry out dry run `run_id` over `call_ids`; returns its final state.

    `hook(done, total)` is called after each step (tests and benchmarks use it).
    """
    conn = site_db.connect(data_dir)
    sources = _Timelines(data_dir)
    started = time.perf_counter()
    state = "failed"
    try:
        row = one(conn, "SELECT rubric_yaml, cancel_requested FROM dry_runs WHERE id = ?",
                  [run_id])
        if row is None:
            return state
        total = len(call_ids)
        if row["cancel_requested"]:
            call_ids = []
        with write(conn):
            conn.execute("UPDATE dry_runs SET state = 'running', total = ?, heartbeat_at = ?"
                         " WHERE id = ?", [total, utc_now_iso(), run_id])
        rubric = load_rubric_text(row["rubric_yaml"])
        totals = Totals()
        for item in rubric.items:
            totals.names[item.id] = item.label
        pending: list[CallChange] = []
        done = 0
        last_write = 0.0
        state = "done"
        for i in range(0, len(call_ids), chunk):
            part = call_ids[i : i + chunk]
            calls = stored_calls(conn, part, schema=site_db.CALLS_SCHEMA)
            timelines = sources.resolve(calls)
            reviews = reviews_of(conn, [c.id for c in calls])
            for call in calls:
                tl, source = timelines[call.id]
                try:
                    change = compare(call, rescore(rubric, call, tl), source)
                except Exception as exc:  # one bad call must not stop the run
                    logger.exception("dry run %d: call %s", run_id, call.id)
                    change = compare(call, None, source, error=f"{type(exc).__name__}: {exc}")
                totals.add(call, change, reviews.get(call.id))
                pending.append(change)
            done += len(part)
            now = time.perf_counter()
            if now - last_write >= PROGRESS_EVERY_S:
                last_write = now
                _flush(conn, run_id, pending, done)
                pending = []
            if hook is not None:
                hook(done, len(call_ids))
            if _cancel_requested(conn, run_id):
                break
        _flush(conn, run_id, pending, done)
        if _cancel_requested(conn, run_id) or row["cancel_requested"]:
            state = "cancelled"
        with write(conn):
            conn.execute(
                "UPDATE dry_runs SET state = ?, done = ?, summary = ?, finished_at = ?,"
                " heartbeat_at = ?, elapsed_s = ? WHERE id = ?",
                [state, done, json.dumps(totals.to_json(), ensure_ascii=False), utc_now_iso(),
                 utc_now_iso(), time.perf_counter() - started, run_id],
            )
        return state
    except Exception as exc:
        logger.exception("dry run %d failed", run_id)
        with write(conn):
            conn.execute("UPDATE dry_runs SET state = 'failed', error = ?, finished_at = ?,"
                         " elapsed_s = ? WHERE id = ?",
                         [f"{type(exc).__name__}: {exc}", utc_now_iso(),
                          time.perf_counter() - started, run_id])
        return "failed"
    finally:
        sources.close()
        conn.close()


def _cancel_requested(conn: Any, run_id: int) -> bool:
    flag = conn.execute("SELECT cancel_requested FROM dry_runs WHERE id = ?", [run_id]).fetchone()
    return bool(flag and flag[0])


def _flush(conn: Any, run_id: int, changes: list[CallChange], done: int) -> None:
    """Write the calls scored since the last flush, and the progress."""
    marks = ", ".join("?" for _ in ROW_COLUMNS)
    with write(conn):
        conn.executemany(
            f"INSERT OR REPLACE INTO dry_run_calls ({', '.join(ROW_COLUMNS)}) VALUES ({marks})",
            [c.row(run_id) for c in changes],
        )
        conn.execute("UPDATE dry_runs SET done = ?, heartbeat_at = ? WHERE id = ?",
                     [done, utc_now_iso(), run_id])
