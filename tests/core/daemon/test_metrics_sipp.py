"""The Prometheus endpoint of `callqa serve`, scraped while SIPp sends a SIPREC call.

SIPp replays 10 s of corpus call dev012 (from 41 s, where the agent says the labelled
forbidden phrase) as one SIPREC session at real pace. The endpoint is scraped before, during
and after the call: a call starts (live lines 1, calls started +1), RTP packets received
grow while it runs, and after the BYE the call is ended and scored (live lines 0), every
packet sent was received and none was malformed, transcripts and alerts went into the
latency histograms, the alerts and findings counted per rubric item are those a WatchAlerts
client received and the stored call holds, and the ASR, CPU and disk figures are there.
The daemon logs JSON lines: the call's start carries the box's call id and the SIP Call-ID,
its end the call id, the SIP server's records the Call-ID.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.ports import free_port, free_port_range
from proto import callqa_pb2 as pb
from tests.core.daemon.test_serve_sipp import _legs
from tests.core.serve_harness import Daemon, EventCollector
from tests.telephony.test_sipp_siprec import SCENARIO, run_sipp, sipp_failure, sipp_path, write_pcap

pytestmark = [pytest.mark.model, pytest.mark.corpus, pytest.mark.sipp, pytest.mark.raw_sockets]

CALL, START_S, END_S = "dev012", 41.0, 51.0
AGENT = "2001"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Every sample of the endpoint by (name, sorted labels)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def per_item(samples: Samples, name: str) -> dict[str, int]:
    """A counter labelled by rubric item, summed per item (those at 0 left out)."""
    out: Counter[str] = Counter()
    for (sample, labels), count in samples.items():
        if sample == name and count:
            out[dict(labels)["item"]] += int(count)
    return dict(out)


def wait_for(daemon: Daemon, port: int, check: Callable[[Samples], bool], timeout_s: float,
             what: str) -> Samples:  # fmt: skip
    deadline = time.monotonic() + timeout_s
    samples = scrape(port)
    while not check(samples):
        if time.monotonic() > deadline:
            callqa = {k: v for k, v in samples.items() if k[0].startswith("callqa_")}
            raise AssertionError(f"{what} never came: {sorted(callqa.items())}\n{daemon.log()}")
        time.sleep(0.25)
        samples = scrape(port)
    return samples


def test_metrics_move_with_a_sipp_call(
    tmp_path: Path, corpus_dir: Path, base_model_dir: Path
) -> None:
    sipp = sipp_path()
    labels = json.loads((corpus_dir / f"{CALL}.json").read_text(encoding="utf-8"))
    forbidden = [e for e in labels["events"] if e["item_id"] == "forbidden_words"]
    assert forbidden and START_S < forbidden[0]["start"] < forbidden[0]["end"] < END_S

    folder = tmp_path / "sipp"
    folder.mkdir()
    agent_ul, customer_ul = _legs(corpus_dir, CALL, START_S, END_S)
    per_stream = write_pcap(folder / "siprec_call.pcap", customer_ul, agent_ul)
    scenario = SCENARIO.read_text(encoding="utf-8").replace("100[call_number]", AGENT)
    (folder / "siprec.xml").write_text(scenario, encoding="utf-8")

    port = free_port()
    first, last = free_port_range(8)
    daemon = Daemon(tmp_path / "data", base_model_dir, rtp_range=(first, last), env={
        "CALLQA_AGENT_PATTERNS": "2000-2999", "CALLQA_METRICS_PORT": str(port),
        "CALLQA_LOG_FORMAT": "json",
    }).start()  # fmt: skip
    try:
        before = scrape(port)
        assert value(before, "callqa_live_lines") == 0
        assert value(before, "callqa_calls_started_total") == 0
        assert value(before, "callqa_rtp_packets_received_total") == 0
        assert value(before, "callqa_data_filesystem_free_bytes") > 0
        assert value(before, "callqa_asr_workers") >= 1
        watched = EventCollector(daemon.stub().WatchAlerts(pb.AlertFilter()))

        done: list[subprocess.CompletedProcess[bytes]] = []
        sender = threading.Thread(target=lambda: done.append(asyncio.run(
            run_sipp(sipp, folder, daemon.sip_port, 1, END_S - START_S,
                     scenario=folder / "siprec.xml")
        )))  # fmt: skip
        sender.start()
        during = wait_for(daemon, port, lambda s: value(s, "callqa_live_lines") == 1, 30,
                          "a live line")  # fmt: skip
        assert value(during, "callqa_calls_started_total") == 1
        grown = wait_for(
            daemon, port,
            lambda s: value(s, "callqa_rtp_packets_received_total")
            > value(during, "callqa_rtp_packets_received_total") + 100,
            10, "packets received growing during the call",
        )  # fmt: skip
        assert value(grown, "callqa_live_lines") == 1, "the call ended too early to be seen live"
        assert value(grown, "callqa_calls_ended_total", status="scored") == 0

        sender.join(END_S - START_S + 70)
        assert done and done[0].returncode == 0, sipp_failure(done[0], folder) if done else ""
        after = wait_for(
            daemon, port, lambda s: value(s, "callqa_calls_ended_total", status="scored") == 1, 60,
            "the call ended and scored",
        )  # fmt: skip
        deadline = time.monotonic() + 10  # the stream's last alerts may still be on their way
        while len(watched.items) < sum(per_item(after, "callqa_alerts_total").values()):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        watched.cancel()
        stored = daemon.stub().ListCalls(pb.ListCallsRequest()).calls
        assert len(stored) == 1
        call = daemon.stub().GetCall(pb.CallRef(call_id=stored[0].call_id))
    finally:
        daemon.stop()

    assert value(after, "callqa_live_lines") == 0
    assert value(after, "callqa_calls_started_total") == 1
    assert value(after, "callqa_calls_ended_total", status="failed") == 0
    rtp = {k[0]: v for k, v in after.items() if k[0].startswith("callqa_rtp_")}
    assert value(after, "callqa_rtp_packets_received_total") == 2 * per_stream, rtp
    assert value(after, "callqa_rtp_packets_malformed_total") == 0, rtp
    # Every packet came (none lost on loopback); on a starved box some may come too late.
    assert rtp["callqa_rtp_packets_lost_total"] <= rtp["callqa_rtp_packets_late_total"], rtp

    finals = value(after, "callqa_transcript_latency_seconds_count", kind="final")
    assert finals >= 2, "the call's utterances are transcribed"
    assert value(after, "callqa_transcript_latency_seconds_sum", kind="final") > 0
    assert value(after, "callqa_transcript_latency_seconds_bucket", kind="final",
                 le="+Inf") == finals  # fmt: skip
    assert value(after, "callqa_asr_utterances_total") >= finals
    assert value(after, "callqa_asr_busy_seconds_total") > 0
    assert value(after, "callqa_asr_batch_size_count") >= 1
    assert value(after, "callqa_asr_queue_utterances") == 0

    # Alerts and findings per item: what a WatchAlerts client received and what was stored.
    alerts = per_item(after, "callqa_alerts_total")
    findings = per_item(after, "callqa_findings_total")
    assert alerts == dict(Counter(a.item_id for a in watched.items)), daemon.log()
    assert findings == dict(Counter(f.item_id for f in call.findings))
    assert sum(findings.values()) >= 1
    assert {dict(k[1])["rubric"] for k in after if k[0] == "callqa_findings_total"} == {
        "default-zh"}  # fmt: skip
    live_alerts = sum(1 for a in watched.items if a.live)
    assert value(after, "callqa_alert_latency_seconds_count") == live_alerts
    if "forbidden_words" not in alerts:  # the ASR's reading of the phrase, not the metrics
        print(f"\nno forbidden-phrase alert this time: {[a.evidence for a in watched.items]}")

    stages = {dict(k[1])["stage"]: v for k, v in after.items()
              if k[0] == "callqa_stage_cpu_seconds_total"}  # fmt: skip
    assert set(stages) == {"receive", "dsp", "asr", "rules", "storage", "grpc", "other"}
    assert stages["asr"] > 0 and stages["receive"] > 0

    print(
        f"\nscraped during the call: {value(grown, 'callqa_rtp_packets_received_total'):.0f} "
        f"packets received; after: {value(after, 'callqa_rtp_packets_received_total'):.0f} of "
        f"{2 * per_stream} sent, {finals:.0f} transcripts, alerts {alerts}, findings {findings}, "
        f"CPU s per stage {stages}"
    )
    records = [json.loads(line) for line in daemon.log_path.read_text().splitlines()
               if line.startswith("{")]  # fmt: skip
    assert records, daemon.log()
    assert {"ts", "level", "logger", "thread", "stage", "message"} <= set(records[0])
    started = [r for r in records if r.get("call_id") and r.get("sip_call_id")]
    assert len(started) == 1 and "started" in started[0]["message"], records
    call_id, sip_call_id = started[0]["call_id"], started[0]["sip_call_id"]
    assert any(r.get("call_id") == call_id and "ended" in r["message"] for r in records)
    assert any(r.get("sip_call_id") == sip_call_id and r["logger"] == "telephony.server"
               for r in records)  # fmt: skip
