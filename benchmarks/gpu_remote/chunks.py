"""Files cut into pieces, pieces grouped into parts that travel one per device call.

A pack is a folder (``.gpu-pack`` by default) with one sub-folder per part, ``part-01``,
``part-02``, ... Each part holds its pieces and a copy of ``manifest.json``, so that a part
alone says what it is and which other parts complete it. The manifest lists every payload
file with its size and SHA-256 and, for each of its pieces, the piece's name, part, size and
SHA-256. Joining checks every piece before it is used and every file after it is joined:
a damaged or missing piece is refused, naming it, and nothing half-joined is left in place.

Standard library only: the device runs this before anything is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FORMAT = 1
MIB = 1024 * 1024
COPY_BYTES = 4 * MIB


class PackError(Exception):
    """A pack that cannot be made, read or joined; the message names the piece or file."""


@dataclass(frozen=True)
class Piece:
    name: str
    part: int
    offset: int
    size: int
    sha256: str


@dataclass(frozen=True)
class PackedFile:
    path: str
    """Where the joined file goes, relative to the payload folder."""
    size: int
    sha256: str
    pieces: tuple[Piece, ...]
    group: str
    """What the file belongs to ("wheels", "base", "tiny", "audio"): a group whose files are
    not all there is reported missing, the others can still be used."""


def sha256_of(path: Path, start: int = 0, length: int | None = None) -> str:
    digest = hashlib.sha256()
    left = path.stat().st_size - start if length is None else length
    with open(path, "rb") as f:
        f.seek(start)
        while left > 0:
            block = f.read(min(COPY_BYTES, left))
            if not block:
                raise PackError(f"{path}: shorter than expected")
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def part_name(number: int) -> str:
    return f"part-{number:02d}"


def plan_pieces(
    files: Iterable[tuple[Path, str, str]], *, piece_bytes: int, part_bytes: int
) -> list[tuple[Path, PackedFile]]:
    """Cut ``(source, payload path, group)`` files into pieces and give each piece a part.

    Pieces are at most ``piece_bytes``; parts are filled in order to ``part_bytes``, a piece
    cut short where its part is full, so that every part but the last is full.
    """
    if piece_bytes <= 0 or part_bytes < piece_bytes:
        raise PackError(
            f"piece size {piece_bytes} must be positive and at most the part size {part_bytes}"
        )
    out: list[tuple[Path, PackedFile]] = []
    part, used = 1, 0
    for n, (source, dest, group) in enumerate(files):
        size = source.stat().st_size
        pieces: list[Piece] = []
        offset = 0
        while offset < size or (size == 0 and not pieces):
            if used >= part_bytes:
                part, used = part + 1, 0
            length = min(piece_bytes, size - offset, part_bytes - used)
            pieces.append(
                Piece(
                    f"f{n:03d}.p{len(pieces):03d}",
                    part,
                    offset,
                    length,
                    sha256_of(source, offset, length),
                )
            )
            used += length
            offset += length
            if size == 0:
                break
        out.append((source, PackedFile(dest, size, sha256_of(source), tuple(pieces), group)))
    return out


def write_pack(
    planned: list[tuple[Path, PackedFile]], pack_dir: Path, meta: dict[str, Any]
) -> dict[str, Any]:
    """Write every piece into its part folder, and the manifest into each part."""
    if pack_dir.exists():
        for old in pack_dir.glob("part-*"):
            shutil.rmtree(old)
    parts = sorted({p.part for _, f in planned for p in f.pieces})
    for number in parts:
        (pack_dir / part_name(number)).mkdir(parents=True, exist_ok=True)
    for source, packed in planned:
        with open(source, "rb") as src:
            for piece in packed.pieces:
                src.seek(piece.offset)
                with open(pack_dir / part_name(piece.part) / piece.name, "wb") as dst:
                    _copy(src, dst, piece.size)
    manifest = {
        "format": FORMAT,
        **meta,
        "parts": {
            part_name(n): sum(p.size for _, f in planned for p in f.pieces if p.part == n)
            for n in parts
        },
        "files": [_file_json(f) for _, f in planned],
    }
    text = json.dumps(manifest, indent=1)
    for number in parts:
        (pack_dir / part_name(number) / MANIFEST).write_text(text, encoding="utf-8")
    return manifest


def _file_json(f: PackedFile) -> dict[str, Any]:
    return {
        "path": f.path,
        "size": f.size,
        "sha256": f.sha256,
        "group": f.group,
        "pieces": [
            {"name": p.name, "part": p.part, "offset": p.offset, "size": p.size, "sha256": p.sha256}
            for p in f.pieces
        ],
    }


def _copy(src: Any, dst: Any, length: int) -> None:
    left = length
    while left > 0:
        block = src.read(min(COPY_BYTES, left))
        if not block:
            raise PackError("source file shrank while it was packed")
        dst.write(block)
        left -= len(block)


def read_manifest(pack_dir: Path) -> dict[str, Any]:
    """The manifest of any part present (all copies must agree)."""
    found = sorted(pack_dir.glob(f"part-*/{MANIFEST}"))
    if not found:
        raise PackError(f"{pack_dir}: no part with a {MANIFEST} (carry at least one part)")
    texts = {p.read_text(encoding="utf-8") for p in found}
    if len(texts) > 1:
        raise PackError(f"{pack_dir}: parts from different packs ({', '.join(map(str, found))})")
    manifest: dict[str, Any] = json.loads(texts.pop())
    if manifest.get("format") != FORMAT:
        raise PackError(
            f"{pack_dir}: manifest format {manifest.get('format')!r}, expected {FORMAT}"
        )
    return manifest


def load_files(manifest: dict[str, Any]) -> list[PackedFile]:
    return [
        PackedFile(
            f["path"],
            f["size"],
            f["sha256"],
            tuple(
                Piece(p["name"], p["part"], p["offset"], p["size"], p["sha256"])
                for p in f["pieces"]
            ),
            f["group"],
        )
        for f in manifest["files"]
    ]


@dataclass
class PieceCheck:
    present: list[str]
    missing: list[str]
    damaged: list[str]


def check_pieces(pack_dir: Path, manifest: dict[str, Any]) -> PieceCheck:
    """Which pieces are here, missing, or damaged (wrong size or SHA-256)."""
    result = PieceCheck([], [], [])
    for f in load_files(manifest):
        for p in f.pieces:
            path = pack_dir / part_name(p.part) / p.name
            label = f"{part_name(p.part)}/{p.name} ({f.path})"
            if not path.is_file():
                result.missing.append(label)
            elif path.stat().st_size != p.size or sha256_of(path) != p.sha256:
                result.damaged.append(label)
            else:
                result.present.append(label)
    return result


def join_files(pack_dir: Path, manifest: dict[str, Any], payload: Path) -> dict[str, list[str]]:
    """Join every file whose pieces are all here and sound into ``payload``.

    Returns {"joined": [...], "incomplete": [...]} by payload path. A damaged piece raises
    PackError (a damaged pack is not to be used in part); a file whose pieces are missing is
    left out and reported. Files are written under a temporary name and renamed when whole.
    """
    joined, incomplete = [], []
    for f in load_files(manifest):
        paths = [pack_dir / part_name(p.part) / p.name for p in f.pieces]
        if not all(path.is_file() for path in paths):
            incomplete.append(f.path)
            continue
        dest = payload / f.path
        if dest.is_file() and dest.stat().st_size == f.size and sha256_of(dest) == f.sha256:
            joined.append(f.path)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".joining")
        digest = hashlib.sha256()
        with open(tmp, "wb") as out:
            for piece, path in zip(f.pieces, paths, strict=True):
                data = path.read_bytes()
                if len(data) != piece.size or hashlib.sha256(data).hexdigest() != piece.sha256:
                    out.close()
                    tmp.unlink()
                    raise PackError(
                        f"piece {part_name(piece.part)}/{piece.name} of {f.path} is "
                        "damaged (size or SHA-256 differs from the manifest): "
                        "carry that part again"
                    )
                digest.update(data)
                out.write(data)
        if digest.hexdigest() != f.sha256:
            tmp.unlink()
            raise PackError(f"{f.path}: joined file's SHA-256 differs from the manifest")
        os.replace(tmp, dest)
        joined.append(f.path)
    return {"joined": joined, "incomplete": incomplete}
