"""kill -9 of `callqa serve` during 20 live SIPREC calls, then a restart: nothing is lost.

The call simulator (a process of its own) places 20 concurrent SIPREC calls with real-time
RTP, each playing its own cut of the English sample calls. The daemon is killed with SIGKILL
at one of several points, then started again, and recovers:

* ``mid-call``: while every call is streaming;
* ``call-ended``: as the first call's BYE is taken (its recording just closed);
* ``filed``: during the first call's end-of-call write, its recording moved under
  ``recordings/`` and its row not written yet;
* ``in-transaction``: the first call's rows written, their transaction not committed.

The last three freeze the daemon at that exact step (``CALLQA_STOP_AT``,
`core.stop_points`), so the kill lands there every run. After the restart every call must be
stored once, ``interrupted`` and scored from its recording; each recording must hold, sample
for sample, the audio sent for its call up to the kill; the database passes
``PRAGMA integrity_check`` and holds no call, utterance or finding twice.

The mid-call and filing points run by default; ``call-ended`` and ``in-transaction`` run
with ``-m crash_points`` (each run takes about 25 s on two cores).
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from core.audio.samples import SAMPLE_CALLS, render
from core.capacity.load import SimulatorProcess, Source, write_cuts
from core.capacity.sent_audio import compare_file
from core.ports import free_port_range
from core.stop_points import ENV_NAME
from tests.core.serve_harness import Daemon

pytestmark = [pytest.mark.model, pytest.mark.speech]

CALLS = 20
CALL_S = 5.0
MID_CALL_KILL_S = 3.0
"""How long the calls stream before the mid-call kill."""
AGENT_BASE = 1000
RECORDING_LAG_S = 1.5
"""How far a recording may lag behind the moment of the kill (the recorder holds 0.2 s to
put legs in order and commits 0.2 s at a time; the receive loop may run behind under load)."""
POINTS = [
    "mid-call",
    pytest.param("call-ended", marks=pytest.mark.crash_points),
    "filed",
    pytest.param("in-transaction", marks=pytest.mark.crash_points),
]


@pytest.fixture(scope="module")
def call_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One stereo WAV per call: different cuts of the two English sample calls."""
    sources = []
    for sample in SAMPLE_CALLS:
        if sample.name.startswith("en-"):
            agent, customer, _ = render(sample)
            sources.append(Source(sample.name, agent, customer))
    return write_cuts(sources, CALLS, CALL_S, tmp_path_factory.mktemp("calls"))


def _daemon(data: Path, stop_at: str = "") -> Daemon:
    first, last = free_port_range(4 * CALLS + 8)
    env = {
        "CALLQA_AGENT_PATTERNS": f"{AGENT_BASE}-{AGENT_BASE + 999}", "CALLQA_MODEL": "tiny.en",
        "CALLQA_RUBRIC": "default-en", "CALLQA_LOG_LEVEL": "info",
    }  # fmt: skip
    extra = {ENV_NAME: stop_at} if stop_at else {}
    return Daemon(data, Path("tiny.en"), env=env, rtp_range=(first, last),
                  extra_env=extra).start()  # fmt: skip


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def _wait(what: str, ready: Any, timeout_s: float, daemon: Daemon) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s\n{daemon.log()}"
        time.sleep(0.01)


def _logged_at(log: str, text: str) -> dt.datetime:
    """The time of the first line of the daemon's log holding ``text``."""
    line = next(x for x in log.splitlines() if text in x)
    stamp = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.astimezone()  # the log's times are local


def _rows(db_path: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(db_path)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(
            "SELECT c.id, c.status, c.agent_id, c.started_at, c.duration_s, c.recording_path,"
            " c.meta, s.score FROM calls c LEFT JOIN scores s ON s.call_id = c.id"
        )]  # fmt: skip
    finally:
        con.close()


def _twice(db_path: Path) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db_path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return con.execute(
            "SELECT 'finding', call_id, item_id, start_s FROM findings"
            " GROUP BY call_id, item_id, start_s, end_s HAVING count(*) > 1"
            " UNION ALL SELECT 'utterance', call_id, speaker, start_s FROM utterances"
            " GROUP BY call_id, speaker, start_s HAVING count(*) > 1"
            " UNION ALL SELECT 'score', call_id, NULL, NULL FROM scores"
            " GROUP BY call_id HAVING count(*) > 1"
        ).fetchall()  # fmt: skip
    finally:
        con.close()


@pytest.mark.parametrize("point", POINTS)
def test_kill_9_during_20_calls_then_restart(
    point: str, tmp_path: Path, call_files: list[Path]
) -> None:
    data = tmp_path / "data"
    daemon = _daemon(data, "" if point == "mid-call" else point)
    sim = SimulatorProcess(daemon.sip_port, call_files, stagger_s=0.02, agent_base=AGENT_BASE,
                           log_path=tmp_path / "simulate.log").start()  # fmt: skip
    assert daemon.proc is not None
    pid = daemon.proc.pid
    try:
        _wait("20 calls started", lambda: daemon.log(400_000).count("started: agent") >= CALLS,
              20, daemon)  # fmt: skip
        if point == "mid-call":
            time.sleep(MID_CALL_KILL_S)
        else:
            _wait(f"stopped at {point}", lambda: _state(pid) == "T", 30, daemon)
        killed_at = dt.datetime.now(dt.UTC)
        daemon.signal(signal.SIGKILL)
        daemon.wait(10)
    finally:
        sim.kill()
    first_log = daemon.log(1_000_000)
    if point != "mid-call":  # when it froze itself
        killed_at = _logged_at(first_log, f"stopping the process at {point!r}")

    daemon = _daemon(data)
    try:
        _wait("every call recovered", lambda: len(_rows(data / "callqa.db")) == CALLS and all(
            r["status"] not in ("live", "ending") for r in _rows(data / "callqa.db")
        ), 120, daemon)  # fmt: skip
    finally:
        assert daemon.stop() == 0
    log = daemon.log(400_000)
    if point in ("filed", "in-transaction"):
        # The call being written was found filed under recordings/, its row naming the spool.
        assert "its recording was filed at" in log, log[-4000:]

    rows = _rows(data / "callqa.db")
    sip_ids = {json.loads(r["meta"]).get("sip_call_id") for r in rows}
    assert len(rows) == len(sip_ids) == CALLS  # every call, and once
    assert sorted(int(r["agent_id"]) for r in rows) == list(range(AGENT_BASE, AGENT_BASE + CALLS))
    compared = 0
    for row in rows:
        assert row["status"] == "interrupted", row
        assert row["score"] is not None, row
        path = Path(row["recording_path"])
        assert path.is_file() and "spool" not in path.parts, row
        sent = call_files[int(row["agent_id"]) - AGENT_BASE]
        result = compare_file(path, sent, cut=True)
        assert result.note == "" and result.mismatches == 0, (row, result)
        # The call's RTP began as it was answered: "call <Call-ID> from <peer>: recording".
        sip_call_id = json.loads(row["meta"])["sip_call_id"]
        answered = _logged_at(first_log, f"call {sip_call_id} from ")
        streamed_s = (killed_at - answered).total_seconds()
        assert result.covered_s >= min(result.sent_s, streamed_s - RECORDING_LAG_S), (row, result)
        assert float(row["duration_s"]) >= result.covered_s - 0.01
        compared += result.samples_compared
    assert _twice(data / "callqa.db") == []
    assert not list((data / "spool").rglob("*.wav"))  # every recording filed
    print(f"\n{point}: {CALLS} calls recovered, {compared} samples compared, 0 mismatches")
