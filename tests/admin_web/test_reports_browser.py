"""Reports and search in a real browser (Debian's headless Chromium), against `callqa admin
serve` over the stock calls (conftest: real recordings, transcripts stored by core).

* A supervisor opens the report (their team's), the charts are drawn, and the summary CSV
  fetched by the page's own export link holds, agent by agent, what the calls database says.
* An inspector searches 投诉, follows the first hit and lands on the call with the player at
  the hit's time and its transcript line current.

Set CALLQA_SCREENSHOTS=DIR to keep screenshots.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from admin_web import site_db
from core.daemon.child import free_port
from tests.admin_web.browser import click, css, login, make_driver, shot, wait_for
from tests.admin_web.conftest import PASSWORD, make_user, stock_calls

SHOTS = Path(os.environ["CALLQA_SCREENSHOTS"]) if os.environ.get("CALLQA_SCREENSHOTS") else None

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("reports-browser")
    stock_calls(data)
    site_db.prepare(data)
    make_user(data, "sam", "supervisor", team="T1")
    make_user(data, "ivan", "inspector")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "--data-dir", str(data), "admin", "serve",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "CALLQA_ADMIN_DAEMON_ADDRESS": "127.0.0.1:9"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: urllib.request.urlopen(base + "/login", timeout=2).status == 200,
                 what="the admin web")
        yield base, data
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _fetch_bytes(driver, href: str) -> bytes:  # type: ignore[no-untyped-def]
    """GET a link of the page with the page's own session; the body's bytes as sent."""
    values = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(function (r) {"
        "  return r.arrayBuffer(); }).then(function (b) {"
        "  done(Array.prototype.slice.call(new Uint8Array(b))); },"
        "  function (e) { done('ERROR ' + e); });", href)
    assert isinstance(values, list), values
    return bytes(values)


def test_team_report_charts_and_csv(site: tuple[str, Path]) -> None:
    base, data = site
    driver = make_driver()
    try:
        login(driver, base, "sam", PASSWORD)
        click(driver, "#nav-reports")
        scope = css(driver, "#report-scope")
        assert scope.get_attribute("data-level") == "team" and "T1" in scope.text
        charts = wait_for(lambda: driver.execute_script(
            "var r = window.callqaReport; if (!r) { return null; }"
            "return Object.keys(r.charts).map(function (id) {"
            "  var c = r.charts[id]; return [id, c.getWidth(), c.getHeight()]; });"),
            what="charts drawn")
        drawn = {c[0]: (c[1], c[2]) for c in charts}
        assert set(drawn) == {"chart-trend", "chart-abc", "chart-heatmap"}
        main_width = driver.execute_script(
            "return document.querySelector('main').clientWidth")
        assert all(w > 200 and h > 150 for w, h in drawn.values())
        assert drawn["chart-trend"][0] > 0.8 * main_width  # sized to the page
        assert not driver.find_elements(By.CSS_SELECTOR, "#report-filters option[value=center]")
        shot(driver, SHOTS, "reports-team")

        href = css(driver, "#export-summary").get_attribute("href")
        assert "level=team" in href and "team=T1" in href
        body = _fetch_bytes(driver, href)
        assert body.startswith("\ufeff".encode())  # the byte-order mark Excel needs
        table = list(csv.reader(io.StringIO(body.decode("utf-8")[1:])))
    finally:
        driver.quit()

    # What the calls database says about T1's agents in the report's week.
    week = json.loads('["2025-09-01", "2025-09-07"]')
    conn = sqlite3.connect(data / "callqa.db")
    expected = {
        agent: (calls, passed, avg)
        for agent, calls, passed, avg in conn.execute(
            "SELECT c.agent_id, COUNT(*), SUM(s.passed), AVG(s.score) FROM calls c"
            " JOIN scores s ON s.call_id = c.id WHERE c.team_id = 'T1'"
            " AND date(c.started_at, '+8 hours') BETWEEN ? AND ? GROUP BY c.agent_id", week)
    }
    conn.close()
    body = {r[0]: r for r in table[1:-1]}
    assert set(body) == set(expected) == {"A01", "A02"}
    for agent, (calls, passed, avg) in expected.items():
        row = body[agent]
        assert (int(row[1]), int(row[2])) == (calls, passed)
        assert float(row[4]) == pytest.approx(avg, abs=0.05)
    assert table[-1][:2] == ["Total: T1", str(sum(e[0] for e in expected.values()))]
    audit = site_db.connect(data)
    try:
        actions = [r[0] for r in audit.execute(
            "SELECT action FROM audit_log WHERE username = 'sam' ORDER BY id")]
    finally:
        audit.close()
    assert "export_report_csv" in actions


def test_search_lands_on_the_moment(site: tuple[str, Path]) -> None:
    base, _data = site
    driver = make_driver()
    try:
        login(driver, base, "ivan", PASSWORD)
        click(driver, "#nav-search")
        box = css(driver, "#search-q")
        box.send_keys("投诉")
        click(driver, "#search-submit")
        wait_for(lambda: css(driver, "#search-count").get_attribute("data-total") == "4",
                 what="4 hits")
        first = css(driver, "#search-hits li.hit")
        start = float(first.get_attribute("data-start") or "nan")
        assert first.find_element(By.CSS_SELECTOR, "mark").text == "投诉"
        shot(driver, SHOTS, "search-hits")
        link = first.find_element(By.CSS_SELECTOR, "a.hit-link")
        assert link.get_attribute("href").endswith(f"?t={start:g}")
        link.click()
        wait_for(lambda: "/calls/" in driver.current_url, what="call page")
        wait_for(lambda: driver.execute_script(
            "return !!(window.callqaPlayer && window.callqaPlayer.ready)"), what="player ready")
        position = driver.execute_script("return window.callqaPlayer.currentTime()")
        assert abs(position - start) < 0.3, (position, start)
        line = css(driver, f".transcript-line[data-start='{start:.2f}']")
        wait_for(lambda: "current" in (line.get_attribute("class") or ""),
                 what="the hit's line is current")
        # the player plays from there
        click(driver, "#play-button")
        wait_for(lambda: driver.execute_script("return window.callqaPlayer.currentTime()")
                 > start + 0.2, what="playing on from the hit")
        click(driver, "#play-button")
        shot(driver, SHOTS, "search-call")
    finally:
        driver.quit()
