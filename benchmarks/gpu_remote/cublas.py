"""Where cuBLAS lies on a machine, and a private folder that shows cuBLAS 13 as cuBLAS 12.

CTranslate2 4.x opens ``libcublas.so.12`` by name. A CUDA 13 image has
``libcublas.so.13`` only; the folder made by ``alias_folder`` holds links named as the
CUDA 12 libraries that point at the CUDA 13 ones, and goes first on LD_LIBRARY_PATH of a
new process (the loader reads that variable when a process starts, so the attempt with
the links runs in a process of its own). Standard library only.
"""

from __future__ import annotations

import contextlib
import glob
import os
import site
import subprocess
import sys
from pathlib import Path

NAMES = ("libcublas.so.12", "libcublasLt.so.12", "libcublas.so.13", "libcublasLt.so.13")
SYSTEM_GLOBS = (
    "/usr/local/cuda*/lib64",
    "/usr/local/cuda*/targets/*/lib",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/usr/local/nvidia/lib64",
    "/usr/local/lib",
)
WHEEL_SUBDIRS = ("nvidia/cu13/lib", "nvidia/cublas/lib", "nvidia/cu12/lib")
ALIASES = {"libcublas.so.12": "libcublas.so.13", "libcublasLt.so.12": "libcublasLt.so.13"}


def _search_dirs() -> list[Path]:
    dirs: list[Path] = []
    for pattern in SYSTEM_GLOBS:
        dirs += [Path(p) for p in sorted(glob.glob(pattern))]
    roots = list(sys.path)
    with contextlib.suppress(AttributeError):  # a virtual environment may lack it
        roots += site.getsitepackages()
    for root in roots:
        for sub in WHEEL_SUBDIRS:
            dirs.append(Path(root or ".") / sub)
    seen, out = set(), []
    for d in dirs:
        key = str(d.resolve()) if d.exists() else str(d)
        if key not in seen and d.is_dir():
            seen.add(key)
            out.append(d)
    return out


def _ldconfig() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    try:
        text = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return found
    for line in text.splitlines():
        name, _, path = line.strip().partition(" => ")
        name = name.split(" ", 1)[0]
        if name in NAMES:
            found.setdefault(name, []).append(path.strip())
    return found


def find_libraries() -> dict[str, list[str]]:
    """Every file found for each name of NAMES (the loader's cache, CUDA folders, the
    nvidia wheels on this Python's path); an empty list where there is none."""
    found: dict[str, list[str]] = {name: [] for name in NAMES}
    for name, paths in _ldconfig().items():
        found[name] += paths
    for d in _search_dirs():
        for name in NAMES:
            path = d / name
            if path.exists() and str(path) not in found[name]:
                found[name].append(str(path))
    return found


def alias_folder(folder: Path, found: dict[str, list[str]]) -> dict[str, str]:
    """Links ``libcublas.so.12`` -> a ``libcublas.so.13`` (and the same for cublasLt, whose
    own name is linked too, so that cuBLAS 13 finds its Lt from the same folder).

    Returns {link name: target}; empty when no ``libcublas.so.13`` was found.
    """
    if not found.get("libcublas.so.13"):
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}
    lib13 = Path(found["libcublas.so.13"][0]).resolve()
    lt_candidates = [lib13.parent / "libcublasLt.so.13", *map(Path, found["libcublasLt.so.13"])]
    lt13 = next((p.resolve() for p in lt_candidates if p.exists()), None)
    targets = {"libcublas.so.12": lib13, "libcublasLt.so.12": lt13, "libcublasLt.so.13": lt13}
    for link_name, target in targets.items():
        if target is None:
            continue
        link = folder / link_name
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(target, link)
        made[link_name] = str(target)
    return made
