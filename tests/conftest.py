"""Shared fixtures (the labelled corpus beside the checkout, the embedded model built once)
and what marked tests need from the machine.

A test that needs something from the machine says so with a marker (registered in
pyproject.toml). What `scripts/setup` installs, and the corpus in ../shared, must be there:
a test marked for it fails, saying what is missing and how to get it, or to leave the test
out (``-m "not speech"``). What only some machines have (root, a box without CUDA, a C
compiler) skips the test with that reason, which the summary lists (``-ra``); nothing is
skipped from inside a test. A few slower variants of a test run only when ``-m`` names their
marker (`OPT_IN`); otherwise they are skipped, saying how to run them.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS_DIR = REPO.parent / "shared" / "corpus"
CORPUS_B_DIR = REPO.parent / "shared" / "corpus-b"


def _tools(*names: str) -> Callable[[], bool]:
    return lambda: all(shutil.which(name) for name in names)


def sbin_tool(name: str) -> str | None:
    """A program that may live in /usr/sbin, off an ordinary user's PATH (kamailio)."""
    return shutil.which(name, path=os.pathsep.join((os.environ.get("PATH", ""), "/usr/sbin")))


def _corpus_here() -> bool:
    return (CORPUS_DIR / "rubric.yaml").is_file()


@functools.cache
def _raw_sockets() -> bool:
    if not hasattr(socket, "AF_PACKET") or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    from telephony.capture import CaptureError, open_packet_socket

    try:
        open_packet_socket("lo").close()
    except CaptureError:
        return False
    return True


@functools.cache
def _no_cuda() -> bool:
    import ctranslate2

    from core.asr.device import preload_cublas

    return ctranslate2.get_cuda_device_count() == 0 and not preload_cublas().loaded


REQUIRED: dict[str, tuple[Callable[[], bool], str]] = {
    "corpus": (_corpus_here, f"the labelled corpus at {CORPUS_DIR} (../shared/corpus)"),
    "speech": (_tools("espeak-ng", "sox"), "espeak-ng and sox (scripts/setup installs them)"),
    "sipp": (_tools("sipp"), "sipp (Debian package sip-tester; scripts/setup installs it)"),
    "kamailio": (lambda: bool(sbin_tool("kamailio")),
                 "kamailio (Debian package kamailio; scripts/setup installs it)"),
    "baresip": (_tools("baresip"), "baresip (Debian package baresip-core; scripts/setup)"),
    "tcpdump": (_tools("tcpdump"), "tcpdump (scripts/setup installs it)"),
}
"""Marker: (is it here, what it is). Missing, the marked test fails."""
MACHINE: dict[str, tuple[Callable[[], bool], str]] = {
    "raw_sockets": (_raw_sockets, "root or CAP_NET_RAW (live capture, SIPp's pcap play)"),
    "no_cuda": (_no_cuda, "a box without CUDA 12's cuBLAS or a GPU (it checks that case)"),
    "cc": (_tools("cc"), "a C compiler, cc"),
}
"""Marker: (does this machine have it, what it is). Elsewhere the marked test is skipped."""
OPT_IN: dict[str, str] = {
    "crash_points": "more kill -9 points of the 20-call crash test (about 25 s each)",
}
"""Marker: what its tests add. They run only when ``-m`` names the marker."""


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers():
        if mark.name in OPT_IN and mark.name not in (item.config.option.markexpr or ""):
            pytest.skip(f"{OPT_IN[mark.name]}: run with -m {mark.name}")
        if mark.name in REQUIRED:
            here, what = REQUIRED[mark.name]
            if not here():
                pytest.fail(f"this test needs {what}; install it, or leave the test out with "
                            f"-m 'not {mark.name}'", pytrace=False)  # fmt: skip
        elif mark.name in MACHINE:
            here, what = MACHINE[mark.name]
            if not here():
                pytest.skip(f"needs {what}, which this machine has not")


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The labelled corpus; tests that use it carry the ``corpus`` marker."""
    if not _corpus_here():
        pytest.fail(f"the labelled corpus is not at {CORPUS_DIR} (it lives in ../shared/corpus)",
                    pytrace=False)  # fmt: skip
    return CORPUS_DIR


@pytest.fixture(scope="session")
def corpus_b_dir() -> Path:
    """The second labelled corpus (other domains and wording); tests carry ``corpus`` too."""
    if not (CORPUS_B_DIR / "rubric.yaml").is_file():
        pytest.fail(f"the second labelled corpus is not at {CORPUS_B_DIR} (../shared/corpus-b)",
                    pytrace=False)  # fmt: skip
    return CORPUS_B_DIR


@pytest.fixture(scope="session")
def model_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding the embedded base model, assembled once for the session."""
    from core.asr.models import resolve_model

    data_dir = tmp_path_factory.mktemp("model-data")
    resolve_model("base", data_dir)
    return data_dir


@pytest.fixture(scope="session")
def base_model_dir(model_data_dir: Path) -> Path:
    from core.asr.models import resolve_model

    return resolve_model("base", model_data_dir).path
