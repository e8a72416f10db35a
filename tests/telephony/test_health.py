"""OPTIONS probes and new INVITEs get 200 while the server takes calls, 503 with Retry-After
while it drains, is at its session limit or is short of disk; calls in progress go on."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from telephony.health import MIB, DiskSpace
from telephony.server import RecordingServer
from telephony.sip.message import make_response
from tests.telephony.test_server_udp_tcp import (
    UdpPeer,
    offer_sdp,
    on_loop,
    request,
    settings,
    udp_peer,
)


def test_free_space_is_read_from_the_file_system_at_most_once_per_interval(
    tmp_path: Path,
) -> None:
    now = [100.0]
    disk = DiskSpace(tmp_path / "spool" / "not-made-yet", interval_s=2.0, clock=lambda: now[0])
    stat = os.statvfs(tmp_path)
    assert abs(disk.free_mb() - stat.f_bavail * stat.f_frsize / MIB) < 64
    for _ in range(50):
        disk.free_mb()
        now[0] += 0.01
    assert disk.reads == 1
    now[0] += 2.0
    disk.free_mb()
    assert disk.reads == 2


async def _options(peer: UdpPeer, port: int, to_tag: str = "", call_id: str = "probe") -> int:
    peer.send(request("OPTIONS", peer.port, call_id=call_id, to_tag=to_tag), port)
    reply = await peer.response()
    if reply.status == 503:
        assert reply.headers.get("Retry-After") == "5"
        assert reply.headers.get("Warning"), "a 503 says why"
    return reply.status


async def _invite(peer: UdpPeer, port: int, call_id: str) -> tuple[int, str]:
    body = offer_sdp().encode()
    peer.send(request("INVITE", peer.port, call_id=call_id, content_type="application/sdp",
                      body=body), port)  # fmt: skip
    reply = await peer.response()
    to_tag = reply.to_addr.tag or ""
    peer.send(request("ACK", peer.port, call_id=call_id, to_tag=to_tag), port)
    return reply.status, to_tag


async def _bye(peer: UdpPeer, port: int, call_id: str, to_tag: str) -> int:
    peer.send(request("BYE", peer.port, call_id=call_id, cseq=2, to_tag=to_tag), port)
    return (await peer.response()).status


async def _no_calls(server: RecordingServer) -> None:
    """Until the server has let go of its calls (it waits a moment after a BYE for RTP
    still on its way)."""
    for _ in range(50):
        if not server.active_calls:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{server.active_calls} calls still held")


@on_loop
async def test_session_limit_and_drain_turn_probes_to_503(tmp_path: Path) -> None:
    server = RecordingServer(settings(tmp_path, max_sessions=1))
    await server.start()
    try:
        port = server.udp_port or 0
        peer = await udp_peer()
        assert await _options(peer, port) == 200

        status, tag = await _invite(peer, port, "first")
        assert status == 200
        assert await _options(peer, port) == 503  # at the limit
        assert (await _invite(peer, port, "second"))[0] == 503
        assert await _options(peer, port, to_tag=tag, call_id="first") == 200  # in dialog
        assert await _bye(peer, port, "first", tag) == 200
        await _no_calls(server)
        assert await _options(peer, port) == 200

        status, tag = await _invite(peer, port, "third")
        assert status == 200
        await _bye(peer, port, "third", tag)
        await _no_calls(server)
        status, tag = await _invite(peer, port, "fourth")
        assert status == 200
        draining = asyncio.create_task(server.drain(10.0))
        await asyncio.sleep(0.05)
        assert await _options(peer, port) == 503
        assert (await _invite(peer, port, "fifth"))[0] == 503
        assert not draining.done(), "the drain waits for the call in progress"
        assert await _bye(peer, port, "fourth", tag) == 200  # the call in progress ends as usual
        assert await asyncio.wait_for(draining, 2.0) == 0
        assert server.counters["limit_sessions"] == 1
        assert server.counters["refused_draining"] == 1
        assert server.counters["options_unavailable"] == 2
        assert server.counters["ended_bye"] == 3
    finally:
        await server.stop()


@on_loop
async def test_drain_gives_up_after_its_time_and_says_how_many_calls_are_left(
    tmp_path: Path,
) -> None:
    server = RecordingServer(settings(tmp_path))
    await server.start()
    try:
        peer = await udp_peer()
        assert (await _invite(peer, server.udp_port or 0, "long"))[0] == 200
        assert await server.drain(0.3) == 1
        stopping = asyncio.create_task(server.stop())  # ends the call with a BYE
        bye = await peer.request("BYE")
        peer.send(make_response(bye, 200).serialize(), server.udp_port or 0)
        await stopping
    finally:
        await server.stop()
    assert server.counters["ended_shutdown"] == 1


@on_loop
async def test_a_disk_short_of_the_threshold_refuses_new_calls(tmp_path: Path) -> None:
    free = DiskSpace(tmp_path).free_mb()
    for needed, expected in ((free * 4 + 1e6, 503), (1.0, 200)):
        server = RecordingServer(settings(tmp_path, disk_min_free_mb=needed))
        await server.start()
        try:
            port = server.udp_port or 0
            peer = await udp_peer()
            assert await _options(peer, port) == expected
            status, tag = await _invite(peer, port, f"call-{expected}")
            assert status == expected
            if status == 200:
                await _bye(peer, port, f"call-{expected}", tag)
                await _no_calls(server)
            else:
                assert server.counters["limit_disk"] == 1
        finally:
            await server.stop()
