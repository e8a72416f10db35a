"""CPU time per stage of the live pipeline: receive, DSP, ASR, rules, storage, gRPC.

Each thread that does one stage's work calls :func:`name_thread` when it starts: its
operating-system thread name becomes ``cq-<stage>``, and threads it starts later inherit
that name. This matters for the ASR: CTranslate2's worker threads are started by the ASR
thread, so their CPU counts as ASR too. :func:`snapshot` reads ``/proc/self/task/*/stat``
and sums user and system CPU by thread name; CPU of threads without a stage name (the main
thread, gRPC's own core threads) and of threads that have exited counts as ``other``.

Work that runs on another stage's thread is timed where it runs: each leg's DSP (VAD,
levels, endpointing) runs on the thread that receives its audio, so
:class:`charge` measures it with ``time.thread_time()`` and moves that CPU from the host
thread's stage to ``dsp``. Reading a thread's CPU clock is a system call (1 to 2 us, more on
a loaded box), and the receive thread charges thousands of blocks a second, so one block in
``SAMPLE_EVERY``, drawn at random, is timed and counted that many times: the sum is the
same on average, its error far below the 10 ms clock ticks of the threads' own figures.

Linux only; elsewhere every figure is 0 and naming threads does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import random
import threading
import time
from pathlib import Path

STAGES = ("receive", "dsp", "asr", "rules", "storage", "grpc", "other")
PREFIX = "cq-"
_PR_SET_NAME = 15
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
SAMPLE_EVERY = 8
""":class:`charge` times one block in this many (at random) and counts it this many times."""

_local = threading.local()
_lock = threading.Lock()
_moved: dict[tuple[str, str], float] = {}
"""CPU seconds moved from a host thread's stage to another stage, by (host, stage)."""

try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
except OSError:  # pragma: no cover - no C library to load
    _libc = None


def name_thread(stage: str) -> None:
    """Mark the calling thread (and the threads it starts from now on) as doing ``stage``."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
    _local.stage = stage
    if _libc is not None:
        name = (PREFIX + stage).encode()[:15]
        _libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)


def current_stage() -> str:
    return getattr(_local, "stage", "other")


class charge:
    """``with charge(stage):`` counts the CPU the block uses on this thread as ``stage``'s,
    not the thread's own (one block in ``every`` timed, see the module notes)."""

    __slots__ = ("_every", "_stage", "_started")

    def __init__(self, stage: str, every: int = SAMPLE_EVERY) -> None:
        self._stage = stage
        self._every = every
        self._started = -1.0

    def __enter__(self) -> None:
        if self._every <= 1 or random.random() * self._every < 1.0:
            self._started = time.thread_time()

    def __exit__(self, *exc: object) -> None:
        if self._started < 0.0:
            return
        used = (time.thread_time() - self._started) * max(1, self._every)
        key = (current_stage(), self._stage)
        with _lock:
            _moved[key] = _moved.get(key, 0.0) + used


def _task_cpu(task: Path) -> tuple[str, float] | None:
    try:
        stat = (task / "stat").read_text()
    except OSError:  # the thread exited meanwhile
        return None
    head, _, tail = stat.rpartition(")")
    name = head.partition("(")[2]
    fields = tail.split()
    return name, (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _process_cpu() -> float:
    try:
        fields = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def snapshot() -> dict[str, float]:
    """CPU seconds used so far by each stage (keys: STAGES), since the process started."""
    totals = dict.fromkeys(STAGES, 0.0)
    tasks = Path("/proc/self/task")
    named = 0.0
    if tasks.is_dir():
        for task in tasks.iterdir():
            found = _task_cpu(task)
            if found is None:
                continue
            name, cpu = found
            stage = name[len(PREFIX) :] if name.startswith(PREFIX) else ""
            if stage in totals and stage != "other":
                totals[stage] += cpu
                named += cpu
    totals["other"] = max(0.0, _process_cpu() - named)
    with _lock:
        moved = dict(_moved)
    for (host, stage), seconds in moved.items():
        totals[host] = totals.get(host, 0.0) - seconds
        totals[stage] = totals.get(stage, 0.0) + seconds
    # Clock ticks (10 ms) and thread_time round differently: never report below zero.
    return {stage: max(0.0, seconds) for stage, seconds in totals.items()}


def memory_bytes(pid: int | str = "self") -> tuple[int, int]:
    """Resident memory of a process now and its peak, in bytes (0, 0 where unknown)."""
    values = {"VmRSS": 0, "VmHWM": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return values["VmRSS"], values["VmHWM"]
