"""Frame decoding: link layers, VLAN tags, IPv4/IPv6, fragment reassembly, bad frames."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from telephony.capture import CaptureError, LiveCapture, open_packet_socket
from telephony.packets import PacketDecoder, UdpDatagram
from telephony.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)

V4_SRC, V4_DST = "10.0.0.1", "192.168.7.20"
V6_SRC, V6_DST = "2001:db8::1", "fd00::abcd"


def udp(payload: bytes, sport: int = 5060, dport: int = 40000) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(body: bytes, *, proto: int = 17, ident: int = 7, offset: int = 0, more: bool = False,
         src: str = V4_SRC, dst: str = V4_DST, options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    frag = (0x2000 if more else 0) | (offset // 8)
    head = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(body), ident, frag, 64,
                       proto, 0, socket.inet_aton(src), socket.inet_aton(dst))
    return head + options + body


def ipv4_fragments(segment: bytes, size: int, **kw) -> list[bytes]:
    """Split a UDP segment into IPv4 fragments of ``size`` bytes (a multiple of 8)."""
    out = []
    for off in range(0, len(segment), size):
        out.append(ipv4(segment[off:off + size], offset=off,
                        more=off + size < len(segment), **kw))
    return out


def ipv6(body: bytes, next_header: int = 17, src: str = V6_SRC, dst: str = V6_DST) -> bytes:
    return struct.pack("!IHBB16s16s", 0x60000000, len(body), next_header, 64,
                       socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + body


def frag6(body: bytes, offset: int, more: bool, ident: int = 99, nh: int = 17) -> bytes:
    return struct.pack("!BBHI", nh, 0, offset | int(more), ident) + body


def ipv6_fragments(segment: bytes, size: int, ident: int = 99) -> list[bytes]:
    return [
        ipv6(frag6(segment[off:off + size], off, off + size < len(segment), ident), 44)
        for off in range(0, len(segment), size)
    ]


def ether(packet: bytes, ethertype: int = 0x0800, tags: tuple[tuple[int, int], ...] = ()) -> bytes:
    head = b"\x00\x11\x22\x33\x44\x55" + b"\x66\x77\x88\x99\xaa\xbb"
    for tpid, vid in tags:
        head += struct.pack("!HH", tpid, vid)
    return head + struct.pack("!H", ethertype) + packet


def decode_all(decoder: PacketDecoder, frames: list[bytes], linktype: int = LINKTYPE_ETHERNET,
               t0: float = 0.0) -> list[UdpDatagram]:
    out = []
    for i, frame in enumerate(frames):
        got = decoder.decode(linktype, frame, t0 + i * 0.001)
        if got is not None:
            out.append(got)
    return out


def test_ethernet_ipv4_udp():
    d = PacketDecoder()
    got = d.decode(LINKTYPE_ETHERNET, ether(ipv4(udp(b"hello"))) + bytes(10), 12.5)
    assert got == UdpDatagram(12.5, V4_SRC, 5060, V4_DST, 40000, b"hello")
    assert d.stats.udp == 1 and d.stats.frames == 1


def test_ip_options_are_skipped():
    got = PacketDecoder().decode(LINKTYPE_ETHERNET, ether(ipv4(udp(b"o"), options=bytes(8))), 0)
    assert got is not None and got.payload == b"o"


@pytest.mark.parametrize(
    "tags", [((0x8100, 10),), ((0x88A8, 100), (0x8100, 10)), ((0x9100, 5), (0x8100, 6))]
)
def test_vlan_and_qinq(tags):
    got = PacketDecoder().decode(LINKTYPE_ETHERNET, ether(ipv4(udp(b"v")), tags=tags), 0)
    assert got is not None and got.payload == b"v"


def test_linux_cooked_captures():
    packet = ipv4(udp(b"sll"))
    sll = struct.pack("!HHH8sH", 0, 1, 6, bytes(8), 0x0800) + packet
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 3, 1, 0, 6, bytes(8)) + packet
    d = PacketDecoder()
    assert d.decode(LINKTYPE_LINUX_SLL, sll, 0).payload == b"sll"  # type: ignore[union-attr]
    assert d.decode(LINKTYPE_LINUX_SLL2, sll2, 0).payload == b"sll"  # type: ignore[union-attr]
    v6 = struct.pack("!HHIHBB8s", 0x86DD, 0, 3, 1, 0, 6, bytes(8)) + ipv6(udp(b"6"))
    assert d.decode(LINKTYPE_LINUX_SLL2, v6, 0).payload == b"6"  # type: ignore[union-attr]


def test_raw_and_bsd_loopback():
    d = PacketDecoder()
    assert d.decode(LINKTYPE_RAW, ipv4(udp(b"r4")), 0).payload == b"r4"  # type: ignore
    assert d.decode(LINKTYPE_RAW, ipv6(udp(b"r6")), 0).payload == b"r6"  # type: ignore
    assert d.decode(LINKTYPE_IPV6, ipv6(udp(b"i6")), 0).payload == b"i6"  # type: ignore
    assert d.decode(LINKTYPE_NULL, struct.pack("<I", 2) + ipv4(udp(b"n")), 0).payload == b"n"  # type: ignore
    assert d.decode(LINKTYPE_NULL, struct.pack(">I", 30) + ipv6(udp(b"m")), 0).payload == b"m"  # type: ignore
    assert d.decode(LINKTYPE_LOOP, struct.pack(">I", 2) + ipv4(udp(b"l")), 0).payload == b"l"  # type: ignore


def test_ipv6_with_extension_headers():
    hop = struct.pack("!BB6s", 60, 0, bytes(6))  # hop-by-hop, 8 bytes, next: destination opts
    dest = struct.pack("!BB14s", 17, 1, bytes(14))  # destination options, 16 bytes, next: UDP
    frame = ether(ipv6(hop + dest + udp(b"x"), 0), 0x86DD)
    got = PacketDecoder().decode(LINKTYPE_ETHERNET, frame, 3)
    assert got == UdpDatagram(3, V6_SRC, 5060, V6_DST, 40000, b"x")


def test_skipped_traffic_is_counted():
    d = PacketDecoder()
    arp = ether(bytes(28), 0x0806)
    tcp = ether(ipv4(bytes(20), proto=6))
    icmp6 = ether(ipv6(bytes(8), next_header=58), 0x86DD)
    assert decode_all(d, [arp, tcp, icmp6]) == []
    assert d.stats.not_ip == 1 and d.stats.not_udp == 2 and d.stats.malformed == 0
    assert d.decode(147, b"user link type", 0) is None
    assert d.stats.unsupported_link == 1


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00" * 10,  # shorter than an Ethernet header
        ether(ipv4(udp(b"abc"))[:30]),  # IP total length beyond the frame
        ether(ipv4(udp(b"abc"))[:2] + b"\x00\x0a" + ipv4(udp(b"abc"))[4:]),  # total < IHL
        ether(b"\x43" + ipv4(udp(b"abc"))[1:]),  # IHL 3
        ether(b"\x65" + ipv4(udp(b"abc"))[1:]),  # version 6 in an IPv4 ethertype
        ether(ipv4(struct.pack("!HHHH", 1, 2, 200, 0) + b"abc")),  # UDP length beyond data
        ether(ipv4(struct.pack("!HHHH", 1, 2, 4, 0) + b"abc")),  # UDP length below 8
        ether(ipv4(b"\x00\x01")),  # UDP header cut
        ether(ipv6(udp(b"x"))[:45], 0x86DD),  # IPv6 payload cut
        ether(ipv6(struct.pack("!BB", 17, 5) + bytes(4), next_header=0), 0x86DD),  # ext too long
        ether(ipv4(udp(b"q")), tags=((0x8100, 1),) * 5),  # too many VLAN tags
        ether(ipv4(udp(b"q")), tags=((0x8100, 1),))[:16],  # tag cut
    ],
)
def test_malformed_frames_are_counted_and_dropped(frame: bytes):
    d = PacketDecoder()
    assert d.decode(LINKTYPE_ETHERNET, frame, 0) is None
    assert d.stats.malformed == 1


def test_ipv4_fragments_in_any_order_with_duplicates():
    payload = bytes(range(256)) * 12
    frames = [ether(f) for f in ipv4_fragments(udp(payload), 1480)]
    assert len(frames) == 3
    d = PacketDecoder()
    got = decode_all(d, [frames[2], frames[0], frames[0], frames[1]])
    assert [g.payload for g in got] == [payload]
    assert d.stats.fragments == 4 and d.stats.reassembled == 1 and d.stats.malformed == 0
    assert d.reassembler.pending == 0


def test_ipv4_fragments_of_interleaved_datagrams():
    a = [ether(f) for f in ipv4_fragments(udp(b"A" * 3000), 1000, ident=1)]
    b = [ether(f) for f in ipv4_fragments(udp(b"B" * 2000), 1000, ident=2)]
    got = decode_all(PacketDecoder(), [a[0], b[0], a[1], b[1], b[2], a[2], a[3]])
    assert [g.payload[:1] * len(g.payload) == g.payload for g in got] == [True, True]
    assert [len(g.payload) for g in got] == [2000, 3000]


def test_overlapping_fragments_drop_the_datagram():
    segment = udp(b"Z" * 2000)
    frames = ipv4_fragments(segment, 1000)
    evil = ipv4(b"Y" * 1000, offset=504, more=True)  # overlaps the first with other bytes
    d = PacketDecoder()
    got = decode_all(d, [ether(frames[0]), ether(evil), ether(frames[1]), ether(frames[2])])
    assert got == []
    assert d.stats.reassembly_dropped >= 1 and d.stats.malformed >= 1


def test_fragment_limits():
    d = PacketDecoder()
    too_big = ipv4(b"x" * 1000, offset=65000, more=False)
    assert d.decode(LINKTYPE_RAW, too_big, 0) is None
    odd = ipv4(b"x" * 1001, offset=0, more=True)  # a middle fragment not a multiple of 8
    assert d.decode(LINKTYPE_RAW, odd, 0) is None
    assert d.stats.reassembly_dropped == 2


def test_reassembly_timeout_uses_capture_time():
    frames = ipv4_fragments(udp(b"T" * 2000), 1000)
    d = PacketDecoder(reassembly_timeout_s=5.0)
    assert d.decode(LINKTYPE_RAW, frames[0], 100.0) is None
    assert d.decode(LINKTYPE_RAW, frames[1], 104.0) is None
    assert d.decode(LINKTYPE_RAW, ipv4(udp(b"other")), 106.0) is not None
    assert d.decode(LINKTYPE_RAW, frames[2], 106.5) is None  # the rest was forgotten
    assert d.stats.reassembly_timeouts == 1


def test_pending_datagrams_are_bounded():
    d = PacketDecoder(max_pending=4)
    for ident in range(10):
        d.decode(LINKTYPE_RAW, ipv4(b"p" * 8, ident=ident, more=True), 0)
    assert d.reassembler.pending == 4
    assert d.stats.reassembly_dropped == 6


def test_ipv6_fragment_reassembly():
    payload = bytes(range(200)) * 20
    frames = [ether(f, 0x86DD) for f in ipv6_fragments(udp(payload, 5062, 30000), 1232)]
    assert len(frames) == 4
    d = PacketDecoder()
    got = decode_all(d, [frames[1], frames[3], frames[0], frames[2]])
    assert got == [UdpDatagram(0.003, V6_SRC, 5062, V6_DST, 30000, payload)]
    assert d.stats.reassembled == 1


def test_ipv6_fragments_after_other_extension_headers_and_atomic_fragment():
    segment = udp(b"E" * 1500)
    hop = struct.pack("!BB6s", 44, 0, bytes(6))
    first = ipv6(hop + frag6(segment[:1000], 0, True), 0)
    second = ipv6(hop + frag6(segment[1000:], 1000, False), 0)
    d = PacketDecoder()
    assert decode_all(d, [first, second], LINKTYPE_RAW)[0].payload == b"E" * 1500
    atomic = ipv6(frag6(udp(b"atom"), 0, False), 44)
    assert d.decode(LINKTYPE_RAW, atomic, 0).payload == b"atom"  # type: ignore[union-attr]


def test_ipv6_overlap_is_dropped():
    segment = udp(b"O" * 2000)
    a = ipv6(frag6(segment[:1000], 0, True), 44)
    b = ipv6(frag6(segment[992:], 992, False), 44)
    d = PacketDecoder()
    assert decode_all(d, [a, b], LINKTYPE_RAW) == []
    assert d.stats.reassembly_dropped == 1


# ------------------------------------------------------------------ live capture (AF_PACKET)


@pytest.mark.raw_sockets
def test_live_capture_on_loopback_sees_udp_not_tcp():
    got: list[UdpDatagram] = []
    ticks: list[float] = []
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    port = rx.getsockname()[1]
    with LiveCapture("lo", got.append, on_idle=ticks.append, poll_s=0.05) as cap:
        time.sleep(0.1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for i in range(20):
                tx.sendto(b"rtp%02d" % i, ("127.0.0.1", port))
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen()
            with socket.create_connection(srv.getsockname()) as client:
                conn, _ = srv.accept()
                client.sendall(b"tcp" * 100)
                conn.recv(1000)
                conn.close()
        deadline = time.monotonic() + 3
        while len([d for d in got if d.dport == port]) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
    rx.close()
    mine = [d for d in got if d.dport == port]
    assert [d.payload for d in mine] == [b"rtp%02d" % i for i in range(20)]
    assert all(abs(d.timestamp_s - time.time()) < 10 for d in mine)
    assert cap.decoder.stats.not_udp == 0  # the kernel filter kept TCP away
    assert cap.stats.outgoing_skipped >= 20  # loopback shows each packet leaving too
    assert ticks


def test_capture_errors_say_what_to_do(monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(socket, "socket", refuse)
    with pytest.raises(CaptureError, match="needs the CAP_NET_RAW capability"):
        open_packet_socket("eth1")


@pytest.mark.raw_sockets
def test_capture_on_missing_interface():
    with pytest.raises(CaptureError, match="no network interface 'nosuch0'"):
        open_packet_socket("nosuch0")
