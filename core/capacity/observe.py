"""What a capacity step watches on the daemon: its events, its load, its CPU.

:class:`DaemonProbe` follows one `callqa serve` child over gRPC and ``/proc``:

* one ``WatchCalls`` stream for the whole ramp records every call's start (the box's call id
  and the sender's SIP Call-ID) and every finished transcript with the wall time it arrived
  here, so latency is measured by the client, not only by the daemon;
* a sampler reads ``GetCapacity`` once a second (ASR backlog, live lines) and the daemon's
  resident memory;
* :meth:`DaemonProbe.snapshot` takes the cumulative counters at a step's start and end: the
  process's CPU from ``/proc/<pid>/stat``, CPU per stage, ASR totals and RTP packet counts
  from ``GetCapacity``, and the datagrams the kernel dropped on the daemon's own UDP sockets
  because it did not read them in time (the ``drops`` column of ``/proc/net/udp`` for the
  socket inodes under ``/proc/<pid>/fd``, read at every sample; a socket's drops in the
  last second before it closes can be missed).
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from core.stage_cpu import STAGES, memory_bytes
from proto import callqa_pb2 as pb
from proto import callqa_pb2_grpc as pb_grpc

SAMPLE_EVERY_S = 1.0
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Heard:
    """A finished transcript as the probe received it."""

    call_id: str
    speaker: int
    end_s: float
    received_wall: float
    server_latency_ms: float
    text: str
    leg_start_s: float = 0.0


@dataclass
class Snapshot:
    mono: float
    process_cpu_s: float
    stage_cpu_s: dict[str, float]
    packets: dict[str, int]
    asr: dict[str, float]
    kernel_drops: int

    def minus(self, earlier: Snapshot) -> Snapshot:
        return Snapshot(
            mono=self.mono - earlier.mono,
            process_cpu_s=self.process_cpu_s - earlier.process_cpu_s,
            stage_cpu_s={k: v - earlier.stage_cpu_s.get(k, 0.0)
                         for k, v in self.stage_cpu_s.items()},
            packets={k: v - earlier.packets.get(k, 0) for k, v in self.packets.items()},
            asr={k: v - earlier.asr.get(k, 0.0) for k, v in self.asr.items()},
            kernel_drops=self.kernel_drops - earlier.kernel_drops,
        )  # fmt: skip


@dataclass
class Sample:
    mono: float
    backlog: int
    backlog_audio_s: float
    live_lines: int
    rss_bytes: int
    on_disk: int = 0
    """Queued utterances whose audio waits on disk."""
    receive_queue_bytes: int = 0
    """Unread bytes in the daemon's UDP sockets, 90th percentile (SocketDrops)."""


@dataclass
class _State:
    external: dict[str, str] = field(default_factory=dict)  # box call id -> SIP Call-ID
    heard: list[Heard] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


class SocketDrops:
    """Datagrams the kernel dropped on one process's UDP sockets, summed as they close;
    and how much waits unread in them.

    A receive path that falls behind loses nothing at first: packets wait in the sockets'
    receive buffers (megabytes each), and the audio arrives late. ``queue_p90_bytes`` (the
    90th percentile over the process's UDP sockets at the last update; the kernel counts
    each datagram with its bookkeeping, about 800 bytes for a 172-byte RTP packet) shows
    it: near zero while the reader keeps up, growing while it does not.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.total = 0
        self.queue_p90_bytes = 0
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def _inodes(self) -> set[str]:
        out: set[str] = set()
        fd_dir = Path(f"/proc/{self.pid}/fd")
        try:
            names = os.listdir(fd_dir)
        except OSError:
            return out
        for name in names:
            try:
                target = os.readlink(fd_dir / name)
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(target[8:-1])
        return out

    def update(self) -> int:
        inodes = self._inodes()
        drops: dict[str, int] = {}
        queues: list[int] = []
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            try:
                rows = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                cols = row.split()
                if len(cols) >= 13 and cols[9] in inodes:
                    drops[cols[9]] = int(cols[12])
                    queues.append(int(cols[4].partition(":")[2], 16))  # tx_queue:rx_queue
        queues.sort()
        with self._lock:
            # nearest rank: of two sockets, the fuller one
            self.queue_p90_bytes = queues[math.ceil(0.9 * len(queues)) - 1] if queues else 0
            for inode, count in drops.items():
                self.total += count - self._seen.get(inode, 0)
                self._seen[inode] = count
            return self.total


class DaemonProbe:
    """See the module notes. ``start()``, then snapshots and samples; ``close()``."""

    def __init__(self, address: str, pid: int) -> None:
        self.pid = pid
        self.drops = SocketDrops(pid)
        self.channel = grpc.insecure_channel(address)
        self.stub = pb_grpc.CallQaStub(self.channel)
        self._state = _State()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stream: Any = None
        self._threads: list[threading.Thread] = []

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> DaemonProbe:
        self._stream = self.stub.WatchCalls(pb.WatchCallsRequest())
        for target, name in ((self._watch, "probe-watch"), (self._sample, "probe-sample")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        self._stop.set()
        if self._stream is not None:
            self._stream.cancel()
        for thread in self._threads:
            thread.join(5)
        self.channel.close()

    # ---------------------------------------------------------------- reading

    def capacity(self) -> pb.Capacity:
        return self.stub.GetCapacity(pb.GetCapacityRequest(), timeout=10)

    def snapshot(self) -> Snapshot:
        cap = self.capacity()
        stages = {s.stage: s.cpu_s for s in cap.stage_cpu}
        packets = {f.name: int(getattr(cap.packets, f.name))
                   for f in pb.PacketCounts.DESCRIPTOR.fields}  # fmt: skip
        asr = {"utterances": float(cap.asr_utterances), "audio_s": cap.asr_audio_s,
               "busy_s": cap.asr_busy_s, "batches": float(cap.asr_batches),
               "partials_skipped": float(cap.asr_partials_skipped),
               "transcripts": float(cap.transcripts),
               "early_used": float(cap.asr_early_decodes_used)}  # fmt: skip
        return Snapshot(
            mono=time.monotonic(), process_cpu_s=process_cpu_s(self.pid),
            stage_cpu_s={s: stages.get(s, 0.0) for s in STAGES}, packets=packets, asr=asr,
            kernel_drops=self.drops.update(),
        )  # fmt: skip

    def heard(self, call_ids: set[str] | None = None) -> list[tuple[str, Heard]]:
        """Transcripts heard so far, with the SIP Call-ID of their call (when known)."""
        with self._lock:
            out = [(self._state.external.get(h.call_id, ""), h) for h in self._state.heard]
        if call_ids is not None:
            out = [(ext, h) for ext, h in out if ext in call_ids]
        return out

    def box_call_ids(self, sip_call_ids: set[str]) -> list[str]:
        """The box's ids of the calls with these SIP Call-IDs whose start the probe heard."""
        with self._lock:
            return sorted(box for box, sip in self._state.external.items() if sip in sip_call_ids)

    def calls_started(self) -> int:
        """Calls whose start the probe has heard."""
        with self._lock:
            return len(self._state.external)

    def samples_since(self, mono: float) -> list[Sample]:
        with self._lock:
            return [s for s in self._state.samples if s.mono >= mono]

    def wait_idle(self, timeout_s: float) -> bool:
        """Until no call is live and the ASR queue is empty; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            cap = self.capacity()
            if cap.live_lines == 0 and cap.asr_backlog_utterances == 0:
                return True
            time.sleep(0.5)
        return False

    # ---------------------------------------------------------------- threads

    def _watch(self) -> None:
        try:
            for event in self._stream:
                kind = event.WhichOneof("event")
                if kind == "started":
                    with self._lock:
                        self._state.external[event.call_id] = event.started.external_call_id
                elif kind == "transcript" and not event.transcript.utterance.partial:
                    u = event.transcript.utterance
                    heard = Heard(event.call_id, int(u.speaker), u.end_s, time.time(),
                                  event.transcript.latency_ms, u.text,
                                  event.transcript.leg_start_s)  # fmt: skip
                    with self._lock:
                        self._state.heard.append(heard)
        except grpc.RpcError:
            return

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            try:
                cap = self.capacity()
            except grpc.RpcError:
                continue
            rss, _ = memory_bytes(self.pid)
            self.drops.update()
            sample = Sample(time.monotonic(), cap.asr_backlog_utterances,
                            cap.asr_backlog_audio_s, cap.live_lines, rss,
                            cap.queued_on_disk_utterances,
                            self.drops.queue_p90_bytes)  # fmt: skip
            with self._lock:
                self._state.samples.append(sample)
