"""A rubric change from the editor to a live call, in a real browser.

An administrator lowers an item's deduction in the rubric form, saves the draft through the
running daemon, dry-runs it on stored calls (scored by the real pipeline) and reads which
calls change, activates it, and a SIPREC call placed to the daemon afterwards is scored with
the new version: its finding of that item deducts the new amount.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from werkzeug.serving import make_server

from admin_web import create_app
from core.ports import free_port
from tests.admin_web.browser import click, css, login, make_driver, wait_for
from tests.admin_web.conftest import PASSWORD, make_user
from tests.admin_web.live_util import seed_agents, start_daemon
from tests.admin_web.test_live import _place_siprec_call

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
# Stored calls for the dry run: both lack the closing phrase (labels of the corpus).
STORED = (("dev002", "A04", "T1"), ("dev006", "A02", "T1"))
CLOSING_INDEX = 1      # `closing` is the second item of default-zh
NEW_DEDUCT = 2         # default-zh deducts 5

pytestmark = [pytest.mark.browser, pytest.mark.model, pytest.mark.corpus, pytest.mark.sipp]


def _score(data: Path, name: str, agent: str, team: str) -> None:
    labels = json.loads((CORPUS / f"{name}.json").read_text(encoding="utf-8"))
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "--data-dir", str(data), "score",
         str(CORPUS / f"{name}.wav"), "--agent", agent, "--team", team,
         "--started-at", labels["started_at"], "--quiet"],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr


def _closing_deducts(db: Path) -> dict[str, tuple[int | None, float]]:
    conn = sqlite3.connect(db)
    try:
        return {row[0]: (row[1], row[2]) for row in conn.execute(
            "SELECT c.agent_id, s.rubric_version, f.deduct FROM calls c"
            " JOIN scores s ON s.call_id = c.id"
            " JOIN findings f ON f.call_id = c.id AND f.item_id = 'closing'")}
    finally:
        conn.close()


def _corpus_call_ids(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        agents = [a for _, a, _ in STORED]
        marks = ",".join("?" * len(agents))
        return {r[0] for r in conn.execute(
            f"SELECT id FROM calls WHERE agent_id IN ({marks})", agents)}
    finally:
        conn.close()


def test_edit_dry_run_activate_and_a_live_call_uses_it(tmp_path: Path,
                                                        base_model_dir: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, agent, team in STORED:
        _score(data, name, agent, team)
    before = _closing_deducts(data / "callqa.db")
    assert {a: d for a, (_, d) in before.items()} == {"A04": 5.0, "A02": 5.0}
    seed_agents(data)
    daemon = start_daemon(data, base_model_dir)
    app = create_app({"DATA_DIR": str(data), "DAEMON_ADDRESS": daemon.address})
    make_user(data, "alice", "admin", language="en")
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    driver = make_driver()
    try:
        login(driver, base, "alice", PASSWORD)
        # 1. Edit the item in the form and save a draft through the daemon.
        driver.get(base + "/rubrics/edit/default-zh")
        field = css(driver, f"[name='items-{CLOSING_INDEX}-deduct']")
        field.clear()
        field.send_keys(str(NEW_DEDUCT))
        click(driver, "#form-save")
        wait_for(lambda: "/rubrics/view/default-zh" in driver.current_url, what="saved")
        versions = [int(r.get_attribute("data-version")) for r in
                    driver.find_elements(By.CSS_SELECTOR, "#version-table tr[data-version]")]
        draft = max(versions)
        # 2. Dry-run the draft on the stored calls and read the changes.
        click(driver, "#dryrun-form #dryrun-start")
        css(driver, "input[name=mode][value=last]").click()
        click(driver, "#dryrun-form #dryrun-start")
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#dryrun-summary"),
                 timeout_s=120, what="dry run finished")
        # Both corpus calls change (their missing closing now deducts less); the stand-in
        # calls that only tell the daemon each agent's team may change too.
        assert int(css(driver, "#kpi-changed").text.strip()) >= 2
        changed = {r.get_attribute("data-call-id") for r in driver.find_elements(
            By.CSS_SELECTOR, "#dryrun-calls tr[data-call-id]")}
        assert _corpus_call_ids(data / "callqa.db") <= changed
        assert css(driver, "#dryrun-items tr[data-item='closing']").is_displayed()
        # The stored calls themselves are untouched by a dry run.
        assert _closing_deducts(data / "callqa.db") == before
        # 3. Activate the draft.
        driver.get(f"{base}/rubrics/view/default-zh?version={draft}")
        click(driver, f".activate-form button[data-version='{draft}']")
        wait_for(lambda: not driver.find_elements(
            By.CSS_SELECTOR, f".activate-form button[data-version='{draft}']"),
            what="activated")
        # 4. A SIPREC call placed now is scored with the active version.
        caller = _place_siprec_call(daemon, tmp_path / "call")
        assert caller.wait(120) == 0
        stored = wait_for(lambda: _closing_deducts(data / "callqa.db").get("1001"),
                          timeout_s=180, what="the live call stored")
        assert stored == (draft, float(NEW_DEDUCT))
    finally:
        driver.quit()
        server.shutdown()
        daemon.stop()
