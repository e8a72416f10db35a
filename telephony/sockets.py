"""Socket options shared by every receiving socket: the kernel's receive buffer.

A burst that arrives while the reader is busy (600 calls set up at once, a pause of the
receive thread) waits in the socket's receive buffer; what does not fit is dropped by the
kernel. :func:`grow_receive_buffer` asks for a large buffer: with ``SO_RCVBUFFORCE`` where
the process has ``CAP_NET_ADMIN`` (the systemd unit grants it), else with ``SO_RCVBUF``,
which the kernel caps at ``net.core.rmem_max``.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

logger = logging.getLogger(__name__)

SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def grow_receive_buffer(sock: Any, wanted_bytes: int) -> int:
    """Ask for a ``wanted_bytes`` receive buffer on ``sock``; returns what the kernel granted
    (Linux reports twice the payload it allows, for its bookkeeping; this is that figure).

    ``sock`` is a socket or asyncio's socket wrapper. Never raises for a kernel limit: the
    default buffer still works, only less of a burst fits.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, wanted_bytes)
    except OSError:  # no CAP_NET_ADMIN: the ordinary option, up to net.core.rmem_max
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted_bytes)
        except OSError as exc:  # pragma: no cover - a kernel that refuses the option
            logger.debug("could not raise SO_RCVBUF: %s", exc)
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
