"""`callqa doctor` on real conditions: held ports, a read-only data folder, a damaged
database, a settings file with unknown names, a model that does not load."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.cli import main
from core.cli.doctor import box
from core.cli.doctor.result import Status
from core.ports import free_port, free_port_range


def write_settings(path: Path, data_dir: Path, **values: Any) -> Path:
    """A settings file: the data folder, loopback ports that are free now, and ``values``."""
    rtp_first, rtp_last = free_port_range(4)
    settings = {
        "data_dir": str(data_dir),
        "sip_host": "127.0.0.1",
        "sip_port": free_port(socket.SOCK_DGRAM),
        "rtp_port_first": rtp_first,
        "rtp_port_last": rtp_last,
        "grpc_host": "127.0.0.1",
        "grpc_port": free_port(),
        "admin_port": free_port(),
        "metrics_port": free_port(),
        "sip_allowed_peers": "10.1.0.5,10.2.0.0/24",
        **values,
    }
    lines = [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def doctor(
    capsys: pytest.CaptureFixture[str], config: Path, *checks: str, strict: bool = False
) -> tuple[int, dict[str, Any]]:
    """Run `callqa --config CONFIG doctor --json --only ...`; (exit status, results by name)."""
    argv = ["--config", str(config), "doctor", "--json"] + [f"--only={c}" for c in checks]
    code = main(argv + (["--strict"] if strict else []))
    out = json.loads(capsys.readouterr().out)
    return code, {c["name"]: c for c in out["checks"]}


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CALLQA_"):
            monkeypatch.delenv(name)


def test_all_well_exits_zero_and_a_warning_fails_only_with_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_settings(tmp_path / "callqa.toml", tmp_path / "data")
    (tmp_path / "data").mkdir()
    checks = (
        "settings",
        "sip-port",
        "rtp-ports",
        "grpc-port",
        "admin-port",
        "metrics-port",
        "peers",
        "database",
    )
    code, results = doctor(capsys, config, *checks)
    assert code == 0, results
    assert all(r["status"] == "ok" for r in results.values()), results
    assert set(results) == {
        "settings",
        "sip port",
        "rtp ports",
        "grpc port",
        "admin port",
        "metrics port",
        "allowed peers",
        "database",
    }

    loopback_only = write_settings(
        tmp_path / "lo.toml", tmp_path / "data", sip_host="0.0.0.0", sip_allowed_peers="127.0.0.1"
    )
    code, results = doctor(capsys, loopback_only, "peers")
    assert code == 0 and results["allowed peers"]["status"] == "warn"
    assert "sip_allowed_peers" in results["allowed peers"]["fix"]
    code, _ = doctor(capsys, loopback_only, "peers", strict=True)
    assert code == 1


def test_ports_held_by_real_sockets_fail_and_name_the_holder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_settings(tmp_path / "callqa.toml", tmp_path)
    text = config.read_text()
    values = {k.strip(): v.strip() for k, v in (line.split("=") for line in text.splitlines())}
    with contextlib.ExitStack() as held:
        sip = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        sip.bind(("127.0.0.1", int(values["sip_port"])))
        rtp = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        rtp.bind(("127.0.0.1", int(values["rtp_port_first"]) + 2))
        admin = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        admin.bind(("0.0.0.0", int(values["admin_port"])))  # the wildcard covers 127.0.0.1
        admin.listen()
        code, results = doctor(capsys, config, "sip-port", "rtp-ports", "admin-port", "grpc-port")
    assert code == 1
    me = f"pid {os.getpid()}"
    sip_result = results["sip port"]
    assert sip_result["status"] == "fail"
    assert f"{values['sip_port']}/udp" in sip_result["message"] and me in sip_result["message"]
    assert "sip_port" in sip_result["fix"]
    rtp_result = results["rtp ports"]
    assert rtp_result["status"] == "fail"
    assert f"1 port(s) in use: {int(values['rtp_port_first']) + 2}" in rtp_result["message"]
    assert results["admin port"]["status"] == "fail" and me in results["admin port"]["message"]
    assert results["grpc port"]["status"] == "ok"
    # Released, the same ports pass.
    code, results = doctor(capsys, config, "sip-port", "rtp-ports", "admin-port")
    assert code == 0, results


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only for this process: a read-only bind mount as root (whom file
    modes do not stop), mode 0555 otherwise."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_read_only_data_folder_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    (data / "recordings").mkdir(parents=True)
    config = write_settings(tmp_path / "callqa.toml", data, sip_max_sessions=1)
    code, results = doctor(capsys, config, "data-folder")
    assert code == 0 and results["data folder"]["status"] == "ok", results
    with read_only(data / "recordings"):
        code, results = doctor(capsys, config, "data-folder")
    assert code == 1
    found = results["data folder"]
    assert found["status"] == "fail"
    assert f"cannot write in {data / 'recordings'}" in found["message"]
    assert "ReadWritePaths" in found["fix"]
    assert [p.name for p in data.iterdir()] == ["recordings"]  # the probe left nothing

    logs = tmp_path / "logs"
    logs.mkdir()
    config = write_settings(tmp_path / "log.toml", data, log_file=str(logs / "callqa.log"))
    with read_only(logs):
        code, results = doctor(capsys, config, "data-folder")
    assert code == 1 and f"log_file {logs / 'callqa.log'}" in results["data folder"]["message"]
    assert not (logs / "callqa.log").exists()


def test_damaged_database_fails_integrity_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "callqa.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE utterances (id INTEGER PRIMARY KEY, text TEXT)")
    con.execute("CREATE INDEX by_text ON utterances (text)")
    con.executemany(
        "INSERT INTO utterances (text) VALUES (?)", [(f"utterance {i} " * 8,) for i in range(3000)]
    )
    con.commit()
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    config = write_settings(tmp_path / "callqa.toml", tmp_path)
    code, results = doctor(capsys, config, "database")
    assert code == 0 and results["database"]["message"].endswith("callqa.db"), results

    pages = db.stat().st_size // page_size
    with open(db, "r+b") as f:  # overwrite the middle of the file, past the schema page
        f.seek(page_size * (pages // 2) + 100)
        f.write(os.urandom(page_size * 3))
    code, results = doctor(capsys, config, "database")
    assert code == 1
    assert results["database"]["status"] == "fail"
    assert str(db) in results["database"]["message"]
    assert ".recover" in results["database"]["fix"]

    (tmp_path / "admin.db").write_bytes(b"not a database at all" * 100)
    db.unlink()
    code, results = doctor(capsys, config, "database")
    assert code == 1 and "admin.db: cannot be read" in results["database"]["message"]


def test_unknown_settings_are_named_and_the_other_checks_still_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_settings(tmp_path / "callqa.toml", tmp_path)
    with open(config, "a", encoding="utf-8") as f:
        f.write('sip_prot = 5070\nrecording_format = "mp3"\n')
    code, results = doctor(capsys, config, "settings", "database")
    assert code == 1
    message = results["settings"]["message"]
    assert "'sip_prot' (did you mean 'sip_port'?)" in message
    assert "'recording_format'" in message
    assert results["database"]["status"] == "ok"  # ran on the defaults and flags

    config.write_text('sip_port = "five"\n', encoding="utf-8")
    code, results = doctor(capsys, config, "settings")
    assert code == 1 and "'sip_port' must be a int" in results["settings"]["message"]


def test_real_process_exit_status_and_text(tmp_path: Path) -> None:
    config = write_settings(tmp_path / "callqa.toml", tmp_path)
    with open(config, "a", encoding="utf-8") as f:
        f.write("grpc_prot = 1\n")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.cli",
            "--config",
            str(config),
            "doctor",
            "--only",
            "settings",
            "--only",
            "peers",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("FAIL  settings") and "'grpc_prot'" in lines[0]
    assert lines[1].strip().startswith("fix: rename or remove them")
    assert "the other checks ran on the defaults" in lines[0]
    # The defaults allow loopback peers only.
    assert lines[2].startswith("WARN  allowed peers")
    assert lines[-1] == "2 checks: 1 failed, 1 warnings"


@pytest.mark.model
def test_model_not_assembled_warns_without_writing_and_a_bad_model_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model_data_dir: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, results = doctor(capsys, write_settings(tmp_path / "a.toml", empty), "model")
    assert code == 0 and results["model"]["status"] == "warn"
    assert "not assembled" in results["model"]["message"]
    assert list(empty.iterdir()) == []

    code, results = doctor(capsys, write_settings(tmp_path / "b.toml", model_data_dir), "model")
    assert code == 0 and results["model"]["status"] == "ok", results

    bad = tmp_path / "bad-model"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    (bad / "vocabulary.json").write_text("[]")
    (bad / "model.bin").write_bytes(b"\0" * 4096)
    config = write_settings(tmp_path / "c.toml", empty, model=str(bad))
    code, results = doctor(capsys, config, "model")
    assert code == 1 and "does not load" in results["model"]["message"]


@pytest.mark.no_cuda
def test_gpu_missing_fails_only_when_cuda_is_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, results = doctor(capsys, write_settings(tmp_path / "a.toml", tmp_path), "gpu")
    assert code == 0 and results["gpu"]["status"] == "warn"
    assert results["gpu"]["message"].startswith("CPU only")
    config = write_settings(tmp_path / "b.toml", tmp_path, asr_device="cuda")
    code, results = doctor(capsys, config, "gpu")
    assert code == 1 and results["gpu"]["status"] == "fail"


def test_adjtimex_structure_matches_the_c_library() -> None:
    """The kernel fills 208 bytes of struct timex on 64-bit Linux; a shorter structure
    would be overrun."""
    if ctypes.sizeof(ctypes.c_long) == 8:
        assert ctypes.sizeof(box._Timex) == 208
    reading = box.kernel_clock()
    result = box.check_clock()
    if reading is not None:
        assert (result.status is Status.OK) == reading[0]
        assert reading[1] >= 0


def cpu_tree(root: Path, governor: str, driver: str, **files: str) -> Path:
    """A folder laid out as /sys/devices/system/cpu, for two CPUs."""
    for n in (0, 1):
        freq = root / f"cpu{n}" / "cpufreq"
        freq.mkdir(parents=True)
        (freq / "scaling_governor").write_text(governor + "\n")
        (freq / "scaling_driver").write_text(driver + "\n")
        for name, value in files.items():
            target = root / f"cpu{n}" / name.replace("__", "/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(value + "\n")
    return root


def test_cpu_throttling_read_from_sysfs_files(tmp_path: Path) -> None:
    fast = cpu_tree(
        tmp_path / "a",
        "performance",
        "acpi-cpufreq",
        cpufreq__cpuinfo_max_freq="3000000",
        cpufreq__scaling_max_freq="3000000",
        thermal_throttle__core_throttle_count="0",
    )
    assert box.check_cpu(fast).status is Status.OK
    slow = cpu_tree(
        tmp_path / "b",
        "powersave",
        "acpi-cpufreq",
        cpufreq__cpuinfo_max_freq="3000000",
        cpufreq__scaling_max_freq="1200000",
        thermal_throttle__package_throttle_count="17",
    )
    result = box.check_cpu(slow)
    assert result.status is Status.WARN
    assert "powersave" in result.message and "1200 of 3000 MHz" in result.message
    assert "34 times" in result.message and "cooling" in result.fix
    assert box.check_cpu(cpu_tree(tmp_path / "c", "powersave", "intel_pstate")).status is Status.OK
    assert box.check_cpu(tmp_path / "none").message.startswith("unknown")


def test_speech_check_runs_the_installed_model_and_fails_without_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.asr import silero_model

    config = write_settings(tmp_path / "on.toml", tmp_path / "data", asr_speech_check=True)
    code, results = doctor(capsys, config, "speech-check")
    assert code == 0 and "runs on the CPU" in results["speech-check"]["message"], results
    empty = tmp_path / "no-model"
    monkeypatch.setattr(silero_model, "default_model_dir", lambda: empty)
    code, results = doctor(capsys, config, "speech-check")
    assert code == 1 and results["speech-check"]["status"] == "fail"
    assert "not installed" in results["speech-check"]["message"]
    assert "silero_model" in results["speech-check"]["fix"]
    empty.mkdir()
    (empty / silero_model.SILERO_FILE_NAME).write_bytes(b"not the model")
    code, results = doctor(capsys, config, "speech-check")
    assert code == 1 and "not the pinned" in results["speech-check"]["message"]
