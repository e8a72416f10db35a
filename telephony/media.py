"""RTP and RTCP sockets: the port pool and the receive thread.

Each leg gets an even RTP port from :class:`RtpPortPool` and RTCP on the port above it
(RFC 3550 section 11). :class:`ReceiveThread` receives them: one thread watches every RTP
and RTCP socket with ``epoll`` and reads the ready ones in rounds, outside any event loop:
a compiled round (`telephony.lanes`) takes each leg's in-order audio, and every other
datagram goes to its :class:`~telephony.rtp.RtpLeg`. It costs about half of what an
asyncio datagram endpoint per port costs per packet (``benchmarks/bench_rtp_receive.py``
keeps that way as its baseline; ``callqa bench --front-end`` measures the whole front end).
:class:`ThreadMediaStream` is one leg's pair of ports on it.

RTCP reports are parsed into a stream's :class:`~telephony.rtcp.RtcpStats`
(`telephony.rtcp`); malformed packets are counted and dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import numpy as np

from telephony.lanes import LaneRows
from telephony.rtcp import RtcpParseError, RtcpStats, parse_rtcp
from telephony.rtp import RtpLeg
from telephony.sockets import grow_receive_buffer

logger = logging.getLogger(__name__)

MAX_DATAGRAM_BYTES = 2048
RECEIVE_BUFFER_BYTES = 1 << 20
THREAD_POLL_S = 0.2
THREAD_BATCH_S = 0.002
THREAD_BURST = 1
COMPILED_BURST = 16  # datagrams a compiled round reads from one socket, at most
THREAD_TICK_S = 0.2  # how often the thread lets every leg release audio by the arrival clock
BUSY_TICK_S = 0.4  # ... once it receives more than BUSY_TICK_LEGS legs
BUSY_TICK_LEGS = 400
"""Past this many legs (200 calls) a tick's cost per leg decides how many the thread keeps
up with, more than the 0.1 s on average it adds before audio reaches the live path: ticking
every 0.4 s held 700 lines where 0.2 s held 600 to 650 (README, "The front end alone")."""
YIELD_WAIT_S = 0.002  # at most this long between rounds for a thread waiting for the lock
LET_IN_EVERY = 64  # ready sockets served between two looks for a thread waiting for the lock
MAX_DRAIN_DATAGRAMS = 4096  # read from a socket being removed, at most
REMOVE_BUDGET_S = 0.005  # a round spends about this long on removals; the rest wait a round

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


# ---------------------------------------------------------------------- thread


class _Receiver(Protocol):
    def feed(self, datagram: bytes, arrival_s: float) -> None: ...


class ReceiverLock:
    """The receive thread's lock as other threads take it (``with receiver.lock:``).

    The receive thread holds the lock for a round, and under load starts the next round at
    once; a plain lock would then mostly go back to it, and an event loop that waits for it
    (to pause a stream or end a call) would wait for many rounds, hundreds of packets'
    work each. Here a waiter is counted: the receive thread ends its round early (it looks
    every ``LET_IN_EVERY`` ready sockets) and steps aside until the waiters are in
    (:meth:`ReceiveThread._let_waiters_in`).
    """

    def __init__(self) -> None:
        self.raw = threading.Lock()
        self._count = threading.Lock()
        self.waiting = 0

    def __enter__(self) -> None:
        with self._count:
            self.waiting += 1
        try:
            self.raw.acquire()
        finally:
            with self._count:
                self.waiting -= 1

    def __exit__(self, *exc: object) -> None:
        self.raw.release()


class _RtcpReceiver:
    """Feeds an RTCP port's datagrams into one stream's :class:`RtcpStats`."""

    channel = -1

    def __init__(self, stats: RtcpStats) -> None:
        self.stats = stats

    def feed(self, datagram: bytes, arrival_s: float) -> None:
        try:
            parse_rtcp(datagram, self.stats)
        except (RtcpParseError, struct.error) as exc:
            self.stats.malformed += 1
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("dropped an RTCP datagram: %s", exc)


class ReceiveThread:
    """One thread receiving the RTP (and RTCP) of many legs.

    Legs are fed on this thread; :meth:`add` takes no lock, and :meth:`remove` returns only
    once the thread no longer touches the leg, so the caller may then flush and close it.
    Every feed runs under ``lock``, which callers take for anything else they do with a leg
    while it is registered (pause, statistics) and while flushing a leg whose call shares a
    recording with a leg still registered.

    Each round the thread waits on ``epoll`` for the sockets with data, takes one arrival
    time, and reads every ready socket until it is empty (``EAGAIN``) or ``burst``
    datagrams were read from it, so that a flooded port cannot starve the others; a socket
    with more stays ready (level-triggered) and is read again in the next round. Every
    ``tick_s`` (``busy_tick_s`` while it has more than ``busy_tick_legs`` receivers with a
    tick) the rounds also call ``tick(now)`` of every receiver that has one, a share
    of them each round (an :class:`RtpLeg` takes what its compiled lane took, and releases
    the audio that waited long enough by the arrival clock, when a stream pauses or stops),
    so no other thread has to take the lock once per leg for it.
    Then it sleeps until ``batch_s`` has passed since it woke, so under load one wake-up
    serves many sockets, and ``burst / batch_s`` caps the packets a second taken from one
    port.

    The default burst is one datagram: a 20 ms stream rarely has two waiting after a 2 ms
    round, so reading on to ``EAGAIN`` mostly adds a failing ``recv`` per packet (1.6 us a
    packet more, measured with 400 legs); one per round still takes 500 packets a second
    from a port, ten times a stream's rate, and a backlog is read at once in back-to-back
    rounds.
    """

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        poll_s: float = THREAD_POLL_S,
        batch_s: float = THREAD_BATCH_S,
        burst: int = THREAD_BURST,
        tick_s: float = THREAD_TICK_S,
        busy_tick_s: float = BUSY_TICK_S,
        busy_tick_legs: int = BUSY_TICK_LEGS,
        compiled: bool = True,
    ) -> None:
        self.clock = clock
        self.lock = ReceiverLock()
        self.errors = 0
        self.rounds = 0
        self.datagrams = 0
        self._poll_s = poll_s
        self._batch_s = batch_s
        self._burst = max(1, int(burst))
        # In a compiled round a read that finds the socket empty costs only the system
        # call, so each socket is read until it is empty: a backlog goes at once.
        self._compiled_burst = max(self._burst, COMPILED_BURST)
        self._tick_s = tick_s
        self._busy_tick_s = max(tick_s, busy_tick_s)
        self._busy_tick_legs = busy_tick_legs
        self.tick_period_s = tick_s
        """The period of the pass under way: ``tick_s``, or ``busy_tick_s`` past
        ``busy_tick_legs`` legs."""
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._epoll.register(self._wake_r.fileno(), select.EPOLLIN)
        # fd -> (socket, receiver); the wake-up socket has no receiver.
        self._entries: dict[int, tuple[socket.socket, _Receiver | None]] = {
            self._wake_r.fileno(): (self._wake_r, None)
        }
        self._socks: dict[int, socket.socket] = {}
        self._ticks: dict[int, Callable[[float], None]] = {}  # fd -> a receiver's tick
        self._tick_pass: list[tuple[int, Callable[[float], None]]] = []  # this pass's order
        self._tick_pos = 0  # how many of them were ticked
        self._pass_start = 0.0
        self._stop = False
        self._removals: deque[tuple[tuple[int, ...], concurrent.futures.Future[None]]] = deque()
        self._lanes = LaneRows() if compiled else None
        self._thread = threading.Thread(target=self._run, name="rtp-receive", daemon=True)
        self._thread.start()

    def add(self, host: str, port: int, leg: _Receiver) -> int:
        """Bind ``host:port`` (0: any) and feed what arrives to ``leg``; returns the port.

        ``leg`` is anything with ``feed(datagram, arrival_s)``: an :class:`RtpLeg`, or the
        RTCP side of a :class:`ThreadMediaStream`. Raises OSError when the port is taken.
        """
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
            sock.setblocking(False)
            grow_receive_buffer(sock, RECEIVE_BUFFER_BYTES)
            bound = int(sock.getsockname()[1])
            # Without the lock (each step is one atomic dict or epoll operation): the
            # entry first, so that the thread finds it once epoll reports the socket.
            fd = sock.fileno()
            self._entries[fd] = (sock, leg)
            self._socks[bound] = sock
            tick = getattr(leg, "tick", None)
            if tick is not None:
                self._ticks[fd] = tick
            lanes = self._lanes
            if lanes is not None and isinstance(leg, RtpLeg):
                if lanes.needs_room(fd):  # growing replaces arrays a round may be using
                    with self.lock:
                        lanes.attach(fd, leg)
                else:
                    lanes.attach(fd, leg)
            self._epoll.register(fd, select.EPOLLIN)
        except BaseException:
            self._forget(sock)
            sock.close()
            raise
        return bound

    def _forget(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if fd >= 0:
            if self._lanes is not None:
                self._lanes.detach(fd)
            self._entries.pop(fd, None)
            self._ticks.pop(fd, None)
        for port, known in list(self._socks.items()):
            if known is sock:
                del self._socks[port]

    def remove(self, *ports: int) -> None:
        """Stop receiving on ``ports`` and close their sockets (unknown ports are skipped),
        taking the lock once.

        What a socket still holds is fed to its leg first: when the thread runs behind
        (a burst of load), the last packets of a call that ends are still taken.
        """
        with self.lock:
            self._remove_now(ports)

    def remove_soon(self, *ports: int) -> concurrent.futures.Future[None]:
        """:meth:`remove`, done by the receive thread at the start of its next round; the
        returned future is done once the thread no longer touches the legs.

        The caller does not wait for the lock: an event loop ending a thousand calls at once
        (a burst of BYEs) goes on answering them while the thread closes their sockets,
        many in one round.
        """
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._removals.append((ports, done))
        if self._stop:  # closed (or closing): nobody else would take it
            with self.lock:
                self._remove_pending()
        else:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"r")
        return done

    def _remove_pending(self, budget_s: float | None = None) -> None:
        """The removals asked with :meth:`remove_soon` (the lock held); with ``budget_s``,
        those that fit in about that long, the rest in the next rounds: a burst of calls
        that end must not leave the other calls' sockets unread while it is closed."""
        removals = self._removals
        deadline = None if budget_s is None else time.monotonic() + budget_s
        while removals and (deadline is None or time.monotonic() < deadline):
            try:
                ports, done = removals.popleft()
            except IndexError:  # taken by another thread meanwhile
                return
            try:
                self._remove_now(ports)
            except Exception as exc:  # pragma: no cover - closing sockets does not fail
                done.set_exception(exc)
            else:
                done.set_result(None)

    def _remove_now(self, ports: tuple[int, ...]) -> None:
        for port in ports:
            sock = self._socks.pop(port, None)
            if sock is None:
                continue
            fd = sock.fileno()
            if self._lanes is not None:
                self._lanes.drain(fd, self.clock(), MAX_DRAIN_DATAGRAMS)
                self._lanes.detach(fd)  # the leg takes what its lane holds
            entry = self._entries.pop(fd, None)
            self._ticks.pop(fd, None)
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)
            if entry is not None and entry[1] is not None:
                self._feed_rest(sock, entry[1])
            sock.close()

    def _feed_rest(self, sock: socket.socket, leg: _Receiver) -> None:
        now = self.clock()
        for _ in range(MAX_DRAIN_DATAGRAMS):
            try:
                data = sock.recv(MAX_DATAGRAM_BYTES)
            except OSError:  # empty
                return
            try:
                leg.feed(data, now)
            except Exception:
                self.errors += 1
                logger.exception("leg %d: failed on a packet", getattr(leg, "channel", -1))

    @property
    def ports(self) -> int:
        """Sockets being received on now."""
        return len(self._socks)

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        with self.lock:
            self._remove_pending()
            for sock in self._socks.values():
                if self._lanes is not None:
                    self._lanes.detach(sock.fileno())  # its leg takes what the lane holds
                sock.close()
            self._socks.clear()
            self._entries.clear()
            self._ticks.clear()
        self._epoll.close()
        self._wake_r.close()
        self._wake_w.close()

    def _run(self) -> None:
        poll = self._epoll.poll
        lock = self.lock
        lanes = self._lanes
        clock = self.clock
        batch_s = self._batch_s
        poll_s = self._poll_s
        sleep = time.sleep
        tick_s = self._tick_s
        while not self._stop:
            events = poll(poll_s)
            now = clock()  # one arrival time per wake-up: at most batch_s coarse
            got = 0
            with lock.raw:
                if self._removals:
                    self._remove_pending(REMOVE_BUDGET_S)
                if lanes is not None:
                    got = self._compiled_round(lanes, events, now)
                else:
                    got = self._round(events, now)
            if tick_s > 0.0:
                self._tick_due(now)
            self.rounds += 1
            self.datagrams += got
            if lock.waiting:
                self._let_waiters_in()
            if batch_s > 0.0:
                rest = now + batch_s - clock()
                if rest > 0.0:
                    sleep(rest)  # let packets gather: fewer wake-ups per packet

    def _round(self, events: list[tuple[int, int]], now: float) -> int:
        """Read the ready sockets one datagram at a time, each handed to its leg."""
        entries = self._entries
        lock = self.lock
        size = MAX_DATAGRAM_BYTES
        more = range(self._burst - 1)
        got = 0
        served = 0
        for fd, _ in events:
            served += 1
            if not served & LET_IN_EVERY - 1 and lock.waiting:
                break  # the rest are still ready: the next round reads them
            entry = entries.get(fd)
            if entry is None:  # removed since the poll
                continue
            sock, leg = entry
            if leg is None:
                _drain(sock)
                continue
            # The first datagram outside the loop: with the default burst of one
            # this is all a ready socket costs.
            try:
                data = sock.recv(size)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                logger.debug("RTP socket error: %s", exc)
                continue
            got += 1
            try:
                leg.feed(data, now)
            except Exception:  # a bug must not stop the other calls
                self.errors += 1
                logger.exception("leg %d: failed on a packet",
                                 getattr(leg, "channel", -1))  # fmt: skip
            for _ in more:
                try:
                    data = sock.recv(size)
                except OSError:  # empty (EAGAIN): the common way out
                    break
                got += 1
                try:
                    leg.feed(data, now)
                except Exception:
                    self.errors += 1
                    logger.exception("leg %d: failed on a packet",
                                     getattr(leg, "channel", -1))  # fmt: skip
        return got

    def _compiled_round(self, lanes: LaneRows, events: list[tuple[int, int]], now: float) -> int:
        """Read the ready sockets in one compiled round (:meth:`LaneRows.receive`); the
        sockets with no lane (RTCP, the wake-up socket) are read as :meth:`_round` reads
        them."""
        fds = np.fromiter((fd for fd, _ in events), np.int32, len(events))
        result = lanes.receive(fds, now, self._compiled_burst)
        self.errors += result.errors
        got = result.datagrams
        if len(result.others):
            got += self._round([(int(fd), 0) for fd in result.others], now)
        return got

    def _tick_due(self, now: float) -> None:
        """Tick the receivers whose turn has come. A pass ticks every receiver once in
        its period (:attr:`tick_period_s`), spread over that time in proportion to it (a
        tenth of them after a tenth of it), so that no round stops reading for all of them
        at once: with a thousand legs one tick of them all held the sockets unread for tens
        of milliseconds. A receiver added meanwhile joins the next pass, which also sets the
        period by how many there are."""
        order = self._tick_pass
        if self._tick_pos >= len(order):
            if now - self._pass_start < self.tick_period_s:
                return  # this pass is done; the next has not begun
            self._pass_start = now
            order = self._tick_pass = list(self._ticks.items())
            self._tick_pos = 0
            busy = len(order) > self._busy_tick_legs
            self.tick_period_s = self._busy_tick_s if busy else self._tick_s
        share = min(1.0, (now - self._pass_start) / self.tick_period_s)
        due = min(len(order), math.ceil(len(order) * share))
        if due > self._tick_pos:
            self._tick(order[self._tick_pos : due], now)
            self._tick_pos = due

    def _tick(self, pending: list[tuple[int, Callable[[float], None]]], now: float) -> None:
        """Tick these receivers, ``LET_IN_EVERY`` at a time under the lock, stepping aside
        between them for a thread that waits: a tick releases audio into the pipeline, so
        ticking many legs in one hold would keep a call that ends (its sockets to remove)
        waiting for all of it."""
        lock = self.lock
        ticks = self._ticks
        for start in range(0, len(pending), LET_IN_EVERY):
            if lock.waiting:
                self._let_waiters_in()
            with lock.raw:
                for fd, tick in pending[start : start + LET_IN_EVERY]:
                    if ticks.get(fd) is not tick:  # removed (its fd perhaps reused) meanwhile
                        continue
                    try:
                        tick(now)
                    except Exception:  # a bug must not stop the other calls
                        self.errors += 1
                        logger.exception("the receiver on fd %d failed on a tick", fd)

    def _let_waiters_in(self) -> None:
        """Wait (briefly) until the threads waiting for the lock have had it."""
        deadline = time.monotonic() + YIELD_WAIT_S
        while self.lock.waiting and time.monotonic() < deadline:
            time.sleep(0.0001)


class ThreadMediaStream:
    """One leg's RTP port (and RTCP on the port above it) on a :class:`ReceiveThread`.

    The thread feeds the leg; whoever touches the leg meanwhile holds ``receiver.lock``.
    """

    def __init__(self, receiver: ReceiveThread, leg: RtpLeg) -> None:
        self.receiver = receiver
        self.leg = leg
        self.rtcp = RtcpStats()
        self.port = 0
        self.rtcp_port = 0

    @classmethod
    def open(cls, receiver: ReceiveThread, host: str, port: int, leg: RtpLeg) -> ThreadMediaStream:
        """Bind RTP on ``host:port`` and RTCP on ``port + 1`` (port 0: any two ports);
        raises OSError when either is taken (nothing stays bound then)."""
        stream = cls(receiver, leg)
        stream.port = receiver.add(host, port, leg)
        try:
            stream.rtcp_port = receiver.add(host, port + 1 if port else 0,
                                            _RtcpReceiver(stream.rtcp))  # fmt: skip
        except BaseException:
            receiver.remove(stream.port)
            raise
        return stream

    def close(self) -> None:
        """Stop receiving; once this returns the thread no longer touches the leg."""
        if self.port:
            self.receiver.remove(self.port, self.rtcp_port)
            self.port = self.rtcp_port = 0

    async def aclose(self) -> None:
        """:meth:`close` without holding up the event loop: the receive thread closes the
        ports in its next round; once this returns it no longer touches the leg."""
        if self.port:
            ports = (self.port, self.rtcp_port)
            self.port = self.rtcp_port = 0
            await asyncio.wrap_future(self.receiver.remove_soon(*ports))


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(64):
            pass
    except OSError:
        pass
