"""Event hub observers: every event, on the publishing thread, before any subscriber."""

from __future__ import annotations

import threading

from core.live.events import CallEvent, EventHub


def test_observers_see_each_event_first_and_a_failing_one_stops_nothing() -> None:
    hub = EventHub()
    sub = hub.subscribe(lambda e: True)
    seen: list[tuple[str, bool, str]] = []

    def count(event: CallEvent) -> None:
        queued = not sub.queue.empty()  # still empty: the subscriber has not got it yet
        seen.append((event.kind, queued, threading.current_thread().name))

    def broken(event: CallEvent) -> None:
        raise RuntimeError("an observer bug")

    hub.observe(broken)
    hub.observe(count)
    hub.publish(CallEvent("c1", "started", {"rubric_id": "default-zh"}))
    assert seen == [("started", False, threading.current_thread().name)]
    assert sub.get(1).kind == "started"  # type: ignore[union-attr]

    hub.unobserve(count)
    hub.publish(CallEvent("c1", "ended", {}))
    assert len(seen) == 1 and sub.get(1).kind == "ended"  # type: ignore[union-attr]
