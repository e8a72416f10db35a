"""What the daemon tells the world while calls go on: call events, alerts, and the hub.

Every change of a live call is a :class:`CallEvent` (started, transcript, finding, alert,
scored, ended). The :class:`EventHub` hands each event to the subscribers whose filter
takes it: the gRPC streams (`WatchAlerts`, `WatchCall`, `StreamAudio`) and the admin live
page. A subscriber that stops reading does not hold the daemon back: its queue is bounded,
and what it misses is counted and logged.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from core.calls import Finding, Utterance

logger = logging.getLogger(__name__)

EventKind = Literal["started", "transcript", "finding", "alert", "scored", "ended"]
SUBSCRIBER_QUEUE = 10_000
SEVERITY_RANK = {"C": 0, "B": 1, "A": 2}
"""Rubric severities, from minor (C) to serious (A)."""


@dataclass(frozen=True)
class LiveAlert:
    """A finding of an item with ``alert: true``, published while the call goes on."""

    alert_id: str
    call_id: str
    agent_id: str | None
    team_id: str | None
    finding: Finding
    utterance_end_at: float
    """Wall time (epoch s) when the speech or timeline event behind the finding ended."""
    raised_at: float
    """Wall time (epoch s) the alert was published."""
    late: bool
    """Published later than the alert deadline after ``utterance_end_at`` (a backlog)."""
    live: bool = True
    """False for alerts found when a call was re-scored after a restart."""

    @property
    def latency_ms(self) -> float:
        return max(0.0, (self.raised_at - self.utterance_end_at) * 1000.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "call_id": self.call_id,
            "agent_id": self.agent_id,
            "team_id": self.team_id,
            "finding": self.finding.to_json(),
            "utterance_end_at": self.utterance_end_at,
            "raised_at": self.raised_at,
            "latency_ms": round(self.latency_ms, 1),
            "late": self.late,
            "live": self.live,
        }


@dataclass(frozen=True)
class TranscriptLine:
    utterance: Utterance
    partial: bool
    seq: int = 0
    """Number of the utterance on its leg; a part and its finished utterance share it."""
    latency_ms: float | None = None
    """From the end of the speech (wall time) to this transcript."""
    leg_start_s: float = 0.0
    """Call time at which the speaker's leg's first audio sits (the ingest places it where it
    arrived after the call started)."""


@dataclass(frozen=True)
class CallEvent:
    call_id: str
    kind: EventKind
    data: Any
    emitted_at: float = field(default_factory=time.time)
    agent_id: str | None = None
    team_id: str | None = None
    internal: bool = False
    """An event of a call that is not kept (a capacity benchmark's): watchers skip it."""


EventFilter = Callable[[CallEvent], bool]


class Subscription:
    """A subscriber's queue of events; iterate with :meth:`get`, then :meth:`close`."""

    def __init__(self, hub: EventHub, accept: EventFilter, maxsize: int) -> None:
        self._hub = hub
        self.accept = accept
        self.queue: queue.Queue[CallEvent | None] = queue.Queue(maxsize)
        self.missed = 0
        self.closed = False

    def offer(self, event: CallEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.missed += 1
            if self.missed in (1, 100, 10_000):
                logger.warning("a slow subscriber has missed %d events", self.missed)

    def get(self, timeout: float | None = None) -> CallEvent | None:
        """The next event; None on timeout or once closed."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._hub.unsubscribe(self)
            with contextlib.suppress(queue.Full):
                self.queue.put_nowait(None)


EventObserver = Callable[[CallEvent], None]


class EventHub:
    """Fan-out of call events to subscribers (thread-safe).

    Observers (:meth:`observe`) see every event on the publishing thread, before any
    subscriber does: for counting what happens (the metrics), so that a count never lags the
    events that follow. They must be quick and must not block.
    """

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._observers: list[EventObserver] = []
        self._lock = threading.Lock()
        self.published = 0

    def observe(self, observer: EventObserver) -> None:
        with self._lock:
            self._observers.append(observer)

    def unobserve(self, observer: EventObserver) -> None:
        with self._lock:
            if observer in self._observers:
                self._observers.remove(observer)

    def subscribe(self, accept: EventFilter, maxsize: int = SUBSCRIBER_QUEUE) -> Subscription:
        sub = Subscription(self, accept, maxsize)
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def publish(self, event: CallEvent) -> None:
        with self._lock:
            subs = list(self._subs)
            observers = list(self._observers)
            self.published += 1
        for observer in observers:
            try:
                observer(event)
            except Exception:
                logger.exception("an event observer failed")
        for sub in subs:
            try:
                wanted = sub.accept(event)
            except Exception:
                logger.exception("an event filter failed")
                continue
            if wanted:
                sub.offer(event)

    def close_all(self) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.close()


def alert_filter(
    agent_ids: set[str] | None = None,
    team_ids: set[str] | None = None,
    min_severity: str | None = None,
    call_id: str | None = None,
) -> EventFilter:
    """An event filter taking the alerts that match every given condition."""
    floor = SEVERITY_RANK.get(min_severity or "", 0)

    def accept(event: CallEvent) -> bool:
        if event.kind != "alert" or event.internal:
            return False
        alert: LiveAlert = event.data
        if call_id and alert.call_id != call_id:
            return False
        if agent_ids and alert.agent_id not in agent_ids:
            return False
        if team_ids and alert.team_id not in team_ids:
            return False
        return SEVERITY_RANK.get(alert.finding.severity, 0) >= floor

    return accept
