"""The inspector's day in a real browser (Debian's headless Chromium), in English and Chinese.

Calls are made by the real pipeline (`callqa score`, Whisper base) from corpus recordings;
the site runs as `callqa admin serve` under waitress. One test per language walks the whole
flow: an inspector filters the list, opens a call, plays it, clicks a transcript line and
sees the player move there, confirms one finding, rejects one and adds a missed one; a
supervisor appeals; an administrator decides; the call is final with both scores shown.

Set CALLQA_SCREENSHOTS=DIR to keep screenshots of the pages on the way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from core.ports import free_port
from tests.admin_web.browser import (
    click,
    css,
    login,
    logout,
    make_driver,
    number_in,
    shot,
    wait_for,
)

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
PASSWORD = "correct horse battery"
# Corpus calls scored for these tests: (file, agent, team). dev002 (dead air, fast speech,
# no closing) is the one reviewed; dev006 shares its team, dev022 is another team's.
CALLS = (("dev002", "A04", "T1"), ("dev006", "A02", "T1"), ("dev022", "A06", "T2"))
SHOTS = Path(os.environ["CALLQA_SCREENSHOTS"]) if os.environ.get("CALLQA_SCREENSHOTS") else None

pytestmark = [pytest.mark.browser, pytest.mark.model, pytest.mark.corpus]


def _callqa(data: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "core.cli", "--data-dir", str(data), *args],
                          input=stdin, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding the corpus calls above, scored by the real pipeline."""
    data = tmp_path_factory.mktemp("scored")
    for name, agent, team in CALLS:
        labels = json.loads((CORPUS / f"{name}.json").read_text(encoding="utf-8"))
        _callqa(data, "score", str(CORPUS / f"{name}.wav"), "--agent", agent, "--team", team,
                "--started-at", labels["started_at"], "--quiet")
    return data


@pytest.fixture
def site(scored: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """`callqa admin serve` on a copy of the scored calls, with three users in `lang`."""
    lang = request.param
    data = tmp_path / "data"
    shutil.copytree(scored, data)
    for name, role, team in (("ivan", "inspector", None), ("sam", "supervisor", "T1"),
                             ("alice", "admin", None)):
        extra = ["--team", team] if team else []
        _callqa(data, "admin", "create-user", name, "--role", role, "--language", lang, *extra,
                stdin=PASSWORD + "\n")
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
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("site", ["en", "zh"], indirect=True)
def test_inspector_day(site: str, request: pytest.FixtureRequest) -> None:
    lang = request.node.callspec.params["site"]
    base = site
    driver = make_driver(lang="zh-CN" if lang == "zh" else "en-US")
    try:
        # 1. The inspector logs in.
        login(driver, base, "ivan", PASSWORD)
        expected_lang = "zh-CN" if lang == "zh" else "en"
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == expected_lang
        shot(driver, SHOTS, f"{lang}-call-list")

        # 2. Filters the list by agent and opens the call.
        Select(css(driver, "select[name=agent]")).select_by_value("A04")
        click(driver, "#apply-filters")
        wait_for(lambda: "agent=A04" in driver.current_url, what="filter applied")
        rows = driver.find_elements(By.CSS_SELECTOR, "#call-table tbody tr[data-call-id]")
        assert len(rows) == 1
        call_id = rows[0].get_attribute("data-call-id")
        rows[0].find_element(By.CSS_SELECTOR, "a.call-link").click()
        wait_for(lambda: call_id in driver.current_url, what="call page")
        css(driver, "#player")
        machine_score = number_in(css(driver, "#machine-score").text)

        # 3. Plays it.
        wait_for(lambda: driver.execute_script(
            "return !!(window.callqaPlayer && window.callqaPlayer.ready)"), what="player ready")
        click(driver, "#play-button")
        wait_for(lambda: driver.execute_script("return window.callqaPlayer.currentTime()") > 0.3,
                 what="playback advancing")
        click(driver, "#play-button")  # pause

        # 4. Clicks a transcript line: the player moves there and the line is current.
        lines = driver.find_elements(By.CSS_SELECTOR, ".transcript-line[data-start]")
        assert len(lines) >= 4
        target = lines[len(lines) // 2]
        start = float(target.get_attribute("data-start"))
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", target)
        target.click()
        wait_for(lambda: abs(driver.execute_script(
            "return window.callqaPlayer.currentTime()") - start) < 0.6, what="seek to line")
        wait_for(lambda: "current" in (target.get_attribute("class") or ""),
                 what="clicked line highlighted")
        shot(driver, SHOTS, f"{lang}-call-page")

        # 5. Confirms one finding, rejects one, adds a missed one, submits.
        seqs = [f.get_attribute("data-seq") for f in
                driver.find_elements(By.CSS_SELECTOR, "form.verdict[data-seq]")]
        assert len(seqs) >= 2, "the call should carry at least two machine findings"
        click(driver, f"form.verdict[data-seq='{seqs[0]}'] button[value=confirmed]")
        wait_for(lambda: "verdict-confirmed" in css(
            driver, f".verdict-state[data-seq='{seqs[0]}']").get_attribute("class"),
            what="confirmed")
        click(driver, f"form.verdict[data-seq='{seqs[1]}'] button[value=rejected]")
        wait_for(lambda: "verdict-rejected" in css(
            driver, f".verdict-state[data-seq='{seqs[1]}']").get_attribute("class"),
            what="rejected")
        assert css(driver, "#review-state").get_attribute("data-state") == "in_review"
        form = css(driver, "#add-finding")
        Select(form.find_element(By.NAME, "item_id")).select_by_value("forbidden_words")
        form.find_element(By.NAME, "start").send_keys("20")
        form.find_element(By.NAME, "end").send_keys("22")
        form.find_element(By.NAME, "comment").send_keys("said 不清楚")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", form)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(lambda: "forbidden_words" in css(driver, "#review-panel").get_attribute(
            "innerHTML"), what="added finding shown")
        click(driver, "#submit-review")
        wait_for(lambda: css(driver, "#review-state").get_attribute("data-state") == "reviewed",
                 what="reviewed")
        reviewed_score = number_in(css(driver, "#reviewed-score").text)
        assert reviewed_score != machine_score
        logout(driver)

        # 6. The supervisor of the team appeals.
        login(driver, base, "sam", PASSWORD)
        driver.get(f"{base}/calls/{call_id}")
        appeal = css(driver, "#appeal-form")
        appeal.find_element(By.NAME, "reason").send_keys("the added finding is not in the call")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", appeal)
        appeal.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(lambda: css(driver, "#review-state").get_attribute("data-state") == "appealed",
                 what="appealed")
        logout(driver)

        # 7. An administrator decides.
        login(driver, base, "alice", PASSWORD)
        driver.get(f"{base}/calls/{call_id}")
        decide = css(driver, "#decide-form")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", decide)
        choice = decide.find_element(By.CSS_SELECTOR, "[name=decision][value=upheld]")
        choice.click()
        decide.find_element(By.NAME, "comment").send_keys("heard it: upheld")
        decide.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

        # 8. The call is final, with both scores shown.
        wait_for(lambda: css(driver, "#review-state").get_attribute("data-state") == "final",
                 what="final")
        assert number_in(css(driver, "#machine-score").text) == machine_score
        assert number_in(css(driver, "#reviewed-score").text) == reviewed_score
        history = css(driver, "#review-history").text
        assert history.strip()
        shot(driver, SHOTS, f"{lang}-call-final")
        driver.get(base + "/review/queue")
        css(driver, "main")
        shot(driver, SHOTS, f"{lang}-review-queue")
        driver.get(base + "/")
        shot(driver, SHOTS, f"{lang}-call-list-after")
    finally:
        driver.quit()
