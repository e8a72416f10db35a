"""Two `callqa serve` boxes behind Debian's Kamailio, run with the shipped configuration.

SIPp, as an SBC, sends SIPREC sessions to Kamailio, whose dispatcher list holds both boxes
(probed with OPTIONS every second). New sessions are spread over both; when box A is at its
session limit (2), drains after SIGTERM, or is gone, they go to box B, and no session is
lost: every SIPp call completes, and every call is stored on exactly one box. A second
Kamailio, in front of B and a stand-in for a box that answers probes but hangs on INVITEs,
shows the failover on an INVITE that is not answered in time.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.daemon.child import ServeProcess
from core.ports import LOOPBACK, free_port, free_port_range, free_port_tcp_udp
from telephony.sip.message import SipRequest, make_response, parse_message
from tests.conftest import REPO, sbin_tool
from tests.telephony.test_server_udp_tcp import tone
from tests.telephony.test_sipp_siprec import run_sipp, sipp_failure, sipp_path, write_pcap

pytestmark = [pytest.mark.sipp, pytest.mark.raw_sockets, pytest.mark.kamailio]

CONFIG = REPO / "deploy" / "kamailio" / "kamailio.cfg"
AUDIO_S = 3.0
LIMIT_A = 2


class Kamailio:
    """The shipped configuration in the foreground, its values set with `-A` on loopback."""

    def __init__(self, folder: Path, recorders: list[int]) -> None:
        self.folder = folder
        folder.mkdir(exist_ok=True)
        self.port = free_port_tcp_udp()
        self.list_file = folder / "recorders.list"
        self.list_file.write_text("".join(
            f"1 sip:{LOOPBACK}:{port} 0 0 duid=box{i}\n" for i, port in enumerate(recorders)
        ))  # fmt: skip
        self.log_path = folder / "kamailio.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Kamailio:
        run_dir = self.folder / "run"
        run_dir.mkdir()
        defines = {
            "LISTEN_IP": LOOPBACK, "LISTEN_PORT": str(self.port),
            "RECORDERS_LIST": f'"{self.list_file}"', "PING_INTERVAL_S": "1",
            "INVITE_TIMEOUT_MS": "3000", "WORKERS": "2",
        }  # fmt: skip
        command = [sbin_tool("kamailio") or "kamailio", "-f", str(CONFIG), "-DD", "-E",
                   "-Y", str(run_dir), "-w", str(run_dir)]  # fmt: skip
        for name, value in defines.items():
            command += ["-A", f"{name}={value}"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            if options(self.port) == 200:
                return self
            time.sleep(0.2)
        raise AssertionError(f"kamailio did not answer OPTIONS:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def options(port: int, timeout_s: float = 1.0) -> int:
    """The status of one OPTIONS request to `port` on loopback (0: no answer)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.settimeout(timeout_s)
        here = sock.getsockname()[1]
        branch = f"z9hG4bK{time.monotonic_ns()}"
        sock.sendto((
            f"OPTIONS sip:{LOOPBACK}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOOPBACK}:{here};branch={branch};rport\r\n"
            f"From: <sip:probe@{LOOPBACK}>;tag=p1\r\nTo: <sip:{LOOPBACK}:{port}>\r\n"
            f"Call-ID: {branch}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode(), (LOOPBACK, port))  # fmt: skip
        try:
            reply = sock.recv(65535).decode(errors="replace")
        except TimeoutError:
            return 0
    return int(reply.split(" ", 2)[1])


class HungBox(threading.Thread):
    """Stands in for a box that answers its probes but not INVITEs (hung in the middle of
    taking a call): Kamailio must give up on it after INVITE_TIMEOUT_MS and try the next."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.invites: set[str] = set()
        """The Call-IDs of the INVITEs it left unanswered."""
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            message = parse_message(data)
            if isinstance(message, SipRequest) and message.method == "OPTIONS":
                self.sock.sendto(make_response(message, 200, to_tag="hung").serialize(), peer)
            elif isinstance(message, SipRequest) and message.method == "INVITE":
                self.invites.add(message.call_id)

    def stop(self) -> None:
        self.done.set()
        self.join(2)
        self.sock.close()


def stored(box: ServeProcess, phase: str) -> list[tuple[str, str]]:
    """(SIP Call-ID, status) of the box's stored SIPREC calls of `phase`."""
    db = box.data_dir / "callqa.db"
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        query = "SELECT json_extract(meta, '$.sip_call_id'), status FROM calls WHERE source = ?"
        rows = con.execute(query, ("siprec",)).fetchall()
    finally:
        con.close()
    return [(cid, status) for cid, status in rows if cid and cid.startswith(f"{phase}-")]


def wait_stored(boxes: list[ServeProcess], phase: str, calls: int) -> list[list[str]]:
    """Per box, the SIP Call-IDs of `phase` once `calls` are stored (scored) in all."""
    deadline = time.monotonic() + 30
    while True:
        found = [stored(box, phase) for box in boxes]
        done = sum(1 for rows in found for _, status in rows if status == "scored")
        if done >= calls or time.monotonic() > deadline:
            return [sorted(cid for cid, _ in rows) for rows in found]
        time.sleep(0.3)


class Sbc:
    """SIPp runs of the SIPREC scenario, each phase's SIP Call-IDs starting with its name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sipp = sipp_path()
        codes = tone(440.0, AUDIO_S)
        self.agent, self.customer = bytes(codes), bytes(tone(620.0, AUDIO_S))

    def place(self, phase: str, port: int, calls: int, audio_s: float = AUDIO_S) -> None:
        asyncio.run(self.run(phase, port, calls, audio_s))

    async def run(self, phase: str, port: int, calls: int, audio_s: float = AUDIO_S) -> None:
        folder = self.folder / phase
        folder.mkdir()
        write_pcap(folder / "siprec_call.pcap", self.customer, self.agent)
        done = await run_sipp(self.sipp, folder, port, calls, audio_s,
                              extra=("-cid_str", f"{phase}-%u-%p@%s"))  # fmt: skip
        assert done.returncode == 0, f"{phase}: {sipp_failure(done, folder)}"


@pytest.fixture
def boxes(tmp_path: Path) -> Iterator[list[ServeProcess]]:
    """Boxes A (at most LIMIT_A calls at once) and B, SIP over UDP, no ASR (not under test)."""
    made = []
    for i, limit in enumerate((LIMIT_A, 50)):
        first, last = free_port_range(40, lowest=30000 + 10000 * i, highest=39000 + 10000 * i)
        settings = {
            "asr_enabled": "false", "agent_patterns": "1000-1999", "sip_transports": "udp",
            "sip_port": str(free_port(socket.SOCK_DGRAM)), "sip_max_sessions": str(limit),
            "sip_drain_s": "10", "shutdown_grace_s": "20",
            "rtp_port_first": str(first), "rtp_port_last": str(last),
        }  # fmt: skip
        made.append(ServeProcess(tmp_path / "ab"[i], settings))
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda box: box.start(60), made))
        yield made
    finally:
        for box in made:
            box.stop(30)


def test_sessions_spread_over_two_boxes_and_fail_over_without_loss(
    tmp_path: Path, boxes: list[ServeProcess]
) -> None:
    a, b = boxes
    t0 = time.monotonic()
    kamailio = Kamailio(tmp_path, [a.sip_port, b.sip_port]).start()
    sbc = Sbc(tmp_path)
    try:
        assert options(a.sip_port) == options(b.sip_port) == 200

        # Six sessions at once, round robin over both: A takes two (its limit), B the rest.
        sbc.place("spread", kamailio.port, 6)
        on_a, on_b = wait_stored(boxes, "spread", 6)
        # (whether A was offered a third one depends on where the dispatcher's round robin
        # stood after its probes; either way A never holds more than its limit, none is lost)
        assert len(on_a) == LIMIT_A and len(on_b) == 6 - LIMIT_A, (on_a, on_b)

        # A is told to stop while a session sent to it directly goes on: it drains (503 to
        # probes and new INVITEs), the session ends with its BYE, then A exits.
        async def drain_phase() -> None:
            direct = asyncio.create_task(sbc.run("direct", a.sip_port, 1, audio_s=4.5))
            for _ in range(100):  # until A has answered it
                if re.search(r"call direct-\S+ from .* recording", a.log()):
                    break
                await asyncio.sleep(0.1)
            a.signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            assert await asyncio.to_thread(options, a.sip_port) == 503
            await sbc.run("draining", kamailio.port, 3)
            await direct

        asyncio.run(drain_phase())
        assert a.wait(30) == 0, a.log()
        # At the same time: A is gone, its probes go unanswered, and new sessions still find
        # B; and through a second Kamailio, a box that answers probes but no INVITE sends
        # each session given to it on to B.
        hung = HungBox()
        hung.start()
        second = Kamailio(tmp_path / "second", [hung.port, b.sip_port]).start()

        async def gone_and_hung() -> None:
            await asyncio.gather(sbc.run("gone", kamailio.port, 2), sbc.run("hung", second.port, 2))

        try:
            asyncio.run(gone_and_hung())
        finally:
            second.stop()
            hung.stop()
        assert hung.invites, second.log()

        direct_a, direct_b = wait_stored(boxes, "direct", 1)
        drain_a, drain_b = wait_stored(boxes, "draining", 3)
        gone_a, gone_b = wait_stored(boxes, "gone", 2)
        hung_a, hung_b = wait_stored(boxes, "hung", 2)
        assert (len(direct_a), len(direct_b)) == (1, 0), a.log()
        assert (len(drain_a), len(drain_b)) == (0, 3), (drain_a, drain_b)
        assert (len(gone_a), len(gone_b)) == (0, 2), (gone_a, gone_b)
        assert (len(hung_a), len(hung_b)) == (0, 2), (hung_a, hung_b)

        # The re-INVITE and the BYE of each session, routed through Kamailio, reached the box
        # that took it.
        for box, cids in ((a, on_a + direct_a), (b, on_b + drain_b + gone_b + hung_b)):
            log = box.log_path.read_text(errors="replace")
            for cid in cids:
                assert f"call {cid}: metadata: partial update merged" in log, cid
                assert f"call {cid} ended (bye)" in log, cid
        # Each call on exactly one box, none twice.
        every = (on_a + on_b + direct_a + direct_b + drain_a + drain_b + gone_a + gone_b
                 + hung_a + hung_b)  # fmt: skip
        assert len(every) == len(set(every)) == 6 + 1 + 3 + 2 + 2
        print(f"\n{time.monotonic() - t0:.1f} s: A (limit {LIMIT_A}) {len(on_a)} and B "
              f"{len(on_b)} of 6 sessions; A draining: B {len(drain_b)} of 3; A gone: B "
              f"{len(gone_b)} of 2; after {len(hung.invites)} INVITEs unanswered by a hung box: B "
              f"{len(hung_b)} of 2")  # fmt: skip
    except BaseException:
        print(kamailio.log())
        raise
    finally:
        kamailio.stop()
