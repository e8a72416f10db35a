"""The admin web's vendored front-end libraries and the SHA-256 manifest that pins them.

The built JavaScript files under ``admin_web/static/vendor`` are committed as they came from npm
(see the README.md there), so neither setup nor CI needs Node or a CDN. ``MANIFEST.sha256`` in the
same folder lists every file there except itself, in ``sha256sum`` format, with paths relative to
the folder (``cd admin_web/static/vendor && sha256sum -c MANIFEST.sha256`` verifies it as well).

    python -m admin_web.assets --check            # print problems, exit 1 if there are any
    python -m admin_web.assets --write-manifest   # rewrite MANIFEST.sha256 from the files
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

VENDOR_DIR: Path = Path(__file__).resolve().parent / "static" / "vendor"
MANIFEST_NAME = "MANIFEST.sha256"

# npm package -> the short name its vendored files carry: `<short>*.js` and `LICENSE.<short>.txt`.
PACKAGES: dict[str, str] = {
    "wavesurfer.js": "wavesurfer",
    "htmx.org": "htmx",
    "echarts": "echarts",
}

_LINE = re.compile(r"^(?P<digest>[0-9a-fA-F]{64}) [ *](?P<path>.+)$")


def _directory(directory: str | os.PathLike[str] | None) -> Path:
    return VENDOR_DIR if directory is None else Path(directory)


def package_for(filename: str) -> str | None:
    """The npm package a vendored file belongs to, judged by its name's prefix, or None."""
    base = PurePosixPath(filename).name
    for package, short in PACKAGES.items():
        if base == short or base.startswith((f"{short}.", f"{short}-")):
            return package
    return None


def licence_name(package: str) -> str:
    """The file name under which a package's licence is vendored, e.g. ``LICENSE.htmx.txt``."""
    return f"LICENSE.{PACKAGES[package]}.txt"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The lowercase hex SHA-256 of a file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _check_relative(name: str, where: str) -> None:
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or "\\" in name or "\n" in name:
        raise ValueError(f"{where}: path {name!r} is not a plain path inside the folder")


def read_manifest(directory: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Relative path -> lowercase hex digest, from the folder's MANIFEST.sha256.

    Raises FileNotFoundError if there is no manifest and ValueError on a malformed line, a
    duplicate entry or a path that would leave the folder.
    """
    manifest = _directory(directory) / MANIFEST_NAME
    entries: dict[str, str] = {}
    text = manifest.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{MANIFEST_NAME}:{number}"
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"{where}: not '<sha256 hex>  <relative path>': {line!r}")
        name = match["path"]
        _check_relative(name, where)
        if name in entries:
            raise ValueError(f"{where}: {name} is listed twice")
        entries[name] = match["digest"].lower()
    return entries


def vendored_files(directory: str | os.PathLike[str] | None = None) -> list[str]:
    """Every file under the folder except the manifest, as sorted POSIX relative paths."""
    root = _directory(directory)
    names = [
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and path != root / MANIFEST_NAME
    ]
    return sorted(names)


def check_manifest(directory: str | os.PathLike[str] | None = None) -> list[str]:
    """Problems with the folder against its manifest; an empty list means all is well.

    Reported: a missing or unreadable manifest, a listed file that is missing, a file whose hash
    differs from the listed one, and a file in the folder that the manifest does not list.
    """
    root = _directory(directory)
    try:
        entries = read_manifest(root)
    except FileNotFoundError:
        return [f"{MANIFEST_NAME} not found in {root}"]
    except ValueError as error:
        return [str(error)]
    problems: list[str] = []
    for name, expected in sorted(entries.items()):
        path = root / name
        if not path.is_file():
            problems.append(f"missing file: {name}")
            continue
        actual = file_sha256(path)
        if actual != expected:
            problems.append(f"hash mismatch: {name} (manifest {expected}, file {actual})")
    for name in vendored_files(root):
        if name not in entries:
            problems.append(f"not in manifest: {name}")
    return problems


def write_manifest(directory: str | os.PathLike[str] | None = None) -> Path:
    """Rewrite the folder's MANIFEST.sha256 from the files now in it; returns its path."""
    root = _directory(directory)
    lines = []
    for name in vendored_files(root):
        _check_relative(name, str(root))
        lines.append(f"{file_sha256(root / name)}  {name}\n")
    manifest = root / MANIFEST_NAME
    with open(manifest, "w", encoding="utf-8", newline="\n") as handle:
        handle.writelines(lines)
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m admin_web.assets",
        description="Check or rewrite the SHA-256 manifest of admin_web/static/vendor.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="verify the files against it")
    action.add_argument("--write-manifest", action="store_true", help="rewrite it from the files")
    parser.add_argument(
        "--dir", type=Path, default=None, help=f"the vendor folder (default: {VENDOR_DIR})"
    )
    args = parser.parse_args(argv)
    directory: Path | None = args.dir
    if args.write_manifest:
        manifest = write_manifest(directory)
        print(f"wrote {manifest} ({len(read_manifest(manifest.parent))} files)")
        return 0
    problems = check_manifest(directory)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"ok: {len(read_manifest(directory))} files match {MANIFEST_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
