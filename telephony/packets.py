"""Decoding captured frames down to UDP datagrams.

Link layers: Ethernet (with any stack of 802.1Q / 802.1ad QinQ tags), Linux cooked
capture v1 and v2 (``tcpdump -i any``), BSD loopback, raw IP. Network layers: IPv4 with
fragment reassembly and IPv6 with extension headers and fragment-header reassembly.
Transport: UDP. Everything else (ARP, TCP, ICMP, ...) is counted and skipped; frames that
claim more than they hold, or fragments that overlap, are counted as malformed and dropped.

Checksums are not verified: a capture taken on a sending host holds packets whose checksums
the NIC fills in later, and a mirror port's copies are as good as the network's.

Reassembly runs on capture time (the frame timestamps), keeps at most ``max_pending``
datagrams in progress, forgets a datagram whose fragments did not all arrive within
``reassembly_timeout_s`` and refuses datagrams larger than 65,535 bytes.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from telephony.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    CapturedFrame,
)

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
VLAN_ETHERTYPES = frozenset((0x8100, 0x88A8, 0x9100))
MAX_VLAN_TAGS = 4
ETHERNET_HEADER_BYTES = 14
SLL_HEADER_BYTES = 16
SLL2_HEADER_BYTES = 20
IPV4_MIN_HEADER_BYTES = 20
IPV6_HEADER_BYTES = 40
UDP_HEADER_BYTES = 8
IPPROTO_UDP = 17
IPV6_HOP_BY_HOP = 0
IPV6_ROUTING = 43
IPV6_FRAGMENT = 44
IPV6_AH = 51
IPV6_DEST_OPTS = 60
IPV6_EXTENSIONS = frozenset((IPV6_HOP_BY_HOP, IPV6_ROUTING, IPV6_DEST_OPTS, IPV6_AH))
BSD_AF_INET = 2
BSD_AF_INET6 = frozenset((10, 24, 28, 30))  # Linux, NetBSD/OpenBSD, FreeBSD, macOS
MAX_DATAGRAM_BYTES = 65535
MAX_FRAGMENTS = 64
REASSEMBLY_TIMEOUT_S = 30.0
MAX_PENDING_DATAGRAMS = 1024

_U16 = struct.Struct("!H")
_UDP = struct.Struct("!HHH")


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    """One UDP datagram out of a capture."""

    timestamp_s: float
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


@dataclass
class DecodeStats:
    frames: int = 0
    udp: int = 0
    not_ip: int = 0  # ARP, LLDP, ...
    not_udp: int = 0  # TCP, ICMP, ...
    malformed: int = 0
    unsupported_link: int = 0
    fragments: int = 0
    reassembled: int = 0
    reassembly_timeouts: int = 0
    reassembly_dropped: int = 0  # overlapping, too large, too many, or evicted


@dataclass
class _Partial:
    first_s: float
    parts: list[tuple[int, bytes]] = field(default_factory=list)
    size: int = 0
    total: int | None = None
    next_header: int = -1  # IPv6: the header after the fragment header of fragment 0


class Reassembler:
    """Puts IP fragments back together (one instance serves IPv4 and IPv6)."""

    def __init__(
        self,
        stats: DecodeStats,
        *,
        timeout_s: float = REASSEMBLY_TIMEOUT_S,
        max_pending: int = MAX_PENDING_DATAGRAMS,
    ) -> None:
        self.stats = stats
        self.timeout_s = timeout_s
        self.max_pending = max_pending
        self._pending: dict[tuple[object, ...], _Partial] = {}
        self._last_expiry = 0.0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(
        self,
        key: tuple[object, ...],
        offset: int,
        data: bytes,
        more: bool,
        now_s: float,
        next_header: int = -1,
    ) -> tuple[bytes, int] | None:
        """Add one fragment; returns (payload, next header) once the datagram is complete."""
        self.stats.fragments += 1
        self.expire(now_s)
        end = offset + len(data)
        part = self._pending.get(key)
        if part is None:
            if len(self._pending) >= self.max_pending:
                self._pending.pop(next(iter(self._pending)))
                self.stats.reassembly_dropped += 1
            part = self._pending[key] = _Partial(now_s)
        if end > MAX_DATAGRAM_BYTES or len(part.parts) >= MAX_FRAGMENTS:
            return self._drop(key)
        if (more and len(data) % 8) or (part.total is not None and end > part.total):
            return self._drop(key)
        if not more:
            if part.total is not None and part.total != end:
                return self._drop(key)
            if end < part.size or any(o + len(d) > end for o, d in part.parts):
                return self._drop(key)
            part.total = end
        for o, d in part.parts:
            if offset < o + len(d) and o < end:
                if o == offset and d == data:
                    return None  # the same fragment twice (a mirror port may duplicate)
                return self._drop(key)
        part.parts.append((offset, data))
        part.size += len(data)
        if offset == 0:
            part.next_header = next_header
        if part.total is None or part.size != part.total:
            return None
        del self._pending[key]
        part.parts.sort()
        self.stats.reassembled += 1
        return b"".join(d for _, d in part.parts), part.next_header

    def expire(self, now_s: float) -> None:
        """Forget datagrams that waited longer than the timeout for their fragments."""
        if now_s - self._last_expiry < 1.0 and self._last_expiry <= now_s:
            return
        self._last_expiry = now_s
        limit = now_s - self.timeout_s
        for key in [k for k, p in self._pending.items() if p.first_s < limit]:
            del self._pending[key]
            self.stats.reassembly_timeouts += 1

    def _drop(self, key: tuple[object, ...]) -> tuple[bytes, int] | None:
        self._pending.pop(key, None)
        self.stats.reassembly_dropped += 1
        self.stats.malformed += 1
        return None


class PacketDecoder:
    """Turns captured frames into UDP datagrams, counting what it skips."""

    def __init__(
        self,
        *,
        reassembly_timeout_s: float = REASSEMBLY_TIMEOUT_S,
        max_pending: int = MAX_PENDING_DATAGRAMS,
    ) -> None:
        self.stats = DecodeStats()
        self.reassembler = Reassembler(
            self.stats, timeout_s=reassembly_timeout_s, max_pending=max_pending
        )

    def decode_frame(self, frame: CapturedFrame) -> UdpDatagram | None:
        return self.decode(frame.linktype, frame.data, frame.timestamp_s)

    def decode(self, linktype: int, data: bytes, timestamp_s: float) -> UdpDatagram | None:
        """The UDP datagram in one link-layer frame, or None (counted in ``stats``)."""
        self.stats.frames += 1
        try:
            if linktype == LINKTYPE_ETHERNET:
                if len(data) < ETHERNET_HEADER_BYTES:
                    return self._malformed()
                return self._ethertype(_U16.unpack_from(data, 12)[0], data, 14, timestamp_s)
            if linktype == LINKTYPE_LINUX_SLL:
                if len(data) < SLL_HEADER_BYTES:
                    return self._malformed()
                return self._ethertype(_U16.unpack_from(data, 14)[0], data, 16, timestamp_s)
            if linktype == LINKTYPE_LINUX_SLL2:
                if len(data) < SLL2_HEADER_BYTES:
                    return self._malformed()
                return self._ethertype(_U16.unpack_from(data, 0)[0], data, 20, timestamp_s)
            if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
                return self._ip(data, 0, timestamp_s)
            if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
                return self._bsd_loopback(linktype, data, timestamp_s)
        except (struct.error, IndexError):
            return self._malformed()
        self.stats.unsupported_link += 1
        return None

    # ------------------------------------------------------------------ link layers

    def _ethertype(self, etype: int, data: bytes, pos: int, ts: float) -> UdpDatagram | None:
        tags = 0
        while etype in VLAN_ETHERTYPES:
            tags += 1
            if tags > MAX_VLAN_TAGS or pos + 4 > len(data):
                return self._malformed()
            etype = _U16.unpack_from(data, pos + 2)[0]
            pos += 4
        if etype == ETHERTYPE_IPV4:
            return self._ipv4(data, pos, ts)
        if etype == ETHERTYPE_IPV6:
            return self._ipv6(data, pos, ts)
        self.stats.not_ip += 1
        return None

    def _bsd_loopback(self, linktype: int, data: bytes, ts: float) -> UdpDatagram | None:
        if len(data) < 4:
            return self._malformed()
        if linktype == LINKTYPE_LOOP:
            family = struct.unpack_from("!I", data)[0]
        else:  # host byte order of the machine that captured: try both
            family = struct.unpack_from("<I", data)[0]
            if family > 0xFFFF:
                family = struct.unpack_from(">I", data)[0]
        if family == BSD_AF_INET:
            return self._ipv4(data, 4, ts)
        if family in BSD_AF_INET6:
            return self._ipv6(data, 4, ts)
        self.stats.not_ip += 1
        return None

    def _ip(self, data: bytes, pos: int, ts: float) -> UdpDatagram | None:
        if len(data) <= pos:
            return self._malformed()
        version = data[pos] >> 4
        if version == 4:
            return self._ipv4(data, pos, ts)
        if version == 6:
            return self._ipv6(data, pos, ts)
        return self._malformed()

    # ------------------------------------------------------------------ IP

    def _ipv4(self, data: bytes, pos: int, ts: float) -> UdpDatagram | None:
        if len(data) < pos + IPV4_MIN_HEADER_BYTES:
            return self._malformed()
        b0 = data[pos]
        ihl = (b0 & 0x0F) * 4
        total = _U16.unpack_from(data, pos + 2)[0]
        if b0 >> 4 != 4 or ihl < IPV4_MIN_HEADER_BYTES or total < ihl or pos + total > len(data):
            return self._malformed()
        ident, frag = struct.unpack_from("!HH", data, pos + 4)
        proto = data[pos + 9]
        src = data[pos + 12 : pos + 16]
        dst = data[pos + 16 : pos + 20]
        payload = data[pos + ihl : pos + total]
        if frag & 0x3FFF:  # more fragments, or an offset
            done = self.reassembler.add(
                (4, src, dst, proto, ident), (frag & 0x1FFF) * 8, payload, bool(frag & 0x2000), ts
            )
            if done is None:
                return None
            payload = done[0]
        if proto != IPPROTO_UDP:
            self.stats.not_udp += 1
            return None
        return self._udp(socket.AF_INET, src, dst, payload, ts)

    def _ipv6(self, data: bytes, pos: int, ts: float) -> UdpDatagram | None:
        if len(data) < pos + IPV6_HEADER_BYTES or data[pos] >> 4 != 6:
            return self._malformed()
        plen = _U16.unpack_from(data, pos + 4)[0]
        nh = data[pos + 6]
        src = data[pos + 8 : pos + 24]
        dst = data[pos + 24 : pos + 40]
        start = pos + IPV6_HEADER_BYTES
        if plen == 0 or start + plen > len(data):  # jumbograms are not seen on a voice LAN
            return self._malformed()
        payload = data[start : start + plen]
        p = 0
        while True:
            if nh in IPV6_EXTENSIONS:
                if p + 2 > len(payload):
                    return self._malformed()
                size = (payload[p + 1] + 2) * 4 if nh == IPV6_AH else (payload[p + 1] + 1) * 8
                nh = payload[p]
                p += size
                if p > len(payload):
                    return self._malformed()
            elif nh == IPV6_FRAGMENT:
                if p + 8 > len(payload):
                    return self._malformed()
                following = payload[p]
                off_flags = _U16.unpack_from(payload, p + 2)[0]
                ident = struct.unpack_from("!I", payload, p + 4)[0]
                offset = off_flags & 0xFFF8
                more = bool(off_flags & 1)
                body = payload[p + 8 :]
                if offset == 0 and not more:  # an atomic fragment (RFC 6946)
                    nh = following
                    payload = body
                    p = 0
                    continue
                done = self.reassembler.add((6, src, dst, ident), offset, body, more, ts, following)
                if done is None:
                    return None
                payload, nh = done
                p = 0
            else:
                break
        if nh != IPPROTO_UDP:
            self.stats.not_udp += 1
            return None
        return self._udp(socket.AF_INET6, src, dst, payload[p:], ts)

    def _udp(
        self, family: int, src: bytes, dst: bytes, segment: bytes, ts: float
    ) -> UdpDatagram | None:
        if len(segment) < UDP_HEADER_BYTES:
            return self._malformed()
        sport, dport, length = _UDP.unpack_from(segment)
        if length < UDP_HEADER_BYTES or length > len(segment):
            return self._malformed()
        self.stats.udp += 1
        return UdpDatagram(
            ts,
            socket.inet_ntop(family, src),
            sport,
            socket.inet_ntop(family, dst),
            dport,
            bytes(segment[UDP_HEADER_BYTES:length]),
        )

    def _malformed(self) -> UdpDatagram | None:
        self.stats.malformed += 1
        return None
