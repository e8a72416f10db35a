"""RTP and RTCP sockets: the port pool, an asyncio media stream and a receive thread.

Each leg gets an even RTP port from :class:`RtpPortPool` and RTCP on the port above it
(RFC 3550 section 11). :class:`MediaStream` is the asyncio way: one datagram endpoint per
port handing each packet to its :class:`~telephony.rtp.RtpLeg`. :class:`ReceiveThread` is
the way for many lines: one thread watches every RTP socket with ``epoll`` and drains each
ready socket in a loop of ``recv`` calls, which costs a fraction of the event loop's
per-packet overhead (see ``benchmarks/bench_rtp_receive.py``).

RTCP sender and receiver reports are parsed into :class:`RtcpStats`; anything else on the
RTCP port is skipped, and malformed packets are counted and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from telephony.rtp import RtpLeg

logger = logging.getLogger(__name__)

RTCP_SR = 200
RTCP_RR = 201
RTCP_BYE = 203
MAX_DATAGRAM_BYTES = 2048
RECEIVE_BUFFER_BYTES = 1 << 20
THREAD_POLL_S = 0.2
THREAD_BATCH_S = 0.002

Clock = Callable[[], float]


class PortPoolExhausted(RuntimeError):
    """Every RTP port of the pool is in use."""


class RtpPortPool:
    """Even RTP ports in ``[first, last]``, each with its RTCP port (+1) inside the range."""

    def __init__(self, first: int, last: int) -> None:
        lo = first + (first & 1)
        if not 0 < first <= last <= 65535 or lo + 1 > last:
            raise ValueError(
                f"RTP port range {first}-{last} holds no even port with its RTCP port above it;"
                " give a range such as 20000-29999"
            )
        self.first = first
        self.last = last
        self._free: deque[int] = deque(range(lo, last, 2))
        self._used: set[int] = set()

    @property
    def size(self) -> int:
        return len(self._free) + len(self._used)

    @property
    def in_use(self) -> int:
        return len(self._used)

    def allocate(self) -> int:
        """An even port not in use; RTCP goes on the port above it."""
        if not self._free:
            raise PortPoolExhausted(
                f"all {self.size} RTP ports of {self.first}-{self.last} are in use;"
                " widen the RTP port range or end idle calls"
            )
        port = self._free.popleft()
        self._used.add(port)
        return port

    def release(self, port: int) -> None:
        """Give a port back; it is reused last, so late packets do not reach a new call."""
        if port in self._used:
            self._used.remove(port)
            self._free.append(port)


# ---------------------------------------------------------------------- RTCP


@dataclass(frozen=True)
class ReportBlock:
    """One reception report (RFC 3550 6.4.1) about the source ``ssrc``."""

    ssrc: int
    fraction_lost: float
    cumulative_lost: int
    highest_sequence: int
    jitter: int  # in RTP timestamp units
    last_sr: int
    delay_since_last_sr: int


@dataclass(frozen=True)
class SenderReport:
    ssrc: int
    ntp_time: float  # seconds since 1900
    rtp_timestamp: int
    packet_count: int
    octet_count: int


@dataclass
class RtcpStats:
    packets: int = 0
    malformed: int = 0
    sender_reports: int = 0
    receiver_reports: int = 0
    byes: int = 0
    last_sender_report: SenderReport | None = None
    reports: dict[int, ReportBlock] = field(default_factory=dict)


class RtcpParseError(ValueError):
    """A datagram on the RTCP port is not a well-formed compound RTCP packet."""


def _report_blocks(data: bytes, pos: int, count: int) -> list[ReportBlock]:
    blocks = []
    for _ in range(count):
        ssrc, lost_word, highest, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", data, pos)
        cumulative = lost_word & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        blocks.append(
            ReportBlock(ssrc, (lost_word >> 24) / 256.0, cumulative, highest, jitter, lsr, dlsr)
        )
        pos += 24
    return blocks


def parse_rtcp(data: bytes, stats: RtcpStats) -> None:
    """Add one compound RTCP packet to ``stats``; raises RtcpParseError when malformed."""
    pos = 0
    if len(data) < 4:
        raise RtcpParseError("RTCP packet length is less than 4 bytes")
    while pos < len(data):
        if pos + 4 > len(data):
            raise RtcpParseError("RTCP packet has a truncated header")
        b0, pt, words = struct.unpack_from("!BBH", data, pos)
        if b0 >> 6 != 2:
            raise RtcpParseError(f"RTCP packet has version {b0 >> 6}, expected 2")
        end = pos + 4 * (words + 1)
        if end > len(data):
            raise RtcpParseError("RTCP packet is shorter than its length field")
        count = b0 & 0x1F
        if pt == RTCP_SR:
            if end - pos < 28 + 24 * count:
                raise RtcpParseError("RTCP sender report is too short for its report blocks")
            ssrc, ntp_hi, ntp_lo, rtp_ts, packets, octets = struct.unpack_from(
                "!IIIIII", data, pos + 4
            )
            stats.last_sender_report = SenderReport(
                ssrc, ntp_hi + ntp_lo / 2**32, rtp_ts, packets, octets
            )
            stats.sender_reports += 1
            for block in _report_blocks(data, pos + 28, count):
                stats.reports[block.ssrc] = block
        elif pt == RTCP_RR:
            if end - pos < 8 + 24 * count:
                raise RtcpParseError("RTCP receiver report is too short for its report blocks")
            stats.receiver_reports += 1
            for block in _report_blocks(data, pos + 8, count):
                stats.reports[block.ssrc] = block
        elif pt == RTCP_BYE:
            stats.byes += 1
        pos = end
    stats.packets += 1


# ---------------------------------------------------------------------- asyncio


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, stream: MediaStream) -> None:
        self.stream = stream

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        stream = self.stream
        stream.remote_addr = addr
        try:
            stream.leg.feed(data, stream.clock())
        except Exception:  # a bug must not stop the other calls
            stream.errors += 1
            logger.exception("leg %d: failed on a packet from %s", stream.leg.channel, addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("RTP socket error: %s", exc)


class _RtcpProtocol(asyncio.DatagramProtocol):
    def __init__(self, stream: MediaStream) -> None:
        self.stream = stream

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            parse_rtcp(data, self.stream.rtcp)
        except (RtcpParseError, struct.error) as exc:
            self.stream.rtcp.malformed += 1
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("dropped an RTCP datagram from %s: %s", addr, exc)

    def error_received(self, exc: Exception) -> None:
        logger.debug("RTCP socket error: %s", exc)


class MediaStream:
    """One leg's RTP port (and RTCP on the port above it) on the asyncio event loop."""

    def __init__(self, leg: RtpLeg, clock: Clock) -> None:
        self.leg = leg
        self.clock = clock
        self.rtcp = RtcpStats()
        self.remote_addr: tuple[str, int] | None = None
        self.errors = 0
        self.port = 0
        self.rtcp_port = 0
        self._rtp: asyncio.DatagramTransport | None = None
        self._rtcp: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(
        cls, host: str, port: int, leg: RtpLeg, *, clock: Clock = time.monotonic
    ) -> MediaStream:
        """Bind RTP on ``host:port`` and RTCP on ``port + 1`` (port 0: any two ports)."""
        loop = asyncio.get_running_loop()
        stream = cls(leg, clock)
        rtp, _ = await loop.create_datagram_endpoint(
            lambda: _RtpProtocol(stream), local_addr=(host, port)
        )
        stream._rtp = rtp
        try:
            rtcp_port = port + 1 if port else 0
            rtcp, _ = await loop.create_datagram_endpoint(
                lambda: _RtcpProtocol(stream), local_addr=(host, rtcp_port)
            )
        except BaseException:
            rtp.close()
            raise
        stream._rtcp = rtcp
        sock = rtp.get_extra_info("socket")
        _grow_receive_buffer(sock)
        stream.port = sock.getsockname()[1]
        stream.rtcp_port = rtcp.get_extra_info("socket").getsockname()[1]
        return stream

    def close(self) -> None:
        """Stop receiving; the leg is left to its owner (flush, stats)."""
        for transport in (self._rtp, self._rtcp):
            if transport is not None:
                transport.close()
        self._rtp = self._rtcp = None


def _grow_receive_buffer(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
    except OSError:  # pragma: no cover - a kernel limit; the default buffer still works
        logger.debug("could not raise SO_RCVBUF")


# ---------------------------------------------------------------------- thread


class ReceiveThread:
    """One thread receiving the RTP of many legs.

    Legs are fed on this thread; :meth:`remove` returns only once the thread no longer
    touches the leg, so the caller may then flush and close it. Every feed runs under
    ``lock``, which callers take to read a leg's statistics consistently.

    After each round the thread sleeps until ``batch_s`` has passed since it woke, so
    under load one wake-up serves many sockets. Each ready socket gives one datagram per
    round, which caps one socket at ``1 / batch_s`` packets a second (500 by default, ten
    times a 20 ms stream) and keeps a flooded port from starving the others.
    """

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        poll_s: float = THREAD_POLL_S,
        batch_s: float = THREAD_BATCH_S,
    ) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.errors = 0
        self._poll_s = poll_s
        self._batch_s = batch_s
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._socks: dict[int, socket.socket] = {}
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="rtp-receive", daemon=True)
        self._thread.start()

    def add(self, host: str, port: int, leg: RtpLeg) -> int:
        """Bind ``host:port`` (0: any) and feed what arrives to ``leg``; returns the port."""
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
            sock.setblocking(False)
            _grow_receive_buffer(sock)
            bound = int(sock.getsockname()[1])
            with self.lock:
                self._selector.register(sock, selectors.EVENT_READ, leg)
                self._socks[bound] = sock
        except BaseException:
            sock.close()
            raise
        self._wake_w.send(b"x")
        return bound

    def remove(self, port: int) -> None:
        with self.lock:
            sock = self._socks.pop(port, None)
            if sock is not None:
                self._selector.unregister(sock)
                sock.close()

    def close(self) -> None:
        self._stop = True
        self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        with self.lock:
            for sock in self._socks.values():
                sock.close()
            self._socks.clear()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _run(self) -> None:
        select = self._selector.select
        lock = self.lock
        clock = self.clock
        batch_s = self._batch_s
        while not self._stop:
            events = select(self._poll_s)
            now = clock()  # one arrival time per wake-up: at most batch_s coarse
            with lock:
                for key, _ in events:
                    leg = key.data
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if leg is None:
                        _drain(sock)
                        continue
                    # One datagram per ready socket and wake-up: a socket with more stays
                    # ready (level-triggered) and is served again on the next round, so
                    # legs take turns and no exception is raised on an empty socket.
                    try:
                        data = sock.recv(MAX_DATAGRAM_BYTES)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as exc:
                        logger.debug("RTP socket error: %s", exc)
                        continue
                    try:
                        leg.feed(data, now)
                    except Exception:
                        self.errors += 1
                        logger.exception("leg %d: failed on a packet", leg.channel)
            if batch_s > 0.0:
                rest = now + batch_s - clock()
                if rest > 0.0:
                    time.sleep(rest)  # let packets gather: fewer wake-ups per packet


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(64):
            pass
    except OSError:
        pass
