"""Free ports on loopback, for the daemons the demo and the benchmarks start, and for tests.

A port found free is free *now*: another process may take it before the caller binds it,
so callers bind soon after. Ranges are tried from a random one on, so that runs at the same
time (two test sessions, a benchmark beside a test) rarely pick the same one.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterable

LOOPBACK = "127.0.0.1"
LOWEST_PORT = 21000
EPHEMERAL_FIRST_PORT = 32768
"""Linux hands out ports from here up to any socket bound to port 0; ranges stay below."""


def host_port(host: str, port: int) -> str:
    """``host:port`` as gRPC and URLs take it: an IPv6 address in brackets (``[::1]:50051``)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def local_address(host: str, port: int) -> str:
    """Where a client on this machine reaches a server listening on ``host:port``: loopback
    when it listens on every address, else that address."""
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = LOOPBACK
    return host_port(host, port)


def free_port(kind: int = socket.SOCK_STREAM, host: str = LOOPBACK) -> int:
    """A port the kernel says is free for ``kind`` (TCP by default, or UDP) on ``host``."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_port_tcp_udp(host: str = LOOPBACK) -> int:
    """A port free for both TCP and UDP (SIP listens on both)."""
    for _ in range(50):
        port = free_port(socket.SOCK_STREAM, host)
        if _udp_free(host, (port,)):
            return port
    raise RuntimeError(f"no port free for both TCP and UDP on {host}")


def free_port_range(
    count: int, host: str = LOOPBACK, *, lowest: int = LOWEST_PORT,
    highest: int = EPHEMERAL_FIRST_PORT, probe: int | None = None,
) -> tuple[int, int]:  # fmt: skip
    """(first, last) of ``count`` consecutive UDP ports from an even one (RTP on even ports,
    RTCP on the next), between ``lowest`` and ``highest``, of which the first ``probe`` (all
    by default) are free now."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    step = count + count % 2
    bases = list(range(lowest + lowest % 2, highest - count + 1, step))
    if not bases:
        raise ValueError(f"{count} ports do not fit between {lowest} and {highest}")
    start = secrets.randbelow(len(bases))
    for base in bases[start:] + bases[:start]:
        if _udp_free(host, range(base, base + min(count, probe or count))):
            return base, base + count - 1
    raise RuntimeError(f"no {count} free UDP ports between {lowest} and {highest} on {host}")


def _udp_free(host: str, ports: Iterable[int]) -> bool:
    sockets: list[socket.socket] = []
    try:
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sockets.append(s)
            s.bind((host, port))
    except OSError:
        return False
    finally:
        for s in sockets:
            s.close()
    return True
