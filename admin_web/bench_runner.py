"""A capacity benchmark started from the site: `callqa bench` as a child process.

The site starts ``python -m core.cli --data-dir DATA bench ...`` in a process group of its
own, with its output in ``DATA/bench/<time>/bench.log``. ``callqa bench`` writes each
configuration's finished steps to ``<work>/<configuration>/steps.json`` as it goes, and when
it is done stores one row per configuration in the box's ``benchmark_runs`` (the site never
writes that database itself). The site reads those files to show the progress, and cancels
by sending SIGTERM to the whole process group (the bench, the `callqa serve` children it
started, the simulators), then SIGKILL to what is left after a grace period.

Only one benchmark runs at a time: `start` refuses while one runs, whether it was started by
this process or by an earlier run of the site (``DATA/bench/current.json`` names it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STATE_FILE = "current.json"
CANCEL_GRACE_S = 20.0
LOG_TAIL_LINES = 40


class BenchBusy(RuntimeError):
    """A benchmark is running already."""


@dataclass(frozen=True)
class BenchParams:
    ladder: tuple[int, ...]
    step_s: float
    recordings: str | None  # a folder of WAV files, or None for the built-in samples
    baseline: bool = True

    def arguments(self) -> list[str]:
        args = [self.recordings] if self.recordings else []
        args += ["--lines", ",".join(map(str, self.ladder)), "--step-s", f"{self.step_s:g}"]
        if not self.baseline:
            args.append("--no-baseline")
        return args


@dataclass
class RunState:
    """What current.json keeps about the latest benchmark started from the site."""

    pid: int
    pgid: int
    work: str
    started_at: str
    by: str
    params: dict[str, Any]
    command: list[str] = field(default_factory=list)
    exit_code: int | None = None
    finished_at: str | None = None
    cancelled_by: str | None = None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def group_alive(pgid: int) -> list[int]:
    """The processes of a process group that still run (zombies excluded)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            alive.append(int(entry.name))
    return alive


def _pid_is_bench(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat[stat.rfind(")") + 2 :].split()[0]
    return state not in ("Z", "X") and b"bench" in cmdline


def read_steps(work: Path) -> dict[str, list[dict[str, Any]]]:
    """The finished steps of each configuration so far, from the bench's steps.json files."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name in ("callqa", "baseline", "front-end"):
        path = work / name / "steps.json"
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being rewritten; the next poll reads it
        out[name] = [{
            "lines": s.get("lines"), "p50_ms": s.get("latency_p50_ms"),
            "p95_ms": s.get("latency_p95_ms"), "cores": s.get("daemon_cores"),
            "held": s.get("held"), "sustained": s.get("sustained"), "note": s.get("note", ""),
        } for s in data.get("steps", [])]  # fmt: skip
    return out


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


class BenchRunner:
    """Starts, follows and cancels the site's `callqa bench`; see the module notes."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "bench"
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    # -------------------------------------------------------------- state

    def _state_path(self) -> Path:
        return self.root / STATE_FILE

    def _load(self) -> RunState | None:
        try:
            data = json.loads(self._state_path().read_text(encoding="utf-8"))
            return RunState(**data)
        except (OSError, ValueError, TypeError):
            return None

    def _save(self, state: RunState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self._state_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(self._state_path())

    def _running(self, state: RunState | None) -> bool:
        if state is None or state.finished_at is not None:
            return False
        if self._proc is not None and self._proc.pid == state.pid:
            return self._proc.poll() is None
        return _pid_is_bench(state.pid)

    def _finish(self, state: RunState) -> None:
        """Record the end of a run (once) and drop the daemons' data folders it left."""
        if state.finished_at is not None:
            return
        if self._proc is not None and self._proc.pid == state.pid:
            state.exit_code = self._proc.wait()
            self._proc = None
        state.finished_at = _now()
        self._save(state)
        work = Path(state.work)
        for config in ("callqa", "baseline", "front-end"):
            shutil.rmtree(work / config / "data", ignore_errors=True)

    # -------------------------------------------------------------- actions

    def start(self, params: BenchParams, by: str, env: dict[str, str] | None = None
              ) -> RunState:
        with self._lock:
            state = self._load()
            if self._running(state):
                raise BenchBusy("a capacity benchmark is running already")
            if state is not None:
                self._finish(state)
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            work = self.root / stamp
            n = 1
            while work.exists():
                n += 1
                work = self.root / f"{stamp}-{n}"
            work.mkdir(parents=True)
            command = [sys.executable, "-m", "core.cli", "--data-dir", str(self.data_dir),
                       "bench", *params.arguments(), "--work-dir", str(work),
                       "--out", str(work / "out")]
            with (work / "bench.log").open("ab") as log:
                self._proc = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=REPO, env=env if env is not None else dict(os.environ),
                    start_new_session=True,
                )  # fmt: skip
            state = RunState(pid=self._proc.pid, pgid=os.getpgid(self._proc.pid),
                             work=str(work), started_at=_now(), by=by,
                             params=asdict(params), command=command)  # fmt: skip
            self._save(state)
            return state

    def cancel(self, by: str, grace_s: float = CANCEL_GRACE_S) -> RunState | None:
        """Stop the running benchmark and everything it started; None when none runs."""
        with self._lock:
            state = self._load()
            if not self._running(state):
                return None
            assert state is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(state.pgid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while group_alive(state.pgid) and time.monotonic() < deadline:
                if self._proc is not None:
                    self._proc.poll()  # reap the bench itself as soon as it ends
                time.sleep(0.1)
            if group_alive(state.pgid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(state.pgid, signal.SIGKILL)
                while group_alive(state.pgid) and time.monotonic() < deadline + 5:
                    time.sleep(0.1)
            state.cancelled_by = by
            self._finish(state)
            return state

    def status(self) -> dict[str, Any]:
        """The latest run: its phase, parameters, steps so far and the log's last lines."""
        with self._lock:
            state = self._load()
            if state is None:
                return {"phase": "none", "running": False}
            running = self._running(state)
            if not running:
                self._finish(state)
        work = Path(state.work)
        steps = read_steps(work)
        if running:
            phase = "running" if steps else "starting"
        elif state.cancelled_by:
            phase = "cancelled"
        elif state.exit_code == 0:
            phase = "finished"
        else:
            phase = "failed"
        params = state.params
        configs = 1 if not params.get("baseline", True) else 2
        planned = configs * len(params.get("ladder", ()))
        done = sum(len(s) for s in steps.values())
        return {
            "phase": phase, "running": running, "pid": state.pid, "started_at": state.started_at,
            "finished_at": state.finished_at, "by": state.by, "cancelled_by": state.cancelled_by,
            "exit_code": state.exit_code, "params": params, "steps": steps,
            "steps_done": done, "steps_planned": planned, "work": state.work,
            "log": _tail(work / "bench.log"),
        }  # fmt: skip


def recording_folders(candidates: Sequence[Path]) -> list[tuple[str, int]]:
    """The candidate folders that exist and hold WAV files, with their number of files."""
    out = []
    for folder in candidates:
        folder = Path(folder).expanduser()
        if folder.is_dir():
            count = sum(1 for _ in folder.glob("*.wav"))
            if count:
                out.append((str(folder.resolve()), count))
    return out
