"""Dry run (试运行) of a draft rubric over stored calls.

Fast tests store calls the way `callqa score` does (real WAV recordings segmented by the
pipeline, texts in place of ASR, scored with default-zh), so the stored findings are the
rubric's own; the dry run's changes must then be exactly those between scoring the
original evidence with default-zh and with the draft. The `model`/`corpus` test scores two
corpus calls with the real `callqa score` (Whisper) and compares the dry run with a real
`callqa score --rubric draft.yaml` of the same files.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin_web import dryrun_engine, site_db
from admin_web.dryrun_engine import Selection
from admin_web.timeline_cache import cache_path
from core.calls import CallEvidence, Finding
from core.rubric import evaluate
from core.rubric.defaults import builtin_rubrics
from core.storage.db import open_db
from tests.admin_web.conftest import StoredCall, post_form
from tests.core.timeline_calls import (
    default_rubric,
    draft_rubric,
    draft_yaml,
    scored_evidence,
    store_scored,
    write_call,
)

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
# (variant, agent, team, started, keep timelines)
SYNTH_CALLS = (
    (0, "A01", "T1", "2025-09-10T09:00:00+08:00", True),
    (1, "A02", "T1", "2025-09-10T10:00:00+08:00", True),
    (2, "A05", "T2", "2025-09-10T11:00:00+08:00", False),
)


def key(f: dict[str, Any] | Finding) -> tuple[str, int, int]:
    if isinstance(f, Finding):
        return (f.item_id, round(f.start * 1000), round(f.end * 1000))
    start = f["start"] if "start" in f else f["start_s"]
    end = f["end"] if "end" in f else f["end_s"]
    return (f["item_id"], round(float(start) * 1000), round(float(end) * 1000))


def stored_findings(data_dir: Path, call_id: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(data_dir / "callqa.db")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(
            "SELECT seq, item_id, start_s, end_s FROM findings WHERE call_id = ? ORDER BY seq",
            [call_id])]
    finally:
        conn.close()


def after_findings(data_dir: Path, row: dict[str, Any]) -> Counter[tuple[str, int, int]]:
    """The draft's findings of a call as the dry run says: stored - removed + added."""
    keys = Counter(key(f) for f in stored_findings(data_dir, row["call_id"]))
    keys.subtract(key(f) for f in row["removed"])
    keys.update(key(f) for f in row["added"])
    return +keys


@pytest.fixture
def synth(data_dir: Path, calls: list[StoredCall]) -> dict[str, CallEvidence]:
    """Three calls scored from real recordings (two with timelines, one stored as before
    timelines were kept), beside the four stock calls; their original evidence by id."""
    db = open_db(data_dir / "callqa.db")
    out: dict[str, CallEvidence] = {}
    try:
        for variant, agent, team, started, keep in SYNTH_CALLS:
            wav = write_call(data_dir / "incoming" / f"v{variant}.wav", variant)
            evidence = scored_evidence(wav, variant)
            call_id = store_scored(db, evidence, wav, agent=agent, team=team, started=started,
                                   keep_timelines=keep)
            out[call_id] = evidence
    finally:
        db.close()
    return out


def run_rows(data_dir: Path, run_id: int) -> dict[str, dict[str, Any]]:
    conn = site_db.connect(data_dir)
    try:
        found, _total = dryrun_engine.call_changes(conn, run_id, which="all", page_size=1000)
        return {r["call_id"]: r for r in found}
    finally:
        conn.close()


def get_run(data_dir: Path, run_id: int) -> dict[str, Any]:
    conn = site_db.connect(data_dir)
    try:
        run = dryrun_engine.get_run(conn, run_id)
        assert run is not None
        return run
    finally:
        conn.close()


def start(client: FlaskClient, data: dict[str, Any]) -> int:
    response = post_form(client, "/dryrun/start", data, page="/dryrun/")
    assert response.status_code == 302, response.get_data(as_text=True)
    run_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    dryrun_engine.join(run_id, timeout=300)
    return run_id


def last_calls(n: int, draft: str) -> dict[str, Any]:
    return {"source": "yaml", "yaml": draft, "mode": "last", "last": str(n)}


# ---------------------------------------------------------------- changes


def test_the_dry_run_changes_are_those_of_scoring_again(
        client_as: Callable[[str], FlaskClient], data_dir: Path,
        synth: dict[str, CallEvidence]) -> None:
    client = client_as("admin")
    run_id = start(client, {**last_calls(3, draft_yaml()), "mode": "filter", "since": "2025-09-10"})
    run = get_run(data_dir, run_id)
    assert run["state"] == "done" and run["done"] == run["total"] == 3
    rows = run_rows(data_dir, run_id)
    assert set(rows) == set(synth)
    draft, default = draft_rubric(), default_rubric()
    some_change = False
    for call_id, evidence in synth.items():
        want = evaluate(draft, evidence)
        before = evaluate(default, evidence)
        row = rows[call_id]
        assert after_findings(data_dir, row) == Counter(key(f) for f in want.findings)
        assert Counter(key(f) for f in row["removed"]) == \
            Counter(key(f) for f in before.findings) - Counter(key(f) for f in want.findings)
        assert row["score_before"] == before.score
        assert row["score_after"] == want.score
        assert bool(row["passed_after"]) == want.passed
        assert bool(row["fatal_after"]) == want.fatal
        assert row["error"] is None
        some_change = some_change or bool(row["added"] or row["removed"])
    assert some_change
    # Two calls had their timelines stored; one was derived from its recording.
    assert sorted(r["timeline"] for r in rows.values()) == ["derived", "stored", "stored"]
    assert cache_path(data_dir).is_file()
    summary = run["summary"]
    assert summary["calls"] == 3
    assert summary["changed"] == sum(1 for r in rows.values() if r["changed"])
    flips = sum(1 for r in rows.values() if r["passed_before"] and not r["passed_after"])
    assert summary["pass_to_fail"] == flips


def test_a_call_without_timelines_scores_the_same_derived_then_cached(
        client_as: Callable[[str], FlaskClient], data_dir: Path,
        synth: dict[str, CallEvidence]) -> None:
    client = client_as("admin")
    selection = {**last_calls(3, draft_yaml()), "mode": "filter", "since": "2025-09-10"}
    first = run_rows(data_dir, start(client, selection))
    # Every call stored like an old one: delete the timeline rows (the test may write).
    conn = sqlite3.connect(data_dir / "callqa.db")
    conn.execute("DELETE FROM leg_timelines")
    conn.commit()
    conn.close()
    second = run_rows(data_dir, start(client, selection))
    third = run_rows(data_dir, start(client, selection))
    for call_id in synth:
        for later in (second, third):
            assert later[call_id]["added"] == first[call_id]["added"]
            assert later[call_id]["removed"] == first[call_id]["removed"]
            assert later[call_id]["score_after"] == first[call_id]["score_after"]
    assert Counter(r["timeline"] for r in second.values()) == {"derived": 2, "cached": 1}
    assert Counter(r["timeline"] for r in third.values()) == {"cached": 3}


def test_the_stock_calls_run_too_and_teams_shift(
        client_as: Callable[[str], FlaskClient], data_dir: Path,
        calls: list[StoredCall]) -> None:
    """The stock calls (findings made by hand, no timelines) score again from their
    recordings; the summary has a row per team with its mean before and after."""
    client = client_as("admin")
    run_id = start(client, {"source": "stored", "rubric_id": "default-zh", "version": "1",
                            "mode": "last", "last": "10"})
    run = get_run(data_dir, run_id)
    assert run["state"] == "done" and run["total"] == 4
    teams = {t["team_id"]: t for t in run["summary"]["teams"]}
    assert set(teams) == {"T1", "T2"}
    rows = run_rows(data_dir, run_id)
    for team, t in teams.items():
        mine = [r for r in rows.values() if r["team_id"] == team]
        assert t["calls"] == len(mine) == 2
        assert t["mean_before"] == pytest.approx(sum(r["score_before"] for r in mine) / 2)
        assert t["mean_after"] == pytest.approx(sum(r["score_after"] for r in mine) / 2)
        assert t["shift"] == pytest.approx(t["mean_after"] - t["mean_before"])
    # The hand-made insult finding is not in any transcript: the rubric drops it.
    fatal = next(c for c in calls if c.agent == "A01")
    assert any(f["item_id"] == "insult" for f in rows[fatal.id]["removed"])
    assert rows[fatal.id]["passed_before"] == 0


# ---------------------------------------------------------------- inspectors' verdicts


def review(data_dir: Path, call_id: str, verdicts: dict[int, str],
           added: list[tuple[str, float, float]], state: str = "reviewed") -> None:
    conn = site_db.connect(data_dir)
    try:
        with site_db.write(conn):
            conn.execute("INSERT INTO call_reviews (call_id, state, reviewer, round,"
                         " updated_at) VALUES (?, ?, 'ivan', 1, '2025-09-11T00:00:00Z')",
                         [call_id, state])
            for seq, verdict in verdicts.items():
                item = conn.execute("SELECT item_id FROM cq.findings WHERE call_id = ?"
                                    " AND seq = ?", [call_id, seq]).fetchone()[0]
                conn.execute("INSERT INTO finding_verdicts (call_id, finding_seq, item_id,"
                             " verdict, username, at) VALUES (?, ?, ?, ?, 'ivan', 'now')",
                             [call_id, seq, item, verdict])
            for item, s, e in added:
                conn.execute("INSERT INTO added_findings (call_id, item_id, start_s, end_s,"
                             " username, at) VALUES (?, ?, ?, ?, 'ivan', 'now')",
                             [call_id, item, s, e])
    finally:
        conn.close()


def test_precision_per_item_against_the_verdicts(
        client_as: Callable[[str], FlaskClient], data_dir: Path,
        synth: dict[str, CallEvidence]) -> None:
    """Reject every finding the draft removes on the first call but one, confirm that one
    and every other finding; add as missed one finding the draft has and one it has not."""
    draft, default = draft_rubric(), default_rubric()
    call_id, evidence = next(iter(synth.items()))
    before = evaluate(default, evidence).findings
    after = evaluate(draft, evidence).findings
    after_keys = Counter(key(f) for f in after)
    stored = stored_findings(data_dir, call_id)
    gone = [f for f in stored if key(f) not in after_keys]
    assert len(stored) == len(before) and len(gone) >= 2
    verdicts = {int(f["seq"]): "confirmed" for f in stored}
    for f in gone[1:]:
        verdicts[int(f["seq"])] = "rejected"
    new = [f for f in after if key(f) not in Counter(key(g) for g in stored)]
    assert new, "the draft must add a finding on this call"
    missed = [(new[0].item_id, new[0].start + 0.2, new[0].end), ("greeting", 30.0, 31.0)]
    review(data_dir, call_id, verdicts, missed)
    # A review still going on does not count.
    other = next(c for c in synth if c != call_id)
    review(data_dir, other, {0: "rejected"} if stored_findings(data_dir, other) else {}, [],
           state="in_review")

    run_id = start(client_as("admin"),
                   {**last_calls(3, draft_yaml()), "mode": "filter", "since": "2025-09-10"})
    summary = get_run(data_dir, run_id)["summary"]
    assert summary["reviewed"] == 1
    items = {i["item_id"]: i for i in summary["items"]}
    expect: dict[str, Counter[str]] = {}
    gone_seqs = {int(f["seq"]) for f in gone}
    for f in stored:
        c = expect.setdefault(f["item_id"], Counter())
        verdict = verdicts[int(f["seq"])]
        c[verdict] += 1
        if int(f["seq"]) in gone_seqs:
            c[f"removed_{verdict}"] += 1
    for item_id, c in expect.items():
        got = items[item_id]
        for k in ("confirmed", "rejected", "removed_confirmed", "removed_rejected"):
            assert got[k] == c[k], (item_id, k)
        judged = c["confirmed"] + c["rejected"]
        assert got["precision_before"] == pytest.approx(c["confirmed"] / judged)
        kept = (c["confirmed"] - c["removed_confirmed"]) + (c["rejected"] - c["removed_rejected"])
        if kept:
            assert got["precision_after"] == pytest.approx(
                (c["confirmed"] - c["removed_confirmed"]) / kept)
        else:
            assert got["precision_after"] is None
    totals = summary["totals"]
    assert totals["removed_rejected"] == len(gone) - 1
    assert totals["removed_confirmed"] == 1
    assert totals["missed"] == 2 and totals["caught"] == 1
    assert items[new[0].item_id]["caught"] == 1
    # The page says it in words, and marks the removed findings with their verdicts.
    page = client_as("admin").get(f"/dryrun/{run_id}?calls=all").get_data(as_text=True)
    assert (f"this change would remove {len(gone) - 1} findings that inspectors rejected"
            " and 1 they confirmed") in page
    assert "rejected by inspector" in page and "confirmed by inspector" in page
    assert "It finds 1 of the 2 findings inspectors added as missed." in page


# ---------------------------------------------------------------- progress and cancel


def new_run(data_dir: Path, call_ids: list[str]) -> int:
    conn = site_db.connect(data_dir)
    try:
        return dryrun_engine.create_run(
            conn, username="alice", rubric=draft_rubric(), yaml_text=draft_yaml(),
            rubric_version=None, selection=Selection(mode="last", last=len(call_ids)),
            total=len(call_ids))
    finally:
        conn.close()


def all_ids(data_dir: Path) -> list[str]:
    conn = site_db.connect(data_dir)
    try:
        return dryrun_engine.select_call_ids(conn, Selection(mode="last", last=100),
                                             team_scope=None)
    finally:
        conn.close()


def test_progress_is_reported_and_a_cancel_stops_the_run(
        client_as: Callable[[str], FlaskClient], data_dir: Path,
        synth: dict[str, CallEvidence]) -> None:
    ids = all_ids(data_dir)
    assert len(ids) == 7
    run_id = new_run(data_dir, ids)
    client = client_as("admin")
    queued = client.get(f"/dryrun/{run_id}/progress").get_json()
    assert queued == {"id": run_id, "state": "queued", "done": 0, "total": 7, "percent": 0.0,
                      "cancel_requested": False, "error": None, "finished": False}
    page = client.get(f"/dryrun/{run_id}").get_data(as_text=True)
    assert 'id="dryrun-progress"' in page and "js/dryrun.js" in page

    seen: list[tuple[int, int, dict[str, Any]]] = []

    def hook(done: int, total: int) -> None:
        seen.append((done, total, client.get(f"/dryrun/{run_id}/progress").get_json()))
        if done == 2:  # the user presses Cancel after two calls
            response = post_form(client, f"/dryrun/{run_id}/cancel", {},
                                 page=f"/dryrun/{run_id}")
            assert response.status_code == 302

    state = dryrun_engine.run(data_dir, run_id, ids, chunk=1, hook=hook)
    assert state == "cancelled"
    assert [(d, t) for d, t, _ in seen] == [(1, 7), (2, 7)]
    assert all(p["state"] == "running" and p["total"] == 7 for _, _, p in seen)
    done = client.get(f"/dryrun/{run_id}/progress").get_json()
    assert done["state"] == "cancelled" and done["done"] == 2 and done["finished"]
    assert done["cancel_requested"] is True
    assert len(run_rows(data_dir, run_id)) == 2
    assert get_run(data_dir, run_id)["summary"]["calls"] == 2
    page = client.get(f"/dryrun/{run_id}").get_data(as_text=True)
    assert "Cancelled after 2 of 7 calls" in page
    # A finished run cannot be cancelled again.
    again = post_form(client, f"/dryrun/{run_id}/cancel", {}, page=f"/dryrun/{run_id}")
    assert again.status_code == 302
    conn = site_db.connect(data_dir)
    try:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_log"
                                              " WHERE action LIKE 'dryrun%'")]
    finally:
        conn.close()
    assert actions == ["dryrun_cancel"]


def test_a_run_cancelled_before_it_starts_scores_nothing(
        client_as: Callable[[str], FlaskClient], data_dir: Path,
        calls: list[StoredCall]) -> None:
    ids = all_ids(data_dir)
    run_id = new_run(data_dir, ids)
    client = client_as("admin")
    response = client.post(f"/dryrun/{run_id}/cancel", headers={"Accept": "application/json"})
    assert response.status_code == 400  # no CSRF token
    response = post_form(client, f"/dryrun/{run_id}/cancel", {}, page=f"/dryrun/{run_id}")
    assert response.status_code == 302
    assert dryrun_engine.run(data_dir, run_id, ids) == "cancelled"
    run = get_run(data_dir, run_id)
    assert (run["done"], run["total"]) == (0, 4)
    assert run_rows(data_dir, run_id) == {}


def test_a_run_whose_thread_died_shows_as_interrupted(
        client_as: Callable[[str], FlaskClient], data_dir: Path,
        calls: list[StoredCall]) -> None:
    run_id = new_run(data_dir, all_ids(data_dir))
    conn = site_db.connect(data_dir)
    with site_db.write(conn):
        conn.execute("UPDATE dry_runs SET state = 'running', heartbeat_at ="
                     " '2025-01-01T00:00:00+00:00' WHERE id = ?", [run_id])
    conn.close()
    state = client_as("admin").get(f"/dryrun/{run_id}/progress").get_json()
    assert state["state"] == "interrupted" and state["finished"]


# ---------------------------------------------------------------- starting, permissions


def test_only_administrators_dry_run(client_as: Callable[[str], FlaskClient],
                                     data_dir: Path, calls: list[StoredCall]) -> None:
    run_id = new_run(data_dir, all_ids(data_dir))
    for role in ("inspector", "supervisor", "viewer"):
        client = client_as(role)
        assert "/dryrun/" not in client.get("/").get_data(as_text=True)
        assert client.get("/dryrun/").status_code == 403
        assert client.get(f"/dryrun/{run_id}").status_code == 403
        response = client.get(f"/dryrun/{run_id}/progress",
                              headers={"Accept": "application/json"})
        assert response.status_code == 403
        assert response.get_json()["error"]["status"] == 403
        response = post_form(client, "/dryrun/start", last_calls(5, draft_yaml()))
        assert response.status_code == 403
        response = post_form(client, f"/dryrun/{run_id}/cancel", {})
        assert response.status_code == 403
    admin = client_as("admin")
    assert 'href="/dryrun/"' in admin.get("/").get_data(as_text=True)
    assert admin.get("/dryrun/").status_code == 200
    missing = admin.get("/dryrun/9999/progress", headers={"Accept": "application/json"})
    assert missing.status_code == 404 and missing.get_json()["error"]["status"] == 404


def test_from_the_rubric_editor_the_form_comes_first(
        client_as: Callable[[str], FlaskClient], data_dir: Path,
        calls: list[StoredCall]) -> None:
    client = client_as("admin")
    response = post_form(client, "/dryrun/start", {"rubric_id": "default-zh", "version": "1"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<option value="default-zh|1" selected' in page
    response = post_form(client, "/dryrun/start", {"yaml": draft_yaml("draft-zh")})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "draft-zh" in page
    assert 'name="source" value="yaml" checked' in page


@pytest.mark.parametrize(("data", "message"), [
    ({"source": "yaml", "yaml": "format: 1\nid: x\n", "mode": "last", "last": "5"},
     "The rubric does not load"),
    ({"source": "stored", "rubric_id": "default-zh", "version": "7", "mode": "last",
      "last": "5"}, "There is no stored rubric default-zh version 7."),
    ({"source": "yaml", "yaml": draft_yaml(), "mode": "last", "last": "0"},
     "The number of calls must be a whole number from 1 to 20000."),
    ({"source": "yaml", "yaml": draft_yaml(), "mode": "filter", "team": "T9"},
     "No scored call matches this selection."),
    ({"source": "yaml", "yaml": draft_yaml(), "mode": "filter", "since": "10/09/2025"},
     "A date must be written YYYY-MM-DD."),
])
def test_a_bad_start_says_what_is_wrong(client_as: Callable[[str], FlaskClient],
                                        calls: list[StoredCall], data: dict[str, str],
                                        message: str) -> None:
    response = post_form(client_as("admin"), "/dryrun/start", data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_the_start_is_audited_and_the_result_page_shows_in_both_languages(
        client_as: Callable[[str], FlaskClient], app: Flask, data_dir: Path,
        synth: dict[str, CallEvidence]) -> None:
    client = client_as("admin")
    run_id = start(client, {"source": "stored", "rubric_id": "default-zh", "version": "1",
                            "mode": "filter", "team": "T1", "limit": "50"})
    run = get_run(data_dir, run_id)
    assert run["total"] == 4  # T1: two stock calls and two synthetic ones
    assert run["rubric_version"] == 1
    conn = site_db.connect(data_dir)
    entry = conn.execute("SELECT username, detail FROM audit_log WHERE action = 'dryrun_start'"
                         ).fetchone()
    conn.close()
    detail = json.loads(entry[1])
    assert entry[0] == "alice" and detail["run"] == run_id and detail["calls"] == 4
    page = client.get(f"/dryrun/{run_id}").get_data(as_text=True)
    for part in ('id="dryrun-summary"', 'id="dryrun-teams"', 'id="dryrun-items"',
                 'id="dryrun-calls"', "Score shift per team"):
        assert part in page
    assert 'data-team="T2"' not in page
    post_form(client, "/language", {"language": "zh", "next": f"/dryrun/{run_id}"})
    page = client.get(f"/dryrun/{run_id}").get_data(as_text=True)
    assert 'lang="zh-CN"' in page and 'id="dryrun-items"' in page
    runs = client.get("/dryrun/").get_data(as_text=True)
    assert f'data-run-id="{run_id}"' in runs


# ---------------------------------------------------------------- real calls, real Whisper


def _callqa(data: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "core.cli", "--data-dir", str(data), *args],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.model
@pytest.mark.corpus
def test_the_dry_run_equals_a_real_callqa_score_with_the_draft(tmp_path: Path) -> None:
    """dev002 and dev006 scored by `callqa score` (Whisper base, default-zh); the dry run
    of a draft over them against `callqa score --rubric draft.yaml` of the same files:
    the same findings (item, start, end) and the same scores, with the timelines stored and
    with them deleted (derived from the recordings)."""
    data = tmp_path / "data"
    draft_file = tmp_path / "draft.yaml"
    draft_file.write_text(draft_yaml("draft-zh"), encoding="utf-8")
    want: dict[str, dict[str, Any]] = {}
    for name, team in (("dev002", "T1"), ("dev006", "T2")):
        wav = CORPUS / f"{name}.wav"
        stored = json.loads(_callqa(data, "score", str(wav), "--agent", "A01", "--team", team,
                                    "--json", "--quiet"))
        want[stored["call_id"]] = json.loads(_callqa(
            data, "score", str(wav), "--rubric", str(draft_file), "--no-store", "--json",
            "--quiet"))

    from admin_web import create_app
    from tests.admin_web.conftest import login, make_user

    app = create_app({"DATA_DIR": str(data), "TESTING": True, "DAEMON_ADDRESS": "127.0.0.1:9"})
    make_user(data, "alice", "admin")
    client = app.test_client()
    assert login(client, "alice").status_code == 302

    def check(run_id: int, source: str) -> None:
        run = get_run(data, run_id)
        assert run["state"] == "done" and run["total"] == 2
        rows = run_rows(data, run_id)
        assert set(rows) == set(want)
        for call_id, result in want.items():
            row = rows[call_id]
            assert row["timeline"] == source
            assert after_findings(data, row) == Counter(key(f) for f in result["findings"])
            assert row["score_after"] == result["score"]
            assert bool(row["passed_after"]) == result["passed"]
            assert bool(row["fatal_after"]) == result["fatal"]

    selection = {"source": "yaml", "yaml": draft_yaml("draft-zh"), "mode": "last", "last": "5"}
    first = start(client, selection)
    check(first, "stored")
    assert sum(len(r["added"]) + len(r["removed"]) for r in run_rows(data, first).values())
    old = tmp_path / "old"
    shutil.copytree(data, old)
    conn = sqlite3.connect(old / "callqa.db")
    conn.execute("DELETE FROM leg_timelines")
    conn.commit()
    conn.close()
    data = old
    app = create_app({"DATA_DIR": str(data), "TESTING": True, "DAEMON_ADDRESS": "127.0.0.1:9"})
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    check(start(client, selection), "derived")
    assert builtin_rubrics()  # the draft came from default-zh
