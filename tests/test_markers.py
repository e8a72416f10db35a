"""The markers that say what a test needs from the machine (tests/conftest.py)."""

from __future__ import annotations

import tomllib
from types import SimpleNamespace

import pytest

from tests import conftest


def _item(name: str) -> pytest.Item:
    mark = getattr(pytest.mark, name).mark
    return SimpleNamespace(iter_markers=lambda: [mark])  # type: ignore[return-value]


def test_every_requirement_marker_is_registered() -> None:
    table = tomllib.loads((conftest.REPO / "pyproject.toml").read_text(encoding="utf-8"))
    registered = {m.split(":")[0] for m in table["tool"]["pytest"]["ini_options"]["markers"]}
    assert set(conftest.REQUIRED) | set(conftest.MACHINE) <= registered


def test_a_missing_tool_fails_the_test_saying_how_to_get_it_or_leave_it_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(conftest.REQUIRED, "speech", (lambda: False, "espeak-ng and sox"))
    with pytest.raises(pytest.fail.Exception, match=r"needs espeak-ng and sox.*-m 'not speech'"):
        conftest.pytest_runtest_setup(_item("speech"))


def test_what_this_machine_lacks_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(conftest.MACHINE, "raw_sockets", (lambda: False, "root or CAP_NET_RAW"))
    with pytest.raises(pytest.skip.Exception, match="needs root or CAP_NET_RAW"):
        conftest.pytest_runtest_setup(_item("raw_sockets"))


def test_what_is_there_lets_the_test_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(conftest.REQUIRED, "speech", (lambda: True, "espeak-ng and sox"))
    monkeypatch.setitem(conftest.MACHINE, "raw_sockets", (lambda: True, "root"))
    conftest.pytest_runtest_setup(_item("speech"))
    conftest.pytest_runtest_setup(_item("raw_sockets"))
