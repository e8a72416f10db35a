"""The SIP transport layer (RFC 3261 §18): UDP and TCP listeners and the peer allow-list.

`TransportLayer` binds the configured transports and hands every message it can read, with
the `Peer` it came from, to a handler:

* only allowed peers are served: others get nothing on UDP and 403 on TCP;
* bare CRLF datagrams are keep-alives, counted and dropped;
* a TCP byte stream is cut into messages by their Content-Length (`StreamFramer`); a stream
  that cannot be read any further closes its connection;
* malformed messages and every limit hit are counted in `counters`, logged at debug level
  and dropped, with a warning at 1, 10, 100, ... so that a flood does not flood the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import logging
import socket
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from telephony.sip.message import (
    SipLimitError,
    SipMessage,
    SipParseError,
    SipRequest,
    StreamFramer,
    make_response,
    parse_message,
)
from telephony.sockets import grow_receive_buffer

logger = logging.getLogger(__name__)

TCP_READ_BYTES = 65_536
# Room for a burst of call set-ups while the event loop is busy: about 1,000 SIPREC INVITEs
# (multipart SDP and XML metadata, some 3 kB each, and the kernel's bookkeeping per datagram).
UDP_RECEIVE_BUFFER_BYTES = 8 * 1024 * 1024
# How many ports `start` tries, with port 0, before it gives up.
PICK_TRIES = 20


class PeerFilter:
    """The allow-list of peers: addresses and networks (`10.0.0.0/24`)."""

    def __init__(self, entries: tuple[str, ...]) -> None:
        self.networks = [ipaddress.ip_network(e.strip(), strict=False) for e in entries if e]

    def allows(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in self.networks)


@dataclass
class Peer:
    """Where a request came from and how to answer it."""

    host: str
    port: int
    transport: str
    local_host: str
    local_port: int
    send: Callable[[bytes], None]

    @property
    def reliable(self) -> bool:
        return self.transport == "TCP"

    def __str__(self) -> str:
        return f"{self.transport.lower()}:{self.host}:{self.port}"


MessageHandler = Callable[[SipMessage, Peer], None]


@functools.lru_cache(maxsize=256)
def local_address_towards(host: str) -> str:
    """The local address the kernel would use to reach `host` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, 9))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def is_power_of_ten(n: int) -> bool:
    while n >= 10 and n % 10 == 0:
        n //= 10
    return n == 1


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, layer: TransportLayer) -> None:
        self.layer = layer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.layer._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("UDP error: %s", exc)


class TransportLayer:
    """SIP over UDP and TCP for one bind address; `await start()`, then `await close()`.

    Each message read from an allowed peer goes to `on_message`; what goes wrong on the way
    is counted in `counters` (shared with the caller).
    """

    def __init__(
        self,
        host: str,
        allowed_peers: tuple[str, ...],
        max_message_bytes: int,
        max_headers: int,
        on_message: MessageHandler,
        counters: Counter[str],
    ) -> None:
        self.host = host
        self.peers = PeerFilter(allowed_peers)
        self.max_message_bytes = max_message_bytes
        self.max_headers = max_headers
        self.on_message = on_message
        self.counters = counters
        self.udp_port: int | None = None
        self.udp_receive_buffer = 0
        """The UDP socket's receive buffer as the kernel granted it, in bytes."""
        self.tcp_port: int | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_writers: set[asyncio.StreamWriter] = set()

    async def start(self, transports: Iterable[str], port: int) -> None:
        """Bind the given transports (port 0 picks a free port, the same for both).

        With port 0 the kernel picks a UDP port that may already be taken for TCP (by some
        connection's local end); then the pick is given back and another one tried."""
        names = {t.lower() for t in transports}
        tries = PICK_TRIES if port == 0 and {"udp", "tcp"} <= names else 1
        for attempt in range(1, tries + 1):
            try:
                await self._bind(names, port)
                return
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or attempt == tries:
                    raise
                logger.debug("SIP port %s is taken for TCP; picking another", self.udp_port)
                await self.close()
                self._udp = None
                self.udp_port = None

    async def _bind(self, names: set[str], port: int) -> None:
        loop = asyncio.get_running_loop()
        if "udp" in names:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.host, port)
            )
            self._udp = cast(asyncio.DatagramTransport, transport)
            self.udp_receive_buffer = grow_receive_buffer(
                transport.get_extra_info("socket"), UDP_RECEIVE_BUFFER_BYTES
            )
            if self.udp_receive_buffer < UDP_RECEIVE_BUFFER_BYTES:
                logger.info("SIP UDP receive buffer is %d bytes (asked %d): raise "
                            "net.core.rmem_max, or grant CAP_NET_ADMIN, to take larger "
                            "bursts of calls", self.udp_receive_buffer,
                            UDP_RECEIVE_BUFFER_BYTES)  # fmt: skip
            self.udp_port = int(transport.get_extra_info("sockname")[1])
            port = self.udp_port
        if "tcp" in names:
            self._tcp = await asyncio.start_server(
                self._on_tcp, self.host, port, reuse_address=True
            )
            self.tcp_port = int(self._tcp.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Close the UDP socket, the TCP listener and every open TCP connection."""
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._tcp_writers):
                writer.close()
            await self._tcp.wait_closed()

    def local_host(self, peer_host: str) -> str:
        """The address this side has towards `peer_host` (the bind address unless a wildcard)."""
        if self.host in ("0.0.0.0", "::", ""):
            return local_address_towards(peer_host)
        return self.host

    def count_parse_error(self, exc: SipParseError, peer: Peer) -> None:
        """Count a message that could not be read (and the limit it hit, if any)."""
        if isinstance(exc, SipLimitError):
            self.counters[f"limit_{exc.limit}"] += 1
        self.counters["malformed"] += 1
        count = self.counters["malformed"]
        if is_power_of_ten(count):  # 1, 10, 100, ...: visible without flooding the log
            logger.warning("%d malformed SIP message(s) dropped; the last from %s: %s",
                           count, peer, exc)  # fmt: skip
        elif logger.isEnabledFor(logging.DEBUG):
            logger.debug("dropped a message from %s: %s", peer, exc)

    def _count_refused(self, host: str) -> None:
        self.counters["peer_refused"] += 1
        count = self.counters["peer_refused"]
        if is_power_of_ten(count):
            logger.warning("%d SIP message(s) from peers not in sip_allowed_peers refused; "
                           "the last from %s", count, host)  # fmt: skip

    # ---------------------------------------------------------------- UDP

    def _on_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        host, port = str(addr[0]), int(addr[1])
        if not self.peers.allows(host):
            self._count_refused(host)
            return
        if not data.strip(b"\r\n"):
            self.counters["keepalives"] += 1
            return
        udp = self._udp
        assert udp is not None and self.udp_port is not None

        def send(wire: bytes) -> None:
            udp.sendto(wire, (host, port))

        peer = Peer(host, port, "UDP", self.local_host(host), self.udp_port, send)
        try:
            message = parse_message(data, self.max_message_bytes, self.max_headers)
        except SipParseError as exc:
            self.count_parse_error(exc, peer)
            return
        self.on_message(message, peer)

    # ---------------------------------------------------------------- TCP

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sockname = writer.get_extra_info("sockname")
        peername = writer.get_extra_info("peername")
        host, port = str(peername[0]), int(peername[1])
        allowed = self.peers.allows(host)
        if not allowed:
            self._count_refused(host)
        self._tcp_writers.add(writer)

        def send(wire: bytes) -> None:
            if not writer.is_closing():
                writer.write(wire)

        peer = Peer(host, port, "TCP", str(sockname[0]), int(sockname[1]), send)
        framer = StreamFramer(self.max_message_bytes, self.max_headers)
        try:
            while True:
                data = await reader.read(TCP_READ_BYTES)
                if not data:
                    break
                try:
                    messages = framer.feed(data)
                except SipParseError as exc:
                    self.count_parse_error(exc, peer)
                    break
                for message in messages:
                    if not allowed:
                        _refuse(message, peer)
                        continue
                    self.on_message(message, peer)
                if not allowed:
                    break
        except (ConnectionError, OSError) as exc:
            logger.debug("TCP connection from %s: %s", peer, exc)
        finally:
            self._tcp_writers.discard(writer)
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()
            writer.close()


def _refuse(message: SipMessage, peer: Peer) -> None:
    """Answer a request from a peer not on the allow-list with 403 (never an ACK)."""
    if isinstance(message, SipRequest) and message.method != "ACK":
        with contextlib.suppress(SipParseError, OSError):
            peer.send(make_response(message, 403).serialize())
