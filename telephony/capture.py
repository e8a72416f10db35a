"""Live capture from a network interface (a switch port mirror) on Linux.

An ``AF_PACKET`` raw socket receives every frame the interface sees (in promiscuous mode,
so that mirrored traffic addressed to other machines is not filtered out by the NIC). A
small kernel filter (classic BPF) passes only UDP and IPv6/VLAN frames, so TCP and the rest
of a busy mirror cost no Python time. Frames are decoded by :mod:`telephony.packets` on the
capture thread and the UDP datagrams handed to a callback, stamped with wall-clock time.

Opening the socket needs the CAP_NET_RAW capability (root, ``setcap``, or the systemd
unit's ``AmbientCapabilities``); without it :class:`CaptureError` says how to get it.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from telephony.follow import CallFollower, EndedCallback, FollowOptions, StartedCallback
from telephony.packets import PacketDecoder, UdpDatagram
from telephony.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW
from telephony.sockets import grow_receive_buffer

logger = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
ARPHRD_NONE = 0xFFFE
RECEIVE_BUFFER_BYTES = 32 * 1024 * 1024
MAX_FRAME_BYTES = 65536 + 64
POLL_S = 0.2

# Classic BPF on an Ethernet frame: pass IPv4 UDP (every fragment carries protocol 17),
# IPv6 (extension headers make a kernel-side UDP test long) and VLAN-tagged frames; drop
# the rest. Each row: code, jump if true, jump if false, k.
_UDP_FILTER = (
    (0x28, 0, 0, 12),  # ldh [12]            ethertype
    (0x15, 0, 2, 0x0800),  # jeq IPv4        -> 2 else 4
    (0x30, 0, 0, 23),  # ldb [23]            IPv4 protocol
    (0x15, 3, 4, 17),  # jeq UDP             -> accept else drop
    (0x15, 2, 0, 0x86DD),  # jeq IPv6        -> accept
    (0x15, 1, 0, 0x8100),  # jeq 802.1Q      -> accept
    (0x15, 0, 1, 0x88A8),  # jeq 802.1ad     -> accept else drop
    (0x06, 0, 0, 0x40000),  # ret: the whole frame
    (0x06, 0, 0, 0),  # ret: nothing
)


class CaptureError(RuntimeError):
    """Live capture cannot start; the message says why and what to do."""


@dataclass
class LiveCaptureStats:
    frames: int = 0
    outgoing_skipped: int = 0
    callback_errors: int = 0


def _attach_udp_filter(sock: socket.socket) -> None:
    program = b"".join(struct.pack("HBBI", *row) for row in _UDP_FILTER)
    buf = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(_UDP_FILTER), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def open_packet_socket(
    interface: str, *, promiscuous: bool = True, udp_filter: bool = True
) -> socket.socket:
    """A raw packet socket bound to ``interface``; raises CaptureError when not possible."""
    family = getattr(socket, "AF_PACKET", None)
    if family is None:
        raise CaptureError(
            "live capture needs Linux (AF_PACKET sockets); on this system capture with "
            "tcpdump -w and use `callqa import-pcap`"
        )
    try:
        sock = socket.socket(family, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    except PermissionError as exc:
        raise CaptureError(
            f"capturing on {interface} needs the CAP_NET_RAW capability: run callqa as root, "
            "use the systemd unit (AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN), or grant "
            "it with `setcap cap_net_raw,cap_net_admin=eip` on the Python interpreter"
        ) from exc
    try:
        if udp_filter:
            _attach_udp_filter(sock)
        sock.bind((interface, 0))
        if promiscuous:
            index = socket.if_nametoindex(interface)
            mreq = struct.pack("iHH8s", index, PACKET_MR_PROMISC, 0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        grow_receive_buffer(sock, RECEIVE_BUFFER_BYTES)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.ENODEV, errno.ENXIO):
            raise CaptureError(
                f"there is no network interface {interface!r}; list them with `ip link`"
            ) from exc
        raise CaptureError(f"cannot capture on {interface}: {exc.strerror or exc}") from exc
    return sock


class LiveCapture:
    """Captures on one interface in a thread; ``on_datagram`` gets every UDP datagram.

    ``on_idle(now_s)`` is called at least every ``poll_s`` seconds (timers of whoever
    consumes the datagrams run there, on the same thread).
    """

    def __init__(
        self,
        interface: str,
        on_datagram: Callable[[UdpDatagram], None],
        *,
        on_idle: Callable[[float], None] | None = None,
        promiscuous: bool = True,
        include_outgoing: bool = False,
        clock: Callable[[], float] = time.time,
        poll_s: float = POLL_S,
    ) -> None:
        self.interface = interface
        self.on_datagram = on_datagram
        self.on_idle = on_idle
        self.decoder = PacketDecoder()
        self.stats = LiveCaptureStats()
        self._include_outgoing = include_outgoing
        self._clock = clock
        self._poll_s = poll_s
        self._sock = open_packet_socket(interface, promiscuous=promiscuous)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{interface}", daemon=True)

    def start(self) -> LiveCapture:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> LiveCapture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        sock = self._sock
        buf = bytearray(MAX_FRAME_BYTES)
        view = memoryview(buf)
        decode = self.decoder.decode
        next_idle = self._clock() + self._poll_s
        while not self._stop.is_set():
            ready, _, _ = select.select([sock], [], [], self._poll_s)
            if ready:
                while True:
                    try:
                        n, addr = sock.recvfrom_into(buf, MAX_FRAME_BYTES, socket.MSG_DONTWAIT)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError as exc:
                        logger.warning("capture on %s failed: %s", self.interface, exc)
                        return
                    if addr[2] == PACKET_OUTGOING and not self._include_outgoing:
                        self.stats.outgoing_skipped += 1
                        continue
                    self.stats.frames += 1
                    linktype = LINKTYPE_RAW if addr[3] == ARPHRD_NONE else LINKTYPE_ETHERNET
                    dgram = decode(linktype, bytes(view[:n]), self._clock())
                    if dgram is not None:
                        self._deliver(dgram)
            now = self._clock()
            if self.on_idle is not None and now >= next_idle:
                next_idle = now + self._poll_s
                self._call_idle(now)

    def _deliver(self, dgram: UdpDatagram) -> None:
        try:
            self.on_datagram(dgram)
        except Exception:
            self.stats.callback_errors += 1
            logger.exception("capture on %s: the datagram handler failed", self.interface)

    def _call_idle(self, now: float) -> None:
        assert self.on_idle is not None
        try:
            self.on_idle(now)
        except Exception:
            self.stats.callback_errors += 1
            logger.exception("capture on %s: the timer handler failed", self.interface)


def follow_interface(
    interface: str,
    out_dir: Path,
    on_call_ended: EndedCallback,
    options: FollowOptions | None = None,
    *,
    promiscuous: bool = True,
    on_call_started: StartedCallback | None = None,
) -> tuple[LiveCapture, CallFollower]:
    """Record every SIP call seen on ``interface``; call ``.start()`` on the capture.

    The follower runs on the capture thread; ``on_call_ended`` is called there too. Stop
    the capture, then ``follower.close()`` to end the calls still open.
    """
    follower = CallFollower(out_dir, on_call_ended, options, on_call_started)
    capture = LiveCapture(
        interface, follower.feed, on_idle=follower.expire, promiscuous=promiscuous
    )
    return capture, follower
