"""`callqa admin serve` under waitress: a script logs in the way a person does."""

from __future__ import annotations

import http.cookiejar
import re
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from core.ports import free_port


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def _wait_line(proc: subprocess.Popen[str], pattern: str, timeout_s: float = 60) -> re.Match:
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r}")


def test_serve_with_new_admin_and_script_login(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "--data-dir", str(tmp_path), "admin", "serve",
         "--port", str(port), "--new-admin", "boss"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, umask=0o022,
    )
    try:
        password = _wait_line(proc, r"administrator boss, password (\S+)").group(1)
        _wait_line(proc, r"admin web on http://127\.0\.0\.1:")
        base = f"http://127.0.0.1:{port}"
        opener = _opener()
        for _ in range(50):
            try:
                page = opener.open(base + "/login", timeout=5).read().decode()
                break
            except urllib.error.URLError:
                time.sleep(0.1)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        body = urllib.parse.urlencode(
            {"username": "boss", "password": password, "csrf_token": token}).encode()
        response = opener.open(base + "/login", data=body, timeout=10)
        assert response.geturl().rstrip("/") == base
        listing = opener.open(base + "/", timeout=10).read().decode()
        assert "boss" in listing and 'id="call-table"' in listing
        # A wrong password is refused with 401.
        fresh = _opener()
        page = fresh.open(base + "/login", timeout=5).read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        body = urllib.parse.urlencode(
            {"username": "boss", "password": "not it at all", "csrf_token": token}).encode()
        try:
            fresh.open(base + "/login", data=body, timeout=10)
            raise AssertionError("a wrong password was accepted")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
        # Started with umask 022, the site still keeps its files to its own user.
        from admin_web.secret import SECRET_FILE

        for name in ("admin.db", "callqa.db", SECRET_FILE):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    finally:
        proc.terminate()
        proc.wait(timeout=10)
