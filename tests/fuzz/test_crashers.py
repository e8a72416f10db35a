"""Every input that once crashed or hung a fuzz target, replayed through that target.

`scripts/fuzz` keeps them under tests/fuzz/crashers/TARGET/; each must now be refused with
the parser's own error (or read) within a few seconds.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS

CRASHERS = Path(__file__).resolve().parent / "crashers"
LIMIT_S = 5

CASES = sorted(p for p in CRASHERS.glob("*/*") if p.is_file() and p.parent.name in TARGETS)


def test_every_crasher_folder_names_a_target() -> None:
    folders = [p.name for p in CRASHERS.iterdir() if p.is_dir()] if CRASHERS.is_dir() else []
    assert set(folders) <= set(TARGETS)


def _too_slow(signum: int, frame: object) -> None:
    raise TimeoutError(f"the input took more than {LIMIT_S} s")


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.name[:18]}" for p in CASES])
def test_crasher_is_handled(path: Path) -> None:
    run = TARGETS[path.parent.name].load()
    previous = signal.signal(signal.SIGALRM, _too_slow)
    signal.alarm(LIMIT_S)
    try:
        run(path.read_bytes())
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
