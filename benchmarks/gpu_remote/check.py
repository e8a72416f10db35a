"""On the device, in one call: does the GPU path run, and if it does, how far does it go?

1. (a) the probe (`benchmarks.gpu_remote.probe`) with the machine as it is;
2. (b) when (a) could not load ``libcublas.so.12``: again, in a new process whose
   LD_LIBRARY_PATH starts with a private folder where ``libcublas.so.12`` links to the
   image's ``libcublas.so.13`` (`benchmarks.gpu_remote.cublas`);
3. with the first attempt that transcribed: batch size against latency for float16 and
   int8_float16, then `callqa bench` with Whisper base, then with tiny.en, each within what
   is left of ``budget_s``.

Everything goes to ``check.json`` in the output folder (rewritten after each stage, so an
interrupted call still brings back what was done) with the measurements beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.gpu_remote.assemble import survey
from benchmarks.gpu_remote.cublas import alias_folder, find_libraries

REPO = Path(__file__).resolve().parents[2]
PROBE_TIMEOUT_S = 240.0
MIN_BENCH_S = 60.0
BENCH_LINES = "50,100,150,200,300,500,1000"
"""The first lent H100 held 120 lines with one daemon and missed 100 once (noise): a first
step of 100 can end the ladder before it has measured anything."""
BENCH_STEP_S = 30.0
MEASURE_SHARE = 0.25
COMPUTE_TYPES = ("float16", "int8_float16")
BATCHES = (1, 4, 8, 16, 32, 64, 128)
OPEN_FILES = 65536


class Check:
    def __init__(
        self,
        pack_dir: Path,
        out: Path,
        budget_s: float,
        site: Path | None,
        model: Path | None = None,
    ) -> None:
        self.pack = pack_dir
        self.out = out
        self.work = pack_dir / "check"
        self.deadline = time.monotonic() + budget_s
        self.site = site
        payload = pack_dir / "payload"
        self.models = {
            "base": model or payload / "models" / "base",
            "tiny": payload / "models" / "tiny",
        }
        self.audio = payload / "audio"
        self.report: dict[str, Any] = {"budget_s": budget_s, "attempts": {}}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "check.json").write_text(
            json.dumps(self.report, indent=1, default=str), encoding="utf-8"
        )

    def env(self, lib_dir: Path | None = None) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(self.site)] if self.site else []
        paths += [str(REPO), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("CUDA_CACHE_PATH", str(self.pack / "cuda-cache"))
        env.setdefault("CUDA_CACHE_MAXSIZE", str(2**31))
        if lib_dir is not None:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(
                p for p in (str(lib_dir), env.get("LD_LIBRARY_PATH", "")) if p
            )
        return env

    def probe(self, name: str, env: dict[str, str]) -> dict[str, Any]:
        self.work.mkdir(parents=True, exist_ok=True)
        steps_file = self.work / f"probe-{name}.jsonl"
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.gpu_remote",
            "probe",
            "--model",
            str(self.models["base"]),
            "--steps",
            str(steps_file),
            "--audio",
            str(self.audio),
        ]
        done = run(cmd, env, min(PROBE_TIMEOUT_S, max(10.0, self.left())))
        steps = (
            [
                json.loads(line)
                for line in steps_file.read_text(encoding="utf-8").splitlines()
                if line.strip()
            ]
            if steps_file.exists()
            else []
        )
        finished = [s for s in steps if "ok" in s]
        started = [s["step"] for s in steps if s.get("started")]
        crashed_in = started[-1] if started and len(started) > len(finished) else None
        attempt = {
            "LD_LIBRARY_PATH": env.get("LD_LIBRARY_PATH"),
            "exit": done["exit"],
            "timed_out": done["timed_out"],
            "seconds": done["seconds"],
            "steps": finished,
            "crashed_in": crashed_in,
            "stderr_tail": done["stderr"][-3000:],
            "transcribed": any(s["step"] == "transcribe clip" and s["ok"] for s in finished),
        }
        self.report["attempts"][name] = attempt
        self.save()
        return attempt

    def run_all(self, *, bench_lines: str, bench_step_s: float) -> int:
        self.report["machine"] = survey()
        self.save()
        a = self.probe("a_as_is", self.env())
        chosen: dict[str, str] | None = self.env() if a["transcribed"] else None
        cublas = next((s for s in a["steps"] if s["step"] == "cublas 12"), None)
        skip_b = reason_not_to_try_b(a, cublas)
        if skip_b:
            self.report["attempts"]["b_cublas13_as_12"] = {"not_tried": skip_b}
        else:
            made = alias_folder(self.pack / "cublas12-alias", find_libraries())
            self.report["alias"] = made
            if not made:
                self.report["attempts"]["b_cublas13_as_12"] = {
                    "not_tried": "no libcublas.so.13 found to expose as libcublas.so.12"
                }
            else:
                env = self.env(self.pack / "cublas12-alias")
                if self.probe("b_cublas13_as_12", env)["transcribed"]:
                    chosen = env
        self.report["gpu_runs"] = chosen is not None
        self.report["verdict"] = verdict(self.report)
        self.save()
        if chosen is None:
            return 1
        raise_open_files()
        self.measure(chosen)
        for model in ("base", "tiny"):
            self.bench(model, chosen, bench_lines, bench_step_s)
        self.save()
        return 0

    def measure(self, env: dict[str, str]) -> None:
        budget = MEASURE_SHARE * self.left()
        out = self.out / "micro.json"
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.gpu_remote",
            "measure",
            "--model",
            str(self.models["base"]),
            "--out",
            str(out),
            "--audio",
            str(self.audio),
            "--budget-s",
            f"{budget:.0f}",
        ]
        done = run(cmd, env, budget + 60)
        self.report["micro"] = {
            **done,
            "stdout": done["stdout"][-2000:],
            "stderr": done["stderr"][-2000:],
        }
        self.save()

    def bench(self, model: str, env: dict[str, str], lines: str, step_s: float) -> None:
        folder = self.models[model]
        if not (folder / "model.bin").is_file():
            self.report[f"bench_{model}"] = {"skipped": f"no model at {folder}"}
            return
        # Base gets what is left but a minute for tiny when tiny is there.
        spare = (
            MIN_BENCH_S if model == "base" and (self.models["tiny"] / "model.bin").is_file() else 0
        )
        budget = self.left() - spare - 15
        if budget < MIN_BENCH_S:
            self.report[f"bench_{model}"] = {"skipped": f"{self.left():.0f} s left"}
            self.save()
            return
        work = self.work / f"bench-{model}"
        cmd = [
            sys.executable,
            "-m",
            "core.cli",
            "--data-dir",
            str(self.pack / "data"),
            "--model",
            str(folder),
            "--device",
            "cuda",
            "bench",
            str(self.audio),
            "--no-baseline",
            "--lines",
            lines,
            "--step-s",
            f"{step_s:g}",
            "--out",
            str(work / "out"),
            "--work-dir",
            str(work),
            "--no-store",
        ]
        done = run(cmd, env, budget)
        (self.out / f"bench-{model}.log").write_text(
            done["stdout"] + done["stderr"], encoding="utf-8"
        )
        steps = work / "callqa" / "steps.json"
        if steps.is_file():
            (self.out / f"bench-{model}.json").write_text(
                steps.read_text(encoding="utf-8"), encoding="utf-8"
            )
        self.report[f"bench_{model}"] = {k: done[k] for k in ("exit", "timed_out", "seconds")}
        self.save()


def reason_not_to_try_b(a: dict[str, Any], cublas: dict[str, Any] | None) -> str | None:
    """Why attempt (b) is not needed or cannot tell anything; None when it is to be made."""
    if a["transcribed"]:
        return "attempt (a) transcribed"
    if cublas is None:
        return "attempt (a) stopped before cuBLAS 12 was looked for"
    if (cublas.get("value") or {}).get("loaded"):
        return "libcublas.so.12 loaded as the machine is"
    return None


def run(cmd: list[str], env: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """Run in a process group of its own; on timeout the whole group is killed."""
    began = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            stdout, stderr = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
    return {
        "exit": proc.returncode,
        "timed_out": timed_out,
        "seconds": round(time.monotonic() - began, 1),
        "stdout": stdout,
        "stderr": stderr,
    }


def raise_open_files() -> None:
    """A thousand lines hold thousands of sockets; children inherit the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = OPEN_FILES if hard == resource.RLIM_INFINITY else max(soft, min(OPEN_FILES, hard))
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def verdict(report: dict[str, Any]) -> str:
    attempts = report["attempts"]
    for name, label in (
        ("a_as_is", "as it is"),
        ("b_cublas13_as_12", "with libcublas.so.13 shown as libcublas.so.12"),
    ):
        if attempts.get(name, {}).get("transcribed"):
            return f"Whisper runs on CUDA {label}"
    why = []
    for name, attempt in attempts.items():
        if "not_tried" in attempt:
            why.append(f"{name}: not tried ({attempt['not_tried']})")
            continue
        failed = next((s for s in attempt["steps"] if not s["ok"]), None)
        if failed is not None:
            why.append(f"{name}: {failed['step']} failed: {failed['error']}")
        elif attempt["crashed_in"]:
            why.append(
                f"{name}: the process died in {attempt['crashed_in']!r} (exit {attempt['exit']})"
            )
        elif attempt["timed_out"]:
            why.append(f"{name}: timed out after {attempt['seconds']} s")
        else:
            why.append(f"{name}: exit {attempt['exit']}: {attempt['stderr_tail'][-300:]}")
    return "the GPU path does not run: " + "; ".join(why)
