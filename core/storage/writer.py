"""One thread that does all the writing to the database, in submission order.

SQLite allows one writer at a time; the daemon funnels every write through a
`StorageWriter` so that its threads never contend for the write lock. The writer thread
opens its own connection; submitted functions receive it as their first argument::

    writer = StorageWriter(db_path)
    future = writer.submit(repository.save_scored_call, record, result)
    future.result()  # raises what save_scored_call raised
    writer.close()   # runs what is queued, then stops
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from core.stage_cpu import name_thread
from core.storage.db import open_db

_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class StorageWriter:
    """A single writer thread owning its own connection to the database at `db_path`."""

    def __init__(self, db_path: Path | str, *, name: str = "callqa-storage-writer") -> None:
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(db_path,), name=name,
                                        daemon=True)
        self._thread.start()
        # Fail here, in the caller, when the database cannot be opened.
        self._ready.result()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue `fn(db, *args)`; the future gets its return value or its exception."""
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the storage writer is closed")
            self._queue.put((future, fn, args))
        return future

    def close(self, timeout: float | None = None) -> None:
        """Run everything already submitted, then stop the thread and close the connection."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(None)
        self._thread.join(timeout)

    def __enter__(self) -> StorageWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, db_path: Path | str) -> None:
        name_thread("storage")
        try:
            db: Database = open_db(db_path)
        except BaseException as exc:
            self._closed = True
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    break
                future, fn, args = job
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(fn(db, *args))
                except BaseException as exc:
                    # Leave no transaction open for the next job.
                    if db.conn.in_transaction:
                        db.rollback()
                    future.set_exception(exc)
        finally:
            db.close()
