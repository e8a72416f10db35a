"""Regenerate the Python modules of the public gRPC API from the `.proto` files in `proto/`.

    python -m proto.build           # rewrite proto/callqa_pb2.py, .pyi and callqa_pb2_grpc.py
    python -m proto.build --check   # exit 1 if the committed modules differ from a fresh build

The compiler is grpcio-tools' bundled protoc, run from the repository root with ``-I.`` so
that the file is known as ``proto/callqa.proto`` and the generated service module imports
``from proto import callqa_pb2``. Its output depends on the grpcio-tools version: after an
upgrade, regenerate and commit the result.
"""

from __future__ import annotations

import argparse
import difflib
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROTO_FILES = ("proto/callqa.proto",)


def generated_files(proto_file: str) -> tuple[str, ...]:
    """The modules protoc writes for `proto_file` (paths relative to the repository root)."""
    stem = proto_file.removesuffix(".proto")
    return (f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py")


GENERATED = tuple(path for proto in PROTO_FILES for path in generated_files(proto))


def generate(out_dir: Path) -> None:
    """Compile every file of `PROTO_FILES` into `out_dir` (which mirrors the repository root)."""
    out = str(out_dir)
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-I.",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *PROTO_FILES,
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"protoc failed (exit {done.returncode}):\n{done.stderr.strip() or done.stdout}"
        )


def stale_files() -> list[str]:
    """Generated modules that differ from a fresh build of the `.proto` files (or are missing).

    Each entry is the path relative to the repository root followed by a short diff.
    """
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="callqa-proto-") as tmp:
        generate(Path(tmp))
        for rel in GENERATED:
            fresh = (Path(tmp) / rel).read_text(encoding="utf-8")
            committed_path = REPO / rel
            if not committed_path.is_file():
                problems.append(f"{rel}: missing")
                continue
            committed = committed_path.read_text(encoding="utf-8")
            if committed != fresh:
                diff = difflib.unified_diff(
                    committed.splitlines(),
                    fresh.splitlines(),
                    f"{rel} (committed)",
                    f"{rel} (fresh)",
                    lineterm="",
                    n=1,
                )
                lines = list(diff)
                shown = "\n".join(lines[:20]) + ("\n..." if len(lines) > 20 else "")
                problems.append(f"{rel}: differs from a fresh build\n{shown}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proto.build", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="build into a temporary folder; exit 1 if the committed modules differ",
    )
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = stale_files()
            for problem in problems:
                print(problem, file=sys.stderr)
            if problems:
                print(
                    "the generated modules are out of date: run `python -m proto.build`",
                    file=sys.stderr,
                )
                return 1
            print(f"up to date: {', '.join(GENERATED)}")
            return 0
        generate(REPO)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"wrote {', '.join(GENERATED)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
