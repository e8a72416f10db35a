"""systemd/install.sh into a temporary root, twice, and the units it installs checked by
systemd itself: `systemd-analyze verify` on the installed tree and `systemd-analyze
security --offline` on the unit files."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.asr.silero_model import SILERO_ONNX_SHA256

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "systemd"
UNITS = ("callqa.service", "callqa-admin.service")
# systemd-analyze security's levels, best first; "OK or better" is one of these.
OK_OR_BETTER = ("PERFECT", "SAFE", "OK")

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="install.sh creates a user and sets owners: it runs as root"
)


def run_install(root: Path, wheel: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ROOT": str(root),
        "CALLQA_PACKAGE": str(wheel),
        "PIP_ARGS": "--no-deps --no-index",
    }
    return subprocess.run(
        [str(SYSTEMD / "install.sh")], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A root installed into twice, with the administrator's settings edited in between;
    (root, the output of each run)."""
    wheels = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(wheels.glob("callqa-*.whl"))
    root = tmp_path_factory.mktemp("root")
    first = run_install(root, wheel)
    assert first.returncode == 0, first.stderr
    settings = root / "etc/callqa/callqa.toml"
    text = settings.read_text()
    assert 'sip_allowed_peers = "127.0.0.1,::1"' in text
    settings.write_text(text.replace("127.0.0.1,::1", "10.1.0.5"))
    installed_init = next((root / "opt/callqa/.venv/lib").glob("python3*/site-packages/core"))
    (installed_init / "__init__.py").write_text("raise ImportError('an old version')\n")
    second = run_install(root, wheel)
    assert second.returncode == 0, second.stderr
    return root, [first.stdout + first.stderr, second.stdout + second.stderr]


@needs_root
def test_install_twice_keeps_the_settings_and_upgrades_the_code(
    installed: tuple[Path, list[str]],
) -> None:
    root, (first, second) = installed
    passwd = (root / "etc/passwd").read_text().splitlines()
    users = [line.split(":") for line in passwd if line.startswith("callqa:")]
    assert len(users) == 1 and users[0][5] == "/var/lib/callqa"
    assert users[0][6] == "/usr/sbin/nologin"
    uid, gid = int(users[0][2]), int(users[0][3])

    data = (root / "var/lib/callqa").stat()
    assert (data.st_mode & 0o7777, data.st_uid, data.st_gid) == (0o750, uid, gid)
    etc = (root / "etc/callqa").stat()
    assert (etc.st_mode & 0o7777, etc.st_uid, etc.st_gid) == (0o750, 0, gid)
    settings = root / "etc/callqa/callqa.toml"
    assert (settings.stat().st_mode & 0o7777, settings.stat().st_gid) == (0o640, gid)
    assert 'sip_allowed_peers = "10.1.0.5"' in settings.read_text()  # kept
    assert "wrote" in first and f"kept {settings}" in second
    example = root / "etc/callqa/callqa.toml.example"
    assert example.read_text() == (SYSTEMD / "callqa.toml").read_text()
    assert "WARNING" not in first + second

    callqa = root / "opt/callqa/.venv/bin/callqa"
    assert os.access(callqa, os.X_OK)
    # The speech check's model, copied from the checkout's environment and hash-checked.
    silero = root / "opt/callqa/.venv/share/callqa/models/silero-vad/silero_vad.onnx"
    assert hashlib.sha256(silero.read_bytes()).hexdigest() == SILERO_ONNX_SHA256
    python = root / "opt/callqa/.venv/bin/python"
    check = subprocess.run([str(python), "-c", "import core.config"], capture_output=True)
    assert check.returncode == 0, check.stderr  # the second run replaced the broken copy
    for unit in UNITS:
        installed_unit = root / "usr/local/lib/systemd/system" / unit
        assert installed_unit.read_text() == (SYSTEMD / unit).read_text()
        wants = root / "etc/systemd/system/multi-user.target.wants" / unit
        assert os.readlink(wants) == f"/usr/local/lib/systemd/system/{unit}"


@needs_root
def test_systemd_analyze_verify_passes_on_the_installed_units(
    installed: tuple[Path, list[str]],
) -> None:
    """The installed tree with the host's own unit library (for sysinit.target and the
    rest) and `kill` (ExecReload): verify resolves every path inside the root."""
    root, _ = installed
    library = root / "usr/lib/systemd/system"
    if not library.exists():
        shutil.copytree("/usr/lib/systemd/system", library, symlinks=True)
        kill = shutil.which("kill", path="/usr/bin:/bin")
        assert kill is not None
        (root / "usr/bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(kill, root / "usr/bin/kill")
    run = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *UNITS],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Unknown or misspelt keys are only warned about: the output must be empty too.
    assert (run.returncode, run.stdout + run.stderr) == (0, "")


def exposure(unit: str) -> tuple[float, str]:
    run = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(SYSTEMD / unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", run.stdout)
    assert found, run.stdout + run.stderr
    return float(found.group(1)), found.group(2)


def test_systemd_analyze_security_scores_both_units_ok_or_better() -> None:
    daemon, daemon_level = exposure("callqa.service")
    admin, admin_level = exposure("callqa-admin.service")
    print(
        f"exposure: callqa.service {daemon} {daemon_level}, "
        f"callqa-admin.service {admin} {admin_level}"
    )
    assert daemon_level in OK_OR_BETTER and daemon < 2.5
    assert admin_level in OK_OR_BETTER and admin < 2.0


MDWE_PROBE = """
import ctypes, sys
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0):
    sys.exit(3)
import numba
numba.njit(lambda x: x + 1)(1)
"""


def _mdwe_supported() -> bool:
    probe = "import ctypes,sys; sys.exit(ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0)"
    return subprocess.run([sys.executable, "-c", probe]).returncode == 0


@pytest.mark.skipif(not _mdwe_supported(), reason="needs Linux 6.3+ (prctl PR_SET_MDWE)")
def test_memory_deny_write_execute_would_stop_the_jit() -> None:
    """The kernel's MDWE, the rule MemoryDenyWriteExecute= applies, stops Numba: the units
    must leave it off."""
    run = subprocess.run([sys.executable, "-c", MDWE_PROBE], capture_output=True, text=True)
    assert run.returncode == 1 and "cannot allocate executable memory" in run.stderr
    for unit in UNITS:
        assert "\nMemoryDenyWriteExecute=" not in (SYSTEMD / unit).read_text()


WORKLOAD = """
import os, socket, sqlite3, sys, tempfile
import numpy as np
from kernels.g711 import ulaw_decode, ulaw_encode
from kernels.logmel import log_mel_spectrogram
pcm = (np.sin(np.arange(16000) / 5.0) * 8000).astype(np.int16)
assert np.abs(ulaw_decode(ulaw_encode(pcm)).astype(int) - pcm).max() < 300
assert log_mel_spectrogram(pcm.astype(np.float32) / 32768).shape[0] == 80
with tempfile.TemporaryDirectory(dir=sys.argv[1]) as d:
    con = sqlite3.connect(os.path.join(d, "t.db"))
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t (x)"); con.execute("INSERT INTO t VALUES (1)"); con.commit()
for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
from concurrent import futures
import grpc
server = grpc.server(futures.ThreadPoolExecutor(2))
server.add_insecure_port("127.0.0.1:0"); server.start(); server.stop(None)
try:
    os.chown(sys.argv[1], 0, 0)
except PermissionError:
    print("chown refused")
"""


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (the groups' lists)"
)
def test_the_daemon_works_under_its_system_call_filter(tmp_path: Path) -> None:
    """The Numba kernels, SQLite in WAL mode, UDP and TCP sockets and a gRPC server run under
    callqa.service's filter, and a call outside it (chown, in @privileged) is refused."""
    run = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("syscall_filter.py")),
            str(SYSTEMD / "callqa.service"),
            sys.executable,
            "-c",
            WORKLOAD,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr
    assert "calls allowed" in run.stderr and run.stdout.strip() == "chown refused"
