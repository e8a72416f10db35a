"""`callqa serve` following a call on a mirrored interface (here: loopback) and scoring it live.

SIPp places a plain SIP call to a SIPp UAS and replays the customer's side of a corpus call
(dev006 from 32 s, where the customer threatens to go to the consumer association, 消协, a
labelled complaint-risk keyword). The daemon is not a party to the call: it sees the SIP
and RTP on the interface, follows the dialog, and must transcribe the customer while the
call goes on, raise the complaint-risk alert, and store the call as a mirrored one.
Needs sipp and root (raw sockets for capture and for SIPp's pcap replay).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from core.ports import free_port
from proto import callqa_pb2 as pb
from tests.core.serve_harness import Daemon, EventCollector
from tests.telephony.test_sipp_siprec import write_pcap

pytestmark = [pytest.mark.model, pytest.mark.corpus, pytest.mark.sipp, pytest.mark.raw_sockets]

HOST = "127.0.0.1"
SCENARIO = Path(__file__).resolve().parents[2] / "telephony" / "scenarios" / "plain_uac_pcap.xml"
CUT = ("dev006", 32.0, 40.0)


def test_mirrored_call_is_followed_and_scored_live(
    tmp_path: Path, corpus_dir: Path, base_model_dir: Path
) -> None:
    from core.audio.wav import read_wav
    from kernels.g711 import ulaw_encode

    labels = json.loads((corpus_dir / "dev006.json").read_text(encoding="utf-8"))
    risk = next(e for e in labels["events"] if e["item_id"] == "complaint_risk")
    assert CUT[1] < risk["start"] < risk["end"] < CUT[2]
    rec = read_wav(corpus_dir / f"{CUT[0]}.wav")
    customer = rec.channels[1][int(CUT[1] * 8000) : int(CUT[2] * 8000)]
    codes = ulaw_encode((customer * 32768).clip(-32768, 32767).astype("int16"))
    write_pcap(tmp_path / "plain_call.pcap", bytes(codes), b"")
    # The scenario hangs up 2.5 s after the audio starts; let it play the whole cut.
    scenario = SCENARIO.read_text(encoding="utf-8")
    assert '<pause milliseconds="2500"/>' in scenario
    length_ms = int((CUT[2] - CUT[1]) * 1000) + 500
    scenario = scenario.replace(
        '<pause milliseconds="2500"/>', f'<pause milliseconds="{length_ms}"/>'
    )
    (tmp_path / SCENARIO.name).write_text(scenario, encoding="utf-8")

    daemon = Daemon(tmp_path / "data", base_model_dir, env={
        "CALLQA_MIRROR_INTERFACE": "lo", "CALLQA_MIRROR_AGENT_SIDE": "callee",
    }).start()  # fmt: skip
    uas = None
    try:
        stub = daemon.stub()
        alerts = EventCollector(stub.WatchAlerts(pb.AlertFilter()))
        uas_port, uac_port = free_port(), free_port()
        agent = str(secrets.choice(range(7000, 8000)))
        uas = subprocess.Popen(
            ["sipp", "-sn", "uas", "-i", HOST, "-p", str(uas_port), "-mp", "18500",
             "-m", "1", "-nostdin", "-timeout", "40"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.3)
        uac = subprocess.Popen(
            ["sipp", f"{HOST}:{uas_port}", "-sf", SCENARIO.name, "-s", agent, "-i", HOST,
             "-p", str(uac_port), "-mp", "18600", "-m", "1", "-nostdin", "-timeout", "40"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        # The mirror sees every call on loopback, other tests' too (they run beside this
        # one): this call is the one with this test's agent, the callee it dialled.
        live, mirrored = None, []
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and live is None:
            calls = stub.ListLiveCalls(pb.ListLiveCallsRequest()).calls
            mirrored = [c.agent_id for c in calls if c.source == pb.CALL_SOURCE_MIRROR]
            live = next((c for c in calls if c.source == pb.CALL_SOURCE_MIRROR
                         and c.agent_id == agent), None)  # fmt: skip
            time.sleep(0.2)
        assert live is not None, (agent, mirrored, daemon.log())
        out, _ = uac.communicate(timeout=40)
        assert uac.returncode == 0, out[-2000:]
        call = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            call = stub.GetCall(pb.CallRef(call_id=live.call_id))
            if call.status == pb.CALL_STATUS_SCORED:
                break
            time.sleep(0.5)
        alerts.cancel()
        assert call is not None and call.status == pb.CALL_STATUS_SCORED, daemon.log()
        assert call.source == pb.CALL_SOURCE_MIRROR
        said = "".join(u.text for u in call.transcript if u.speaker == pb.SPEAKER_CUSTOMER)
        assert "准备好材料" in said, said  # the keyword may be written 消鞋: same sound
        risk_alerts = [a for a in alerts.items
                       if a.call_id == live.call_id and a.item_id == "complaint_risk"]  # fmt: skip
        assert risk_alerts and risk_alerts[0].live, [(a.item_id, a.evidence) for a in alerts.items]
        assert Path(call.recording_path).is_file()
    finally:
        if uas is not None and uas.poll() is None:
            uas.kill()
        daemon.stop()
