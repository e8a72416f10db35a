"""The ends of SIPREC sessions: a stop sends BYE to every session (SIPp as the SBC, the
RTP a synthetic call's audio replayed from a pcap at its real pace, as in test_sipp_siprec),
and the RTP still on its way when the sender's BYE arrives is recorded, not cut off.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest

from core.audio.samples import SAMPLE_CALLS, render
from core.ports import free_port_range
from kernels.g711 import ulaw_decode, ulaw_encode
from telephony.server import RecordingServer, ServerSettings
from telephony.sip.sdp import parse_sdp
from telephony.sip.transaction import TimerSettings
from telephony.siprec import AgentPatterns
from tests.telephony.test_server_udp_tcp import (
    Ended,
    find_exact,
    offer_sdp,
    read_wav,
    request,
    rtp_packets,
    siprec_body,
    tone,
    udp_peer,
)
from tests.telephony.test_server_udp_tcp import settings as udp_settings
from tests.telephony.test_sipp_siprec import (
    HOST,
    run_sipp,
    sipp_failure,
    sipp_path,
    write_pcap,
)

UNTIL_SERVER_BYE = Path(__file__).parent / "scenarios" / "siprec_until_server_bye.xml"
RUDE = next(c for c in SAMPLE_CALLS if c.name == "en-complaint-rude")
CALLS = 2


def _ulaw(seconds: float) -> tuple[bytes, bytes]:
    agent, customer, _ = render(RUDE)
    n = int(seconds * 8000)
    legs = [np.clip(x[:n] * 32768.0, -32768, 32767).astype(np.int16) for x in (agent, customer)]
    agent_u, customer_u = (np.asarray(ulaw_encode(x), dtype=np.uint8).tobytes() for x in legs)
    return agent_u, customer_u


def _settings(tmp_path: Path) -> ServerSettings:
    first, last = free_port_range(4 * CALLS + 4)
    return ServerSettings(
        recordings_dir=tmp_path / "spool", host=HOST, port=0, allowed_peers=(HOST,),
        rtp_port_first=first, rtp_port_last=last,
        agent_patterns=AgentPatterns.parse("1000-1999"),
        timers=TimerSettings(t1_s=0.1, t2_s=0.4, t4_s=0.5), idle_check_interval_s=0.2,
        rtp_idle_timeout_s=20.0,
    )  # fmt: skip


@pytest.mark.sipp
@pytest.mark.raw_sockets
def test_a_stop_sends_bye_to_every_session(tmp_path: Path) -> None:
    agent, customer = _ulaw(6.0)
    write_pcap(tmp_path / "siprec_call.pcap", customer, agent)
    ended = Ended()

    async def main() -> tuple[subprocess.CompletedProcess[bytes], dict[str, int]]:
        server = RecordingServer(_settings(tmp_path), on_call_ended=ended)
        await server.start()
        sipp = asyncio.create_task(run_sipp(
            sipp_path(), tmp_path, server.udp_port or 0, CALLS, 6.0, scenario=UNTIL_SERVER_BYE,
            extra=("-timeout", "15s"),
        ))  # fmt: skip
        try:
            for _ in range(100):
                if len(server.calls) == CALLS:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # some audio
        finally:
            await server.stop()
        return await sipp, dict(server.counters)

    done, counters = asyncio.run(main())
    # Each session got the server's BYE and answered it; none was left to SIPp's timeout.
    assert done.returncode == 0, sipp_failure(done, tmp_path)
    assert counters["byes_sent"] == CALLS and counters["ended_shutdown"] == CALLS
    assert len(ended.calls) == CALLS and all(c.duration_s > 0.5 for c in ended.calls)


def test_rtp_arriving_just_after_the_bye_is_recorded(tmp_path: Path) -> None:
    """The sender's BYE overtakes its last 100 ms of RTP: they are still recorded."""
    ended = Ended()
    tail = 5  # packets of each stream sent after the BYE

    async def main() -> dict[str, int]:
        server = RecordingServer(udp_settings(tmp_path), on_call_ended=ended)
        await server.start()
        try:
            port = server.udp_port or 0
            peer = await udp_peer()
            ctype, body = siprec_body(offer_sdp())
            peer.send(request("INVITE", peer.port, headers="Require: siprec\r\n",
                              content_type=ctype, body=body), port)  # fmt: skip
            ok = await peer.response()
            while ok.status < 200:
                ok = await peer.response()
            to_tag = ok.to_addr.tag or ""
            customer_port, agent_port = (m.port for m in parse_sdp(ok.body.decode()).media)
            peer.send(request("ACK", peer.port, to_tag=to_tag), port)
            streams = [(rtp_packets(customer, 0x1111), customer_port),
                       (rtp_packets(agent, 0x2222), agent_port)]  # fmt: skip
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                n = len(streams[0][0])
                for i in range(n):
                    if i == n - tail:
                        peer.send(request("BYE", peer.port, cseq=2, to_tag=to_tag), port)
                    for packets, rtp_port in streams:
                        sock.sendto(packets[i], (HOST, rtp_port))
                    await asyncio.sleep(0.02)
            finally:
                sock.close()
            await ended.wait(1, timeout=5)
        finally:
            await server.stop()
        return dict(server.counters)

    customer, agent = tone(300, 0.8), tone(700, 0.8)
    counters = asyncio.run(main())
    assert counters["rtp_after_bye"] >= 2 * tail - 2  # what came after the BYE is counted
    info = ended.calls[0]
    assert info.end_reason == "bye"
    for role in ("agent", "customer"):
        assert (info.leg_stats[role].received, info.leg_stats[role].lost) == (40, 0)
    rec = read_wav(info.recording_path)  # and recorded: nothing is cut off the end
    assert find_exact(rec[:, 0], ulaw_decode(agent)) >= 0
    assert find_exact(rec[:, 1], ulaw_decode(customer)) >= 0
