"""Is a port free to listen on, and if not, which process holds it.

A port is tried by binding it, as the daemon will. When that is not allowed (a port below
``net.ipv4.ip_unprivileged_port_start`` checked by an ordinary user), the kernel's socket
tables under ``/proc/net`` say whether anything holds it. The holder's process is found
through ``/proc/PID/fd``, which shows only this user's processes unless run as root.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
UNPRIVILEGED_PORT_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
LOCAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
TCP_LISTEN_STATE = "0A"
DEFAULT_UNPRIVILEGED_PORT_START = 1024
MAX_HOLDERS_SHOWN = 3

FREE = "free"
IN_USE = "in use"
NOT_ALLOWED = "not allowed"
NOT_HERE = "address not on this box"


@dataclass(frozen=True)
class PortProbe:
    """What binding ``host:port`` over ``protocol`` ("tcp" or "udp") found."""

    protocol: str
    host: str
    port: int
    state: str
    holders: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.port}/{self.protocol}"


def probe_port(host: str, port: int, protocol: str) -> PortProbe:
    """Try to bind ``host:port``; when binding is not allowed, read the socket tables."""
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    try:
        family = socket.getaddrinfo(host, port, type=kind)[0][0]
    except socket.gaierror:
        return PortProbe(protocol, host, port, NOT_HERE)
    state = _bind(family, kind, host, port)
    if state == IN_USE and kind == socket.SOCK_STREAM and _bind(family, kind, host, port, True):
        # Bound with SO_REUSEADDR (as servers do): only closed connections linger there.
        state = FREE
    if state == NOT_ALLOWED and not table_holds(host, port, protocol):
        return PortProbe(protocol, host, port, NOT_ALLOWED)
    if state == NOT_ALLOWED:
        state = IN_USE
    holders = tuple(holders_of(host, port, protocol)) if state == IN_USE else ()
    return PortProbe(protocol, host, port, state, holders)


def _bind(family: int, kind: int, host: str, port: int, reuse: bool = False) -> str:
    """FREE, IN_USE, NOT_ALLOWED or NOT_HERE; with ``reuse``, "" when that bind fails too."""
    with socket.socket(family, kind) as sock:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            if kind == socket.SOCK_STREAM:
                sock.listen(1)
        except OSError as exc:
            if reuse:
                return ""
            if exc.errno == errno.EADDRINUSE:
                return IN_USE
            if exc.errno == errno.EACCES:
                return NOT_ALLOWED
            return NOT_HERE
    return FREE


def busy_udp_ports(host: str, first: int, last: int) -> list[int]:
    """The ports of ``first..last`` that cannot be bound for UDP on ``host`` (in use)."""
    busy = []
    for port in range(first, last + 1):
        if probe_port(host, port, "udp").state == IN_USE:
            busy.append(port)
    return busy


def unprivileged_port_start() -> int:
    """The lowest port an ordinary user may bind (``net.ipv4.ip_unprivileged_port_start``)."""
    try:
        return int(UNPRIVILEGED_PORT_START.read_text().strip())
    except (OSError, ValueError):
        return DEFAULT_UNPRIVILEGED_PORT_START


def ephemeral_range() -> tuple[int, int] | None:
    """The ports the kernel hands to outgoing connections (``ip_local_port_range``)."""
    try:
        first, last = LOCAL_PORT_RANGE.read_text().split()
        return int(first), int(last)
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- /proc


@dataclass(frozen=True)
class _Entry:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int
    inode: str


def _entries(protocol: str) -> Iterable[_Entry]:
    """Listening TCP or bound UDP sockets from /proc/net/{tcp,tcp6,udp,udp6}."""
    for name in (protocol, protocol + "6"):
        try:
            lines = (PROC / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            if protocol == "tcp" and fields[3] != TCP_LISTEN_STATE:
                continue
            address_hex, port_hex = fields[1].split(":")
            yield _Entry(_address(address_hex), int(port_hex, 16), fields[9])


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net prints it: 32-bit words in the machine's byte order."""
    raw = bytes.fromhex(text)
    words = [raw[i : i + 4] for i in range(0, len(raw), 4)]
    host_order = b"".join(int.from_bytes(w, "little").to_bytes(4, "big") for w in words)
    address = ipaddress.ip_address(host_order)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _overlaps(bound: ipaddress.IPv4Address | ipaddress.IPv6Address, host: str) -> bool:
    """Whether a socket bound to ``bound`` keeps one from binding ``host`` on its port."""
    try:
        wanted = ipaddress.ip_address(host)
    except ValueError:
        return True
    return bound.is_unspecified or wanted.is_unspecified or bound == wanted


def table_holds(host: str, port: int, protocol: str) -> bool:
    return any(e.port == port and _overlaps(e.address, host) for e in _entries(protocol))


def holders_of(host: str, port: int, protocol: str) -> list[str]:
    """Lines "pid N (command line)" of the processes holding the port, where /proc shows them."""
    inodes = {e.inode for e in _entries(protocol) if e.port == port and _overlaps(e.address, host)}
    found: list[str] = []
    if not inodes:
        return found
    targets = {f"socket:[{inode}]" for inode in inodes}
    for proc in PROC.iterdir():
        if not proc.name.isdigit():
            continue
        if _links(proc / "fd") & targets:
            found.append(f"pid {proc.name} ({_command(proc)})")
            if len(found) >= MAX_HOLDERS_SHOWN:
                break
    return found


def _links(fd_dir: Path) -> set[str]:
    """What a process's descriptors point at (those that can be read: an fd may close)."""
    links: set[str] = set()
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return links
    for fd in fds:
        try:
            links.add(os.readlink(fd))
        except OSError:
            continue
    return links


def _command(proc: Path) -> str:
    try:
        raw = (proc / "cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or "?"
