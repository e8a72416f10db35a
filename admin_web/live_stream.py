"""Live lines as server-sent events: the daemon's gRPC streams, relayed to the browser.

One SSE response (``text/event-stream``) per open live page. It holds, while it lasts:

* one waitress worker thread (the response is a generator the worker writes out);
* one gRPC ``WatchCalls`` stream (filtered by team for a supervisor), and one ``WatchCall``
  stream while the page shows one line's transcript. A reader thread per gRPC stream puts
  what arrives on a queue, so that the generator can wake up on its own every
  ``LIVE_REFRESH_S`` to send a fresh ``ListLiveCalls`` snapshot. That periodic write is also
  how a closed browser tab is noticed: waitress raises at the next write, the generator is
  closed, and its ``finally`` cancels the gRPC streams (the reader threads end with them).

Bounds: waitress serves the site with 8 threads (`admin_web.cli`); at most
``LIVE_MAX_STREAMS`` (default 4) of them hold live streams at once, so that pages keep the
other threads. A page that finds no free slot gets a ``busy`` event and retries later. Each
stream ends after ``LIVE_STREAM_MAX_S`` (default 300 s) and the browser reconnects, so that
slots turn over. While the daemon is down a stream sends a ``down`` event and ends; the
browser's EventSource reconnects after the ``retry`` delay, and the first ``lines`` event
after that says the daemon is back.

Besides the per-page streams, the site keeps one ``WatchAlerts`` stream of its own
(`RecentAlerts`, one thread per site process): the last alerts raised on the box, so that a
page opened in the middle of a call shows the alerts raised before it was opened.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from proto import callqa_pb2 as pb
from proto import callqa_pb2_grpc as pb_grpc

DEFAULT_MAX_STREAMS = 4
DEFAULT_STREAM_MAX_S = 300.0
DEFAULT_REFRESH_S = 5.0
DEFAULT_RETRY_MS = 3000
BUSY_RETRY_MS = 10000
LIST_TIMEOUT_S = 3.0
QUEUE_MAX = 2000
RECENT_ALERTS = 200

SEVERITIES = {pb.SEVERITY_A: "A", pb.SEVERITY_B: "B", pb.SEVERITY_C: "C"}
SPEAKERS = {pb.SPEAKER_AGENT: "agent", pb.SPEAKER_CUSTOMER: "customer", pb.SPEAKER_ANY: "any"}
SOURCES = {pb.CALL_SOURCE_SIPREC: "siprec", pb.CALL_SOURCE_SIP: "sip",
           pb.CALL_SOURCE_GRPC: "grpc", pb.CALL_SOURCE_MIRROR: "mirror",
           pb.CALL_SOURCE_FILE: "file", pb.CALL_SOURCE_PCAP: "pcap"}


# ------------------------------------------------------------------ messages as JSON


def _when(ts: Any) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime(tzinfo=dt.UTC).isoformat(timespec="seconds")


def line_json(call: pb.LiveCall) -> dict[str, Any]:
    return {
        "call_id": call.call_id, "source": SOURCES.get(call.source, ""),
        "agent_id": call.agent_id, "team_id": call.team_id,
        "started_at": _when(call.started_at), "duration_s": round(call.duration_s, 1),
        "rubric_id": call.rubric_id, "utterances": call.utterance_count,
        "findings": call.finding_count, "alerts": call.alert_count,
        "backlog": call.asr_backlog_utterances,
    }  # fmt: skip


def alert_json(alert: pb.Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id, "call_id": alert.call_id, "agent_id": alert.agent_id,
        "team_id": alert.team_id, "item_id": alert.item_id, "item_name": alert.item_name,
        "kind": alert.kind, "severity": SEVERITIES.get(alert.severity, ""),
        "speaker": SPEAKERS.get(alert.speaker, ""), "start_s": round(alert.start_s, 2),
        "end_s": round(alert.end_s, 2), "evidence": alert.evidence,
        "latency_ms": round(alert.latency_ms), "late": alert.late,
        "raised_at": _when(alert.raised_at),
    }  # fmt: skip


def event_json(event: pb.CallEvent) -> tuple[str, dict[str, Any]] | None:
    """A CallEvent as (SSE event name, data); None for what the page does not show."""
    kind = event.WhichOneof("event")
    call_id = event.call_id
    if kind == "started":
        s = event.started
        return "started", {"call_id": call_id, "rubric_id": s.rubric_id,
                           "started_at": _when(s.started_at), "language": s.language}
    if kind == "transcript":
        u = event.transcript.utterance
        return "transcript", {"call_id": call_id, "seq": u.seq,
                              "speaker": SPEAKERS.get(u.speaker, ""), "start_s": u.start_s,
                              "end_s": u.end_s, "text": u.text, "partial": u.partial}
    if kind == "finding":
        f = event.finding.finding
        return "finding", {"call_id": call_id, "item_id": f.item_id, "item_name": f.item_name,
                           "severity": SEVERITIES.get(f.severity, ""),
                           "speaker": SPEAKERS.get(f.speaker, ""), "start_s": f.start_s,
                           "end_s": f.end_s, "evidence": f.evidence, "alert": f.alert}
    if kind == "alert":
        return "alert", alert_json(event.alert)
    if kind == "scored":
        sc = event.scored
        return "scored", {"call_id": call_id, "score": round(sc.score, 1),
                          "passed": sc.passed, "fatal": sc.fatal}
    if kind == "ended":
        e = event.ended
        return "ended", {"call_id": call_id, "duration_s": round(e.duration_s, 1)}
    return None


def sse(event: str, data: Any) -> str:
    """One server-sent event."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {text}\n\n"


# ------------------------------------------------------------------ stream slots


class StreamSlots:
    """At most `limit` live streams at once (each holds a waitress thread)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._held = 0

    def take(self) -> bool:
        with self._lock:
            if self._held >= self.limit:
                return False
            self._held += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self._held = max(0, self._held - 1)

    @property
    def held(self) -> int:
        with self._lock:
            return self._held


# ------------------------------------------------------------------ the relay


_END = object()


class _Reader(threading.Thread):
    """Reads one gRPC server stream onto the shared queue."""

    def __init__(self, name: str, call: Any, out: queue.Queue[tuple[str, Any]]) -> None:
        super().__init__(name=f"live-{name}", daemon=True)
        self.label = name
        self.call = call
        self.out = out
        self.overflow = False

    def run(self) -> None:
        try:
            for item in self.call:
                try:
                    self.out.put_nowait((self.label, item))
                except queue.Full:
                    self.overflow = True
                    self.call.cancel()
                    return
            self._put(_END)
        except grpc.RpcError as exc:
            self._put(exc)

    def _put(self, item: Any) -> None:
        try:
            self.out.put_nowait((self.label, item))
        except queue.Full:
            self.overflow = True

    def cancel(self) -> None:
        self.call.cancel()


@dataclass(frozen=True)
class StreamLimits:
    max_s: float = DEFAULT_STREAM_MAX_S
    refresh_s: float = DEFAULT_REFRESH_S
    retry_ms: int = DEFAULT_RETRY_MS


def _down(message: str, retry_ms: int) -> str:
    return f"retry: {retry_ms}\n\n" + sse("down", {"message": message})


def _rpc_text(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    return code.name if code is not None else str(exc)


def relay(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...], *,
          teams: list[str], call_id: str | None, limits: StreamLimits,
          recent: list[dict[str, Any]]) -> Iterator[str]:
    """The events of one live page; see the module notes."""
    stub = pb_grpc.CallQaStub(channel)
    readers: list[_Reader] = []
    try:
        yield f"retry: {limits.retry_ms}\n\n"
        try:
            listed = stub.ListLiveCalls(pb.ListLiveCallsRequest(team_ids=teams),
                                        timeout=LIST_TIMEOUT_S, metadata=metadata)
        except grpc.RpcError as exc:
            yield _down(_rpc_text(exc), limits.retry_ms)
            return
        yield sse("lines", {"calls": [line_json(c) for c in listed.calls]})
        if recent:
            yield sse("recent", {"alerts": recent})
        events: queue.Queue[tuple[str, Any]] = queue.Queue(QUEUE_MAX)
        if call_id:
            readers.append(_Reader("call", stub.WatchCall(pb.CallRef(call_id=call_id),
                                                          metadata=metadata), events))
        readers.append(_Reader("calls", stub.WatchCalls(
            pb.WatchCallsRequest(team_ids=teams), metadata=metadata), events))
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + limits.max_s
        next_refresh = time.monotonic() + limits.refresh_s
        while True:
            now = time.monotonic()
            if now >= deadline:
                yield sse("bye", {})
                return
            if any(r.overflow for r in readers):
                return  # the browser reconnects and starts from a fresh snapshot
            try:
                label, item = events.get(timeout=max(0.05, min(next_refresh, deadline) - now))
            except queue.Empty:
                try:
                    listed = stub.ListLiveCalls(pb.ListLiveCallsRequest(team_ids=teams),
                                                timeout=LIST_TIMEOUT_S, metadata=metadata)
                except grpc.RpcError as exc:
                    yield _down(_rpc_text(exc), limits.retry_ms)
                    return
                yield sse("lines", {"calls": [line_json(c) for c in listed.calls]})
                next_refresh = time.monotonic() + limits.refresh_s
                continue
            if isinstance(item, grpc.RpcError):
                if label == "call":
                    yield sse("call-error", {"call_id": call_id, "code": _rpc_text(item)})
                    continue
                yield _down(_rpc_text(item), limits.retry_ms)
                return
            if item is _END:
                if label == "call":
                    continue  # the watched call ended; the rest goes on
                yield _down("the daemon closed the stream", limits.retry_ms)
                return
            shown = event_json(item)
            if shown is None:
                continue
            name, data = shown
            if label == "call":
                data["watched"] = True
            elif name == "transcript":
                continue  # the page shows one call's transcript, from its own stream
            yield sse(name, data)
    finally:
        for reader in readers:
            reader.cancel()


def closing(stream: Iterator[str], on_close: Any) -> Iterable[str]:
    """Runs `on_close` once when the stream ends or is closed before it starts."""
    done = threading.Event()

    def finish() -> None:
        if not done.is_set():
            done.set()
            on_close()

    class _Body:
        def __iter__(self) -> Iterator[str]:
            try:
                yield from stream
            finally:
                finish()

        def close(self) -> None:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            finish()

    return _Body()


# ------------------------------------------------------------------ recent alerts


class RecentAlerts:
    """The site's own WatchAlerts stream: the last alerts raised on the box, kept in memory.

    Started on the first live page; reconnects every few seconds while the daemon is down.
    """

    def __init__(self, channel: grpc.Channel, metadata: tuple[tuple[str, str], ...],
                 keep: int = RECENT_ALERTS, retry_s: float = 3.0) -> None:
        self._channel = channel
        self._metadata = metadata
        self._alerts: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._retry_s = retry_s
        self._thread: threading.Thread | None = None
        self._call: Any = None

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="live-recent-alerts",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        stub = pb_grpc.CallQaStub(self._channel)
        while not self._stop.is_set():
            try:
                self._call = stub.WatchAlerts(pb.AlertFilter(), metadata=self._metadata)
                for alert in self._call:
                    with self._lock:
                        self._alerts.append(alert_json(alert))
            except grpc.RpcError:
                pass
            self._stop.wait(self._retry_s)

    def stop(self) -> None:
        self._stop.set()
        if self._call is not None:
            self._call.cancel()

    def latest(self, teams: list[str] | None, call_ids: set[str] | None = None,
               limit: int = 50) -> list[dict[str, Any]]:
        """Newest first, only of these teams (None: any) and calls (None: any)."""
        with self._lock:
            items = list(self._alerts)
        out = [a for a in reversed(items)
               if (not teams or a["team_id"] in teams)
               and (call_ids is None or a["call_id"] in call_ids)]
        return out[:limit]
