"""Driving Debian's headless Chromium with selenium for the admin web's browser tests.

`scripts/setup` installs `chromium`, `chromium-driver` and `fonts-wqy-microhei` (so that
Chinese renders in screenshots). Chromium runs with a fresh profile and without its
background network traffic (this box reaches no network).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 20.0


def make_driver(width: int = 1440, height: int = 1000, lang: str = "en-US") -> WebDriver:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            raise RuntimeError(f"{path} is missing: run scripts/setup (Debian chromium and "
                               "chromium-driver)")
    profile = tempfile.mkdtemp(prefix="callqa-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic",
                 "--autoplay-policy=no-user-gesture-required", "--mute-audio",
                 f"--user-data-dir={profile}", f"--window-size={width},{height}",
                 f"--lang={lang}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": lang})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(width, height)
    original_quit = driver.quit

    def quit_and_clean() -> None:
        original_quit()
        shutil.rmtree(profile, ignore_errors=True)

    driver.quit = quit_and_clean  # type: ignore[method-assign]
    return driver


def wait_for(condition: Callable[[], Any], timeout_s: float = WAIT_S, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except Exception as exc:  # the page may be between two states
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or condition}: last {last!r}")


def css(driver: WebDriver, selector: str) -> WebElement:
    return wait_for(lambda: driver.find_element(By.CSS_SELECTOR, selector), what=selector)


def click(driver: WebDriver, selector: str) -> None:
    element = css(driver, selector)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    wait_for(lambda: element.is_displayed() and element.is_enabled(), what=selector)
    element.click()


def login(driver: WebDriver, base: str, username: str, password: str) -> None:
    driver.get(base + "/login")
    css(driver, "input[name=username]").send_keys(username)
    css(driver, "input[name=password]").send_keys(password)
    css(driver, "section.login form button[type=submit]").click()
    wait_for(lambda: "/login" not in driver.current_url, what="login")


def logout(driver: WebDriver) -> None:
    click(driver, "#logout")
    wait_for(lambda: "/login" in driver.current_url, what="logout")


def shot(driver: WebDriver, folder: Path | None, name: str) -> None:
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, max(800, min(int(height) + 120, 4000)))
    driver.save_screenshot(str(folder / f"{name}.png"))
    driver.set_window_size(width, 1000)


def number_in(text: str) -> float:
    match = re.search(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
    assert match, f"no number in {text!r}"
    return float(match.group(0))
