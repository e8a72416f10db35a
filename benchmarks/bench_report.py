"""Quality reports over 100,000 stored calls: query and page times, with and without indexes.

    python benchmarks/bench_report.py [--calls 100000] [--runs 5] [--keep DIR]

Builds a temporary data folder: ``callqa.db`` with its schema from `core.storage.db.open_db`
(every migration, the report indexes of version 5 included), filled directly with SQL: 10
teams of 10 agents, `--calls` scored calls spread over 90 days, each with 0-6 findings of the
built-in Chinese rubric's items and a score computed from them, with score rows as wide as
real ones (category scores, scoring and metrics JSON); and the site's ``admin.db`` with 2% of
the calls reviewed (verdicts on their findings), for the agreement figures.

Then it times, as the median of `--runs` runs after one warm-up, for the center over all 90
days (every stored call), the center over a month, a team over a month and an agent over a
month:

* ``query``: `admin_web.report_data.report` (every figure of the report and of the period
  before it, the daily trend, the agreement);
* ``page``: ``GET /reports`` through the Flask app as an administrator (the queries, the
  template, the chart data), and ``GET /reports/export.csv``;

first with the database as `open_db` leaves it, then with the version 5 indexes dropped (the
baseline, measured in the same run on the same file), and prints both and their ratio. The
target is a page under 2 s for the report over every call.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from admin_web import create_app, report_data, site_db, users
from core.rubric.defaults import builtin_rubrics, default_rubric
from core.storage import repository
from core.storage.db import open_db
from core.storage.migrations import REPORT_INDEXES

TEAMS = 10
AGENTS_PER_TEAM = 10
DAYS = 90
FIRST_DAY = "2025-06-01"
PASSWORD = "bench password 1"


def _blob(rnd: random.Random, size: int) -> str:
    return json.dumps({"pad": "".join(rnd.choice("abcdefgh") for _ in range(size))})


def fill(data_dir: Path, n_calls: int, seed: int = 1) -> dict[str, int]:
    """The calls database and the site database, filled with SQL; returns row counts."""
    rnd = random.Random(seed)
    rubric = default_rubric("zh")
    items = [i for i in rubric.items]
    db = open_db(data_dir / "callqa.db")
    version = repository.record_rubric_version(db, "default-zh", builtin_rubrics()["default-zh"])
    conn = db.conn
    now = "2025-09-01T00:00:00+00:00"
    conn.execute("BEGIN")
    teams = [f"T{t:02d}" for t in range(1, TEAMS + 1)]
    agents = [(f"A{t:02d}{a:02d}", team) for t, team in enumerate(teams, 1)
              for a in range(1, AGENTS_PER_TEAM + 1)]
    conn.executemany("INSERT INTO teams (id, name, created_at) VALUES (?, ?, ?)",
                     [(t, t, now) for t in teams])
    conn.executemany("INSERT INTO agents (id, name, team_id, created_at) VALUES (?, ?, ?, ?)",
                     [(a, a, t, now) for a, t in agents])
    # Each agent has habits: a few items fire more often for them.
    habits = {a: set(rnd.sample([i.id for i in items], 3)) for a, _ in agents}
    meta = json.dumps({"agent_channel": "left", "channels": 2, "pad": "x" * 120})
    calls, scores, findings = [], [], []
    category_blob, scoring_blob, metrics_blob = (_blob(rnd, 80), _blob(rnd, 640),
                                                 _blob(rnd, 2200))
    for n in range(n_calls):
        agent, team = agents[rnd.randrange(len(agents))]
        day = rnd.randrange(DAYS)
        secs = rnd.randrange(86400)
        started = f"{_day(day)}T{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}+00:00"
        call_id = f"c{n:07d}"
        calls.append((call_id, "siprec", "scored", started, 180.0, f"/rec/{call_id}.wav",
                      agent, team, "zh", meta, now, now))
        deducted, fatal, seq = 0.0, False, 0
        for item in items:
            p = 0.04 + (0.35 if item.id in habits[agent] else 0.0)
            if item.fatal:
                p = 0.003
            if rnd.random() >= p:
                continue
            deducted += item.deduct
            fatal = fatal or item.fatal
            findings.append((call_id, seq, item.id, item.label, item.kind, item.category,
                             "agent", item.severity, item.deduct, 10.0 * seq, 10.0 * seq + 2,
                             "evidence text of a finding", int(item.alert), "{}"))
            seq += 1
        score = 0.0 if fatal else max(0.0, rubric.total - deducted)
        scores.append((call_id, "default-zh", version, score, int(not fatal and score >=
                       rubric.pass_score), int(fatal), deducted, category_blob, scoring_blob,
                       metrics_blob, now))
    conn.executemany(
        "INSERT INTO calls (id, source, status, started_at, duration_s, recording_path,"
        " agent_id, team_id, language, meta, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", calls)
    conn.executemany(
        "INSERT INTO scores (call_id, rubric_id, rubric_version, score, passed, fatal,"
        " deducted, category_scores, scoring, metrics, scored_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", scores)
    conn.executemany(
        "INSERT INTO findings (call_id, seq, item_id, name, kind, category, speaker, severity,"
        " deduct, start_s, end_s, evidence, alert, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", findings)
    conn.execute("COMMIT")
    db.close()

    site_db.prepare(data_dir)
    site = site_db.connect(data_dir)
    reviewed = rnd.sample(range(n_calls), n_calls // 50)
    with site_db.write(site):
        for n in reviewed:
            call_id = f"c{n:07d}"
            machine = scores[n][3]
            delta = rnd.choice([0, 0, 0, 5, -5, 10])
            site.execute(
                "INSERT INTO call_reviews (call_id, state, reviewer, round, machine_score,"
                " reviewed_score, reviewed_passed, updated_at)"
                " VALUES (?, 'reviewed', 'ivan', 1, ?, ?, ?, ?)",
                [call_id, machine, min(100.0, max(0.0, machine + delta)),
                 int(machine + delta >= rubric.pass_score), now])
            for seq, item_id in site.execute(
                    "SELECT seq, item_id FROM cq.findings WHERE call_id = ?", [call_id]
            ).fetchall():
                site.execute("INSERT INTO finding_verdicts VALUES (?, ?, ?, ?, '', 'ivan', ?)",
                             [call_id, seq, item_id,
                              "rejected" if rnd.random() < 0.15 else "confirmed", now])
    users.create_user(site, "bench", PASSWORD, "admin", None, "en", None)
    site.close()
    return {"calls": len(calls), "findings": len(findings), "reviewed": len(reviewed)}


def _day(offset: int) -> str:
    import datetime as dt

    return (dt.date.fromisoformat(FIRST_DAY) + dt.timedelta(days=offset)).isoformat()


def median_s(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm-up: the page cache, the rubric cache
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


CASES: tuple[tuple[str, str], ...] = (
    ("center, 90 days (every call)",
     f"level=center&period=custom&since={FIRST_DAY}&until={_day(DAYS - 1)}"),
    ("center, one month", "level=center&period=month&date=2025-07-15"),
    ("team, one month", "level=team&team=T03&period=month&date=2025-07-15"),
    ("agent, one month", "level=agent&agent=A0305&period=month&date=2025-07-15"),
)


def _scope_period(query: str) -> tuple[report_data.Scope, report_data.Period]:
    import datetime as dt

    args = dict(p.split("=", 1) for p in query.split("&"))
    level = args["level"]
    agent = args.get("agent")
    team = args.get("team") or (f"T{agent[1:3]}" if agent else None)
    if args["period"] == "custom":
        period = report_data.make_period("custom", dt.date.fromisoformat(args["since"]),
                                         dt.date.fromisoformat(args["since"]),
                                         dt.date.fromisoformat(args["until"]))
    else:
        period = report_data.make_period(args["period"], dt.date.fromisoformat(args["date"]))
    return report_data.Scope(level, team, agent, None), period


def measure(data_dir: Path, runs: int) -> dict[str, dict[str, float]]:
    app = create_app({"DATA_DIR": str(data_dir), "TESTING": True,
                      "DAEMON_ADDRESS": "127.0.0.1:9", "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    login = client.post("/login", data={"username": "bench", "password": PASSWORD})
    assert login.status_code == 302, login.status_code
    out: dict[str, dict[str, float]] = {}
    for name, query in CASES:
        scope, period = _scope_period(query)
        conn = site_db.connect(data_dir)
        figures: dict[str, Any] = {}

        def run_query(conn: sqlite3.Connection = conn, scope: report_data.Scope = scope,
                      period: report_data.Period = period,
                      figures: dict[str, Any] = figures) -> None:
            figures.update(report_data.report(conn, scope, period))

        def page(query: str = query) -> None:
            response = client.get(f"/reports?{query}")
            assert response.status_code == 200, response.status_code

        def export(query: str = query) -> None:
            response = client.get(f"/reports/export.csv?{query}&what=problems")
            assert response.status_code == 200, response.status_code

        out[name] = {"query": median_s(run_query, runs), "page": median_s(page, runs),
                     "csv": median_s(export, runs), "calls": figures["summary"]["calls"]}
        conn.close()
    return out


def drop_report_indexes(data_dir: Path) -> list[str]:
    conn = sqlite3.connect(data_dir / "callqa.db")
    names = [name for name, _sql in REPORT_INDEXES]
    for name in names:
        conn.execute(f"DROP INDEX IF EXISTS {name}")
    conn.commit()
    conn.close()
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build the data here and keep it")
    args = parser.parse_args(argv)
    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        counts = fill(data_dir, args.calls)
        size_mb = (data_dir / "callqa.db").stat().st_size / 1e6
        print(f"built {counts['calls']:,} calls, {counts['findings']:,} findings,"
              f" {counts['reviewed']:,} reviewed calls ({size_mb:.0f} MB) in"
              f" {time.perf_counter() - t0:.1f} s; median of {args.runs} runs after a warm-up")
        with_indexes = measure(data_dir, args.runs)
        dropped = drop_report_indexes(data_dir)
        baseline = measure(data_dir, args.runs)
        print(f"baseline: the same database without the version 5 indexes ({', '.join(dropped)})")
        print(f"{'report':<30} {'calls':>7}  {'':<6} {'indexed':>9} {'baseline':>9} {'ratio':>6}")
        for name, _query in CASES:
            now, before = with_indexes[name], baseline[name]
            for key in ("query", "page", "csv"):
                print(f"{name if key == 'query' else '':<30} "
                      f"{int(now['calls']) if key == 'query' else '':>7}  {key:<6} "
                      f"{now[key]:>8.3f}s {before[key]:>8.3f}s {before[key] / now[key]:>5.1f}x")
        worst = with_indexes[CASES[0][0]]["page"]
        print(f"page over every call: {worst:.3f} s ({'under' if worst < 2 else 'OVER'} 2 s)")
    finally:
        if args.keep is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
