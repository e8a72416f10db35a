"""The compiled receive lanes of one receive thread: one row per RTP leg, one round per wake-up.

:class:`LaneRows` holds what `kernels.rtp_round.receive_round` reads and writes (each leg's
lane state, its pending G.711 codes, the socket-to-row map) and the legs themselves, so
that the thread can hand each datagram the lane did not take to its leg's Python path.

Rows are taken by :meth:`attach` (from the thread that opens a stream, without the receive
lock, as `ReceiveThread.add` works) and given back by :meth:`detach` (on the receive thread
or under its lock). The arrays grow by doubling; a round in progress keeps the arrays it
was given, so growing takes the receive lock (see `ReceiveThread.add`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from kernels import rtp_round
from telephony.rtp import RtpLeg

logger = logging.getLogger(__name__)

INITIAL_ROWS = 64
CODES_PER_ROW = 8000  # 1 s of 8 kHz G.711 pending per leg; the thread takes it every 0.2 s
SLOW_BYTES = 1 << 20  # datagrams one round leaves to the Python path, at most (bytes)
SLOW_DATAGRAMS = 4096
INITIAL_FDS = 4096
DRAIN_BURST = 64  # datagrams a drain round reads, at most: more than a lane holds (50)
DRAIN_ROUNDS = 128  # rounds one drain runs, at most: two minutes of a stream's backlog


@dataclass
class RoundResult:
    """What one round read: the datagrams, how many of them went to their leg's Python
    path, the errors those legs raised, and the sockets left to the caller."""

    datagrams: int
    slow: int
    errors: int
    others: np.ndarray


class LaneRows:
    """See the module notes."""

    def __init__(self, rows: int = INITIAL_ROWS, codes_per_row: int = CODES_PER_ROW) -> None:
        self._codes_per_row = codes_per_row
        self.state = np.zeros((rows, rtp_round.STATE_COLUMNS), np.int64)
        self.times = np.zeros((rows, rtp_round.TIME_COLUMNS), np.float64)
        self.codes = np.zeros((rows, codes_per_row), np.uint8)
        self.legs: list[RtpLeg | None] = [None] * rows
        self.row_of_fd = np.full(INITIAL_FDS, -1, np.int32)
        self.slow_buf = np.zeros(SLOW_BYTES, np.uint8)
        self.slow_meta = np.zeros((SLOW_DATAGRAMS, 3), np.int64)
        self._others = np.zeros(64, np.int32)
        self._free = list(range(rows - 1, -1, -1))
        self._alloc = threading.Lock()

    @property
    def rows(self) -> int:
        return len(self.legs)

    def needs_room(self, fd: int) -> bool:
        """Whether :meth:`attach` for ``fd`` would grow the arrays (take the receive lock)."""
        with self._alloc:
            return not self._free or fd >= self.row_of_fd.size

    def attach(self, fd: int, leg: RtpLeg) -> int:
        """Give ``leg`` (received on socket ``fd``) a row; returns it."""
        with self._alloc:
            if not self._free:
                self._grow_rows()
            if fd >= self.row_of_fd.size:
                bigger = np.full(max(fd + 1, 2 * self.row_of_fd.size), -1, np.int32)
                bigger[: self.row_of_fd.size] = self.row_of_fd
                self.row_of_fd = bigger
            row = self._free.pop()
            self.legs[row] = leg
        leg.attach_lane(self, row)
        self.row_of_fd[fd] = row  # last: a round reads the row only once this is set
        return row

    def detach(self, fd: int) -> None:
        """Take the row of socket ``fd`` back (its leg takes what the lane holds first)."""
        if not 0 <= fd < self.row_of_fd.size:
            return
        row = int(self.row_of_fd[fd])
        if row < 0:
            return
        self.row_of_fd[fd] = -1
        leg = self.legs[row]
        if leg is not None:
            leg.detach_lane()
        with self._alloc:
            self.legs[row] = None
            self._free.append(row)

    def drain(self, fd: int, arrival_s: float, max_datagrams: int) -> int:
        """Read what socket ``fd`` still holds through its lane, its leg ticked between
        rounds to empty the lane (the receive lock held): a leg that ends takes the backlog
        of a busy moment at a compiled round's cost, not one datagram at a time through its
        Python path. Returns the datagrams read (at most about ``max_datagrams``)."""
        if not 0 <= fd < self.row_of_fd.size:
            return 0
        row = int(self.row_of_fd[fd])
        leg = self.legs[row] if row >= 0 else None
        if leg is None:
            return 0
        fds = np.array([fd], np.int32)
        total = 0
        for _ in range(DRAIN_ROUNDS):
            leg.tick(arrival_s)  # takes what the lane took, and opens it if it can
            got = self.receive(fds, arrival_s, DRAIN_BURST).datagrams
            total += got
            if got == 0 or total >= max_datagrams:
                break
        return total

    def _grow_rows(self) -> None:
        old = self.rows
        new = 2 * old
        for name in ("state", "times", "codes"):
            arr = getattr(self, name)
            bigger = np.zeros((new, *arr.shape[1:]), arr.dtype)
            bigger[:old] = arr
            setattr(self, name, bigger)
        self.legs.extend([None] * (new - old))
        self._free.extend(range(new - 1, old - 1, -1))

    def receive(self, fds: np.ndarray, arrival_s: float, burst: int) -> RoundResult:
        """One round over the ready sockets ``fds`` (the receive lock held): each leg's
        in-order audio is taken by the compiled round; each datagram it did not take goes
        to its leg's Python path (:meth:`RtpLeg.feed`), in order, and the leg's lane
        reopens if it can (:meth:`RtpLeg.resume_lane`)."""
        if self._others.size < fds.size:
            self._others = np.zeros(max(fds.size, 2 * self._others.size), np.int32)
        got, n_slow, n_others = rtp_round.receive_round(
            fds, self.row_of_fd, self.state, self.times, self.codes, self.slow_buf,
            self.slow_meta, self._others, arrival_s, burst,
        )  # fmt: skip
        errors = 0
        if n_slow:
            legs = self.legs
            buf = self.slow_buf
            touched: dict[int, RtpLeg] = {}
            for row, offset, length in self.slow_meta[:n_slow].tolist():
                leg = legs[row]
                if leg is None:  # pragma: no cover - rows change only under the lock
                    continue
                touched[row] = leg
                try:
                    leg.feed(buf[offset : offset + length].tobytes(), arrival_s)
                except Exception:  # a bug must not stop the other calls
                    errors += 1
                    logger.exception("leg %d: failed on a packet", leg.channel)
            for leg in touched.values():
                leg.resume_lane()
        return RoundResult(int(got), int(n_slow), errors, self._others[:n_others])
