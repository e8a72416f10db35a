"""Device choice, compute types, cuBLAS 12 preloading, CPU fallback and `callqa gpu-check`.

Where a GPU would be needed, CTranslate2's functions are replaced: a device count of 1, the
compute types an H100 reports, and a Whisper constructor that fails on CUDA the way
CTranslate2 does without cuBLAS 12, while the CPU gets the real model.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np
import pytest

from core.asr import device as asr_device
from core.asr.device import (
    CublasStatus,
    choose_device,
    compute_type_for,
    default_batch_size,
    diagnose,
    driver_version,
    load_whisper,
    preload_cublas,
)
from core.asr.engine import AsrEngine
from core.asr.models import resolve_model
from core.asr.types import CPU_MAX_BATCH, CUDA_MAX_BATCH, AsrOptions
from core.cli import gpu as cli_gpu
from core.config import load_settings

REPO = Path(__file__).resolve().parents[3]
# What CTranslate2 raises when the first matrix product on the GPU cannot open cuBLAS.
CUBLAS_ERROR = "Library libcublas.so.12 is not found or cannot be loaded"
# get_supported_compute_types("cuda") on a compute capability 9.0 GPU (H100, H200).
H100_TYPES = {
    "float32",
    "float16",
    "bfloat16",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
}
REAL_WHISPER = ctranslate2.models.Whisper
REAL_SUPPORTED = ctranslate2.get_supported_compute_types


@pytest.fixture(scope="module")
def tiny_path() -> Path:
    return resolve_model("tiny.en", Path("/nonexistent")).path


class FakeCudaWhisper:
    """Stands for a model loaded on CUDA: records encoder calls, may fail like cuBLAS."""

    n_mels = 80
    device = "cuda"

    def __init__(self, fail_with: str | None = None) -> None:
        self.fail_with = fail_with
        self.encoded: list[tuple[int, ...]] = []

    def encode(self, features: Any, to_cpu: bool = False) -> Any:
        if self.fail_with:
            raise RuntimeError(self.fail_with)
        self.encoded.append(tuple(np.asarray(features).shape))
        return features


class GpuBox:
    """Monkeypatches CTranslate2 to look like a box with one GPU."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cuda_model: Any = None) -> None:
        self.loads: list[dict[str, Any]] = []
        self.cuda_model = cuda_model
        self.type_queries: list[tuple[str, int]] = []
        monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 1)
        monkeypatch.setattr(ctranslate2, "get_supported_compute_types", self._supported)
        monkeypatch.setattr(ctranslate2.models, "Whisper", self._whisper)

    def _supported(self, device: str, device_index: int = 0) -> set[str]:
        self.type_queries.append((device, device_index))
        return set(H100_TYPES) if device == "cuda" else REAL_SUPPORTED(device)

    def _whisper(self, path: str, device: str = "cpu", **kwargs: Any) -> Any:
        self.loads.append({"device": device, **kwargs})
        if device == "cuda":
            if self.cuda_model is None:
                raise RuntimeError(CUBLAS_ERROR)
            return self.cuda_model
        return REAL_WHISPER(path, device=device, **kwargs)


# --------------------------------------------------------------------------- choices


def test_auto_picks_cuda_only_when_ctranslate2_sees_a_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    preloads: list[str] = []
    monkeypatch.setattr(asr_device, "preload_cublas", lambda: preloads.append("x"))
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 1)
    assert choose_device("auto") == "cuda"
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 0)
    assert choose_device("auto") == "cpu"
    assert choose_device("cuda") == "cuda"  # as asked; loading decides later
    assert len(preloads) == 3  # cuBLAS is made findable before CTranslate2 is asked
    assert choose_device("cpu") == "cpu"
    assert len(preloads) == 3  # not for the CPU
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        choose_device("gpu")


def test_compute_type_per_device(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    box = GpuBox(monkeypatch)
    assert compute_type_for("cuda", "default") == "float16"
    for kept in ("int8_float16", "float16", "bfloat16", "int8", "float32"):
        assert compute_type_for("cuda", kept) == kept
    assert compute_type_for("cuda", "float16", device_index=1) == "float16"
    assert ("cuda", 1) in box.type_queries
    assert compute_type_for("cpu", "default") == "int8"
    assert compute_type_for("cuda", "auto") == "auto"
    with caplog.at_level(logging.WARNING, logger="core.asr.device"):
        assert compute_type_for("cuda", "int16") == "auto"
        assert compute_type_for("cpu", "float16") == "auto"  # no float16 on this CPU
    warnings = [r.getMessage() for r in caplog.records]
    assert any("int16 is not supported on cuda" in w for w in warnings)
    assert any("float16 is not supported on cpu" in w for w in warnings)


def test_default_batch_size_is_larger_on_the_gpu() -> None:
    assert default_batch_size("cuda") == CUDA_MAX_BATCH
    assert default_batch_size("cpu") == CPU_MAX_BATCH
    assert default_batch_size("cuda") > default_batch_size("cpu")


# --------------------------------------------------------------------------- cuBLAS 12


@pytest.mark.no_cuda
def test_preload_is_a_no_op_without_the_wheel(tmp_path: Path) -> None:
    status = preload_cublas()
    assert not status.loaded and status.source is None and status.path is None
    assert "libcublas.so.12" in (status.error or "")
    assert asr_device.cublas_wheel_dirs() == []
    assert "no nvidia-cublas-cu12 wheel" in (status.error or "")
    empty = preload_cublas([tmp_path])
    assert not empty.loaded and f"not in {tmp_path}" in (empty.error or "")
    maps = Path("/proc/self/maps").read_text()
    assert "libcublas" not in maps


@pytest.mark.no_cuda
def test_preload_reports_a_broken_library_without_raising(tmp_path: Path) -> None:
    (tmp_path / "libcublas.so.12").write_bytes(b"not a shared object")
    status = preload_cublas([tmp_path])
    assert not status.loaded
    assert str(tmp_path / "libcublas.so.12") in (status.error or "")


_FAKE_LT = "int cublasLtGetVersion(void) { return 120804; }\n"
_FAKE_CUBLAS = textwrap.dedent(
    """
    extern int cublasLtGetVersion(void);
    int cublasGetProperty(int type, int *value) {
        int v = cublasLtGetVersion();
        *value = type == 0 ? v / 10000 : type == 1 ? v / 100 % 100 : v % 100;
        return 0;
    }
    """
)
_PRELOAD_SCRIPT = textwrap.dedent(
    """
    import ctypes, json
    from dataclasses import asdict
    from core.asr import device as asr_device
    try:
        ctypes.CDLL("libcublas.so.12")
        before = True
    except OSError:
        before = False
    first = asr_device.preload_cublas()
    ctypes.CDLL("libcublas.so.12")  # by name, as CTranslate2 opens it
    second = asr_device.preload_cublas()
    print(json.dumps({
        "before": before,
        "dirs": [str(d) for d in asr_device.cublas_wheel_dirs()],
        "first": asdict(first),
        "second": asdict(second),
    }))
    """
)


@pytest.mark.no_cuda
@pytest.mark.cc
def test_preload_from_a_wheel_layout_makes_cublas_findable_by_name(tmp_path: Path) -> None:
    """A stand-in nvidia-cublas-cu12 install: nvidia/cublas/lib with the two libraries."""
    cc = shutil.which("cc") or "cc"
    lib = tmp_path / "site" / "nvidia" / "cublas" / "lib"
    lib.mkdir(parents=True)
    (tmp_path / "lt.c").write_text(_FAKE_LT)
    (tmp_path / "cublas.c").write_text(_FAKE_CUBLAS)
    build = [cc, "-shared", "-fPIC"]
    subprocess.run(
        [*build, "-Wl,-soname,libcublasLt.so.12", "-o", str(lib / "libcublasLt.so.12"),
         str(tmp_path / "lt.c")],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [*build, "-Wl,-soname,libcublas.so.12", "-o", str(lib / "libcublas.so.12"),
         str(tmp_path / "cublas.c"), f"-L{lib}", "-l:libcublasLt.so.12"],
        check=True,
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}{REPO}"}
    env.pop("LD_LIBRARY_PATH", None)
    out = subprocess.run(
        [sys.executable, "-c", _PRELOAD_SCRIPT],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    got = json.loads(out.stdout)
    assert got["before"] is False  # not on the loader's path
    assert got["dirs"] == [str(lib)]
    first = got["first"]
    assert first["loaded"] and first["source"] == "wheel"
    assert first["path"] == str(lib / "libcublas.so.12")
    assert first["version"] == "12.8.4"
    assert got["second"]["loaded"] and got["second"]["source"] == "process"


# --------------------------------------------------------------------------- fallback


@pytest.mark.model
def test_cuda_failure_at_load_falls_back_to_a_real_cpu_model(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tiny_path: Path
) -> None:
    box = GpuBox(monkeypatch)  # the CUDA constructor raises the cuBLAS error
    options = AsrOptions(device="auto", device_index=0, cpu_threads=2)
    with caplog.at_level(logging.WARNING, logger="core.asr.device"):
        model, device, compute_type = load_whisper(tiny_path, options)
    assert (device, compute_type) == ("cpu", "int8")
    assert [load["device"] for load in box.loads] == ["cuda", "cpu"]
    assert box.loads[0]["compute_type"] == "float16" and box.loads[0]["device_index"] == 0
    assert box.loads[1]["inter_threads"] * box.loads[1]["intra_threads"] == 2  # 2 threads
    assert isinstance(model, REAL_WHISPER) and model.device == "cpu"
    features = np.zeros((1, model.n_mels, 200), np.float32)
    encoded = model.encode(ctranslate2.StorageView.from_array(features), to_cpu=True)
    assert np.asarray(encoded).shape[:2] == (1, 100)
    message = " ".join(r.getMessage() for r in caplog.records)
    assert CUBLAS_ERROR in message and "falling back to the CPU" in message
    assert "nvidia-cublas-cu12" in message  # the fix is named


@pytest.mark.model
def test_cuda_failure_at_first_encode_falls_back_at_load(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tiny_path: Path
) -> None:
    """CTranslate2 opens cuBLAS at the first product: the warm-up meets it, not a call."""
    fake = FakeCudaWhisper(fail_with=CUBLAS_ERROR)
    box = GpuBox(monkeypatch, cuda_model=fake)
    with caplog.at_level(logging.WARNING, logger="core.asr.device"):
        model, device, _ = load_whisper(tiny_path, AsrOptions(device="cuda"))
    assert device == "cpu" and model is not fake
    assert [load["device"] for load in box.loads] == ["cuda", "cpu"]
    assert CUBLAS_ERROR in caplog.text


def test_cuda_load_warms_up_and_keeps_the_asked_type(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCudaWhisper()
    box = GpuBox(monkeypatch, cuda_model=fake)
    options = AsrOptions(device="auto", device_index=1, compute_type="int8_float16")
    model, device, compute_type = load_whisper(Path("/models/x"), options)
    assert (model, device, compute_type) == (fake, "cuda", "int8_float16")
    assert box.loads == [{"device": "cuda", "device_index": 1, "compute_type": "int8_float16",
                          "inter_threads": 1}]
    assert fake.encoded == [(1, 80, round(options.window_min_s * 100))]


def test_unsupported_type_on_cuda_loads_as_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    box = GpuBox(monkeypatch, cuda_model=FakeCudaWhisper())
    _, device, compute_type = load_whisper(Path("/m"), AsrOptions(compute_type="int16"))
    assert (device, compute_type) == ("cuda", "auto")
    assert box.loads[0]["compute_type"] == "auto"


# --------------------------------------------------------------------------- diagnosis


def test_diagnose_on_a_cpu_only_box(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 0)  # even on a GPU box

    def must_not_load() -> Path:
        raise AssertionError("the model is loaded only when the GPU path is there")

    report = diagnose(must_not_load)
    assert report.cuda_devices == 0 and not report.usable
    assert report.verdict.startswith("CPU only")
    assert "Whisper runs on the CPU" in report.verdict
    assert "int8" in report.compute_types["cpu"] and "cuda" not in report.compute_types
    assert report.ctranslate2_version == ctranslate2.__version__
    assert report.model_check is None
    data = json.loads(json.dumps(report.to_dict()))
    assert data["cublas"]["loaded"] is report.cublas.loaded


def test_diagnose_gpu_without_cublas_names_the_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    GpuBox(monkeypatch)
    missing = CublasStatus(False, error="libcublas.so.12: cannot open shared object file")
    monkeypatch.setattr(asr_device, "preload_cublas", lambda: missing)
    monkeypatch.setattr(asr_device, "driver_version", lambda: "580.159")
    monkeypatch.setattr(asr_device, "driver_cuda_version", lambda: "13.0")
    report = diagnose()
    assert report.cuda_devices == 1 and not report.usable
    assert "nvidia-cublas-cu12" in report.verdict
    assert report.compute_types["cuda"] == sorted(H100_TYPES)
    assert report.default_compute_type["cuda"] == "float16"


def test_driver_version_from_proc(tmp_path: Path) -> None:
    proc = tmp_path / "version"
    proc.write_text(
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159  Release Build\n"
        "GCC version:  gcc version 12.2.0\n"
    )
    assert driver_version(proc) == "580.159"
    proc.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  570.86.15  Thu Jan\n")
    assert driver_version(proc) == "570.86.15"


# --------------------------------------------------------------------------- CLI


def _gpu_check(tmp_path: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="callqa")
    cli_gpu.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["gpu-check", *argv])
    config = load_settings(None, {"data_dir": str(tmp_path), "model": "tiny.en"}, environ={})
    code: int = args.func(args, config)
    return code


def test_gpu_check_on_a_cpu_only_box_exits_1_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 0)  # even on a GPU box
    assert _gpu_check(tmp_path) == 1
    out, err = capsys.readouterr()
    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert lines["CUDA devices"].strip() == "0"
    assert lines["verdict"].strip().startswith("CPU only")
    assert "int8" in lines["compute types cpu"]
    assert "GPU path not usable: CPU only" in err
    assert _gpu_check(tmp_path, "--json") == 1
    out, _ = capsys.readouterr()
    data = json.loads(out)
    assert data["cuda_devices"] == 0 and data["usable"] is False
    assert data["verdict"].startswith("CPU only")


def _usable_box(monkeypatch: pytest.MonkeyPatch, cuda_model: Any) -> GpuBox:
    box = GpuBox(monkeypatch, cuda_model=cuda_model)
    found = CublasStatus(True, "wheel", "/site/nvidia/cublas/lib/libcublas.so.12", "12.9.1")
    monkeypatch.setattr(asr_device, "preload_cublas", lambda: found)
    monkeypatch.setattr(asr_device, "driver_version", lambda: "580.159")
    monkeypatch.setattr(asr_device, "driver_cuda_version", lambda: "13.0")
    return box


def test_gpu_check_exits_0_when_the_model_runs_on_the_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeCudaWhisper()
    box = _usable_box(monkeypatch, fake)
    assert _gpu_check(tmp_path) == 0
    out, err = capsys.readouterr()
    assert "GPU path usable: 1 CUDA device(s), cuBLAS 12.9.1 (wheel)" in out
    assert "580.159 (CUDA 13.0)" in out
    assert "ok: model loaded and encoded on cuda:0 as float16" in out
    assert err == ""
    assert box.loads == [{"device": "cuda", "device_index": 0, "compute_type": "float16"}]
    assert len(fake.encoded) == 1
    assert _gpu_check(tmp_path, "--no-model", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["usable"] is True and data["model_check"] is None
    assert len(box.loads) == 1  # --no-model loaded nothing


def test_gpu_check_exits_1_when_the_model_fails_on_the_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _usable_box(monkeypatch, FakeCudaWhisper(fail_with=CUBLAS_ERROR))
    assert _gpu_check(tmp_path, "--json") == 1
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["usable"] is False
    assert data["model_check"] == f"failed: {CUBLAS_ERROR}"
    assert CUBLAS_ERROR in data["verdict"] and "nvidia-cublas-cu12" in data["verdict"]
    assert "GPU path not usable" in err


# --------------------------------------------------------------------------- engine


@pytest.mark.model
@pytest.mark.speech
def test_engine_forced_to_cuda_transcribes_here(
    model_data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from core.audio.samples import synthesize
    from kernels.resample import upsample_8k_to_16k

    gpus = ctranslate2.get_cuda_device_count()
    with caplog.at_level(logging.WARNING, logger="core.asr.device"):
        engine = AsrEngine(
            resolve_model("base", model_data_dir),
            AsrOptions(device="cuda", language="en", cpu_threads=2),
        )
    assert engine.device == ("cuda" if gpus else "cpu")
    if not gpus:
        assert engine.compute_type == "int8"
        assert "falling back to the CPU" in caplog.text
    audio = upsample_8k_to_16k(
        synthesize("Thank you for calling customer service, how can I help you?", "en-us")
    ).astype(np.float32)
    result = engine.transcribe(audio)
    words = set(result.text.lower().replace(",", " ").replace(".", " ").replace("?", " ").split())
    assert not result.filtered
    assert len(words & {"thank", "calling", "customer", "service", "help"}) >= 4, result.text
