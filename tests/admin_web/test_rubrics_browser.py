"""The rubric editor in a real browser (Debian's headless Chromium), in English and Chinese.

An administrator opens the built-in Chinese rubric, switches an item's kind and sees that
kind's inputs, makes two mistakes and saves: each problem stands at its field; then fixes
them, saves a draft (through a real `callqa serve` child, ASR off), and reads the diff of
the new version against the old one.

Set CALLQA_SCREENSHOTS=DIR to keep screenshots (rubrics_<lang>_*.png).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select
from werkzeug.serving import make_server

from admin_web import create_app
from core.daemon.child import ServeProcess, free_port
from tests.admin_web.browser import click, css, login, make_driver, shot, wait_for
from tests.admin_web.conftest import PASSWORD, make_user, stock_calls

SHOTS = Path(os.environ["CALLQA_SCREENSHOTS"]) if os.environ.get("CALLQA_SCREENSHOTS") else None

pytestmark = [pytest.mark.browser]

WORDS = {
    "en": {"rate": "Must be greater than the lowest rate.", "saved": "Saved as version 2",
           "added": "lines added"},
    "zh": {"rate": "必须大于最低语速。", "saved": "已保存为 default-zh 的第 2 版",
           "added": "新增"},
}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    data = tmp_path / "data"
    data.mkdir()
    stock_calls(data)
    daemon = ServeProcess(data, {"asr_enabled": "false", "sip_enabled": "false"}).start()
    app = create_app({"DATA_DIR": str(data), "DAEMON_ADDRESS": daemon.address})
    make_user(data, "alice", "admin", language="en")
    make_user(data, "li", "admin", language="zh")
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        daemon.stop()


def _fill(driver: WebDriver, name: str, value: str) -> None:
    field = css(driver, f"[name='{name}']")
    field.clear()
    field.send_keys(value)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_edit_validate_save_and_diff(site: str, lang: str) -> None:
    words = WORDS[lang]
    driver = make_driver(lang="zh-CN" if lang == "zh" else "en-US")
    try:
        login(driver, site, "li" if lang == "zh" else "alice", PASSWORD)
        driver.get(site + "/rubrics")
        shot(driver, SHOTS, f"rubrics_{lang}_list")
        driver.get(site + "/rubrics/edit/default-zh")
        # The inputs follow the kind: greeting is a required phrase (phrases, window) ...
        card = css(driver, "#item-0")
        window = card.find_element(By.CSS_SELECTOR, "[data-kinds~='required_phrase'] .window")
        min_s = card.find_element(By.CSS_SELECTOR, "[name='items-0-min_s']")
        assert window.is_displayed() and not min_s.is_displayed()
        kind = Select(card.find_element(By.CSS_SELECTOR, "select[name='items-0-kind']"))
        kind.select_by_value("silence")  # ... a silence has a length instead
        wait_for(lambda: min_s.is_displayed() and not window.is_displayed(), what="kind")
        kind.select_by_value("required_phrase")
        # Switching to the YAML after changing the form says the YAML is behind.
        click(driver, "#tab-yaml")
        assert css(driver, "#panel-yaml .stale").is_displayed()
        click(driver, "#tab-form")

        _fill(driver, "items-12-rate_max_per_min", "100")
        _fill(driver, "items-0-deduct", "five")
        click(driver, "#form-save")
        error = css(driver, "[data-error-key='items-12-max_per_min'] .field-error")
        assert error.text == words["rate"]
        wrong = css(driver, "[data-error-key='items-0-deduct']")
        assert "has-error" in (wrong.get_attribute("class") or "")
        driver.execute_script("window.scrollTo(0, 0)")
        shot(driver, SHOTS, f"rubrics_{lang}_editor_error")
        if SHOTS is not None:
            driver.execute_script("arguments[0].scrollIntoView({block: 'start'})",
                                  css(driver, "#item-12"))
            driver.save_screenshot(str(SHOTS / f"rubrics_{lang}_editor_error_item.png"))

        _fill(driver, "items-12-rate_max_per_min", "300")
        _fill(driver, "items-0-deduct", "6")
        _fill(driver, "top-pass_score", "85")
        click(driver, "#form-save")
        wait_for(lambda: "/rubrics/view/default-zh" in driver.current_url, what="saved")
        assert words["saved"] in driver.page_source
        shot(driver, SHOTS, f"rubrics_{lang}_history")
        click(driver, ".diff-link")
        summary = css(driver, "#diff-summary")
        assert words["added"] in summary.text
        changed = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#diff-table tr.add")]
        assert any("pass_score: 85" in t for t in changed), changed
        shot(driver, SHOTS, f"rubrics_{lang}_diff")
    finally:
        driver.quit()
