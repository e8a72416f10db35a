"""SIPp as an SBC sending SIPREC sessions with corpus audio to the real recording server.

Three concurrent recording sessions, each with two labelled streams, RFC 7865 metadata, a
re-INVITE carrying a partial metadata update, and a BYE (scenarios/siprec_uac.xml). The RTP
is the first seconds of a corpus call replayed from a pcap at its real pace. Nothing is lost on
loopback, so each channel of each recording must equal, sample for sample, the G.711 audio
that was sent for that party.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.ports import free_port, free_port_range
from kernels.g711 import ulaw_decode
from telephony.server import RecordingServer, ServerSettings
from telephony.sip.transaction import TimerSettings
from telephony.siprec import AgentPatterns
from tests.telephony.test_server_udp_tcp import Ended, find_exact, read_wav

pytestmark = pytest.mark.corpus

SCENARIO = Path(__file__).parent / "scenarios" / "siprec_uac.xml"
CORPUS_CALL = "dev011"
AUDIO_S = 6.0
CALLS = 3
FIRST_PAUSE_MS = 2500  # the scenario's pause before its re-INVITE
FRAME = 160
HOST = "127.0.0.1"


def _ethernet_udp(src_port: int, dst_port: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
        socket.inet_aton(HOST), socket.inet_aton(HOST),
    )  # fmt: skip
    words = struct.unpack("!10H", ip)
    total = sum(words)
    total = (total & 0xFFFF) + (total >> 16)
    ip = ip[:10] + struct.pack("!H", ~total & 0xFFFF) + ip[12:]
    return b"\x00" * 12 + b"\x08\x00" + ip + udp


def write_pcap(path: Path, customer: bytes, agent: bytes) -> int:
    """Two PCMU streams at 20 ms: customer to port 20000, agent to 20002 (SIPp adds the
    answered port minus the lowest one). Returns the packets per stream."""
    records: list[tuple[float, bytes]] = []
    legs = ((customer, 20000, 0xC0570001, 7000), (agent, 20002, 0xA6E47002, 9000))
    for k, (codes, dport, ssrc, seq0) in enumerate(legs):
        for i in range(len(codes) // FRAME):
            rtp = struct.pack("!BBHII", 0x80, 0, seq0 + i, 160 * i, ssrc)
            rtp += codes[i * FRAME : (i + 1) * FRAME]
            records.append((0.02 * i + 0.0001 * k, _ethernet_udp(dport + 10000, dport, rtp)))
    records.sort(key=lambda r: r[0])
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t, frame in records:
            sec = int(t)
            usec = round((t - sec) * 1e6)
            f.write(struct.pack("<IIII", 1_700_000_000 + sec, usec, len(frame), len(frame)))
            f.write(frame)
    return len(records) // 2


@pytest.fixture(scope="module")
def call_legs(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """The agent and customer mu-law bytes of a corpus call."""
    out = tmp_path_factory.mktemp("legs")
    tool = corpus_dir / "tools" / "call_to_ul.py"
    subprocess.run(
        [sys.executable, str(tool), str(corpus_dir / f"{CORPUS_CALL}.wav"), str(out)],
        check=True,
        capture_output=True,
    )
    agent = (out / f"{CORPUS_CALL}_agent.ul").read_bytes()
    customer = (out / f"{CORPUS_CALL}_customer.ul").read_bytes()
    return agent, customer


def sipp_path() -> str:
    """SIPp; tests that run it carry the markers `sipp` and `raw_sockets` (for its pcap play)."""
    return shutil.which("sipp") or "sipp"


async def run_sipp(
    sipp: str, folder: Path, port: int, calls: int, audio_s: float,
    scenario: Path = SCENARIO, extra: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    """Run the SIPREC scenario against `port`; siprec_call.pcap must be in `folder`;
    `extra`: more SIPp options."""
    rest_ms = int(audio_s * 1000) - FIRST_PAUSE_MS + 800
    command = [
        sipp, f"{HOST}:{port}", "-sf", str(scenario), "-i", HOST,
        "-p", str(free_port(socket.SOCK_DGRAM)), "-mp", str(free_port(socket.SOCK_DGRAM)),
        "-m", str(calls), "-l", str(calls), "-r", str(calls), "-d", str(rest_ms),
        "-nostdin", "-timeout", f"{int(audio_s) + 30}s", "-timeout_error", "-trace_err",
        *extra,
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=folder, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(proc.communicate(), audio_s + 60)
    return subprocess.CompletedProcess(command, proc.returncode or 0, output)


def sipp_failure(done: subprocess.CompletedProcess[bytes], folder: Path) -> str:
    errors = "".join(p.read_text(errors="replace") for p in folder.glob("*_errors.log"))
    return errors or done.stdout.decode(errors="replace")[-3000:]


@pytest.mark.sipp
@pytest.mark.raw_sockets
def test_sipp_siprec_sessions_record_exact_audio(
    tmp_path: Path, call_legs: tuple[bytes, bytes]
) -> None:
    sipp = sipp_path()
    n = int(AUDIO_S * 8000)
    agent, customer = call_legs[0][:n], call_legs[1][:n]
    packets = write_pcap(tmp_path / "siprec_call.pcap", customer, agent)
    first, last = free_port_range(4 * CALLS + 4)
    settings = ServerSettings(
        recordings_dir=tmp_path / "spool",
        host=HOST,
        port=0,
        allowed_peers=(HOST,),
        rtp_port_first=first,
        rtp_port_last=last,
        agent_patterns=AgentPatterns.parse("1000-1999"),
        timers=TimerSettings(t1_s=0.1, t2_s=0.4, t4_s=0.5),
        idle_check_interval_s=0.2,
        rtp_idle_timeout_s=20.0,
    )
    ended = Ended()

    async def main() -> subprocess.CompletedProcess[bytes]:
        server = RecordingServer(settings, on_call_ended=ended)
        await server.start()
        try:
            done = await run_sipp(sipp, tmp_path, server.udp_port or 0, CALLS, AUDIO_S)
            await ended.wait(CALLS, timeout=10)
            counters = dict(server.counters)
        finally:
            await server.stop()
        assert counters["calls_siprec"] == CALLS
        assert counters["updates_invite"] == CALLS
        assert counters.get("malformed", 0) == 0
        return done

    done = asyncio.run(main())
    assert done.returncode == 0, sipp_failure(done, tmp_path)

    sent_agent = ulaw_decode(np.frombuffer(agent, dtype=np.uint8))
    sent_customer = ulaw_decode(np.frombuffer(customer, dtype=np.uint8))
    agents = set()
    print(f"\nSIPp SIPREC: {CALLS} concurrent sessions, {AUDIO_S:.0f} s of {CORPUS_CALL} each")
    for info in sorted(ended.calls, key=lambda i: i.agent_id or ""):
        assert info.source == "siprec"
        assert info.end_reason == "bye"
        assert info.metadata_dialect == "rfc7865"
        assert info.labels == {"customer": "1", "agent": "2"}
        assert info.agent_channel == "left"
        assert info.agent_id is not None and info.agent_id.startswith("100")
        n = info.agent_id[-1]
        assert info.customer_aor == f"sip:+8613900000{n}@carrier.example.net"
        ids = info.call_identifiers
        assert ids["callId"] == f"pbx-call-{n}"
        assert ids["queue"] == f"broadband-{n}"  # from the re-INVITE's partial update
        assert ids["sip_session_id"] == f"src-session-{n};remote=0"
        agents.add(info.agent_id)
        for role in ("agent", "customer"):
            stats = info.leg_stats[role]
            assert (stats.received, stats.lost, stats.late, stats.duplicates) == (packets, 0, 0, 0)
            assert stats.malformed == 0
        rec = read_wav(info.recording_path)
        assert rec.shape[1] == 2
        agent_at = find_exact(rec[:, 0], sent_agent)
        customer_at = find_exact(rec[:, 1], sent_customer)
        assert agent_at >= 0, "the agent channel differs from the agent audio sent"
        assert customer_at >= 0, "the customer channel differs from the customer audio sent"
        assert abs(agent_at - customer_at) <= FRAME
        assert info.duration_s == pytest.approx(AUDIO_S, abs=0.2)
        legs = info.leg_stats
        print(
            f"  call {info.call_id[:12]} agent {info.agent_id}: {info.duration_s:.2f} s, "
            f"agent {legs['agent'].received} pkts lost {legs['agent'].lost} "
            f"jitter {legs['agent'].jitter_ms:.2f} ms, customer {legs['customer'].received} pkts "
            f"lost {legs['customer'].lost} jitter {legs['customer'].jitter_ms:.2f} ms, "
            f"offsets {agent_at}/{customer_at} samples, exact match"
        )
    assert agents == {"1001", "1002", "1003"}


@pytest.mark.model
@pytest.mark.sipp
@pytest.mark.raw_sockets
def test_receiver_scores_and_stores_a_siprec_call(
    tmp_path: Path, call_legs: tuple[bytes, bytes], base_model_dir: Path
) -> None:
    """SIPp → `run_receiver` → recording → Whisper and the rubric → SQLite, end to end."""
    from core.config import load_settings
    from core.ingest.receive import ReceiverSettings, run_receiver, server_settings
    from core.storage import repository
    from core.storage.db import open_db

    sipp = sipp_path()
    audio_s = 10.0  # the agent's greeting ends at 8.3 s
    n = int(audio_s * 8000)
    write_pcap(tmp_path / "siprec_call.pcap", call_legs[1][:n], call_legs[0][:n])
    first, last = free_port_range(8)
    port = free_port(socket.SOCK_DGRAM)
    data_dir = tmp_path / "data"
    config = load_settings(None, {"data_dir": str(data_dir), "model": str(base_model_dir)}, {})
    overrides = {
        "sip_host": HOST,
        "sip_port": port,
        "sip_transports": "udp",
        "sip_allowed_peers": HOST,
        "rtp_port_first": first,
        "rtp_port_last": last,
        "agent_patterns": "1000-1999",
    }
    server = server_settings(config.replace(**overrides))
    settings = ReceiverSettings(config=config, server=server)

    async def main() -> subprocess.CompletedProcess[bytes]:
        stop = asyncio.Event()
        receiver = asyncio.create_task(run_receiver(settings, stop))
        await asyncio.sleep(0.2)
        done = await run_sipp(sipp, tmp_path, port, 1, audio_s)
        for _ in range(1200):  # scoring runs on its own thread; wait for the stored call
            if config.db_path.exists() and repository.list_calls(open_db(config.db_path)):
                break
            await asyncio.sleep(0.1)
        stop.set()
        await receiver
        return done

    done = asyncio.run(main())
    assert done.returncode == 0, sipp_failure(done, tmp_path)
    db = open_db(config.db_path)
    rows = repository.list_calls(db)
    assert len(rows) == 1
    call = repository.get_call(db, rows[0]["id"])
    assert call is not None
    assert call["source"] == "siprec"
    assert call["status"] == "scored"
    assert call["agent_id"] == "1001"
    assert call["caller"] == "sip:+86139000001@carrier.example.net"
    assert call["callee"] == "sip:1001@pbx.example.com"
    assert call["meta"]["call_identifiers"]["callId"] == "pbx-call-1"
    assert call["meta"]["legs"]["agent"]["lost"] == 0
    assert call["duration_s"] == pytest.approx(audio_s, abs=0.2)
    assert Path(call["recording_path"]).is_file()
    assert not list((data_dir / "spool").rglob("*.wav"))  # moved, not copied
    agent_text = "".join(u["text"] for u in call["utterances"] if u["speaker"] == "agent")
    assert "服务" in agent_text, agent_text
    print(f"\nstored {call['id']}: score {call['score']}, agent said {agent_text!r}")
