"""Where Whisper runs: device and compute-type choice, cuBLAS 12 loading, CPU fallback.

What the CTranslate2 4.x wheel on PyPI needs for the GPU (4.8.5 inspected):

* It is built against CUDA 12.8 and links no CUDA library: the CUDA runtime is static,
  there is no cuDNN (Conv1D has its own CUDA kernels), and cuBLAS is opened with
  ``dlopen("libcublas.so.12")`` on the first matrix product on the GPU, not when the model
  is loaded. Without cuBLAS 12 the model loads on the GPU and the first ``encode()`` fails
  with "Library libcublas.so.12 is not found or cannot be loaded".
* A CUDA 13 machine (driver 580, PyTorch cu130) has ``libcublas.so.13`` only, which
  CTranslate2 does not open. The CUDA driver is backward compatible, so CUDA 12 user-space
  libraries run on it: installing the ``nvidia-cublas-cu12`` wheel is enough. It puts
  ``libcublas.so.12`` and ``libcublasLt.so.12`` in ``site-packages/nvidia/cublas/lib``,
  which is not on the loader's path, so ``preload_cublas`` loads them by path with
  RTLD_GLOBAL before CTranslate2 looks; its later ``dlopen`` by name then finds the loaded
  library. (The CUDA 13 wheels use ``nvidia/cu13/lib``: the two do not collide.)
* The wheel carries machine code for compute capabilities 5.3 to 8.6 and PTX for 8.6. On
  an H100 or H200 (9.0) the driver compiles that PTX on first use of each kernel, so
  ``load_whisper`` runs one encoder pass on the GPU before it returns: cuBLAS is opened,
  the kernels are compiled, and any failure sends the engine to the CPU at load time
  instead of in the middle of a call.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np

from core.asr.types import CPU_MAX_BATCH, CUDA_MAX_BATCH, FRAMES_PER_S, AsrOptions

logger = logging.getLogger(__name__)

CUBLAS_SONAME = "libcublas.so.12"
CUBLASLT_SONAME = "libcublasLt.so.12"
CUBLAS_WHEEL = "nvidia-cublas-cu12"
CUBLAS_FIX = "pip install 'nvidia-cublas-cu12>=12.8,<13'"
CT2_CUDA_MAJOR = 12
PROC_DRIVER_VERSION = Path("/proc/driver/nvidia/version")
DEVICES = ("auto", "cpu", "cuda")
WARM_UP_MIN_FRAMES = 2
CHECK_WINDOW_S = 2.0
NVIDIA_SMI_TIMEOUT_S = 10.0
# cublasGetProperty's libraryPropertyType: MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL.
_CUBLAS_PROPERTIES = (0, 1, 2)
# Libraries loaded by preload_cublas, kept referenced for the life of the process.
_PRELOADED: list[ctypes.CDLL] = []


# --------------------------------------------------------------------------- cuBLAS 12


@dataclass(frozen=True)
class CublasStatus:
    """Whether ``libcublas.so.12`` is in the process and where it came from.

    source: "process" (already loaded), "system" (found by the loader's own search:
    LD_LIBRARY_PATH, the ldconfig cache) or "wheel" (loaded by path from an
    nvidia-cublas-cu12 install); None when it could not be loaded.
    """

    loaded: bool
    source: str | None = None
    path: str | None = None
    version: str | None = None
    error: str | None = None
    wheel_dirs: tuple[str, ...] = ()


def cublas_wheel_dirs() -> list[Path]:
    """The ``nvidia/cublas/lib`` folders of installed nvidia-cublas-cu12 wheels."""
    try:
        spec = importlib.util.find_spec("nvidia.cublas")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    dirs = [Path(p) / "lib" for p in spec.submodule_search_locations]
    return [d for d in dirs if (d / CUBLAS_SONAME).is_file()]


def preload_cublas(search_dirs: Sequence[Path] | None = None) -> CublasStatus:
    """Make ``libcublas.so.12`` findable by CTranslate2; never raises.

    Nothing is done when it is already loaded or the loader finds it by name. Otherwise
    ``libcublasLt.so.12`` and ``libcublas.so.12`` are loaded by path, with RTLD_GLOBAL,
    from the first of ``search_dirs`` (default: ``cublas_wheel_dirs()``) that holds them.
    """
    if not sys.platform.startswith("linux"):
        return CublasStatus(False, error="cuBLAS preloading is done on Linux only")
    try:
        return _status(ctypes.CDLL(CUBLAS_SONAME, mode=os.RTLD_NOLOAD), "process")
    except OSError:
        pass
    try:
        return _status(ctypes.CDLL(CUBLAS_SONAME, mode=ctypes.RTLD_GLOBAL), "system")
    except OSError as exc:
        system_error = str(exc)
    dirs = list(cublas_wheel_dirs() if search_dirs is None else search_dirs)
    shown = tuple(str(d) for d in dirs)
    for lib_dir in dirs:
        cublas = lib_dir / CUBLAS_SONAME
        if not cublas.is_file():
            continue
        try:
            handles = []
            lt = lib_dir / CUBLASLT_SONAME
            if lt.is_file():
                handles.append(ctypes.CDLL(str(lt), mode=ctypes.RTLD_GLOBAL))
            handles.append(ctypes.CDLL(str(cublas), mode=ctypes.RTLD_GLOBAL))
        except OSError as exc:
            return CublasStatus(False, error=f"cannot load {cublas}: {exc}", wheel_dirs=shown)
        _PRELOADED.extend(handles)
        logger.info("preloaded %s from %s", CUBLAS_SONAME, lib_dir)
        return _status(handles[-1], "wheel", shown)
    where = f"not in {', '.join(shown)}" if shown else f"no {CUBLAS_WHEEL} wheel installed"
    return CublasStatus(False, error=f"{system_error}; {where}", wheel_dirs=shown)


def _status(handle: ctypes.CDLL, source: str, dirs: tuple[str, ...] = ()) -> CublasStatus:
    return CublasStatus(
        True,
        source=source,
        path=_mapped_path(CUBLAS_SONAME) or getattr(handle, "_name", None),
        version=_cublas_version(handle),
        wheel_dirs=dirs,
    )


def _mapped_path(soname: str) -> str | None:
    """The file a library of this name was loaded from, read from /proc/self/maps."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.split(maxsplit=5)[-1].strip()
                if path.endswith("/" + soname):
                    return path
    except OSError:
        return None
    return None


def _cublas_version(handle: ctypes.CDLL) -> str | None:
    try:
        get_property = handle.cublasGetProperty
    except AttributeError:
        return None
    parts = []
    for prop in _CUBLAS_PROPERTIES:
        value = ctypes.c_int(-1)
        if get_property(prop, ctypes.byref(value)) != 0:
            return None
        parts.append(str(value.value))
    return ".".join(parts)


# --------------------------------------------------------------------------- choices


def choose_device(requested: str) -> str:
    """The device to use, "cpu" or "cuda", for a requested "auto", "cpu" or "cuda".

    "auto" is CUDA when CTranslate2 sees a GPU. For "auto" and "cuda", cuBLAS 12 is
    preloaded first (see preload_cublas).
    """
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {requested!r}")
    if requested == "cpu":
        return "cpu"
    preload_cublas()
    if requested == "cuda":
        return "cuda"
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def compute_type_for(device: str, requested: str, device_index: int = 0) -> str:
    """The CTranslate2 compute type to load with on ``device``.

    "default" is float16 on CUDA and int8 on the CPU; "auto" is kept; any other type is
    kept when ``ctranslate2.get_supported_compute_types`` lists it for the device, else
    "auto" is used (with a warning). Raises RuntimeError when CTranslate2 cannot query
    the device (CUDA on a machine without a usable GPU).
    """
    wanted = requested
    if requested == "default":
        wanted = "float16" if device == "cuda" else "int8"
    if wanted == "auto":
        return wanted
    supported = ctranslate2.get_supported_compute_types(device, device_index)
    if wanted not in supported:
        logger.warning(
            "compute type %s is not supported on %s (supported: %s); using auto",
            wanted,
            device,
            ", ".join(sorted(supported)),
        )
        return "auto"
    return wanted


def default_batch_size(device: str) -> int:
    """Utterances per generate() call when AsrOptions.max_batch_size is 0.

    On the GPU, CTranslate2's performance guide says to use a larger batch whenever
    possible; the limit is memory. With beam search CTranslate2 replicates each utterance
    per beam and caches the cross-attention keys and values of every decoder layer:
    batch x beam x (50 encoder positions per second of window) x 2 x d_model x layers x
    2 bytes in float16. For Whisper base (6 layers, d_model 512) at batch 64, beam 5 and
    30 s windows that is 5.9 GB; for large-v3 (32 layers, 1280) it is 79 GB, more than an
    H100 holds, and 39 GB at batch 32.
    """
    return CUDA_MAX_BATCH if device == "cuda" else CPU_MAX_BATCH


# --------------------------------------------------------------------------- loading


def load_whisper(
    path: Path, options: AsrOptions, *, cpu_threads: int | None = None
) -> tuple[Any, str, str]:
    """Load the Whisper model on the configured device; fall back to the CPU if CUDA fails.

    Returns (model, device, compute type). On CUDA the model is loaded and one encoder
    pass is run (see warm_up); an error on the way (no device, no driver, no cuBLAS 12,
    no memory) is logged with its cause and fix, and the model is loaded on the CPU with
    ``cpu_threads`` threads (default: options.cpu_threads, 0 meaning every core).
    """
    device = choose_device(options.device)
    if device == "cuda":
        try:
            compute_type = compute_type_for("cuda", options.compute_type, options.device_index)
            model = ctranslate2.models.Whisper(
                str(path),
                device="cuda",
                device_index=options.device_index,
                compute_type=compute_type,
                inter_threads=options.inter_threads or GPU_INTER_THREADS,
            )
            warm_up(model, options.window_min_s)
            return model, "cuda", compute_type
        except (RuntimeError, ValueError, OSError) as exc:
            logger.warning(
                "cannot run Whisper on CUDA device %d (%s); falling back to the CPU. %s",
                options.device_index,
                exc,
                fix_for(str(exc)),
            )
    compute_type = compute_type_for("cpu", options.compute_type)
    threads = cpu_threads or options.cpu_threads or os.cpu_count() or 1
    inter = options.inter_threads or cpu_inter_threads(threads)
    model = ctranslate2.models.Whisper(
        str(path), device="cpu", compute_type=compute_type, inter_threads=inter,
        intra_threads=max(1, threads // inter),
    )  # fmt: skip
    return model, "cpu", compute_type


GPU_INTER_THREADS = 1
MAX_CPU_INTER_THREADS = 4


def cpu_inter_threads(threads: int) -> int:
    """Batches decoded at once on ``threads`` CPU threads when AsrOptions.inter_threads is 0.

    One per core, at most MAX_CPU_INTER_THREADS (the rest of the cores go to each batch's
    own threads): on the corpus, two single-threaded decodes at once on two cores got 1.9
    times the audio through of one two-threaded decode, for 0.68 of the CPU per audio
    second (benchmarks/asr_levers.py).
    """
    return max(1, min(threads, MAX_CPU_INTER_THREADS))


def warm_up(model: Any, window_s: float) -> None:
    """Encode one silent window, so that cuBLAS is opened and kernels are compiled now."""
    frames = max(WARM_UP_MIN_FRAMES, round(window_s * FRAMES_PER_S))
    frames += frames % 2
    features = np.zeros((1, int(model.n_mels), frames), dtype=np.float32)
    model.encode(ctranslate2.StorageView.from_array(features), to_cpu=True)


def fix_for(error: str) -> str:
    """What to do about an error CTranslate2 raised on CUDA."""
    if "libcublas" in error:
        return (
            f"CTranslate2 {ctranslate2.__version__} is built for CUDA {CT2_CUDA_MAJOR} and "
            f"needs {CUBLAS_SONAME}: {CUBLAS_FIX} (it is preloaded from "
            "site-packages/nvidia/cublas/lib) or put a CUDA 12 cuBLAS on LD_LIBRARY_PATH."
        )
    if "driver" in error.lower() or "no CUDA-capable device" in error:
        return (
            "No usable NVIDIA driver or GPU: check nvidia-smi; CTranslate2 4.x needs a "
            "driver for CUDA 12 or newer (R525+)."
        )
    if "out of memory" in error.lower():
        return "The GPU is out of memory: lower asr_batch_size or use a smaller model."
    return "Run `callqa gpu-check` to see what is missing."


# --------------------------------------------------------------------------- diagnosis


@dataclass
class GpuReport:
    """What ``callqa gpu-check`` shows; ``usable`` says whether Whisper can run on CUDA."""

    ctranslate2_version: str
    cuda_devices: int
    device_index: int
    compute_types: dict[str, list[str]]
    cuda_query_error: str | None
    cublas: CublasStatus
    driver_version: str | None
    driver_cuda_version: str | None
    model_check: str | None
    usable: bool
    verdict: str
    default_compute_type: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        cublas = self.cublas
        if cublas.loaded:
            cublas_text = f"{cublas.version or '?'} from {cublas.path} ({cublas.source})"
        else:
            cublas_text = f"not loadable: {cublas.error}"
        cuda_types = ", ".join(self.compute_types.get("cuda", [])) or (
            f"- ({self.cuda_query_error})" if self.cuda_query_error else "-"
        )
        driver = self.driver_version or "none found"
        if self.driver_cuda_version:
            driver += f" (CUDA {self.driver_cuda_version})"
        rows = [
            ("ctranslate2", f"{self.ctranslate2_version} (built for CUDA {CT2_CUDA_MAJOR})"),
            ("NVIDIA driver", driver),
            ("CUDA devices", str(self.cuda_devices)),
            ("compute types cpu", ", ".join(self.compute_types.get("cpu", []))),
            (f"compute types cuda:{self.device_index}", cuda_types),
            (f"cuBLAS {CT2_CUDA_MAJOR}", cublas_text),
            ("model on GPU", self.model_check or "not tried"),
            ("verdict", self.verdict),
        ]
        width = max(len(name) for name, _ in rows) + 2
        return [f"{name + ':':<{width}}{value}" for name, value in rows]


def driver_version(proc_path: Path = PROC_DRIVER_VERSION) -> str | None:
    """The NVIDIA kernel driver's version, from /proc or nvidia-smi; None without one."""
    try:
        text = proc_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    found = re.search(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+(?:\.\d+)+)", text)
    if found:
        return found.group(1)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0].strip() if out.strip() else ""
    return first or None


def driver_cuda_version() -> str | None:
    """The newest CUDA version the installed driver supports (cuDriverGetVersion)."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
        version = ctypes.c_int(0)
        if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0 or version.value <= 0:
            return None
    except (OSError, AttributeError):
        return None
    return f"{version.value // 1000}.{version.value % 1000 // 10}"


def check_model_on_gpu(path: Path, device_index: int = 0, compute_type: str = "default") -> str:
    """Load a Whisper model on CUDA and encode one window; raises what CTranslate2 raises."""
    chosen = compute_type_for("cuda", compute_type, device_index)
    model = ctranslate2.models.Whisper(
        str(path), device="cuda", device_index=device_index, compute_type=chosen
    )
    warm_up(model, CHECK_WINDOW_S)
    return f"{path.name} loaded and encoded on cuda:{device_index} as {chosen}"


def diagnose(
    model_path: Path | Callable[[], Path] | None = None, device_index: int = 0
) -> GpuReport:
    """Everything that decides whether Whisper can run on the GPU here, and a verdict.

    ``model_path`` (a folder, or a function giving one, called only when it is needed):
    when the GPU and cuBLAS are there, the model is loaded on the GPU and run once.
    """
    cublas = preload_cublas()
    devices = ctranslate2.get_cuda_device_count()
    compute_types = {"cpu": sorted(ctranslate2.get_supported_compute_types("cpu"))}
    query_error = None
    # Without a device the CUDA query is not made: it raises once, then answers {"float32"}.
    if devices > device_index:
        try:
            supported = ctranslate2.get_supported_compute_types("cuda", device_index)
            compute_types["cuda"] = sorted(supported)
        except (RuntimeError, ValueError) as exc:
            query_error = str(exc)
    defaults = {"cpu": "int8"}
    if "cuda" in compute_types:
        defaults["cuda"] = "float16" if "float16" in compute_types["cuda"] else "auto"
    report = GpuReport(
        ctranslate2_version=ctranslate2.__version__,
        cuda_devices=devices,
        device_index=device_index,
        compute_types=compute_types,
        cuda_query_error=query_error,
        cublas=cublas,
        driver_version=driver_version(),
        driver_cuda_version=driver_cuda_version(),
        model_check=None,
        usable=False,
        verdict="",
        default_compute_type=defaults,
    )
    report.usable, report.verdict = _verdict(report)
    if report.usable and model_path is not None:
        path = model_path() if callable(model_path) else model_path
        try:
            report.model_check = "ok: " + check_model_on_gpu(path, device_index)
        except (RuntimeError, ValueError, OSError) as exc:
            report.model_check = f"failed: {exc}"
            report.usable = False
            report.verdict = (
                f"not usable: Whisper fails on cuda:{device_index} ({exc}); "
                f"it would run on the CPU. {fix_for(str(exc))}"
            )
    return report


def _verdict(report: GpuReport) -> tuple[bool, str]:
    if report.cuda_devices <= report.device_index:
        if report.cuda_devices == 0:
            seen = "CTranslate2 sees no CUDA device"
        else:
            seen = f"there is no CUDA device {report.device_index}"
        if report.driver_version:
            cause = f"NVIDIA driver {report.driver_version} is installed but {seen}"
            if report.cuda_query_error:
                cause += f" ({report.cuda_query_error})"
        else:
            cause = f"no NVIDIA driver found and {seen}"
        return False, f"CPU only: {cause}; Whisper runs on the CPU"
    if report.driver_cuda_version:
        major = int(report.driver_cuda_version.split(".")[0])
        if major < CT2_CUDA_MAJOR:
            return False, (
                f"not usable: the driver supports CUDA {report.driver_cuda_version}; "
                f"CTranslate2 4.x needs CUDA {CT2_CUDA_MAJOR} or newer (R525+)"
            )
    if not report.cublas.loaded:
        return False, (
            f"not usable: a GPU is there but {CUBLAS_SONAME} cannot be loaded; "
            f"{CUBLAS_FIX}; Whisper would fall back to the CPU"
        )
    if report.cuda_query_error:
        return False, f"not usable: CTranslate2 cannot query CUDA ({report.cuda_query_error})"
    compute = report.default_compute_type.get("cuda", "auto")
    return True, (
        f"GPU path usable: {report.cuda_devices} CUDA device(s), cuBLAS "
        f"{report.cublas.version or '12'} ({report.cublas.source}), Whisper as {compute}"
    )
