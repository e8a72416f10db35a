"""On the device: check the parts as they arrive, then join them and install the wheels.

Standard library only (nothing is installed yet when this runs). Layout under the pack
folder: ``part-NN/`` as carried, ``payload/`` (wheels, models, audio, joined), ``site/``
(the wheels installed with ``pip --target``), each kept between calls on a warm machine.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.gpu_remote.chunks import (
    PackError,
    check_pieces,
    join_files,
    load_files,
    read_manifest,
)

DEVICE_PYTHON = (3, 12)
# What the project runs on that the image is expected to have (their versions are not known
# before a machine is seen).
SURVEYED_PACKAGES = ("numpy", "numba", "llvmlite", "onnxruntime", "onnxruntime-gpu", "grpcio",
                     "protobuf", "pyyaml", "tqdm", "prometheus-client", "tokenizers",
                     "nvidia-cublas", "nvidia-cublas-cu12", "torch")  # fmt: skip
INSTALL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def receive(pack_dir: Path) -> dict[str, Any]:
    """Which parts and pieces are here and sound so far; raises PackError on a damaged one."""
    manifest = read_manifest(pack_dir)
    pieces = check_pieces(pack_dir, manifest)
    if pieces.damaged:
        raise PackError("damaged pieces (carry their parts again): " + ", ".join(pieces.damaged))
    parts = sorted(manifest["parts"])
    here = [p for p in parts if (pack_dir / p).is_dir()]
    return {
        "parts_here": here,
        "parts_missing": [p for p in parts if p not in here],
        "pieces_here": len(pieces.present),
        "pieces_missing": len(pieces.missing),
    }


def groups_complete(manifest: dict[str, Any], joined: list[str]) -> dict[str, bool]:
    done = set(joined)
    groups: dict[str, bool] = {}
    for f in load_files(manifest):
        groups[f.group] = groups.get(f.group, True) and f.path in done
    return groups


def install_wheels(wheels: list[Path], site: Path) -> dict[str, Any]:
    """``pip install --target site`` from the carried wheels alone (no index, no deps).

    On an interpreter other than the device's 3.12, pip is told to install for 3.12 on
    manylinux, so that the step can be tried here (what it installs cannot be imported
    here then)."""
    if not wheels:
        return {"ok": False, "error": "no wheels in the pack"}
    if site.exists():
        shutil.rmtree(site)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--no-deps",
        "--no-compile",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--target",
        str(site),
    ]
    foreign = sys.version_info[:2] != DEVICE_PYTHON
    if foreign:
        cmd += [
            "--only-binary=:all:",
            "--python-version",
            ".".join(map(str, DEVICE_PYTHON)),
            "--implementation",
            "cp",
        ]
        for name in INSTALL_PLATFORMS:
            cmd += ["--platform", name]
    done = subprocess.run([*cmd, *map(str, wheels)], capture_output=True, text=True)
    return {
        "ok": done.returncode == 0,
        "for_python": ".".join(map(str, DEVICE_PYTHON if foreign else sys.version_info[:2])),
        "wheels": [w.name for w in wheels],
        "error": done.stderr.strip()[-1500:] if done.returncode else None,
    }


def assemble(pack_dir: Path, *, install: bool = True) -> dict[str, Any]:
    """Join every complete file (refusing damaged pieces) and install the wheels."""
    manifest = read_manifest(pack_dir)
    payload = pack_dir / "payload"
    result = join_files(pack_dir, manifest, payload)
    groups = groups_complete(manifest, result["joined"])
    report: dict[str, Any] = {
        "groups": groups,
        "incomplete": result["incomplete"],
        "payload": str(payload),
    }
    if install:
        if not groups.get("wheels"):
            report["install"] = {"ok": False, "error": "the wheels are not all here"}
        else:
            wheels = sorted((payload / "wheels").glob("*.whl"))
            report["install"] = install_wheels(wheels, pack_dir / "site")
            if report["install"]["ok"]:
                marker = pack_dir / "site-python.txt"
                marker.write_text(report["install"]["for_python"] + "\n")
    return report


def survey() -> dict[str, Any]:
    """What the machine is: Python, GPU, driver, and where cuBLAS libraries lie."""
    from benchmarks.gpu_remote.cublas import find_libraries

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cublas_libraries": find_libraries(),
    }
    info["packages"] = installed_versions(SURVEYED_PACKAGES)
    smi = shutil.which("nvidia-smi")
    if smi:
        done = subprocess.run(
            [smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        info["nvidia_smi"] = (done.stdout or done.stderr).strip()
    else:
        info["nvidia_smi"] = None
    return info


def installed_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """The version of each package this Python finds (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def write_json(data: dict[str, Any], out: Path | None, name: str) -> None:
    text = json.dumps(data, indent=1, default=str)
    print(text, flush=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text + "\n", encoding="utf-8")
