"""A real capture of a SIPp call, written by tcpdump on loopback, through `callqa import-pcap`.

SIPp places a plain SIP call to a SIPp UAS (`-sn uas`) and replays the caller's audio as one
PCMU stream from a pcap; tcpdump writes what crossed the loopback interface; the import
follows the dialog, learns the RTP ports from the offer and the answer, and records the
call. Nothing is lost on loopback, so the caller's channel must equal what was sent, sample
for sample. Needs sipp (Debian sip-tester), tcpdump and root (both capture and replay use
raw sockets).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.audio.wav import read_wav
from core.ports import free_port
from kernels.g711 import ulaw_decode, ulaw_encode
from tests.telephony.test_sipp_siprec import write_pcap

HOST = "127.0.0.1"
SCENARIO = Path(__file__).parent / "scenarios" / "plain_uac_pcap.xml"
REPO = Path(__file__).resolve().parents[2]
AUDIO_S = 2.0

pytestmark = [pytest.mark.sipp, pytest.mark.tcpdump, pytest.mark.raw_sockets]


def _caller_audio() -> np.ndarray:
    """Two seconds of a gliding tone with a pause, as G.711 mu-law codes."""
    t = np.arange(int(AUDIO_S * 8000)) / 8000
    x = 0.3 * np.sin(2 * np.pi * (300 + 200 * t) * t)
    x[6000:8000] = 0.0
    return ulaw_encode(np.round(x * 32767).astype(np.int16))


def test_tcpdump_capture_of_a_sipp_call_imports_sample_exact(tmp_path: Path) -> None:
    codes = _caller_audio()
    write_pcap(tmp_path / "plain_call.pcap", codes.tobytes(), b"")
    shutil.copy(SCENARIO, tmp_path / SCENARIO.name)
    uas_port, uac_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    uas_media, uac_media = 18200, 18300  # below the ephemeral range, above SIP's ports
    capture = tmp_path / "call.pcap"
    dump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "-n", "-w", str(capture),
         f"udp and (port {uas_port} or port {uac_port} or portrange 18200-18400)"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    uas = None
    try:
        time.sleep(1.0)  # tcpdump opens its socket
        uas = subprocess.Popen(
            ["sipp", "-sn", "uas", "-i", HOST, "-p", str(uas_port), "-mp", str(uas_media),
             "-m", "1", "-nostdin", "-timeout", "20"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.3)
        uac = subprocess.run(
            ["sipp", f"{HOST}:{uas_port}", "-sf", SCENARIO.name, "-s", "1001", "-i", HOST,
             "-p", str(uac_port), "-mp", str(uac_media), "-m", "1", "-nostdin",
             "-timeout", "20"],
            cwd=tmp_path, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert uac.returncode == 0, uac.stdout[-2000:] + uac.stderr[-2000:]
        uas.wait(timeout=10)
        time.sleep(0.3)
    finally:
        if uas is not None and uas.poll() is None:
            uas.kill()
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=10)

    out_dir = tmp_path / "imported"
    proc = subprocess.run(
        [sys.executable, "-m", "core.cli", "--data-dir", str(tmp_path / "data"), "import-pcap",
         str(capture), "--no-score", "--json", "--out-dir", str(out_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (call,) = json.loads(proc.stdout)["calls"]
    rec = read_wav(call["recording"])
    # The callee (a SIPp UAS) is the agent on the left and sent nothing; the caller is the
    # customer on the right, and is the audio sent, sample for sample.
    customer = np.round(rec.channels[1] * 32768).astype(np.int16)
    sent = ulaw_decode(codes)
    offset = int(np.flatnonzero(customer)[0]) - int(np.flatnonzero(sent)[0])
    assert 0 <= offset < 800  # the caller's leg starts within 0.1 s of the call's start
    assert np.array_equal(customer[offset : offset + len(sent)], sent)
    assert call["end_reason"] == "bye" and call["customer_lost"] == 0
    assert call["callee"].startswith("sip:1001@") and "+8613900000077" in call["caller"]
    assert not np.any(np.round(rec.channels[0] * 32768).astype(np.int16))
