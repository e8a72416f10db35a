"""scripts/gpu-check-remote: pieces and parts, joining with hash checks, the call plan, the
cuBLAS links, and the check on a box without CUDA. Small made-up files stand in for the
wheels and models; the real pack, when one has been made, is checked as it is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.gpu_remote.__main__ import plan_lines
from benchmarks.gpu_remote.assemble import assemble, receive
from benchmarks.gpu_remote.chunks import (
    MANIFEST,
    PackError,
    check_pieces,
    plan_pieces,
    read_manifest,
    write_pack,
)
from benchmarks.gpu_remote.cublas import alias_folder
from benchmarks.gpu_remote.pack import CALL_LIMIT_MIB, DEFAULT_PACK, check_ignored

REPO = Path(__file__).resolve().parents[2]
PIECE, PART = 1000, 2500


def make_files(root: Path) -> list[tuple[Path, str, str]]:
    root.mkdir(parents=True)
    sizes = {"a.whl": 4321, "empty.txt": 0, "model.bin": 3999, "config.json": 17}
    groups = {"a.whl": "wheels", "empty.txt": "wheels", "model.bin": "base", "config.json": "base"}
    out = []
    for n, (name, size) in enumerate(sizes.items()):
        path = root / name
        path.write_bytes(bytes((i * 7 + n) % 251 for i in range(size)))
        folder = "wheels" if groups[name] == "wheels" else "models/base"
        out.append((path, f"{folder}/{name}", groups[name]))
    return out


@pytest.fixture
def pack(tmp_path: Path) -> tuple[Path, list[tuple[Path, str, str]]]:
    files = make_files(tmp_path / "src")
    planned = plan_pieces(files, piece_bytes=PIECE, part_bytes=PART)
    write_pack(planned, tmp_path / "pack", {"note": "test"})
    return tmp_path / "pack", files


def test_parts_are_full_but_never_over_and_each_holds_the_manifest(pack) -> None:
    pack_dir, files = pack
    manifest = read_manifest(pack_dir)
    total = sum(src.stat().st_size for src, _, _ in files)
    sizes = [manifest["parts"][p] for p in sorted(manifest["parts"])]
    assert sum(sizes) == total
    assert all(s <= PART for s in sizes) and all(s == PART for s in sizes[:-1])
    assert len(sizes) == -(-total // PART)
    for part in manifest["parts"]:
        on_disk = sum(p.stat().st_size for p in (pack_dir / part).iterdir() if p.name != MANIFEST)
        assert on_disk == manifest["parts"][part]
        assert (pack_dir / part / MANIFEST).is_file()
    assert all(p["size"] <= PIECE for f in manifest["files"] for p in f["pieces"])


def test_parts_arrive_one_by_one_then_join_to_the_same_bytes(pack, tmp_path: Path) -> None:
    pack_dir, files = pack
    device = tmp_path / "device"
    parts = sorted(p.name for p in pack_dir.iterdir())
    device.mkdir()
    for n, part in enumerate(parts, 1):
        shutil.copytree(pack_dir / part, device / part)
        seen = receive(device)
        assert seen["parts_here"] == parts[:n]
        assert seen["parts_missing"] == parts[n:]
        if n == 1:
            early = assemble(device, install=False)
            assert early["incomplete"], "a file with pieces in later parts cannot be whole yet"
    report = assemble(device, install=False)
    assert report["incomplete"] == [] and report["groups"] == {"wheels": True, "base": True}
    for src, dest, _ in files:
        assert (device / "payload" / dest).read_bytes() == src.read_bytes()


def test_a_damaged_piece_is_refused_and_nothing_half_joined_is_left(pack) -> None:
    pack_dir, _ = pack
    manifest = read_manifest(pack_dir)
    piece = manifest["files"][2]["pieces"][1]  # model.bin's second piece
    path = pack_dir / f"part-{piece['part']:02d}" / piece["name"]
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    assert check_pieces(pack_dir, manifest).damaged == [
        f"part-{piece['part']:02d}/{piece['name']} (models/base/model.bin)"
    ]
    with pytest.raises(PackError, match="damaged"):
        receive(pack_dir)
    with pytest.raises(PackError, match=piece["name"]):
        assemble(pack_dir, install=False)
    payload = pack_dir / "payload" / "models" / "base"
    assert not (payload / "model.bin").exists()
    assert not list(payload.glob("*.joining"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.gpu_remote",
            "--pack",
            str(pack_dir),
            "assemble",
            "--no-install",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "damaged" in done.stderr


def test_parts_from_two_packs_are_refused(pack) -> None:
    pack_dir, _ = pack
    other = json.loads((pack_dir / "part-01" / MANIFEST).read_text())
    other["note"] = "another pack"
    (pack_dir / "part-02" / MANIFEST).write_text(json.dumps(other))
    with pytest.raises(PackError, match="different packs"):
        read_manifest(pack_dir)


def test_the_plan_carries_one_part_per_call_and_ends_with_assemble_and_check(
    pack, monkeypatch
) -> None:
    from benchmarks.gpu_remote import pack as pack_module

    monkeypatch.setattr(pack_module, "tree_bytes", lambda: 5 * 2**20)
    pack_dir, _ = pack
    lines = plan_lines(pack_dir, budget_s=300)
    calls = [json.loads(line.split("run ", 1)[1]) for line in lines if line.startswith("  run ")]
    parts = sorted(read_manifest(pack_dir)["parts"])
    assert [c["carry"] for c in calls] == [[f"{pack_dir}/{p}"] for p in parts]
    assert calls[0]["command"].endswith("receive --survey")
    assert calls[-1]["command"] == (
        "bash scripts/gpu-check-remote assemble && "
        "bash scripts/gpu-check-remote check --budget-s 300"
    )
    assert calls[-1]["timeout_s"] == 600 and all(c["timeout_s"] < 600 for c in calls[:-1])
    assert not any("OVER" in line for line in lines)


def test_the_plan_flags_a_call_the_working_tree_has_grown_past_the_limit(pack, monkeypatch) -> None:
    from benchmarks.gpu_remote import pack as pack_module

    monkeypatch.setattr(pack_module, "tree_bytes", lambda: CALL_LIMIT_MIB * 2**20)
    calls = [line for line in plan_lines(pack[0]) if line.startswith("call ")]
    assert calls and all("OVER 64 MiB: pack again" in line for line in calls)


def test_cublas_13_is_shown_under_the_cuda_12_names(tmp_path: Path) -> None:
    lib = tmp_path / "cu13"
    lib.mkdir()
    (lib / "libcublas.so.13").write_bytes(b"x")
    (lib / "libcublasLt.so.13").write_bytes(b"y")
    found = {"libcublas.so.13": [str(lib / "libcublas.so.13")], "libcublasLt.so.13": []}
    made = alias_folder(tmp_path / "alias", found)
    alias = tmp_path / "alias"
    assert os.readlink(alias / "libcublas.so.12") == str(lib / "libcublas.so.13")
    assert (alias / "libcublasLt.so.12").read_bytes() == b"y"
    assert (alias / "libcublasLt.so.13").read_bytes() == b"y"
    assert set(made) == {"libcublas.so.12", "libcublasLt.so.12", "libcublasLt.so.13"}
    assert alias_folder(tmp_path / "none", {"libcublas.so.13": []}) == {}


@pytest.mark.no_cuda
def test_the_check_reports_no_cuda_device_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.gpu_remote",
            "--pack",
            str(tmp_path / "pack"),
            "check",
            "--no-site",
            "--model",
            str(tmp_path / "no-model"),
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    report = json.loads((out / "check.json").read_text())
    assert report["gpu_runs"] is False
    steps = {s["step"]: s for s in report["attempts"]["a_as_is"]["steps"]}
    assert steps["import ctranslate2"]["ok"] is True
    assert steps["cuda devices"]["ok"] is False
    assert "no CUDA device" in steps["cuda devices"]["error"]
    assert "load on cuda" not in steps
    assert "b_cublas13_as_12" in report["attempts"]
    assert "no CUDA device" in report["verdict"]
    assert "Traceback" not in done.stderr


def test_the_pack_folder_is_ignored_by_git() -> None:
    check_ignored(DEFAULT_PACK)


def test_the_real_pack_fits_the_calls_and_is_sound() -> None:
    if not (DEFAULT_PACK / "part-01" / MANIFEST).is_file():
        pytest.skip("no pack made here (scripts/gpu-check-remote pack)")
    manifest = read_manifest(DEFAULT_PACK)
    # Against the tree as it was when packed; `plan` checks the tree as it is now.
    tree, most = manifest["tree_bytes_at_pack"], manifest["part_bytes_max"]
    assert all(size <= most for size in manifest["parts"].values())
    assert most + tree < CALL_LIMIT_MIB * 2**20
    names = [f["path"] for f in manifest["files"]]
    assert any(n.startswith("wheels/ctranslate2-") and "cp312" in n for n in names)
    assert "models/base/model.bin" in names
    pieces = check_pieces(DEFAULT_PACK, manifest)
    assert pieces.missing == [] and pieces.damaged == []


@pytest.mark.no_cuda
def test_attempt_b_loads_the_linked_library_in_a_new_process(tmp_path: Path, monkeypatch) -> None:
    """A library Python does not load itself (libbz2) stands in for cuBLAS 13: the second
    attempt's process must map it, opened as libcublas.so.12 through the private folder
    first on its LD_LIBRARY_PATH."""
    from benchmarks.gpu_remote import check as check_module

    stand_in = next((p for p in (Path("/lib/x86_64-linux-gnu/libbz2.so.1.0"),
                                 Path("/usr/lib64/libbz2.so.1")) if p.exists()), None)  # fmt: skip
    if stand_in is None:
        pytest.skip("no libbz2 to stand in for cuBLAS 13")
    found = {"libcublas.so.13": [str(stand_in)], "libcublasLt.so.13": []}
    monkeypatch.setattr(check_module, "find_libraries", lambda: found)
    monkeypatch.setattr(check_module, "survey", lambda: {})
    pack_dir = tmp_path / "pack"
    check = check_module.Check(pack_dir, tmp_path / "out", 60, None, model=tmp_path / "none")
    assert check.run_all(bench_lines="1", bench_step_s=5) == 1
    a = check.report["attempts"]["a_as_is"]
    a_cublas = next(s for s in a["steps"] if s["step"] == "cublas 12")["value"]
    assert a_cublas["loaded"] is False and a_cublas["mapped"] == []
    b = check.report["attempts"]["b_cublas13_as_12"]
    assert b["LD_LIBRARY_PATH"].split(os.pathsep)[0] == str(pack_dir / "cublas12-alias")
    cublas = next(s for s in b["steps"] if s["step"] == "cublas 12")["value"]
    assert cublas["loaded"] is True
    assert str(stand_in.resolve()) in cublas["mapped"]
    assert "b_cublas13_as_12: cuda devices failed" in check.report["verdict"]
