"""The recording server over real loopback sockets: SIP over UDP and TCP, RTP into WAV files."""

from __future__ import annotations

import asyncio
import functools
import secrets
import socket
import struct
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest

from core.ports import free_port_range
from kernels.g711 import ulaw_decode, ulaw_encode
from telephony.server import RecordingServer, ServerSettings
from telephony.sessions import CallInfo
from telephony.sip.message import (
    SipParseError,
    SipRequest,
    SipResponse,
    StreamFramer,
    make_response,
    parse_message,
)
from telephony.sip.sdp import parse_sdp
from telephony.sip.transaction import TimerSettings
from telephony.sip.transport import UDP_RECEIVE_BUFFER_BYTES
from telephony.siprec import AgentPatterns

SCENARIOS = Path(__file__).parent / "scenarios"
RFC_XML = (SCENARIOS / "rfc7865_metadata.xml").read_text()
FAST = TimerSettings(t1_s=0.05, t2_s=0.2, t4_s=0.2)
HOST = "127.0.0.1"


def on_loop(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def run(*args: object, **kwargs: object) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))  # type: ignore[arg-type]

    return run


def settings(tmp_path: Path, **over: object) -> ServerSettings:
    first, last = free_port_range(40)
    values: dict[str, object] = {
        "recordings_dir": tmp_path / "spool",
        "host": HOST,
        "port": 0,
        "rtp_port_first": first,
        "rtp_port_last": last,
        "timers": FAST,
        "idle_check_interval_s": 0.05,
        "agent_patterns": AgentPatterns.parse("1000-1999"),
    }
    values.update(over)
    return ServerSettings(**values)  # type: ignore[arg-type]


# ---------------------------------------------------------------- a small SIP peer


class UdpPeer(asyncio.DatagramProtocol):
    """A SIP endpoint on a UDP socket that collects what it receives."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[SipRequest | SipResponse] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.expect: tuple[str, tuple[int, str]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait(parse_message(data))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (HOST, port))
        try:
            sent = parse_message(data)
        except SipParseError:
            return
        if isinstance(sent, SipRequest) and sent.method != "ACK":
            self.expect = (sent.call_id, sent.cseq)

    async def receive(self, timeout: float = 2.0) -> SipRequest | SipResponse:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def response(self, status: int | None = None, timeout: float = 2.0) -> SipResponse:
        """The next response to the last request sent, skipping provisional ones unless
        `status` asks for one (and retransmitted responses to earlier requests)."""
        while True:
            msg = await self.receive(timeout)
            if not isinstance(msg, SipResponse) or (msg.call_id, msg.cseq) != self.expect:
                continue
            if msg.status == status or (status is None and msg.status >= 200):
                return msg

    async def request(self, method: str, timeout: float = 3.0) -> SipRequest:
        """The next request of this method the server sends (responses are skipped)."""
        while True:
            msg = await self.receive(timeout)
            if isinstance(msg, SipRequest) and msg.method == method:
                return msg

    async def nothing(self, wait: float = 0.3) -> bool:
        try:
            await asyncio.wait_for(self.queue.get(), wait)
        except TimeoutError:
            return True
        return False


def drain(queue: asyncio.Queue[SipRequest | SipResponse]) -> list[SipRequest | SipResponse]:
    """Every message queued now, oldest first; the queue is left empty."""
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def udp_peer() -> UdpPeer:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_datagram_endpoint(UdpPeer, local_addr=(HOST, 0))
    return proto


class TcpPeer:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.framer = StreamFramer()
        self.pending: list[SipRequest | SipResponse] = []

    @classmethod
    async def connect(cls, port: int) -> TcpPeer:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    @property
    def port(self) -> int:
        return int(self.writer.get_extra_info("sockname")[1])

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def receive(self, timeout: float = 2.0) -> SipRequest | SipResponse | None:
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                return None
            self.pending.extend(self.framer.feed(data))
        return self.pending.pop(0)

    async def response(self, timeout: float = 2.0) -> SipResponse | None:
        while True:
            msg = await self.receive(timeout)
            if msg is None or (isinstance(msg, SipResponse) and msg.status >= 200):
                return msg

    def close(self) -> None:
        self.writer.close()


def request(
    method: str,
    port: int,
    *,
    call_id: str = "call-1",
    cseq: int = 1,
    from_tag: str = "src1",
    to_tag: str = "",
    transport: str = "UDP",
    branch: str | None = None,
    headers: str = "",
    content_type: str = "",
    body: bytes = b"",
    from_uri: str = "sip:src@127.0.0.1",
    to_uri: str = "sip:srs@127.0.0.1",
) -> bytes:
    branch = branch or "z9hG4bK" + secrets.token_hex(6)
    tag = f";tag={to_tag}" if to_tag else ""
    ctype = f"Content-Type: {content_type}\r\n" if content_type else ""
    cseq_method = "INVITE" if method == "ACK" else method
    return (
        f"{method} sip:srs@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:{port};branch={branch};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <{from_uri}>;tag={from_tag}\r\nTo: <{to_uri}>{tag}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} {cseq_method}\r\n"
        f"Contact: <sip:src@127.0.0.1:{port}>\r\n{headers}{ctype}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def offer_sdp(directions: tuple[str, ...] = ("sendonly", "sendonly"), codecs: str = "0 8") -> str:
    lines = ["v=0", "o=SBC 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0"]
    for i, direction in enumerate(directions):
        lines += [f"m=audio {40000 + 2 * i} RTP/AVP {codecs}", f"a=label:{96 + i}"]
        lines += ["a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", f"a={direction}"]
    return "\r\n".join(lines) + "\r\n"


def siprec_body(sdp: str, metadata: str = RFC_XML) -> tuple[str, bytes]:
    body = (
        "--sep\r\nContent-Type: application/sdp\r\n\r\n" + sdp
        + "\r\n--sep\r\nContent-Type: application/rs-metadata+xml\r\n"
        + "Content-Disposition: recording-session\r\n\r\n" + metadata + "\r\n--sep--\r\n"
    )  # fmt: skip
    return "multipart/mixed;boundary=sep", body.encode()


def rtp_packets(codes: np.ndarray, ssrc: int, pt: int = 0, seq0: int = 100) -> list[bytes]:
    out = []
    for i in range(0, len(codes), 160):
        header = struct.pack("!BBHII", 0x80, pt, (seq0 + i // 160) & 0xFFFF, 1000 + i, ssrc)
        out.append(header + codes[i : i + 160].tobytes())
    return out


def tone(freq: float, seconds: float, level: float = 8000.0) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000.0
    pcm = (level * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return ulaw_encode(pcm)


async def send_rtp(packets: list[bytes], port: int, spacing_s: float = 0.004) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for packet in packets:
            sock.sendto(packet, (HOST, port))
            await asyncio.sleep(spacing_s)
    finally:
        sock.close()


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return data.reshape(-1, w.getnchannels())


def find_exact(channel: np.ndarray, sent: np.ndarray) -> int:
    """Where `sent` lies sample for sample inside `channel`; -1 if nowhere."""
    for start in range(0, len(channel) - len(sent) + 1):
        if channel[start] == sent[0] and np.array_equal(channel[start : start + len(sent)], sent):
            return start
    return -1


class Ended:
    def __init__(self) -> None:
        self.calls: list[CallInfo] = []
        self.event = asyncio.Event()

    def __call__(self, info: CallInfo) -> None:
        self.calls.append(info)
        self.event.set()

    async def wait(self, count: int = 1, timeout: float = 5.0) -> None:
        async def until() -> None:
            while len(self.calls) < count:
                self.event.clear()
                await self.event.wait()

        await asyncio.wait_for(until(), timeout)


# ---------------------------------------------------------------- tests


@on_loop
async def test_options_over_udp_and_tcp(tmp_path: Path) -> None:
    server = RecordingServer(settings(tmp_path))
    await server.start()
    try:
        assert server.udp_port == server.tcp_port
        peer = await udp_peer()
        peer.send(request("OPTIONS", peer.port), server.udp_port)
        ok = await peer.response()
        assert ok.status == 200
        assert "INVITE" in (ok.headers.get("Allow") or "")
        assert "siprec" in ok.headers.get_all("Supported")
        tcp = await TcpPeer.connect(server.tcp_port or 0)
        tcp.send(request("OPTIONS", tcp.port, transport="TCP"))
        tcp_ok = await tcp.response()
        assert tcp_ok is not None and tcp_ok.status == 200
        tcp.close()
    finally:
        await server.stop()


@on_loop
async def test_a_picked_port_taken_for_tcp_is_given_back_and_another_picked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With port 0 the kernel picks a UDP port; the same port may be some TCP connection's
    local end already. The server then picks again instead of failing to start."""
    real_start_server = asyncio.start_server
    squatters: list[socket.socket] = []

    async def start_server_on_a_taken_port(*args: object, **kwargs: object) -> asyncio.Server:
        if not squatters:  # the first pick: take its TCP port for real before the server binds
            squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            squatter.bind((HOST, int(args[2])))  # type: ignore[call-overload]
            squatter.listen()
            squatters.append(squatter)
        return await real_start_server(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "start_server", start_server_on_a_taken_port)
    server = RecordingServer(settings(tmp_path))
    try:
        await server.start()
        taken = squatters[0].getsockname()[1]
        assert server.udp_port == server.tcp_port
        assert server.udp_port != taken
        peer = await udp_peer()
        peer.send(request("OPTIONS", peer.port), server.udp_port)
        assert (await peer.response()).status == 200
    finally:
        await server.stop()
        for squatter in squatters:
            squatter.close()


@on_loop
async def test_sip_udp_socket_has_room_for_a_burst_of_call_setups(tmp_path: Path) -> None:
    """A thousand INVITEs at once do not fit the kernel's default receive buffer (about
    200 kB); the SIP socket asks for more, so a burst waits instead of being dropped."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
        default = plain.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    server = RecordingServer(settings(tmp_path))
    await server.start()
    try:
        granted = server.transport.udp_receive_buffer
        assert granted > default, (granted, default)
        assert granted >= min(UDP_RECEIVE_BUFFER_BYTES, _rmem_max()), granted
    finally:
        await server.stop()


def _rmem_max() -> int:
    return int(Path("/proc/sys/net/core/rmem_max").read_text())


@on_loop
async def test_garbage_is_counted_and_the_server_stays_up(tmp_path: Path) -> None:
    server = RecordingServer(settings(tmp_path, max_message_bytes=4000, max_headers=20))
    await server.start()
    try:
        port = server.udp_port or 0
        peer = await udp_peer()
        good = request("OPTIONS", peer.port)
        peer.send(b"\x00\xff garbage \x17" * 10, port)
        peer.send(good[:60], port)  # truncated
        peer.send(good.replace(b"Content-Length: 0", b"Content-Length: 99"), port)
        peer.send(good.replace(b"Max-Forwards", b"X-Pad: " + b"y" * 5000 + b"\r\nM"), port)
        peer.send(good.replace(b"Max-Forwards: 70\r\n", b"X-A: 1\r\n" * 30), port)
        peer.send(good.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"), port)
        peer.send(b"\r\n\r\n", port)  # a keep-alive, not an error
        assert await peer.nothing(0.2) is False  # the CSeq mismatch gets 400
        peer.send(good, port)
        ok = await peer.response()
        assert ok.status == 200
        assert server.counters["malformed"] == 6
        assert server.counters["limit_message_bytes"] == 1
        assert server.counters["limit_headers"] == 1
        assert server.counters["keepalives"] == 1

        # On TCP a framing error closes the connection; a new one is served.
        tcp = await TcpPeer.connect(server.tcp_port or 0)
        tcp.send(b"OPTIONS sip:srs@127.0.0.1 SIP/2.0\r\nCall-ID: x\r\n\r\n")
        assert await tcp.receive() is None
        tcp2 = await TcpPeer.connect(server.tcp_port or 0)
        tcp2.send(request("OPTIONS", tcp2.port, transport="TCP"))
        again = await tcp2.response()
        assert again is not None and again.status == 200
        tcp2.close()
        assert server.counters["malformed"] == 7
    finally:
        await server.stop()


@on_loop
async def test_peers_not_allowed_get_nothing_on_udp_and_403_on_tcp(tmp_path: Path) -> None:
    server = RecordingServer(settings(tmp_path, allowed_peers=("10.9.9.0/24",)))
    await server.start()
    try:
        peer = await udp_peer()
        peer.send(request("OPTIONS", peer.port), server.udp_port or 0)
        assert await peer.nothing(0.3)
        tcp = await TcpPeer.connect(server.tcp_port or 0)
        tcp.send(request("OPTIONS", tcp.port, transport="TCP"))
        refused = await tcp.response()
        assert refused is not None and refused.status == 403
        assert await tcp.receive() is None
        assert server.counters["peer_refused"] == 2
    finally:
        await server.stop()


@on_loop
async def test_siprec_call_with_pause_resume_reinvite_and_bye(tmp_path: Path) -> None:
    ended = Ended()
    server = RecordingServer(settings(tmp_path), on_call_ended=ended)
    await server.start()
    assert server.receiver is not None  # RTP on the receive thread, off the event loop
    try:
        port = server.udp_port or 0
        peer = await udp_peer()
        ctype, body = siprec_body(offer_sdp())
        invite = request(
            "INVITE", peer.port, headers="Require: siprec\r\n", content_type=ctype, body=body
        )
        peer.send(invite, port)
        trying = await peer.response(100)
        assert trying.status == 100
        ok = await peer.response()
        assert ok.status == 200
        peer.send(invite, port)  # a retransmission: the same 200 again, no second call
        again = await peer.response()
        assert again.body == ok.body
        assert "+sip.srs" in (ok.headers.get("Contact") or "")
        to_tag = ok.to_addr.tag or ""
        answer = parse_sdp(ok.body.decode())
        assert [m.direction for m in answer.media] == ["recvonly", "recvonly"]
        assert [m.label for m in answer.media] == ["96", "97"]
        assert [m.payload_types for m in answer.media] == [[0], [0]]
        customer_port, agent_port = (m.port for m in answer.media)
        peer.send(request("ACK", peer.port, to_tag=to_tag), port)

        customer = tone(300, 0.6)
        agent = tone(700, 0.6)
        await asyncio.gather(
            send_rtp(rtp_packets(customer, 0x1111), customer_port),
            send_rtp(rtp_packets(agent, 0x2222), agent_port),
        )

        # Pause the customer stream, send into it (dropped), resume it.
        paused_sdp = offer_sdp(("inactive", "sendonly"))
        ctype2, body2 = siprec_body(paused_sdp)
        peer.send(request("INVITE", peer.port, cseq=2, to_tag=to_tag, content_type=ctype2,
                          body=body2), port)  # fmt: skip
        ok2 = await peer.response()
        assert ok2.status == 200
        answer2 = parse_sdp(ok2.body.decode())
        assert [m.direction for m in answer2.media] == ["inactive", "recvonly"]
        assert [m.port for m in answer2.media] == [customer_port, agent_port]
        assert int(answer2.origin.session_version) == int(answer.origin.session_version) + 1
        peer.send(request("ACK", peer.port, cseq=2, to_tag=to_tag), port)
        await send_rtp(rtp_packets(tone(1000, 0.2), 0x1111, seq0=400), customer_port)

        peer.send(request("INVITE", peer.port, cseq=3, to_tag=to_tag, content_type=ctype,
                          body=body), port)  # fmt: skip
        ok3 = await peer.response()
        assert [m.direction for m in parse_sdp(ok3.body.decode()).media] == ["recvonly"] * 2
        peer.send(request("ACK", peer.port, cseq=3, to_tag=to_tag), port)
        later = tone(450, 0.4)
        await send_rtp(rtp_packets(later, 0x1111, seq0=1000), customer_port)

        # An old CSeq is out of order; an unknown dialog is 481.
        peer.send(request("UPDATE", peer.port, cseq=1, to_tag=to_tag), port)
        assert (await peer.response()).status == 500
        peer.send(request("BYE", peer.port, cseq=9, to_tag="nope"), port)
        assert (await peer.response()).status == 481

        peer.send(request("BYE", peer.port, cseq=4, to_tag=to_tag), port)
        assert (await peer.response()).status == 200
        await ended.wait()
        assert server.ports.in_use == 0
        assert server.active_calls == 0
    finally:
        await server.stop()

    assert server.receiver is None  # the receive thread is stopped with the server
    info = ended.calls[0]
    assert info.source == "siprec"
    assert info.end_reason == "bye"
    assert info.agent_id == "1042"
    assert info.agent_aor == "sip:1042@pbx.example.com"
    assert info.customer_aor == "sip:+8613800138000@carrier.example.net"
    assert info.agent_channel == "left"
    assert info.labels == {"customer": "96", "agent": "97"}
    assert info.call_identifiers["callId"] == "pbx-call-4711"
    assert info.leg_stats["customer"].dropped_paused == 10
    assert info.leg_stats["agent"].received == 30
    assert info.leg_stats["customer"].received == 50
    assert info.leg_stats["agent"].lost == 0
    rec = read_wav(info.recording_path)
    assert rec.shape[1] == 2
    agent_ch, customer_ch = rec[:, 0], rec[:, 1]
    assert find_exact(agent_ch, ulaw_decode(agent)) >= 0
    first = find_exact(customer_ch, ulaw_decode(customer))
    assert first >= 0
    assert find_exact(customer_ch, ulaw_decode(later)) > first + len(customer)
    assert server.counters["retransmissions_absorbed"] >= 1
    assert server.counters["calls_siprec"] == 1


@on_loop
async def test_plain_call_over_tcp_is_one_stream(tmp_path: Path) -> None:
    ended = Ended()
    server = RecordingServer(settings(tmp_path), on_call_ended=ended)
    await server.start()
    try:
        tcp = await TcpPeer.connect(server.tcp_port or 0)
        sdp = offer_sdp(("sendrecv",), codecs="8").encode()
        tcp.send(request("INVITE", tcp.port, transport="TCP", content_type="application/sdp",
                         body=sdp, from_uri="sip:1234@pbx", to_uri="sip:+861088@pstn"))  # fmt: skip
        ok = await tcp.response()
        assert ok is not None and ok.status == 200
        assert "transport=tcp" in (ok.headers.get("Contact") or "")
        media = parse_sdp(ok.body.decode()).media
        assert [(m.payload_types, m.direction) for m in media] == [([8], "recvonly")]
        to_tag = ok.to_addr.tag or ""
        tcp.send(request("ACK", tcp.port, transport="TCP", to_tag=to_tag))
        pcm = (4000 * np.sin(np.arange(4000) / 7)).astype(np.int16)
        from kernels.g711 import alaw_decode, alaw_encode

        codes = alaw_encode(pcm)
        await send_rtp(rtp_packets(codes, 0x3333, pt=8), media[0].port)
        tcp.send(request("BYE", tcp.port, transport="TCP", cseq=2, to_tag=to_tag))
        bye_ok = await tcp.response()
        assert bye_ok is not None and bye_ok.status == 200
        await ended.wait()
        tcp.close()
    finally:
        await server.stop()
    info = ended.calls[0]
    assert info.source == "sip"
    assert info.channels == 1
    assert info.mono_speaker == "agent"
    assert info.agent_id == "1234"
    assert (info.caller, info.callee) == ("sip:1234@pbx", "sip:+861088@pstn")
    rec = read_wav(info.recording_path)
    assert rec.shape[1] == 1
    assert find_exact(rec[:, 0], alaw_decode(codes)) >= 0


@on_loop
async def test_refusals_488_420_503_and_481(tmp_path: Path) -> None:
    server = RecordingServer(settings(tmp_path, max_sessions=1))
    await server.start()
    try:
        port = server.udp_port or 0
        peer = await udp_peer()
        g729 = offer_sdp(("sendonly",), codecs="18").encode()
        peer.send(request("INVITE", peer.port, call_id="a", content_type="application/sdp",
                          body=g729), port)  # fmt: skip
        refused = await peer.response()
        assert refused.status == 488
        peer.send(request("ACK", peer.port, call_id="a", to_tag=refused.to_addr.tag or ""), port)

        peer.send(request("INVITE", peer.port, call_id="b", headers="Require: siprec, 100rel\r\n",
                          content_type="application/sdp", body=g729), port)  # fmt: skip
        bad_ext = await peer.response()
        assert bad_ext.status == 420
        assert bad_ext.headers.get("Unsupported") == "100rel"

        sdp = offer_sdp().encode()
        peer.send(request("INVITE", peer.port, call_id="c", content_type="application/sdp",
                          body=sdp), port)  # fmt: skip
        first = await peer.response()
        assert first.status == 200
        peer.send(request("INVITE", peer.port, call_id="d", content_type="application/sdp",
                          body=sdp), port)  # fmt: skip
        busy = await peer.response()
        assert busy.status == 503
        assert busy.headers.get("Retry-After") == "5"

        peer.send(request("BYE", peer.port, call_id="zzz", to_tag="t"), port)
        assert (await peer.response()).status == 481
        peer.send(request("CANCEL", peer.port, call_id="zzz"), port)
        assert (await peer.response()).status == 481
        peer.send(request("MESSAGE", peer.port, call_id="m"), port)
        assert (await peer.response()).status == 405
        assert server.counters["not_acceptable"] == 1
        assert server.counters["unsupported_require"] == 1
        assert server.counters["limit_sessions"] == 1
        assert server.counters["no_dialog"] == 1
    finally:
        await server.stop()


@on_loop
async def test_idle_call_ends_and_server_sends_bye(tmp_path: Path) -> None:
    ended = Ended()
    server = RecordingServer(settings(tmp_path, rtp_idle_timeout_s=0.4), on_call_ended=ended)
    await server.start()
    try:
        port = server.udp_port or 0
        peer = await udp_peer()
        ctype, body = siprec_body(offer_sdp())
        peer.send(request("INVITE", peer.port, content_type=ctype, body=body), port)
        ok = await peer.response()
        to_tag = ok.to_addr.tag or ""
        peer.send(request("ACK", peer.port, to_tag=to_tag), port)
        media = parse_sdp(ok.body.decode()).media
        await send_rtp(rtp_packets(tone(500, 0.2), 7), media[0].port)
        bye = await peer.request("BYE")
        assert bye.from_addr.tag == to_tag
        assert bye.to_addr.tag == "src1"
        assert bye.call_id == "call-1"
        assert bye.headers.get("Reason", "").startswith("SIP;cause=200")
        await ended.wait()
        again = await peer.request("BYE")  # re-sent (timer E) until answered
        assert again.headers.get("Via") == bye.headers.get("Via")
        peer.send(make_response(bye, 200).serialize(), port)
        await asyncio.sleep(FAST.t1_s)  # re-sends already on their way when the 200 left
        drain(peer.queue)
        await asyncio.sleep(3 * FAST.t2_s)  # timer E would have fired at least twice
        assert [m for m in drain(peer.queue) if isinstance(m, SipRequest)] == []
        assert ended.calls[0].end_reason == "rtp_timeout"
        assert server.counters["limit_rtp_idle"] == 1
        assert server.counters["byes_sent"] == 1
    finally:
        await server.stop()


@on_loop
async def test_update_with_metadata_and_cancel_of_an_answered_invite(tmp_path: Path) -> None:
    ended = Ended()
    server = RecordingServer(settings(tmp_path), on_call_ended=ended)
    await server.start()
    try:
        port = server.udp_port or 0
        peer = await udp_peer()
        ctype, body = siprec_body(offer_sdp())
        branch = "z9hG4bKinvite1"
        peer.send(request("INVITE", peer.port, branch=branch, content_type=ctype, body=body), port)
        ok = await peer.response()
        to_tag = ok.to_addr.tag or ""
        peer.send(request("ACK", peer.port, to_tag=to_tag), port)
        peer.send(request("CANCEL", peer.port, branch=branch), port)
        assert (await peer.response()).status == 200  # matched, but too late to cancel
        transferred = RFC_XML.replace("sip:1042@pbx.example.com", "sip:1077@pbx.example.com")
        peer.send(request("UPDATE", peer.port, cseq=2, to_tag=to_tag,
                          content_type="application/rs-metadata+xml",
                          body=transferred.encode()), port)  # fmt: skip
        updated = await peer.response()
        assert updated.status == 200
        assert updated.body == b""
        peer.send(request("BYE", peer.port, cseq=3, to_tag=to_tag), port)
        await peer.response()
        await ended.wait()
    finally:
        await server.stop()
    info = ended.calls[0]
    assert info.agent_ids_seen == ["1042", "1077"]
    assert info.agent_id == "1077"  # the agent follows the metadata (a transfer)
    assert [d["kind"] for d in info.decisions].count("agent") == 2
    assert server.counters["updates_update"] == 1


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_only_configured_transports_listen(tmp_path: Path, transport: str) -> None:
    async def main() -> None:
        server = RecordingServer(settings(tmp_path, transports=(transport,)))
        await server.start()
        try:
            assert (server.udp_port is None) == (transport == "tcp")
            assert (server.tcp_port is None) == (transport == "udp")
        finally:
            await server.stop()

    asyncio.run(main())


def test_receiver_settings_from_file_environment_and_flags(tmp_path: Path) -> None:
    from core.config import ConfigError, load_settings
    from core.ingest.receive import server_settings

    def server_settings_of(environ: dict[str, str]) -> object:
        return server_settings(load_settings(None, {"data_dir": tmp_path}, environ))

    toml = tmp_path / "callqa.toml"
    toml.write_text(
        'sip_port = 5070\nsip_allowed_peers = "10.0.0.0/24, 192.0.2.7"\n'
        'agent_patterns = "1000-1999, @agents.example.com"\nrtp_idle_timeout_s = 12\n'
    )
    env = {"CALLQA_SIP_TRANSPORTS": "tcp", "CALLQA_DEFAULT_AGENT_SIDE": "caller"}
    s = server_settings(load_settings(toml, {"data_dir": tmp_path, "sip_port": 5080,
                                             "sip_host": None}, env))  # fmt: skip
    assert (s.host, s.port, s.transports) == ("0.0.0.0", 5080, ("tcp",))
    assert s.allowed_peers == ("10.0.0.0/24", "192.0.2.7")
    assert s.agent_patterns.matches("sip:x@agents.example.com")
    assert s.rtp_idle_timeout_s == 12.0
    assert s.default_agent_side == "caller"
    assert s.recordings_dir == tmp_path / "spool"
    with pytest.raises(ConfigError, match="sip_transports"):
        server_settings_of({"CALLQA_SIP_TRANSPORTS": "sctp"})
    with pytest.raises(ConfigError, match="default_agent_side"):
        server_settings_of({"CALLQA_DEFAULT_AGENT_SIDE": "left"})
    with pytest.raises(ConfigError, match="agent_patterns"):
        server_settings_of({"CALLQA_AGENT_PATTERNS": "re:("})
    with pytest.raises(ConfigError, match="sip_allowed_peers"):
        server_settings_of({"CALLQA_SIP_ALLOWED_PEERS": "not-an-address"})
    with pytest.raises(ConfigError, match="sip_port"):
        server_settings_of({"CALLQA_SIP_PORT": "five"})


def test_receive_command_line() -> None:
    import argparse

    from core.cli import receive as cli_receive

    parser = argparse.ArgumentParser(prog="callqa")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_receive.add_parser(sub)
    args = parser.parse_args(
        ["receive", "--sip-port", "5090", "--allow", "10.1.0.0/24", "--allow", "::1"]
    )
    assert args.func is cli_receive.run
    assert (args.sip_port, args.allow, args.no_score) == (5090, ["10.1.0.0/24", "::1"], False)


@on_loop
async def test_cancel_before_the_answer_ends_the_attempt(tmp_path: Path) -> None:
    ended = Ended()
    server = RecordingServer(settings(tmp_path), on_call_ended=ended)
    await server.start()
    try:
        port = server.udp_port or 0
        peer = await udp_peer()
        ctype, body = siprec_body(offer_sdp())
        branch = "z9hG4bKcancelled"
        invite = request("INVITE", peer.port, branch=branch, content_type=ctype, body=body)
        cancel = request("CANCEL", peer.port, branch=branch)
        assert peer.transport is not None
        peer.transport.sendto(invite, (HOST, port))
        peer.send(cancel, port)  # in the same burst: before the INVITE is handled
        assert (await peer.response()).status == 200
        peer.expect = ("call-1", (1, "INVITE"))
        terminated = await peer.response()
        assert terminated.status == 487
        peer.send(request("ACK", peer.port, branch=branch, to_tag=terminated.to_addr.tag or ""),
                  port)  # fmt: skip
        await asyncio.sleep(0.3)
        assert server.counters["calls_cancelled"] == 1
        assert server.active_calls == 0
        assert server.ports.in_use == 0
        assert ended.calls == []
        assert not list((tmp_path / "spool").rglob("*.wav"))
    finally:
        await server.stop()


@on_loop
async def test_rtp_port_exhaustion_is_503_and_ports_come_back(tmp_path: Path) -> None:
    first, _ = free_port_range(4)
    server = RecordingServer(settings(tmp_path, rtp_port_first=first, rtp_port_last=first + 3))
    await server.start()
    try:
        port = server.udp_port or 0
        peer = await udp_peer()
        sdp = offer_sdp().encode()
        peer.send(request("INVITE", peer.port, call_id="one", content_type="application/sdp",
                          body=sdp), port)  # fmt: skip
        ok = await peer.response()
        assert ok.status == 200
        assert server.ports.in_use == 2
        peer.send(request("INVITE", peer.port, call_id="two", content_type="application/sdp",
                          body=sdp), port)  # fmt: skip
        full = await peer.response()
        assert (full.status, full.headers.get("Retry-After")) == (503, "5")
        assert server.counters["limit_rtp_ports"] == 1
        assert server.ports.in_use == 2
        peer.send(request("BYE", peer.port, call_id="one", cseq=2, to_tag=ok.to_addr.tag or ""),
                  port)  # fmt: skip
        assert (await peer.response()).status == 200
        for _ in range(50):  # the streams close once no RTP came for a moment after the BYE
            if server.ports.in_use == 0:
                break
            await asyncio.sleep(0.02)
        assert server.ports.in_use == 0
    finally:
        await server.stop()


@on_loop
async def test_refused_metadata_is_noted_and_the_call_taken(tmp_path: Path) -> None:
    ended = Ended()
    server = RecordingServer(settings(tmp_path), on_call_ended=ended)
    await server.start()
    try:
        port = server.udp_port or 0
        peer = await udp_peer()
        ctype, body = siprec_body(offer_sdp(), metadata="<recording xmlns='urn:x'/>")
        peer.send(request("INVITE", peer.port, content_type=ctype, body=body), port)
        ok = await peer.response()
        assert ok.status == 200
        to_tag = ok.to_addr.tag or ""
        peer.send(request("ACK", peer.port, to_tag=to_tag), port)
        peer.send(request("BYE", peer.port, cseq=2, to_tag=to_tag), port)
        assert (await peer.response()).status == 200
        await ended.wait()
    finally:
        await server.stop()
    info = ended.calls[0]
    assert server.counters["bad_metadata"] == 1
    assert info.decisions[0]["summary"].startswith(
        "the metadata in the INVITE was refused: unknown metadata namespace"
    )
    assert (info.agent_id, info.caller, info.callee) == (None, None, None)  # not the recorder
    assert info.no_audio
