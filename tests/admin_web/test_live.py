"""The live lines page against a real `callqa serve`: its server-sent events, by team, with
their bounds; and in headless Chromium, a SIPREC call placed by SIPp (or the simulator)
showing up with its alert, the daemon stopped (the page says so) and restarted (the page
reconnects by itself).

Set CALLQA_SCREENSHOTS=DIR to keep screenshots (live_en.png, live_zh.png, ...).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin_web import create_app
from core.audio.samples import make_samples
from core.daemon.child import ServeProcess, free_port
from tests.admin_web.conftest import PASSWORD, login, make_user
from tests.admin_web.live_util import (
    iter_threads,
    open_events,
    seed_agents,
    start_daemon,
)
from tests.core.serve_harness import audio_frames, legs_int16

SHOTS = Path(os.environ["CALLQA_SCREENSHOTS"]) if os.environ.get("CALLQA_SCREENSHOTS") else None
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
RUDE = "zh-complaint-rude"


# ------------------------------------------------------------------ without a daemon


def test_the_page_and_stream_say_the_daemon_is_down(client_as: Callable[[str], FlaskClient]
                                                    ) -> None:
    client = client_as("inspector")
    page = client.get("/live").get_data(as_text=True)
    assert 'id="live-down" role="status" hidden' not in page  # shown at once
    reader = open_events(client)
    down = reader.next("down", timeout_s=20)
    assert down.data["message"] == "UNAVAILABLE"
    assert reader.retry_ms == 3000  # EventSource tries again after this
    assert reader.done.wait(10), "the stream ends after saying the daemon is down"
    assert not [e for e in reader.events if e.name == "lines"]


@pytest.mark.parametrize("role", ["viewer"])
def test_roles_without_live_get_403(client_as: Callable[[str], FlaskClient], role: str) -> None:
    client = client_as(role)
    assert client.get("/live").status_code == 403
    assert client.get("/live/events").status_code == 403
    assert "/live" not in client.get("/").get_data(as_text=True).split("<main>")[0]


def test_live_is_in_the_menu_of_those_who_may(client_as: Callable[[str], FlaskClient]) -> None:
    for role in ("admin", "inspector", "supervisor"):
        head = client_as(role).get("/").get_data(as_text=True).split("<main>")[0]
        assert 'href="/live"' in head, role


# ------------------------------------------------------------------ against a real daemon


@pytest.fixture(scope="module")
def live_daemon(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path
                ) -> Iterator[ServeProcess]:
    data = tmp_path_factory.mktemp("live") / "data"
    data.mkdir()
    seed_agents(data)
    daemon = start_daemon(data, base_model_dir)
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def live_app(live_daemon: ServeProcess) -> Flask:
    app = create_app({"DATA_DIR": str(live_daemon.data_dir), "TESTING": True,
                      "DAEMON_ADDRESS": live_daemon.address, "LIVE_REFRESH_S": 0.5})
    for name, role, team in (("alice", "admin", None), ("sam", "supervisor", "T1"),
                             ("tess", "supervisor", "T2"), ("vera", "viewer", None)):
        make_user(live_daemon.data_dir, name, role, team=team)
    return app


def _client(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    assert login(client, name).status_code == 302
    return client


@pytest.fixture(scope="module")
def rude_legs(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    paths = make_samples(tmp_path_factory.mktemp("samples"))
    wav = next(p for p in paths if p.stem == RUDE and p.suffix == ".wav")
    return legs_int16(wav)


@pytest.mark.model
def test_first_events_and_the_stream_closes_when_the_client_goes(live_app: Flask) -> None:
    client = _client(live_app, "alice")
    reader = open_events(client)
    first = reader.next()
    assert first.name == "lines" and first.data == {"calls": []}
    assert reader.retry_ms == 3000
    deadline = time.monotonic() + 10
    while not list(iter_threads("live-calls")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(iter_threads("live-calls")), "a reader of the WatchCalls stream runs"
    assert live_app.extensions["callqa_live"].slots.held == 1
    reader.close()
    deadline = time.monotonic() + 10
    while list(iter_threads("live-calls")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not list(iter_threads("live-calls")), "the gRPC stream ends with the client"
    assert live_app.extensions["callqa_live"].slots.held == 0


@pytest.mark.model
def test_a_call_and_its_alerts_reach_its_team_only(
    live_app: Flask, live_daemon: ServeProcess, rude_legs: tuple[object, object]
) -> None:
    admin = open_events(_client(live_app, "alice"))
    own_team = open_events(_client(live_app, "sam"))
    other_team = open_events(_client(live_app, "tess"))
    for reader in (admin, own_team, other_team):
        reader.next("lines")
    agent, customer = rude_legs
    done: list[object] = []

    def place() -> None:
        done.extend(live_daemon.stub().StreamAudio(
            audio_frames(agent, customer, speed=2.0, agent_id="E01"), timeout=300))  # type: ignore[arg-type]

    caller = threading.Thread(target=place)
    caller.start()
    try:
        started = admin.next("started", timeout_s=60)
        call_id = started.data["call_id"]
        # One line's transcript, on demand: the history and then the live transcripts.
        watcher = open_events(_client(live_app, "sam"), f"/live/events?call={call_id}")
        assert _client(live_app, "tess").get(f"/live/events?call={call_id}").status_code == 404
        line = admin.next("lines", timeout_s=30)
        while not line.data["calls"]:
            line = admin.next("lines", timeout_s=30)
        (shown,) = line.data["calls"]
        assert (shown["call_id"], shown["agent_id"], shown["team_id"]) == (call_id, "E01", "T1")
        alert = admin.next("alert", timeout_s=120)
        assert alert.data["call_id"] == call_id and alert.data["team_id"] == "T1"
        assert alert.data["severity"] in ("A", "B", "C") and alert.data["item_name"]
        assert own_team.next("alert", timeout_s=60).data["alert_id"] == alert.data["alert_id"]
        text = watcher.next("transcript", timeout_s=120)
        assert text.data["watched"] is True and text.data["call_id"] == call_id
        admin.next("ended", timeout_s=300)
        own_team.next("ended", timeout_s=60)
    finally:
        caller.join(300)
    for reader in (admin, own_team, other_team, watcher):
        reader.close()
    assert done, "the call went through"
    # The other team's supervisor saw neither the call nor its alerts.
    seen = [e for e in other_team.events if e.name != "lines"]
    assert seen == []
    assert all(not e.data["calls"] for e in other_team.events if e.name == "lines")
    # A page opened afterwards lists the alert (the site's own WatchAlerts log) ...
    page = _client(live_app, "alice").get("/live").get_data(as_text=True)
    assert f'data-alert-id="{alert.data["alert_id"]}"' in page
    # ... but not for the other team.
    page = _client(live_app, "tess").get("/live").get_data(as_text=True)
    assert f'data-alert-id="{alert.data["alert_id"]}"' not in page


@pytest.mark.model
def test_streams_are_bounded(live_daemon: ServeProcess, live_app: Flask) -> None:
    app = create_app({"DATA_DIR": str(live_daemon.data_dir), "TESTING": True,
                      "DAEMON_ADDRESS": live_daemon.address, "LIVE_REFRESH_S": 0.5,
                      "LIVE_MAX_STREAMS": 1, "LIVE_STREAM_MAX_S": 60})
    holder = open_events(_client(app, "alice"))
    holder.next("lines")
    refused = open_events(_client(app, "alice"))
    busy = refused.next()
    assert busy.name == "busy" and refused.retry_ms == 10000
    assert refused.done.wait(10)
    holder.close()
    again = open_events(_client(app, "alice"))
    assert again.next().name == "lines"
    again.close()
    # A stream ends by itself after LIVE_STREAM_MAX_S; the browser reconnects.
    short = create_app({"DATA_DIR": str(live_daemon.data_dir), "TESTING": True,
                        "DAEMON_ADDRESS": live_daemon.address, "LIVE_REFRESH_S": 0.5,
                        "LIVE_STREAM_MAX_S": 1})
    reader = open_events(_client(short, "alice"))
    reader.next("bye", timeout_s=20)
    assert reader.done.wait(10)
    assert short.extensions["callqa_live"].slots.held == 0


# ------------------------------------------------------------------ in a browser


def _callqa(data: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "core.cli", "--data-dir", str(data), *args],
                          input=stdin, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _place_siprec_call(daemon: ServeProcess, folder: Path) -> subprocess.Popen[bytes]:
    """A SIPREC call of agent 1001 (team T1) from 17 s of corpus call dev005, where the agent
    says 不知道 and the customer threatens to 曝光: SIPp with the project's SIPREC scenario
    when it can play RTP (root), else `callqa simulate`."""
    from tests.telephony.test_sipp_siprec import SCENARIO, write_pcap

    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(CORPUS / "tools" / "call_to_ul.py"),
                    str(CORPUS / "dev005.wav"), str(folder)], check=True, capture_output=True)
    first, last = 30 * 8000, 47 * 8000
    agent = (folder / "dev005_agent.ul").read_bytes()[first:last]
    customer = (folder / "dev005_customer.ul").read_bytes()[first:last]
    sipp = shutil.which("sipp")
    if sipp is not None and os.geteuid() == 0:
        write_pcap(folder / "siprec_call.pcap", customer, agent)
        audio_ms = (last - first) // 8
        command = [sipp, f"127.0.0.1:{daemon.sip_port}", "-sf", str(SCENARIO),
                   "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port()),
                   "-m", "1", "-l", "1", "-d", str(audio_ms - 2500 + 800), "-nostdin",
                   "-timeout", "90s", "-timeout_error", "-trace_err"]
        return subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    import numpy as np

    from core.audio.wav import write_wav_g711

    wav = folder / "dev005-cut.wav"
    codes = [np.frombuffer(agent, np.uint8), np.frombuffer(customer, np.uint8)]
    write_wav_g711(wav, codes, 8000, "mulaw")
    return subprocess.Popen([sys.executable, "-m", "core.cli", "simulate", "--to",
                             f"127.0.0.1:{daemon.sip_port}", "--agent-base", "1001", str(wav)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _live_state(driver: Any) -> str:
    """The live page's own state, its transcript panel's and the lines it shows."""
    return str(driver.execute_script(
        "var t = document.getElementById('transcript-lines');"
        "return {live: window.callqaLive,"
        " state: document.getElementById('transcript-state').textContent,"
        " lines: t ? Array.from(t.querySelectorAll('.tline')).map("
        "   function (e) { return e.className + ' ' + e.dataset.key; }) : null};"))


@pytest.mark.browser
@pytest.mark.model
@pytest.mark.corpus
def test_live_page_in_chromium(tmp_path: Path, base_model_dir: Path) -> None:
    from selenium.webdriver.common.by import By

    from tests.admin_web.browser import css, make_driver, shot, wait_for
    from tests.admin_web.browser import login as browser_login

    data = tmp_path / "data"
    data.mkdir()
    seed_agents(data)
    daemon = start_daemon(data, base_model_dir)
    ports = {"grpc_port": str(daemon.grpc_port), "sip_port": str(daemon.sip_port),
             "rtp_port_first": daemon.settings["rtp_port_first"],
             "rtp_port_last": daemon.settings["rtp_port_last"]}
    for name, role, lang in (("alice", "admin", "en"), ("li", "inspector", "zh")):
        _callqa(data, "admin", "create-user", name, "--role", role, "--language", lang,
                stdin=PASSWORD + "\n")
    port = free_port()
    site = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "--data-dir", str(data), "admin", "serve",
         "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "CALLQA_ADMIN_DAEMON_ADDRESS": daemon.address})
    base = f"http://127.0.0.1:{port}"
    drivers = {}
    try:
        wait_for(lambda: urllib.request.urlopen(base + "/login", timeout=2).status == 200,
                 what="the admin web")
        for lang, name in (("en", "alice"), ("zh", "li")):
            driver = make_driver(lang="zh-CN" if lang == "zh" else "en-US")
            drivers[lang] = driver
            browser_login(driver, base, name, PASSWORD)
            driver.get(base + "/live")
            wait_for(lambda d=driver: d.execute_script(
                "return window.callqaLive && window.callqaLive.state") == "up", what="stream up")
        caller = _place_siprec_call(daemon, tmp_path / "call")
        for lang, driver in drivers.items():
            row = wait_for(lambda d=driver: d.find_element(
                By.CSS_SELECTOR, "#live-lines tr[data-call-id]"), timeout_s=60,
                what=f"the call ({lang})")
            wait_for(lambda r=row: r.find_element(By.CSS_SELECTOR, '[data-f="agent"]').text
                     == "1001", what="agent shown")
            assert row.find_element(By.CSS_SELECTOR, '[data-f="team"]').text == "T1"
        drivers["en"].find_element(By.CSS_SELECTOR, "#live-lines button.watch").click()
        for lang, driver in drivers.items():
            wait_for(lambda d=driver: d.find_elements(By.CSS_SELECTOR, "#alert-list li"),
                     timeout_s=120, what=f"an alert ({lang})")
            item = driver.find_element(By.CSS_SELECTOR, "#alert-list li").text
            assert "1001" in item and "T1" in item
            wait_for(lambda d=driver: d.find_element(
                By.CSS_SELECTOR, '#live-lines [data-f="latest"] .tag'), what="latest alert")
        for speaker in ("agent", "customer"):  # both legs' lines, each in its place
            try:
                wait_for(lambda s=speaker: drivers["en"].find_elements(
                    By.CSS_SELECTOR, f"#transcript-lines .tline.speaker-{s}"), timeout_s=60,
                    what=f"the live transcript of the {speaker}")
            except AssertionError as exc:  # say what the page was doing
                raise AssertionError(f"{exc}; the page: {_live_state(drivers['en'])}") from None
        starts = [float(e.get_attribute("data-start")) for e in drivers["en"].find_elements(
            By.CSS_SELECTOR, "#transcript-lines .tline")]
        assert starts == sorted(starts)
        for lang, driver in drivers.items():
            shot(driver, SHOTS, f"live_{lang}")
        caller.wait(120)
        # The daemon stops: the pages say so.
        daemon.stop()
        for lang, driver in drivers.items():
            wait_for(lambda d=driver: css(d, "#live-down").is_displayed(), timeout_s=60,
                     what=f"the daemon-down banner ({lang})")
            assert driver.execute_script("return window.callqaLive.state") == "down"
            shot(driver, SHOTS, f"live_{lang}_down")
        # It comes back on the same ports: the pages reconnect by themselves.
        daemon = ServeProcess(data, {**daemon.settings, **ports}).start(180)
        for lang, driver in drivers.items():
            wait_for(lambda d=driver: d.execute_script("return window.callqaLive.state") == "up",
                     timeout_s=60, what=f"reconnected ({lang})")
            assert not css(driver, "#live-down").is_displayed()
            shot(driver, SHOTS, f"live_{lang}_back")
    finally:
        for driver in drivers.values():
            driver.quit()
        site.terminate()
        site.wait(10)
        daemon.stop()

