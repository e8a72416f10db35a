"""The load of a capacity step: the audio each call plays, and the simulator that plays it.

Every call of a step lasts the same ``seconds``. Call i plays a cut of source recording
``i % len(sources)`` starting at a different offset (spread by the golden ratio over the
recording, wrapping around its end), so that lines playing the same recording do not speak
in step. Cuts are written as 16-bit stereo WAV files, agent left, customer right, 8 kHz.

The simulator runs as its own process (``callqa simulate --json``): its packets leave on
its own core time, its CPU is read from the kernel when it exits (``os.wait4``), and the
first RTP packet's wall time of each call comes back in its JSON, which fixes when each
utterance's end was sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.audio.wav import read_wav, write_wav_pcm16

RATE_HZ = 8000
GOLDEN = 0.6180339887498949
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Source:
    """A stereo 8 kHz recording, agent and customer legs as float32 in [-1, 1]."""

    name: str
    agent: np.ndarray
    customer: np.ndarray

    @property
    def samples(self) -> int:
        return len(self.agent)


def load_sources(paths: list[Path]) -> list[Source]:
    """Read stereo 8 kHz recordings (16-bit PCM or G.711); refuse anything else, naming it."""
    sources = []
    for path in paths:
        rec = read_wav(path)
        if rec.sample_rate != RATE_HZ or len(rec.channels) != 2:
            raise ValueError(
                f"{path}: {len(rec.channels)} channel(s) at {rec.sample_rate} Hz; the capacity "
                "benchmark plays stereo 8 kHz calls (agent left, customer right)"
            )
        agent, customer = (np.asarray(ch, dtype=np.float32) for ch in rec.channels)
        sources.append(Source(path.stem, agent, customer))
    if not sources:
        raise ValueError("no recordings to play")
    return sources


def _cut(leg: np.ndarray, start: int, length: int) -> np.ndarray:
    reps = 1 + (start + length) // len(leg)
    return np.tile(leg, reps + 1)[start : start + length]


def write_cuts(sources: list[Source], calls: int, seconds: float, out_dir: Path) -> list[Path]:
    """One WAV per call (``calls`` of them), each ``seconds`` long; see the module notes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    length = int(seconds * RATE_HZ)
    paths = []
    for i in range(calls):
        src = sources[i % len(sources)]
        round_no = i // len(sources)
        start = int(((round_no * GOLDEN) % 1.0) * src.samples)
        start -= start % 160  # whole 20 ms packets
        path = out_dir / f"call{i:04d}-{src.name}.wav"
        if not path.exists():
            legs = [_cut(src.agent, start, length), _cut(src.customer, start, length)]
            write_wav_pcm16(path, legs, RATE_HZ)
        paths.append(path)
    return paths


@dataclass
class SimulatorRun:
    """What the simulator process reported, and its own CPU."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    sender: dict[str, Any] = field(default_factory=dict)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    exit_code: int = 0
    error: str = ""

    @property
    def ok(self) -> int:
        return sum(1 for c in self.calls if c.get("status") == "ok")

    def first_packets(self) -> dict[str, float]:
        """SIP Call-ID -> wall time of the call's first RTP packet."""
        return {
            c["call_id"]: float(c["first_packet_wall"])
            for c in self.calls
            if c.get("first_packet_wall") is not None
        }


class SimulatorProcess:
    """``callqa simulate`` placing one call per file on ``sip_port``, in its own process."""

    def __init__(
        self, sip_port: int, files: list[Path], *, stagger_s: float, agent_base: int,
        log_path: Path, rounds: int = 1, gap_s: float = 1.0,
    ) -> None:  # fmt: skip
        """One line per file; with ``rounds``, each line places that many calls one after
        the other, ``gap_s`` apart (call i is round i // len(files) of line i % len(files))."""
        self.log_path = log_path
        self.args = [
            sys.executable, "-m", "core.cli", "simulate", "--to", f"127.0.0.1:{sip_port}",
            "--calls", str(len(files)), "--stagger-s", f"{stagger_s:.3f}",
            "--agent-base", str(agent_base), "--rounds", str(rounds), "--gap-s", f"{gap_s:g}",
            "--json", *map(str, files),
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: Any = None
        self.started = 0.0

    def start(self) -> SimulatorProcess:
        out_path = self.log_path.with_suffix(".json")
        self._out = out_path.open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQA_")}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=self._out, stderr=log, cwd=REPO,
                                         env=env)  # fmt: skip
        self.started = time.monotonic()
        return self

    def wait(self) -> SimulatorRun:
        """Wait for every call to end; the outcome with the process's CPU time."""
        assert self.proc is not None
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        run = SimulatorRun(cpu_s=usage.ru_utime + usage.ru_stime,
                           wall_s=time.monotonic() - self.started,
                           exit_code=self.proc.returncode)  # fmt: skip
        self._out.close()
        text = self.log_path.with_suffix(".json").read_text(encoding="utf-8", errors="replace")
        try:
            data = json.loads(text)
            run.calls, run.sender = data["calls"], data["sender"]
        except (ValueError, KeyError):
            run.error = (
                f"the simulator printed no result (exit {run.exit_code}); see {self.log_path}"
            )
        return run

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
