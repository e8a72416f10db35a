"""`callqa serve` with SIPREC calls from SIPp (as an SBC) through a SIGTERM under load.

(kill -9 during live calls, at several points, is `test_crash_20_calls.py`.)

A SIGTERM while the box is overloaded (SIPREC calls and fast gRPC streams) must send every
SIPREC session a BYE (SIPp waits for it) and exit 0, with no ASR worker left inside the
model (which ended the process with SIGABRT or SIGSEGV).
"""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from core.audio.samples import SAMPLE_CALLS, render
from core.ports import free_port, free_port_range
from kernels.g711 import ulaw_encode
from tests.core.serve_harness import Daemon, EventCollector, audio_frames
from tests.telephony.test_sipp_siprec import FIRST_PAUSE_MS, HOST, sipp_path, write_pcap

pytestmark = [pytest.mark.model, pytest.mark.sipp, pytest.mark.raw_sockets]

UNTIL_SERVER_BYE = Path(__file__).parents[2] / "telephony" / "scenarios" / (
    "siprec_until_server_bye.xml"
)
RUDE = next(c for c in SAMPLE_CALLS if c.name == "en-complaint-rude")
AUDIO_S = 6.0
CALLS = 2


@pytest.fixture(scope="module")
def sbc_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the pcap SIPp replays: AUDIO_S of a synthetic rude call."""
    folder = tmp_path_factory.mktemp("sbc")
    agent, customer, _ = render(RUDE)
    n = int(AUDIO_S * 8000)
    agent_u, customer_u = (
        bytes(ulaw_encode(np.clip(x[:n] * 32768.0, -32768, 32767).astype(np.int16)))
        for x in (agent, customer)
    )
    write_pcap(folder / "siprec_call.pcap", customer_u, agent_u)
    return folder


def _sipp(folder: Path, port: int, scenario: Path, calls: int) -> subprocess.Popen[bytes]:
    rest_ms = int(AUDIO_S * 1000) - FIRST_PAUSE_MS + 300
    return subprocess.Popen(
        [sipp_path(), f"{HOST}:{port}", "-sf", str(scenario), "-i", HOST,
         "-p", str(free_port(socket.SOCK_DGRAM)), "-mp", str(free_port(socket.SOCK_DGRAM)),
         "-m", str(calls), "-l", str(calls), "-r", str(calls), "-d", str(rest_ms),
         "-nostdin", "-timeout", "40s", "-timeout_error"],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def _daemon(data: Path, model: Path, **env: str) -> Daemon:
    first, last = free_port_range(4 * CALLS + 8)
    return Daemon(data, model, rtp_range=(first, last),
                  env={"CALLQA_AGENT_PATTERNS": "1000-1999", **env}).start()  # fmt: skip


def _wait_log(daemon: Daemon, text: str, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while daemon.log(200_000).count(text) < count:
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.02)


def _rows(db_path: Path) -> list[dict[str, object]]:
    con = sqlite3.connect(db_path)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(
            "SELECT c.id, c.status, c.duration_s, c.recording_path, c.meta, s.score"
            " FROM calls c LEFT JOIN scores s ON s.call_id = c.id"
        )]  # fmt: skip
    finally:
        con.close()


def test_sigterm_under_load_sends_bye_and_exits_cleanly(
    tmp_path: Path, base_model_dir: Path, sbc_folder: Path
) -> None:
    data = tmp_path / "data"
    daemon = _daemon(data, base_model_dir, CALLQA_SHUTDOWN_GRACE_S="2", CALLQA_SIP_DRAIN_S="0",
                     CALLQA_ASR_BATCH_SIZE="2")  # fmt: skip
    sipp = _sipp(sbc_folder, daemon.sip_port, UNTIL_SERVER_BYE, CALLS)
    agent, customer = legs_int16_rude()
    streams = [EventCollector(daemon.stub().StreamAudio(
        audio_frames(agent, customer, speed=4.0, rubric="default-en", agent_id=f"G{i}",
                     external_id=f"g{i}", end=False), timeout=60,
    )) for i in range(4)]  # fmt: skip
    _wait_log(daemon, "started: agent", CALLS + len(streams), 40)
    time.sleep(2.0)
    assert "ended (" not in daemon.log(200_000)  # all still going at the SIGTERM
    daemon.signal(signal.SIGTERM)
    rc = daemon.wait(90)
    out, _ = sipp.communicate(timeout=30)
    for stream in streams:
        stream.join(5)
    log = daemon.log(200_000)
    assert rc == 0, log[-4000:]
    assert "terminate called" not in log
    # Every SIPREC session got the daemon's BYE and answered it.
    assert sipp.returncode == 0, out.decode(errors="replace")[-3000:]
    rows = _rows(data / "callqa.db")
    assert len(rows) == CALLS + len(streams)
    assert {r["status"] for r in rows} <= {"scored", "ending"}, rows
    con = sqlite3.connect(data / "callqa.db")
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


def legs_int16_rude() -> tuple[np.ndarray, np.ndarray]:
    agent, customer, _ = render(RUDE)
    return tuple(  # type: ignore[return-value]
        np.clip(x * 32768.0, -32768, 32767).astype(np.int16) for x in (agent, customer)
    )
