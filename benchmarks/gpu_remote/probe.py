"""Run in a process of its own: does CTranslate2 run Whisper on CUDA here? And how fast?

``probe`` goes step by step (import, cuBLAS, devices, compute types, load on CUDA with one
encoder pass, transcribe a short clip) and appends one JSON line per step to a file as it
goes, so that a crash inside CUDA code still leaves the steps before it. It stops at the
first step that fails.

``measure`` times batches of utterances through the project's ASR engine for each compute
type and batch size: latency of one batch, and audio seconds transcribed per wall second.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

CLIP_S = 6.0
RATE_16K = 16000
# Audio the ASR decodes per second of one line, both legs (README, "Capacity"): about 42 %
# of leg audio is speech; parts of turns in progress raise what is decoded to about 73 %.
ASR_AUDIO_PER_LINE_S = {"with_parts": 2 * 0.73, "without_parts": 2 * 0.42}


def clip_audio(
    audio_dir: Path | None, seconds: float = CLIP_S, offset_s: float = 0.0
) -> tuple[np.ndarray, str]:
    """16 kHz mono speech from a carried recording (agent leg), or a generated clip
    (a gliding tone with a little noise) when there is none."""
    if audio_dir is not None:
        wavs = sorted(audio_dir.glob("*.wav"))
        if wavs:
            from core.audio.wav import read_wav
            from kernels.resample import upsample_8k_to_16k

            rec = read_wav(wavs[0])
            leg = np.asarray(rec.channels[0], dtype=np.float32)
            start = int(offset_s * 8000) % max(1, len(leg) - int(seconds * 8000))
            cut = np.ascontiguousarray(leg[start : start + int(seconds * 8000)])
            return upsample_8k_to_16k(cut).astype(np.float32), f"{wavs[0].name} agent leg"
    t = np.arange(int(seconds * RATE_16K)) / RATE_16K
    glide = 0.3 * np.sin(2 * np.pi * (200 + 150 * t) * t)
    noise = 0.01 * np.random.default_rng(0).standard_normal(len(t))
    return (glide + noise).astype(np.float32), "generated glide"


class Steps:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text("", encoding="utf-8")
        self.failed = False

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        if self.failed:
            return None
        self._write({"step": name, "started": True})
        began = time.perf_counter()
        try:
            value = fn()
        except BaseException as exc:  # anything CTranslate2 raises is the finding
            self.failed = True
            self._write(
                {
                    "step": name,
                    "ok": False,
                    "seconds": round(time.perf_counter() - began, 2),
                    "error": f"{type(exc).__name__}: {exc}",
                    "trace": traceback.format_exc()[-1500:],
                }
            )
            return None
        self._write(
            {
                "step": name,
                "ok": True,
                "seconds": round(time.perf_counter() - began, 2),
                "value": value,
            }
        )
        return value

    def _write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=str) + "\n")
            f.flush()


def probe(model_dir: Path, steps_path: Path, audio_dir: Path | None, compute_type: str) -> int:
    steps = Steps(steps_path)
    version = steps.run("import ctranslate2", _import_ct2)
    if version is None:
        return 1
    from core.asr.device import preload_cublas, warm_up

    cublas = steps.run("cublas 12", lambda: {**asdict(preload_cublas()), "mapped": mapped_cublas()})
    import ctranslate2

    def devices() -> int:
        count = int(ctranslate2.get_cuda_device_count())
        if count == 0:
            loaded = bool(cublas and cublas.get("loaded"))
            raise RuntimeError(
                "CTranslate2 sees no CUDA device"
                + ("" if loaded else "; libcublas.so.12 not loaded")
            )
        return count

    if not steps.run("cuda devices", devices):
        return 1
    steps.run("cuda compute types", lambda: sorted(ctranslate2.get_supported_compute_types("cuda")))

    def load() -> str:
        model = ctranslate2.models.Whisper(str(model_dir), device="cuda", compute_type=compute_type)
        warm_up(model, 10.0)
        return f"loaded and encoded one 10 s window as {compute_type}"

    steps.run("load on cuda", load)

    def transcribe() -> dict[str, Any]:
        from core.asr.engine import AsrEngine
        from core.asr.types import AsrOptions

        audio, source = clip_audio(audio_dir)
        engine = AsrEngine(model_dir, AsrOptions(device="cuda", compute_type=compute_type))
        if engine.device != "cuda":
            raise RuntimeError(f"the engine fell back to {engine.device}")
        began = time.perf_counter()
        result = engine.transcribe(audio)
        return {
            "source": source,
            "seconds_audio": round(len(audio) / RATE_16K, 2),
            "wall_ms": round(1000 * (time.perf_counter() - began), 1),
            "text": result.text,
            "language": result.language,
        }

    steps.run("transcribe clip", transcribe)
    return 1 if steps.failed else 0


def mapped_cublas() -> list[str]:
    """The files this process has mapped that are cuBLAS, or that a ``libcublas*.so.12`` on
    LD_LIBRARY_PATH points at (a link shows in /proc/self/maps as its target)."""
    targets = set()
    for folder in filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)):
        for name in ("libcublas.so.12", "libcublasLt.so.12"):
            if (Path(folder) / name).exists():
                targets.add(os.path.realpath(Path(folder) / name))
    found = set()
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            path = fields[5].strip() if len(fields) == 6 else ""
            if path.startswith("/") and ("cublas" in Path(path).name or path in targets):
                found.add(path)
    return sorted(found)


def _import_ct2() -> dict[str, str]:
    import ctranslate2

    return {"version": ctranslate2.__version__, "file": str(ctranslate2.__file__)}


def measure(
    model_dir: Path,
    out: Path,
    *,
    device: str,
    compute_types: list[str],
    batches: list[int],
    audio_dir: Path | None,
    budget_s: float,
    repeats: int = 2,
) -> dict[str, Any]:
    """Batch latency and throughput per compute type; stops when ``budget_s`` is spent and
    writes what it has to ``out`` after every batch size."""
    from core.asr.engine import AsrEngine
    from core.asr.types import AsrOptions, AsrRequest

    began = time.monotonic()
    pool = [clip_audio(audio_dir, CLIP_S, offset_s=7.3 * i)[0] for i in range(max(batches))]
    report: dict[str, Any] = {
        "device": device,
        "clip_s": CLIP_S,
        "model": str(model_dir),
        "asr_audio_per_line_s": ASR_AUDIO_PER_LINE_S,
        "runs": [],
    }
    for compute_type in compute_types:
        options = AsrOptions(
            device=device,  # type: ignore[arg-type]
            compute_type=compute_type,
            max_batch_size=max(batches),
        )
        engine = AsrEngine(model_dir, options)
        engine.transcribe(pool[0])  # warm: kernels compiled, cuBLAS opened
        for batch in batches:
            if time.monotonic() - began > budget_s:
                report["stopped"] = f"budget of {budget_s:g} s spent"
                break
            requests = [AsrRequest(str(i), pool[i]) for i in range(batch)]
            walls = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                engine.transcribe_batch(requests)
                walls.append(time.perf_counter() - t0)
            wall = min(walls)
            rate = batch * CLIP_S / wall
            report["runs"].append(
                {
                    "compute_type": engine.compute_type,
                    "asked": compute_type,
                    "device": engine.device,
                    "batch": batch,
                    "latency_ms": round(1000 * wall, 1),
                    "audio_s_per_wall_s": round(rate, 1),
                    "lines_estimate": {k: round(rate / v) for k, v in ASR_AUDIO_PER_LINE_S.items()},
                }
            )
            out.write_text(json.dumps(report, indent=1), encoding="utf-8")
        del engine
    out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report
