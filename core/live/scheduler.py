"""One ASR scheduler for every live line: one model, batches across lines, oldest first.

Utterances from all calls wait in one queue ordered by (class, time the speech ended):
finished utterances of live calls first, then utterances decoded early (in a pause that may
end them), then the parts of utterances still going on, then backfill work (calls re-scored
after a restart). A single thread takes up to
``batch_size`` of the oldest and transcribes them in one call to the model, so latency is
bounded by one batch's decoding time plus the queue ahead, and nothing waits to fill a
batch. Early decodes and parts of an utterance are a courtesy: when the queue is long, when
one has waited past ``partial_max_wait_s``, or when the workers were busy more than
``part_load_limit`` of the last ``LOAD_WINDOW_S`` seconds, it is skipped, since the finished
utterance will carry the same words. So they ride on spare capacity: a loaded box decodes
each second of speech once, and a box with room shows long turns as they go and has the
transcript of a turn ready as soon as the turn is known to have ended. An early decode the
finished utterance turns out to need is moved up to its class (:meth:`AsrScheduler.promote`).

With ``workers`` above 1, that many threads take batches from the one queue and call the
model at the same time (a CTranslate2 model built with as many ``inter_threads`` decodes
them in parallel, each on its share of the cores): on a small CPU, two single-threaded
decodes of small batches get more done than one two-threaded decode. Results of one call
can then finish out of order; the engine orders utterances by time and ignores a part of an
utterance whose final transcript came first.

Memory stays bounded when the box is overloaded: past ``memory_s`` seconds of queued audio,
new utterances are written to ``spool_dir`` and read back when their turn comes, so the
queue grows on disk, not in RAM. Nothing is dropped.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.asr.types import (
    DEFAULT_BATCH,
    AsrRequest,
    AsrResult,
    CandidateFinder,
    Transcriber,
)
from core.stage_cpu import name_thread

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16000
PRIORITY_FINAL = 0
PRIORITY_EARLY = 1
"""An utterance decoded before its end is certain (see `core.live.leg`): a courtesy, as parts."""
PRIORITY_PARTIAL = 2
PRIORITY_BACKFILL = 3
COURTESY = (PRIORITY_EARLY, PRIORITY_PARTIAL)
"""Classes decoded only on spare capacity: skipped when the queue is deep or the load high."""
LOAD_WINDOW_S = 10.0
"""The span over which the workers' load is measured for ``part_load_limit``."""
Rank = tuple[float, ...]
"""How a job ranks within its class, before the time its speech ended (lowest first)."""


@dataclass
class AsrJob:
    """One utterance waiting for text; ``done(job, result)`` runs on the scheduler thread."""

    key: str
    audio: np.ndarray | None
    language: str | None
    ready_at: float
    """time.monotonic() when the audio was complete (the speech ended)."""
    done: Callable[[AsrJob, AsrResult | None, str | None], None]
    priority: int = PRIORITY_FINAL
    context: Any = None
    audio_s: float = 0.0
    spooled: Path | None = None
    enqueued_at: float = field(default_factory=time.monotonic)
    candidates: CandidateFinder | None = None
    """Near-missed rubric phrases to check against the audio (AsrRequest.candidates)."""


_Entry = tuple[int, Rank, float, int, AsrJob]
"""A queue entry: class, rank, time the speech ended, order of submission, the job."""


@dataclass
class SchedulerStats:
    batches: int = 0
    utterances: int = 0
    partials_skipped: int = 0
    early_skipped: int = 0
    audio_s: float = 0.0
    busy_s: float = 0.0
    spooled: int = 0
    failures: int = 0
    queue_wait_s: list[float] = field(default_factory=list)
    batch_sizes: Counter[int] = field(default_factory=Counter)
    """How many batches of each size were transcribed."""


class AsrScheduler:
    """Owns the model's one instance; see the module notes."""

    def __init__(
        self,
        engine_factory: Callable[[], Transcriber],
        *,
        batch_size: int = 8,
        memory_s: float = 600.0,
        spool_dir: Path | None = None,
        skip_partials_above: int | None = None,
        partial_max_wait_s: float = 1.0,
        workers: int = 0,
        part_load_limit: float = 1.0,
    ) -> None:
        if batch_size < 0:
            raise ValueError("batch_size must be >= 0 (0: the model's own batch size)")
        if workers < 0:
            raise ValueError("workers must be >= 0 (0: as many as the model decodes at once)")
        self.workers = workers
        self.batch_size = batch_size
        self.memory_s = memory_s
        self.spool_dir = spool_dir
        self._skip_partials_above = skip_partials_above
        self.skip_partials_above = (
            (batch_size or DEFAULT_BATCH) if skip_partials_above is None else skip_partials_above
        )
        self.partial_max_wait_s = partial_max_wait_s
        if not 0.0 <= part_load_limit <= 1.0:
            raise ValueError("part_load_limit must lie between 0 and 1 (1: parts at any load)")
        self.part_load_limit = part_load_limit
        self._busy_log: deque[tuple[float, float]] = deque()
        """(time a batch ended, seconds it took), for the last LOAD_WINDOW_S."""
        self._busy_sum = 0.0
        """The seconds of the batches in ``_busy_log``."""
        self.stats = SchedulerStats()
        self._factory = engine_factory
        self._engine: Transcriber | None = None
        self._heap: list[_Entry] = []
        self._rank: Callable[[AsrJob], Rank] | None = None
        self._count = itertools.count()
        self._cond = threading.Condition()
        self._memory_audio_s = 0.0
        self._queued_audio_s = 0.0
        self._in_flight = 0
        self._busy_workers = 0
        self._courtesy_batches = 0
        """Workers decoding a batch, and those of them on a batch of courtesy work."""
        self._stopping = False
        self._abandon = False
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._threads = [self._worker(0)]  # it loads the model, then starts the others
        self._thread = self._threads[0]
        if spool_dir is not None:
            spool_dir.mkdir(parents=True, exist_ok=True)
            for stale in spool_dir.glob("*.f32"):  # a previous run's queue: its calls are
                _discard_spooled(stale)  # re-scored from their recordings

    # ---------------------------------------------------------------- control

    def start(self, wait: bool = True) -> None:
        """Start the threads; with ``wait``, return once the model is loaded (or raise)."""
        self._thread.start()  # the first worker loads the model; the others wait for it
        if wait:
            self._ready.wait()
            if self._error is not None:
                raise RuntimeError(f"the ASR model could not be loaded: {self._error}")

    @property
    def engine(self) -> Transcriber | None:
        return self._engine

    def stop(self, timeout: float | None = None, *, drain: bool = True) -> bool:
        """Stop the workers: with ``drain``, once what is queued is done; without it, once
        the batches being decoded are done (what is still queued stays undone). Waits up to
        ``timeout`` for them; returns whether they all stopped.

        A worker must not be left inside the model when the process exits: the model's
        native threads then end the process with an abort instead of an exit.
        """
        with self._cond:
            self._stopping = True
            self._abandon = self._abandon or not drain
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            threads = list(self._threads)
        for thread in threads:
            if thread.is_alive():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        stopped = not any(t.is_alive() for t in threads)
        if not stopped:
            logger.error("the ASR workers did not stop within %s s", timeout)
        return stopped

    def rank_by(self, rank: Callable[[AsrJob], Rank] | None) -> None:
        """Order the jobs of each class by ``rank(job)`` before the time their speech ended
        (None: by that time alone), the queued ones included. A stop ranks the work of the
        calls nearest to being done first, so that as many as possible are finished."""
        with self._cond:
            self._rank = rank
            self._heap = [self._entry(job, count) for _, _, _, count, job in self._heap]
            heapq.heapify(self._heap)

    def queued_jobs(self) -> list[AsrJob]:
        """The jobs waiting (not those being decoded), in no particular order."""
        with self._cond:
            return [item[-1] for item in self._heap]

    def _entry(self, job: AsrJob, count: int) -> _Entry:
        rank: Rank = () if self._rank is None else self._rank(job)
        return (job.priority, rank, job.ready_at, count, job)

    def submit(self, job: AsrJob) -> None:
        if job.audio is not None:
            job.audio_s = len(job.audio) / SAMPLE_RATE_HZ
        with self._cond:
            if self._stopping and job.priority != PRIORITY_BACKFILL and not self._thread.is_alive():
                raise RuntimeError("the ASR scheduler has stopped")
            if (
                self.spool_dir is not None
                and job.audio is not None
                and self._memory_audio_s + job.audio_s > self.memory_s
            ):
                self._spool(job)
            elif job.audio is not None:
                self._memory_audio_s += job.audio_s
            self._queued_audio_s += job.audio_s
            heapq.heappush(self._heap, self._entry(job, next(self._count)))
            self._cond.notify()

    def promote(self, job: AsrJob, priority: int) -> bool:
        """Move a queued job to class ``priority`` (where it is no longer skipped, if it was
        a courtesy). False when it is not queued: taken by a worker, or answered."""
        with self._cond:
            at = next((k for k, item in enumerate(self._heap) if item[-1] is job), None)
            if at is None:
                return False
            order = self._heap[at][3]
            self._heap[at] = self._heap[-1]
            self._heap.pop()
            heapq.heapify(self._heap)
            job.priority = priority
            heapq.heappush(self._heap, self._entry(job, order))
            self._cond.notify()
            return True

    def cancel(self, which: Callable[[AsrJob], bool]) -> int:
        """Take the queued jobs ``which`` picks out of the queue (their audio, in memory or
        on disk, with them); each one's ``done`` gets no result and the error "cancelled".
        Returns how many were taken."""
        with self._cond:
            keep: list[_Entry] = []
            gone: list[_Entry] = []
            for item in self._heap:
                (gone if which(item[-1]) else keep).append(item)
            if not gone:
                return 0
            heapq.heapify(keep)
            self._heap = keep
            for *_, job in gone:
                self._queued_audio_s -= job.audio_s
                self._release(job)
            self._cond.notify_all()
        for *_, job in gone:
            _answer(job, None, "cancelled")
        return len(gone)

    # ---------------------------------------------------------------- state

    @property
    def backlog(self) -> int:
        """Utterances waiting or being transcribed."""
        with self._cond:
            return len(self._heap) + self._in_flight

    @property
    def backlog_audio_s(self) -> float:
        with self._cond:
            return self._queued_audio_s

    @property
    def queued_audio_s_by_place(self) -> tuple[float, float]:
        """Seconds of audio waiting (not yet taken by a worker): (in memory, spooled to disk)."""
        with self._cond:
            memory = self._memory_audio_s
            return memory, max(0.0, self._queued_audio_s - memory)

    @property
    def spooled_now(self) -> int:
        with self._cond:
            return sum(1 for *_, job in self._heap if job.spooled is not None)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or in flight; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._heap or self._in_flight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left if left is not None else 0.5)
        return True

    # ---------------------------------------------------------------- spooling

    def _spool(self, job: AsrJob) -> None:
        assert self.spool_dir is not None and job.audio is not None
        path = self.spool_dir / f"{os.getpid()}-{next(self._count)}.f32"
        tmp = path.with_suffix(".tmp")
        np.ascontiguousarray(job.audio, dtype=np.float32).tofile(tmp)
        tmp.replace(path)
        job.spooled = path
        job.audio = None
        self.stats.spooled += 1

    def _load(self, job: AsrJob) -> None:
        if job.spooled is not None:
            job.audio = np.fromfile(job.spooled, dtype=np.float32)
            _discard_spooled(job.spooled)
            job.spooled = None
        else:
            self._memory_audio_s -= job.audio_s

    # ---------------------------------------------------------------- thread

    def _take(self) -> list[AsrJob] | None:
        with self._cond:
            while not self._heap or self._abandon:
                if self._stopping:
                    return None
                self._cond.wait()
            batch: list[AsrJob] = []
            now = time.monotonic()
            deep = len(self._heap) > self.skip_partials_above or self._loaded(now)
            while self._heap and len(batch) < self.batch_size:
                job = self._heap[0][-1]
                courtesy = job.priority in COURTESY
                skip = courtesy and (deep or now - job.enqueued_at > self.partial_max_wait_s)
                if not skip and batch and courtesy != (batch[0].priority in COURTESY):
                    break  # a batch of finished utterances takes no courtesy work to slow it
                heapq.heappop(self._heap)
                self._queued_audio_s -= job.audio_s
                if skip:
                    self._skip(job)
                    continue
                try:
                    self._load(job)
                except OSError as exc:
                    self._lost(job, exc)
                    continue
                batch.append(job)
            self._in_flight += len(batch)
            if batch:
                self._busy_workers += 1
                self._courtesy_batches += batch[0].priority in COURTESY
            return batch

    def _lost(self, job: AsrJob, exc: OSError) -> None:
        """A spilled job whose audio cannot be read back (its file gone or unreadable): it
        is answered as failed, so that its call still ends, and the worker goes on."""
        logger.error("ASR job %s: its queued audio could not be read back: %s", job.key, exc)
        self.stats.failures += 1
        job.audio = job.spooled = None
        _answer(job, None, f"queued audio lost: {exc}")

    def load(self) -> float:
        """Share of the workers' time spent decoding over the last ``LOAD_WINDOW_S``."""
        with self._cond:
            return self._busy_share(time.monotonic())

    def _busy_share(self, now: float) -> float:
        """In constant time (it runs for every batch and every early decode offered): the
        batches of the window are summed as they come and go, and those at its start that
        began before it count only their part inside it."""
        log = self._busy_log
        since = now - LOAD_WINDOW_S
        while log and log[0][0] < since:
            self._busy_sum -= log.popleft()[1]
        if not log:
            self._busy_sum = 0.0  # no rounding left over
        busy = self._busy_sum
        for ended, took in log:  # the oldest first; a batch that began in the window ends it
            if ended - took >= since:
                break
            busy -= took - (ended - since)
        return max(0.0, busy) / (LOAD_WINDOW_S * max(1, self.workers))

    def has_room(self) -> bool:
        """Whether an early decode queued now is taken at once and leaves a worker for the
        finished utterances: nothing waits, a worker is idle, at most ``workers`` - 1 others
        do courtesy work (one, with one worker), and the load is under
        ``part_load_limit``."""
        with self._cond:
            return (
                not self._heap and self._busy_workers < max(1, self.workers)
                and self._courtesy_batches < max(1, self.workers - 1)
                and not self._loaded(time.monotonic())
            )  # fmt: skip

    def _loaded(self, now: float) -> bool:
        return self.part_load_limit < 1.0 and self._busy_share(now) > self.part_load_limit

    def _release(self, job: AsrJob) -> None:
        """Let go of a job's audio that will not be transcribed."""
        if job.spooled is not None:
            _discard_spooled(job.spooled)
            job.spooled = None
        elif job.audio is not None:
            self._memory_audio_s -= job.audio_s
        job.audio = None

    def _skip(self, job: AsrJob) -> None:
        if job.priority == PRIORITY_EARLY:
            self.stats.early_skipped += 1
        else:
            self.stats.partials_skipped += 1
        self._release(job)
        _answer(job, None, "skipped")

    def _worker(self, index: int) -> threading.Thread:
        return threading.Thread(
            target=self._run, args=(index,), name=f"callqa-asr-{index}", daemon=True
        )

    def _run(self, index: int) -> None:
        name_thread("asr")  # before the model loads: its worker threads inherit the name
        if index == 0:
            try:
                self._engine = self._factory()
            except BaseException as exc:  # reported by start()
                self._error = exc
                logger.exception("the ASR model could not be loaded")
                self._ready.set()
                return
            if not self.batch_size:
                self.batch_size = getattr(self._engine, "max_batch_size", None) or DEFAULT_BATCH
            self.skip_partials_above = (
                self.batch_size if self._skip_partials_above is None else self._skip_partials_above
            )
            if not self.workers:
                self.workers = int(getattr(self._engine, "inter_threads", None) or 1)
            with self._cond:
                self._threads += [self._worker(i) for i in range(1, self.workers)]
            for thread in self._threads[1:]:
                thread.start()
            self._ready.set()
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._transcribe(batch)
            except Exception:  # a worker that dies would stop every line's transcripts
                logger.exception("ASR worker %d: a batch of %d failed", index, len(batch))
            finally:
                with self._cond:
                    self._in_flight -= len(batch)
                    if batch:
                        self._busy_workers -= 1
                        self._courtesy_batches -= batch[0].priority in COURTESY
                    self._cond.notify_all()

    def _transcribe(self, batch: list[AsrJob]) -> None:
        assert self._engine is not None
        requests = [
            AsrRequest(id=job.key, audio=job.audio if job.audio is not None else np.zeros(0),
                       language=job.language, candidates=job.candidates,
                       draft=job.priority == PRIORITY_PARTIAL)
            for job in batch
        ]  # fmt: skip
        started = time.monotonic()
        results: list[AsrResult | None]
        error: str | None = None
        try:
            results = list(self._engine.transcribe_batch(requests))
        except Exception as exc:
            logger.exception("ASR failed on a batch of %d utterances", len(batch))
            self.stats.failures += 1
            results = [None] * len(batch)
            error = f"asr failed: {exc}"
        elapsed = time.monotonic() - started
        with self._cond:  # workers share the counters
            self.stats.batches += 1
            self.stats.utterances += len(batch)
            self.stats.batch_sizes[len(batch)] += 1
            self.stats.busy_s += elapsed
            self._busy_log.append((started + elapsed, elapsed))
            self._busy_sum += elapsed
            for job in batch:
                self.stats.audio_s += job.audio_s
                waits = self.stats.queue_wait_s
                waits.append(started - job.enqueued_at)
                if len(waits) > 10_000:
                    del waits[:5_000]
        for job, result in zip(batch, results, strict=True):
            job.audio = None
            _answer(job, result, error)


def _answer(job: AsrJob, result: AsrResult | None, error: str | None) -> None:
    """Call the job's ``done``; an error in it is logged, never raised into a worker."""
    try:
        job.done(job, result, error)
    except Exception:
        logger.exception("ASR job %s: its callback failed", job.key)


def _discard_spooled(path: Path) -> None:
    """Zero a spilled utterance's file, then delete it: queued speech may hold a card
    number, and deleting alone leaves its bytes on the disk."""
    try:
        with open(path, "r+b") as f:
            f.write(bytes(os.fstat(f.fileno()).st_size))
    except FileNotFoundError:
        return
    path.unlink(missing_ok=True)
