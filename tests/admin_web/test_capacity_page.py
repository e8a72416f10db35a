"""The capacity page: the box now from a real `callqa serve`, stored benchmark runs with
their curves, and a real `callqa bench` started from the page, followed and cancelled (its
whole process group gone, both actions in the audit log).

Set CALLQA_SCREENSHOTS=DIR to keep screenshots (capacity_en.png, capacity_zh.png).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin_web import audit, create_app, site_db
from admin_web.bench_runner import group_alive
from core.capacity.ramp import RampOutcome, StepResult
from core.daemon.child import ServeProcess
from core.storage.benchmarks import save_benchmark
from core.storage.db import open_db
from tests.admin_web.conftest import login, make_user, post_form
from tests.admin_web.live_util import start_daemon


def _step(config: str, lines: int, p95: float, cores: float, held: bool) -> StepResult:
    return StepResult(
        config=config, lines=lines, calls_ok=lines, step_s=30.0, utterances=10 * lines,
        latency_p50_ms=p95 / 2, latency_p95_ms=p95, latency_p99_ms=p95 * 1.2,
        latency_max_ms=p95 * 1.5, server_latency_p95_ms=p95 * 0.9, backlog_first_half=0.5,
        backlog_second_half=0.5, backlog_max=2, backlog_growing=False, drained=True,
        drain_s=1.0, daemon_cores=cores,
        stage_cores={"asr": cores * 0.8, "receive": cores * 0.1, "rules": cores * 0.05},
        simulator_cores=0.1, sender_max_late_ms=1.0, cpu_ms_per_line_s=40.0, rss_peak_mb=600,
        packets_received=1000, packets_lost=0, packets_late=0, packets_malformed=0,
        kernel_drops=0, asr_busy_fraction=0.5, asr_audio_s=20.0, asr_audio_fraction=0.4,
        asr_batches=10, asr_mean_batch=2.0, asr_partials_skipped=0, transcripts_answered=10,
        early_used=4 if config == "callqa" else 0, receive_queue_kb=3.5, held=held,
        sustained=True,
    )  # fmt: skip


def store_bench(data_dir: Path) -> None:
    """What `callqa bench` stores: the callqa ramp, then the baseline's, one row each."""
    runs = {
        "callqa": [_step("callqa", n, p, c, p < 2000) for n, p, c in
                   ((1, 600, 0.3), (2, 700, 0.5), (4, 900, 0.9), (8, 1500, 1.6))],
        "baseline": [_step("baseline", n, p, c, p < 2000) for n, p, c in
                     ((1, 1800, 0.6), (2, 3500, 1.1))],
    }
    db = open_db(data_dir / "callqa.db")
    try:
        for config, steps in runs.items():
            outcome = RampOutcome(config=config, settings={}, steps=steps, asr_device="cpu",
                                  compute_type="int8", model_name="base",
                                  started_at="2025-09-08T01:00:00+00:00",
                                  finished_at="2025-09-08T01:30:00+00:00",
                                  summary=f"{config}: base on cpu (int8)")
            save_benchmark(db, outcome, kind=f"capacity-{config}")
    finally:
        db.close()


# ------------------------------------------------------------------ without a daemon


@pytest.mark.parametrize("role", ["inspector", "supervisor", "viewer"])
def test_only_administrators(client_as: Callable[[str], FlaskClient], role: str) -> None:
    client = client_as(role)
    for path in ("/capacity", "/capacity/now.json", "/capacity/bench.json"):
        assert client.get(path).status_code == 403, path
    assert post_form(client, "/capacity/bench", {"ladder": "1"}).status_code == 403
    assert post_form(client, "/capacity/bench/cancel", {}).status_code == 403


def test_start_needs_the_form_token(client_as: Callable[[str], FlaskClient]) -> None:
    client = client_as("admin")
    assert client.post("/capacity/bench", data={"ladder": "1", "step_s": "5"}).status_code == 400


def test_daemon_down_and_past_runs(client_as: Callable[[str], FlaskClient],
                                   data_dir: Path) -> None:
    store_bench(data_dir)
    client = client_as("admin")
    now = client.get("/capacity/now.json").get_json()
    assert now == {"up": False, "problem": "UNAVAILABLE"}
    page = client.get("/capacity").get_data(as_text=True)
    assert 'id="now-down"' in page and 'id="now-down" hidden' not in page
    cores = os.cpu_count() or 1
    assert f'<dd id="fact-cores">{cores}</dd>' in page
    # One benchmark: callqa beside its baseline, with the ratio of lines held.
    assert page.count('<tr data-run-id="') == 1
    assert "×8.0" in page  # 8 lines held against 1
    assert 'data-series="callqa"' in page and 'data-series="baseline"' in page
    run_id = page.split('<tr data-run-id="')[1].split('"')[0]
    detail = client.get(f"/capacity/runs/{run_id}")
    assert detail.status_code == 200
    text = detail.get_data(as_text=True)
    assert text.count("<svg") == 2 and "baseline: base on cpu (int8)" in text
    # Each step: its stage split (busiest first), memory, share of early decodes, sockets.
    rows = [r.split("</tr>")[0] for r in text.split('<tr data-lines="')[1:]]
    assert len(rows) == 6  # 4 steps of callqa, 2 of the baseline
    eight = rows[3]
    assert eight.startswith('8"') and "1,500 ms" in eight and "600 MB" in eight
    stages = eight.split('class="small stages">')[1].split("</td>")[0]
    assert stages.index("asr") < stages.index("receive") < stages.index("rules")
    assert "128" in stages and "16" in stages and "8" in stages
    assert ">40 %<" in eight and "3.5 KiB" in eight
    assert ">40 %<" not in rows[4] and ">—<" in rows[4]  # the baseline has no early decodes
    assert client.get("/capacity/runs/999").status_code == 404


def test_bad_parameters_are_refused(client_as: Callable[[str], FlaskClient],
                                    data_dir: Path) -> None:
    client = client_as("admin")
    for form in ({"ladder": "4,2", "step_s": "10"}, {"ladder": "1", "step_s": "1"},
                 {"ladder": "1", "step_s": "10", "recordings": "/etc"}):
        response = client.post("/capacity/bench", data={**form},
                               headers={"Accept": "application/json"})
        assert response.status_code == 400, form  # no token: CSRF first
        response = post_form(client, "/capacity/bench", form)
        assert response.status_code == 302
        assert client.get("/capacity/bench.json").get_json()["phase"] == "none"


# ------------------------------------------------------------------ a real daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path
           ) -> Iterator[ServeProcess]:
    data = tmp_path_factory.mktemp("cap") / "data"
    data.mkdir()
    serve = start_daemon(data, base_model_dir)
    yield serve
    serve.stop()


@pytest.mark.model
def test_the_box_now_from_a_real_daemon(daemon: ServeProcess) -> None:
    app = create_app({"DATA_DIR": str(daemon.data_dir), "TESTING": True,
                      "DAEMON_ADDRESS": daemon.address})
    make_user(daemon.data_dir, "alice", "admin")
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    now = client.get("/capacity/now.json").get_json()
    assert now["up"] is True
    assert now["live_lines"] == 0 and now["max_sessions"] > 0
    assert now["asr_device"] == "cpu" and now["model_name"]
    assert set(now["stage_cpu_s"]) >= {"receive", "asr", "grpc"}
    assert now["rss_mb"] > 10
    assert now["early_decodes"] >= now["early_used"] >= 0
    page = client.get("/capacity").get_data(as_text=True)
    assert 'id="now-down" hidden' in page
    assert f'<dd id="fact-device">{now["asr_device"]}</dd>' in page


# ------------------------------------------------------------------ a real benchmark


@pytest.fixture
def bench_app(data_dir: Path, base_model_dir: Path, monkeypatch: pytest.MonkeyPatch
              ) -> Iterator[Flask]:
    # The bench passes the box's model setting on to the daemons it starts.
    monkeypatch.setenv("CALLQA_MODEL", str(base_model_dir))
    app = create_app({"DATA_DIR": str(data_dir), "TESTING": True,
                      "DAEMON_ADDRESS": "127.0.0.1:9"})
    make_user(data_dir, "alice", "admin")
    yield app
    app.extensions["callqa_bench"].cancel("pytest", grace_s=5)


@pytest.mark.model
def test_a_real_bench_is_started_followed_and_cancelled(bench_app: Flask,
                                                        data_dir: Path) -> None:
    client = bench_app.test_client()
    assert login(client, "alice").status_code == 302
    response = post_form(client, "/capacity/bench",
                         {"ladder": "1,2", "step_s": "30", "recordings": "samples",
                          "baseline": "1"},
                         page="/capacity")
    assert response.status_code == 302
    status = client.get("/capacity/bench.json").get_json()
    assert status["running"] and status["phase"] in ("starting", "running")
    assert status["params"]["ladder"] == [1, 2] and status["steps_planned"] == 4
    pid = status["pid"]
    pgid = os.getpgid(pid)
    assert pgid == pid != os.getpgid(0), "the bench runs in a process group of its own"
    # Only one at a time.
    again = post_form(client, "/capacity/bench", {"ladder": "1", "step_s": "30"},
                      page="/capacity")
    assert again.status_code == 302
    assert client.get("/capacity/bench.json").get_json()["pid"] == pid
    # Wait until the bench has started its own `callqa serve` (in the same group).
    deadline = time.monotonic() + 180
    while not _serving(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    status = client.get("/capacity/bench.json").get_json()
    assert _serving(pgid), status["log"]
    assert any(line.startswith("callqa bench:") for line in status["log"]), status["log"]
    members = group_alive(pgid)
    cancel = client.post("/capacity/bench/cancel", headers={"Accept": "application/json"},
                         data={"csrf_token": _token(client)})
    assert cancel.status_code == 200
    assert cancel.get_json()["phase"] == "cancelled"
    assert group_alive(pgid) == []
    assert not Path(f"/proc/{pid}").exists()
    for member in members:
        assert not Path(f"/proc/{member}").exists() or _zombie(member)
    assert client.get("/capacity/bench.json").get_json()["running"] is False
    conn = site_db.connect(data_dir)
    try:
        actions = [(e["action"], e["username"]) for e in audit.entries(conn)]
    finally:
        conn.close()
    assert ("benchmark_started", "alice") in actions
    assert ("benchmark_cancelled", "alice") in actions
    assert actions.count(("benchmark_started", "alice")) == 1  # the refused one is not
    state = json.loads((data_dir / "bench" / "current.json").read_text())
    assert state["cancelled_by"] == "alice" and state["finished_at"]


def _serving(pgid: int) -> bool:
    for pid in group_alive(pgid):
        try:
            if b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                return True
        except OSError:
            pass
    return False


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


def _token(client: FlaskClient) -> str:
    from tests.admin_web.conftest import csrf_token

    return csrf_token(client, "/capacity")
