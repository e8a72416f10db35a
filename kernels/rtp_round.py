"""One receive round over many RTP sockets, compiled: read, parse and take in-order audio.

The receive thread (`telephony.media.ReceiveThread`) hands :func:`receive_round` the
sockets ``epoll`` found ready. For each one the kernel reads datagrams with libc's ``recv``
(``burst`` at most) straight into ``slow_buf``, without the interpreter lock, and looks at
the leg's *fast lane*: a leg whose stream runs straight is described by one row of
``state``/``times`` (what `telephony.rtp.RtpLeg.resume_fast` exported). A datagram that is
exactly the packet that leg expects next (version 2 with no padding, extension, CSRC or
marker; the expected payload type, SSRC, sequence number and timestamp; arriving within
``jump_s`` of where its timestamp puts it) is *taken*: its payload is appended to the leg's
pending G.711 codes, and the row moves on as the jitter buffer and the leg would have.

Anything else stays in ``slow_buf`` for the leg's Python path, and the leg's lane closes
(``ON`` = 0) so that its later datagrams of the round follow in order; the Python side
reopens it once the leg runs straight again. A socket whose open lane has no room for
another datagram is not read until its leg's tick has taken the lane's audio: what comes
meanwhile waits in the socket (where the capacity probe sees it), not on the Python path.
A socket with no leg (RTCP, the wake-up socket) is handed back unread in ``others``, as is
every socket after ``slow_buf`` or ``slow_meta`` has no room left.

Column indices are the module constants below; ``telephony.rtp`` reads and writes them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, types
from numba.core.typing import signature

# state (int64) columns
ON = 0  # 1: the lane is open
PT = 1  # payload type taken
SSRC = 2
SEQ = 3  # the next sequence number expected (16 bits)
TS = 4  # the next timestamp expected (32 bits)
POS = 5  # where that packet starts on the leg's timeline
RUN_POS = 6  # where the pending codes start
PENDING = 7  # pending code bytes (PENDING and TAKEN side by side: cleared as one slice)
TAKEN = 8  # packets taken since the Python side last took them
EXT = 9  # extended sequence number of the last packet taken
LAST_TS = 10  # its timestamp
LAST_LEN = 11  # its payload bytes (= samples)
PREV_TS = 12  # timestamp of the last non-event packet (interarrival jitter)
STATE_COLUMNS = 13

# times (float64) columns
ANCHOR_ARRIVAL = 0  # arrival of the last packet taken
NEWEST_ARRIVAL = 1
PREV_ARRIVAL = 2  # arrival of the last non-event packet (interarrival jitter)
JITTER = 3  # RFC 3550 interarrival jitter, in timestamp units
JUMP_S = 4  # a gap between media time and arrival time above this is a jump (<0: never)
RATE = 5  # clock rate, Hz
TIME_COLUMNS = 6

HEADER = 12
MSG_DONTWAIT = 0x40
MAX_DATAGRAM = 2048

# libc's recv(fd, buffer, length, flags), the buffer's address passed as an integer.
_recv: Any = types.ExternalFunction(
    "recv", signature(types.intp, types.intc, types.intp, types.uintp, types.intc)
)


@njit(nogil=True, cache=True)
def _take(
    buf: np.ndarray, start: int, n: int, row: int, state: np.ndarray, times: np.ndarray,
    codes: np.ndarray, arrival: float,
) -> bool:
    """Whether the datagram at ``buf[start:start + n]`` is the lane's next packet; if so
    it is taken."""
    if state[row, ON] == 0 or n <= HEADER:
        return False
    if buf[start] != 0x80 or buf[start + 1] != state[row, PT]:
        return False
    seq = (np.int64(buf[start + 2]) << 8) | np.int64(buf[start + 3])
    if seq != state[row, SEQ]:
        return False
    ts = ((np.int64(buf[start + 4]) << 24) | (np.int64(buf[start + 5]) << 16)
          | (np.int64(buf[start + 6]) << 8) | np.int64(buf[start + 7]))  # fmt: skip
    if ts != state[row, TS]:
        return False
    ssrc = ((np.int64(buf[start + 8]) << 24) | (np.int64(buf[start + 9]) << 16)
            | (np.int64(buf[start + 10]) << 8) | np.int64(buf[start + 11]))  # fmt: skip
    if ssrc != state[row, SSRC]:
        return False
    size = n - HEADER
    pending = state[row, PENDING]
    if pending + size > codes.shape[1]:
        return False
    rate = times[row, RATE]
    jump = times[row, JUMP_S]
    if jump >= 0.0:
        media_s = state[row, LAST_LEN] / rate  # since the newest packet (the anchor)
        if abs(media_s - (arrival - times[row, ANCHOR_ARRIVAL])) > jump:
            return False
    # The interarrival jitter (RFC 3550 A.8), as the leg computes it.
    dts = ((ts - state[row, PREV_TS] + 0x80000000) & 0xFFFFFFFF) - 0x80000000
    d = (arrival - times[row, PREV_ARRIVAL]) * rate - dts
    times[row, JITTER] += (abs(d) - times[row, JITTER]) / 16.0
    times[row, PREV_ARRIVAL] = arrival
    state[row, PREV_TS] = ts
    codes[row, pending : pending + size] = buf[start + HEADER : start + n]
    if pending == 0:
        state[row, RUN_POS] = state[row, POS]
    state[row, PENDING] = pending + size
    state[row, TAKEN] += 1
    state[row, EXT] += 1
    state[row, LAST_TS] = ts
    state[row, LAST_LEN] = size
    state[row, SEQ] = (seq + 1) & 0xFFFF
    state[row, TS] = (ts + size) & 0xFFFFFFFF
    state[row, POS] += size
    times[row, ANCHOR_ARRIVAL] = arrival
    if arrival > times[row, NEWEST_ARRIVAL]:
        times[row, NEWEST_ARRIVAL] = arrival
    return True


@njit(nogil=True, cache=True)
def receive_round(
    fds: np.ndarray, row_of_fd: np.ndarray, state: np.ndarray, times: np.ndarray,
    codes: np.ndarray, slow_buf: np.ndarray, slow_meta: np.ndarray, others: np.ndarray,
    arrival: float, burst: int,
) -> tuple[int, int, int]:
    """Read the ready sockets ``fds``; returns (datagrams read, slow ones, others).

    ``slow_meta[i]`` = (row, offset in ``slow_buf``, length) of the i-th slow datagram, in
    arrival order; ``others[:n]`` the sockets left to the caller.
    """
    n_slow = 0
    used = 0
    n_others = 0
    got = 0
    base = slow_buf.ctypes.data
    full = False
    for i in range(fds.size):
        fd = fds[i]
        row = row_of_fd[fd] if 0 <= fd < row_of_fd.size else -1
        if row < 0 or full:
            others[n_others] = fd
            n_others += 1
            continue
        for _ in range(burst):
            if state[row, ON] and state[row, PENDING] + MAX_DATAGRAM > codes.shape[1]:
                break  # the lane is full until its leg's tick: the rest waits in the socket
            if used + MAX_DATAGRAM > slow_buf.size or n_slow >= slow_meta.shape[0]:
                full = True
                others[n_others] = fd  # the caller reads the rest of this socket
                n_others += 1
                break
            n = _recv(fd, base + used, MAX_DATAGRAM, MSG_DONTWAIT)
            if n < 0:  # empty (EAGAIN) or an error: the caller's round goes on
                break
            got += 1
            if _take(slow_buf, used, n, row, state, times, codes, arrival):
                continue
            state[row, ON] = 0  # its later datagrams follow this one on the slow path
            slow_meta[n_slow, 0] = row
            slow_meta[n_slow, 1] = used
            slow_meta[n_slow, 2] = n
            n_slow += 1
            used += n
    return got, n_slow, n_others
