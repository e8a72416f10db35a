"""SIPp, as an SBC, sends SIPREC calls with corpus audio to `callqa serve`; alerts come live.

Two calls at once, each its own SIPp process replaying a cut of a corpus call at real pace
(RFC 7865 metadata, two labelled streams, a re-INVITE, a BYE): dev012 from 40 s, where the
agent says the labelled forbidden phrase (你这话什么意思, 44.6-49.6 s), and the opening of
dev003, a clean call. A `WatchAlerts` client must receive the forbidden-phrase alert for the
first call while it is live, and no alert at all for the clean one; both calls are then
stored as scored SIPREC calls.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from core.ports import free_port_range
from proto import callqa_pb2 as pb
from tests.core.serve_harness import Daemon, EventCollector
from tests.telephony.test_sipp_siprec import (
    SCENARIO,
    run_sipp,
    sipp_failure,
    sipp_path,
    write_pcap,
)

pytestmark = [pytest.mark.model, pytest.mark.corpus, pytest.mark.sipp, pytest.mark.raw_sockets]

CUTS = {  # agent id: (corpus call, start s, end s)
    "2001": ("dev012", 40.0, 53.0),
    "2002": ("dev003", 0.0, 13.0),
}


def _legs(corpus_dir: Path, call: str, start_s: float, end_s: float) -> tuple[bytes, bytes]:
    from core.audio.wav import read_wav
    from kernels.g711 import ulaw_encode

    rec = read_wav(corpus_dir / f"{call}.wav")
    a, b = int(start_s * 8000), int(end_s * 8000)
    out = []
    for ch in rec.channels:
        pcm = (ch[a:b] * 32768.0).clip(-32768, 32767).astype("int16")
        out.append(bytes(ulaw_encode(pcm)))
    return out[0], out[1]


def test_siprec_calls_through_serve_raise_live_alerts(
    tmp_path: Path, corpus_dir: Path, base_model_dir: Path
) -> None:
    sipp = sipp_path()
    labels = json.loads((corpus_dir / "dev012.json").read_text(encoding="utf-8"))
    forbidden = [e for e in labels["events"] if e["item_id"] == "forbidden_words"]
    assert forbidden and 40.0 < forbidden[0]["start"] < forbidden[0]["end"] < 53.0
    clean = json.loads((corpus_dir / "dev003.json").read_text(encoding="utf-8"))
    assert clean["events"] == []

    first, last = free_port_range(16)
    daemon = Daemon(tmp_path / "data", base_model_dir, rtp_range=(first, last),
                    env={"CALLQA_AGENT_PATTERNS": "2000-2999"}).start()  # fmt: skip
    try:
        alerts = EventCollector(daemon.stub().WatchAlerts(pb.AlertFilter()))
        folders = {}
        for agent, (call, start_s, end_s) in CUTS.items():
            folder = tmp_path / agent
            folder.mkdir()
            agent_ul, customer_ul = _legs(corpus_dir, call, start_s, end_s)
            write_pcap(folder / "siprec_call.pcap", customer_ul, agent_ul)
            scenario = SCENARIO.read_text(encoding="utf-8").replace("100[call_number]", agent)
            (folder / "siprec.xml").write_text(scenario, encoding="utf-8")
            folders[agent] = folder

        async def both() -> list[object]:
            return list(await asyncio.gather(*(
                run_sipp(sipp, folder, daemon.sip_port, 1, CUTS[agent][2] - CUTS[agent][1],
                         scenario=folder / "siprec.xml")
                for agent, folder in folders.items()
            )))  # fmt: skip

        started = time.time()
        results = asyncio.run(both())
        for (_agent, folder), done in zip(folders.items(), results, strict=True):
            assert done.returncode == 0, sipp_failure(done, folder)  # type: ignore[attr-defined]

        stub = daemon.stub()
        deadline = time.monotonic() + 90
        calls = []
        while time.monotonic() < deadline:
            calls = [c for c in stub.ListCalls(pb.ListCallsRequest()).calls
                     if c.status == pb.CALL_STATUS_SCORED]  # fmt: skip
            if len(calls) == 2:
                break
            time.sleep(0.5)
        alerts.cancel()
        assert len(calls) == 2, daemon.log()
        by_agent = {c.agent_id: c for c in calls}
        assert set(by_agent) == set(CUTS)
        assert all(c.source == pb.CALL_SOURCE_SIPREC for c in calls)

        bad = [a for a in alerts.items if a.agent_id == "2001"]
        good = [a for a in alerts.items if a.agent_id == "2002"]
        assert good == [], [(a.item_id, a.evidence) for a in good]
        hits = [a for a in bad if a.item_id == "forbidden_words"]
        assert hits, ([(a.item_id, a.evidence) for a in alerts.items], daemon.log())
        alert = hits[0]
        assert alert.call_id == by_agent["2001"].call_id
        assert "你这话什么意思" in alert.evidence or "不知道" in alert.evidence, alert.evidence
        # Raised while the call was live: before the SIPp run ended (13 s of audio).
        assert alert.raised_at.ToNanoseconds() / 1e9 < started + (53.0 - 40.0) + 1.0
        assert alert.live
        timing = "late" if alert.late else "in time"
        print(f"\nforbidden-phrase alert {alert.latency_ms:.0f} ms after the speech ended"
              f" ({timing}); {len(alerts.items)} alerts in all")  # fmt: skip
        stored = stub.GetCall(pb.CallRef(call_id=alert.call_id))
        assert any(f.item_id == "forbidden_words" for f in stored.findings)
    finally:
        daemon.stop()
