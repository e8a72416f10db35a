"""RTP receive path: packets per second on one core, and the socket path on loopback.

Usage::

    python benchmarks/bench_rtp_receive.py [--quick] [--legs N] [--rate PPS]

Part 1, in process (no sockets), the process pinned to one CPU. Every case takes the same
pre-built G.711 packets (20 ms, 160 bytes of payload) of 1 leg or N legs (1,000 by
default) interleaved as they would arrive, and reports the median packets per second over
several runs:

* ``parse_rtp`` alone;
* ``RtpLeg.feed`` without a recording (parse, jitter buffer, DTMF/CN dispatch, G.711
  decode);
* ``RtpLeg.feed`` with a ``CallRecorder`` per call (the whole path down to the WAV file);
* the baseline: a naive receive path written the obvious way (``struct.unpack`` of every
  field, a dict buffer released with ``min()``, table decode, the PCM appended to a
  ``bytearray`` and written with the ``wave`` module at the end).

Part 2, real UDP sockets on loopback: a sender process paces RTP to N ports (the receive
path's legs with recordings) at ``--rate`` packets per second for a few seconds while this
process receives, either with asyncio datagram endpoints (the baseline: one endpoint per
port, as the recording server once received) or with one
``ReceiveThread`` (epoll, one ``recv`` per ready socket and round, rounds at least 2 ms
apart so that one wake-up serves many sockets; and once more reading each ready socket
until ``EAGAIN``; and with the compiled rounds of ``telephony.lanes``, which read every
ready socket in one Numba call and take in-order audio there, legs with recordings only).
Each loop runs twice: with legs that only
count (the cost of the receive loop itself) and with the real legs and recordings. Reported:
the packets received, the loss, and the CPU time of the receiving process per packet (the
sender's CPU is not counted). The receiver is pinned to CPU 0 and the sender to CPU 1 when
the machine has two.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import socket
import statistics
import struct
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels.g711 import ULAW_DECODE_TABLE, ulaw_encode
from telephony.media import ReceiveThread
from telephony.recorder import CallRecorder
from telephony.rtp import RtpLeg
from telephony.rtp_packet import RtpPacket, parse_rtp

FRAME = 160
PACKET_S = 0.02
PAYLOADS = {0: "PCMU", 101: "telephone-event"}
DRAIN_BURST = 1 << 16  # read a ready socket until it is empty


# ---------------------------------------------------------------------- workloads


def make_packets(legs: int, per_leg: int) -> list[tuple[int, bytes, float]]:
    """(leg, datagram, arrival) in arrival order: one packet of every leg per 20 ms tick."""
    rng = np.random.default_rng(1)
    pcm = (np.sin(2 * np.pi * 440 * np.arange(per_leg * FRAME) / 8000) * 8000).astype(np.int16)
    codes = ulaw_encode(pcm).tobytes()
    streams = []
    for leg in range(legs):
        seq0 = int(rng.integers(0, 65536))
        ts0 = int(rng.integers(0, 2**32))
        streams.append([
            RtpPacket(0, (seq0 + i) & 0xFFFF, (ts0 + i * FRAME) & 0xFFFFFFFF, 0x1000 + leg,
                      payload=codes[i * FRAME:(i + 1) * FRAME]).serialize()
            for i in range(per_leg)
        ])
    out = []
    for i in range(per_leg):
        for leg in range(legs):
            out.append((leg, streams[leg][i], i * PACKET_S + leg * 1e-5))
    return out


class NaiveLeg:
    """The baseline: the receive path as one would first write it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.buffer: dict[int, bytes] = {}
        self.next_seq: int | None = None
        self.pcm = bytearray()

    def feed(self, data: bytes, arrival: float) -> None:
        b0, _b1, seq, _ts, _ssrc = struct.unpack("!BBHII", data[:12])
        version = b0 >> 6
        cc = b0 & 0x0F
        if version != 2:
            return
        payload = data[12 + 4 * cc:]
        if self.next_seq is None:
            self.next_seq = seq
        self.buffer[seq] = payload
        while len(self.buffer) > 3:
            first = min(self.buffer)
            pcm = ULAW_DECODE_TABLE[np.frombuffer(self.buffer.pop(first), dtype=np.uint8)]
            self.pcm += pcm.tobytes()

    def close(self) -> None:
        for seq in sorted(self.buffer):
            self.pcm += ULAW_DECODE_TABLE[np.frombuffer(self.buffer[seq], dtype=np.uint8)].tobytes()
        with wave.open(str(self.path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(bytes(self.pcm))


def run_parse(packets: list[tuple[int, bytes, float]], tmp: Path, legs: int) -> float:
    t0 = time.process_time()
    for _, data, _ in packets:
        parse_rtp(data)
    return time.process_time() - t0


def run_leg(packets: list[tuple[int, bytes, float]], tmp: Path, legs: int,
            record: bool) -> float:
    recorders = [CallRecorder(tmp / f"leg{i}.wav") for i in range(legs)] if record else []
    receivers = [RtpLeg(0, PAYLOADS, recorders[i] if record else None) for i in range(legs)]
    feeds = [r.feed for r in receivers]
    t0 = time.process_time()
    for leg, data, arrival in packets:
        feeds[leg](data, arrival)
    for r in receivers:
        r.flush()
    for rec in recorders:
        rec.close()
    elapsed = time.process_time() - t0
    assert sum(r.stats.received for r in receivers) == len(packets)
    return elapsed


def run_naive(packets: list[tuple[int, bytes, float]], tmp: Path, legs: int) -> float:
    receivers = [NaiveLeg(tmp / f"naive{i}.wav") for i in range(legs)]
    t0 = time.process_time()
    for leg, data, arrival in packets:
        receivers[leg].feed(data, arrival)
    for r in receivers:
        r.close()
    return time.process_time() - t0


@dataclass
class Row:
    case: str
    legs: int
    packets: int
    pps: float
    baseline_pps: float | None

    def line(self) -> str:
        us = 1e6 / self.pps
        ratio = f"{self.pps / self.baseline_pps:5.2f}x" if self.baseline_pps else "    - "
        lines_per_core = self.pps / (1 / PACKET_S)
        return (f"| {self.case:<34} | {self.legs:>5} | {self.pps:>11,.0f} | {us:>6.2f} "
                f"| {lines_per_core:>10,.0f} | {ratio} |")


def median_pps(fn: Callable[[], float], packets: int, repeats: int) -> float:
    times = [fn() for _ in range(repeats)]
    return packets / statistics.median(times)


def _measure(legs: int, per_leg: int, repeats: int) -> list[Row]:
    packets = make_packets(legs, per_leg)
    n = len(packets)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        run_leg(packets[:100], tmp, legs, True)  # warm up (Numba load, page cache)
        base = median_pps(lambda: run_naive(packets, tmp, legs), n, repeats)
        cases: list[tuple[str, Callable[[], float]]] = [
            ("parse_rtp only", lambda: run_parse(packets, tmp, legs)),
            ("RtpLeg.feed, no recording", lambda: run_leg(packets, tmp, legs, False)),
            ("RtpLeg.feed + CallRecorder", lambda: run_leg(packets, tmp, legs, True)),
        ]
        rows = [Row("baseline: naive struct+dict+wave", legs, n, base, None)]
        for name, fn in cases:
            rows.append(Row(name, legs, n, median_pps(fn, n, repeats), base))
    return rows


def in_process(legs_list: list[int], per_leg_packets: int, repeats: int) -> list[Row]:
    rows = []
    for legs in legs_list:
        rows += _measure(legs, max(per_leg_packets // legs, 50), repeats)
    return rows


# ---------------------------------------------------------------------- sockets


def _sender(ports: list[int], rate: float, seconds: float, start: mp.Event,
            result: mp.Queue) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    per_leg = int(seconds / PACKET_S) + 1
    codes = bytes(FRAME)
    packets = [
        [RtpPacket(0, i & 0xFFFF, i * FRAME, 0x2000 + leg, payload=codes).serialize()
         for i in range(per_leg)]
        for leg in range(len(ports))
    ]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    start.wait()
    sent = 0
    t0 = time.perf_counter()
    total = int(rate * seconds)
    legs = len(ports)
    while sent < total:
        due = int((time.perf_counter() - t0) * rate)
        while sent < min(due, total):
            leg = sent % legs
            sock.sendto(packets[leg][(sent // legs) % per_leg], ("127.0.0.1", ports[leg]))
            sent += 1
        if sent >= due:
            time.sleep(0.0005)
    result.put((sent, time.perf_counter() - t0))


@dataclass
class SocketRow:
    mode: str
    legs: int
    sent: int
    send_s: float
    received: int
    cpu_s: float
    wall_s: float

    def line(self) -> str:
        loss = 100.0 * (self.sent - self.received) / self.sent if self.sent else 0.0
        us = 1e6 * self.cpu_s / max(self.received, 1)
        cpu = 100.0 * self.cpu_s / self.wall_s
        capacity = 1e6 / us if us else 0.0
        return (f"| {self.mode:<40} | {self.legs:>5} | {self.sent / self.send_s:>9,.0f} "
                f"| {loss:>5.2f}% | {us:>6.2f} | {cpu:>4.1f}% | {capacity:>14,.0f} |")


class CountingLeg:
    """A leg that only counts: what the receive loop costs by itself."""

    channel = 0

    def __init__(self) -> None:
        self.received = 0

    def feed(self, data: bytes, arrival_s: float) -> None:
        self.received += 1

    def flush(self) -> None:
        pass


class _AsyncioPort(asyncio.DatagramProtocol):
    """The baseline receive loop: each datagram handed to its leg by the event loop."""

    def __init__(self, leg: RtpLeg | CountingLeg) -> None:
        self.leg = leg

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.leg.feed(data, time.monotonic())


def _socket_case(
    mode: str, legs: int, rate: float, seconds: float, tmp: Path, full: bool
) -> SocketRow:
    recorders = [CallRecorder(tmp / f"{mode[:7]}{i}.wav") for i in range(legs)] if full else []
    receivers: list = (
        [RtpLeg(0, PAYLOADS, recorders[i]) for i in range(legs)]
        if full
        else [CountingLeg() for _ in range(legs)]
    )
    ctx = mp.get_context("fork")
    start = ctx.Event()
    result: mp.Queue = ctx.Queue()
    ports: list[int] = []
    streams: list[asyncio.DatagramTransport] = []
    thread: ReceiveThread | None = None
    loop = asyncio.new_event_loop() if mode.startswith("asyncio") else None

    if loop is not None:
        async def open_all() -> None:
            for leg in receivers:
                transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                    lambda leg=leg: _AsyncioPort(leg), local_addr=("127.0.0.1", 0))
                transport.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                streams.append(transport)
                ports.append(transport.get_extra_info("sockname")[1])
        loop.run_until_complete(open_all())
    else:  # one datagram per ready socket and round, or ("/drain") each read to EAGAIN,
        # or ("/compiled") the compiled rounds that take in-order audio without the GIL
        thread = ReceiveThread(burst=DRAIN_BURST if mode.endswith("drain") else 1,
                               compiled=mode.endswith("compiled"))
        ports = [thread.add("127.0.0.1", 0, leg) for leg in receivers]

    proc = ctx.Process(target=_sender, args=(ports, rate, seconds, start, result))
    proc.start()
    time.sleep(0.5)  # the sender builds its packets
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    start.set()
    if loop is not None:
        loop.run_until_complete(asyncio.sleep(seconds + 0.3))
    else:
        time.sleep(seconds + 0.3)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    sent, send_wall = result.get(timeout=30)
    proc.join()
    if thread is not None:
        thread.close()
    for s in streams:
        s.close()
    if loop is not None:
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
    for leg in receivers:
        leg.flush()
    for rec in recorders:
        rec.close()
    received = sum(leg.stats.received if full else leg.received for leg in receivers)
    # CPU over the whole window includes idle waiting (asyncio's or epoll's): it is the cost.
    name = mode + (", RtpLeg+recorder" if full else ", no-op legs")
    return SocketRow(name, legs, sent, send_wall, received, cpu, wall)


def socket_path(legs: int, rate: float, seconds: float) -> list[SocketRow]:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for full in (False, True):
            modes = ["asyncio", "ReceiveThread", "ReceiveThread/drain"]
            if full:  # the compiled rounds take only RtpLeg's audio: no no-op legs
                modes.append("ReceiveThread/compiled")
            for mode in modes:
                rows.append(_socket_case(mode, legs, rate, seconds, Path(d), full))
    return rows


# ---------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer packets and shorter runs")
    ap.add_argument("--legs", type=int, default=1000, help="concurrent legs (default 1000)")
    ap.add_argument("--rate", type=float, default=50_000, help="socket test packets per second")
    args = ap.parse_args()

    pinned = False
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
        pinned = True
    per_leg_packets = 20_000 if args.quick else 150_000
    repeats = 3 if args.quick else 5
    seconds = 1.5 if args.quick else 4.0
    socket_legs = min(args.legs, 200) if args.quick else args.legs
    rate = min(args.rate, 20_000) if args.quick else args.rate

    print(f"# RTP receive path  ({platform.python_implementation()} {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, pinned to one CPU: {pinned})")
    print()
    print(f"In process, {repeats} runs each, median; ratio = packets/s against the naive "
          "baseline on the same packets; lines/core = packets/s / 50.")
    print()
    print("| case                               |  legs |   packets/s | us/pkt | lines/core "
          "| ratio  |")
    print("| ---------------------------------- | ----: | ----------: | -----: | ---------: "
          "| -----: |")
    for row in in_process([1, args.legs], per_leg_packets, repeats):
        print(row.line())
    print()
    print(f"Sockets on loopback: {socket_legs} legs, sender paced at {rate:,.0f} packets/s for "
          f"{seconds:g} s; CPU = receiving process (parse + jitter + decode + record included).")
    print()
    print("| receive loop                             |  legs |   sent/s |   loss | us/pkt |   CPU "
          "| packets/s/core |")
    print("| ---------------------------------------- | ----: | -------: | -----: | -----: | ----: "
          "| -------------: |")
    for srow in socket_path(socket_legs, rate, seconds):
        print(srow.line())


if __name__ == "__main__":
    main()
