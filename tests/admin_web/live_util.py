"""A real `callqa serve` for the live and capacity pages' tests, with the site over the same
data folder, and a reader of server-sent events from Flask's test client."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from core.daemon.child import ServeProcess
from tests.admin_web.conftest import store_call

AGENT_PATTERNS = "1000-1999"
# Agents known to the box before the daemon starts (the SIPREC simulator and SIPp scenario
# make agent 1001, 1002...): their team comes from the agents table.
AGENT_TEAMS = {"1001": "T1", "1002": "T2", "E01": "T1", "E02": "T2"}


def seed_agents(data_dir: Path) -> None:
    """One stored call per agent, so that the box knows each agent's team."""
    for n, (agent, team) in enumerate(sorted(AGENT_TEAMS.items())):
        store_call(data_dir, agent=agent, team=team, started=f"2025-09-0{n + 1}T09:00:00+08:00",
                   findings=[])


def start_daemon(data_dir: Path, model_dir: Path, **settings: str) -> ServeProcess:
    values = {"model": str(model_dir), "agent_patterns": AGENT_PATTERNS,
              "shutdown_grace_s": "20", "log_level": "info", **settings}
    return ServeProcess(data_dir, values).start(180)


@dataclass
class Sse:
    name: str
    data: Any


@dataclass
class SseReader:
    """Reads a streaming response on a thread; `next(name)` waits for an event of that name."""

    response: Any
    events: list[Sse] = field(default_factory=list)
    retry_ms: int | None = None
    done: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    _q: queue.Queue[Sse | None] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        buffer = ""
        try:
            for chunk in self.response.response:
                if self.stop.is_set():
                    break
                buffer += chunk.decode("utf-8") if isinstance(chunk, bytes) else chunk
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    self._block(block)
        finally:
            # Closed on the thread that iterates it, as a WSGI server does when the
            # browser goes (the next write after `close()` ends the loop above).
            self.response.close()
            self.done.set()
            self._q.put(None)

    def _block(self, block: str) -> None:
        name, data = "message", ""
        for line in block.splitlines():
            key, _, value = line.partition(": ")
            if key == "event":
                name = value
            elif key == "data":
                data += value
            elif key == "retry":
                self.retry_ms = int(value)
        if data:
            event = Sse(name, json.loads(data))
            self.events.append(event)
            self._q.put(event)

    def next(self, *names: str, timeout_s: float = 60.0) -> Sse:
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {names} event within {timeout_s} s: "
                                     f"{[e.name for e in self.events]}")
            try:
                event = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if event is None:
                raise AssertionError(f"the stream ended before {names}: "
                                     f"{[e.name for e in self.events]}")
            if not names or event.name in names:
                return event

    def close(self, timeout_s: float = 30.0) -> None:
        """Go away like a closed browser tab: the stream is closed at its next event."""
        self.stop.set()
        assert self.done.wait(timeout_s), "the stream did not end"


def open_events(client: FlaskClient, path: str = "/live/events") -> SseReader:
    response = client.get(path, buffered=False)
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "text/event-stream"
    return SseReader(response)


def iter_threads(prefix: str) -> Iterator[threading.Thread]:
    return (t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive())
