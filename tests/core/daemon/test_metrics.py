"""The metrics endpoint's parts that need no daemon: the batch histogram, a taken port."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.config import ConfigError, Settings
from core.daemon.metrics import MetricsEndpoint, batch_histogram, packet_counts
from core.ports import LOOPBACK


def test_batch_sizes_become_a_cumulative_histogram() -> None:
    family = batch_histogram({1: 3, 3: 2, 8: 1})
    got = {s.labels.get("le", s.name): s.value for s in family.samples}
    assert [got[le] for le in ("1", "2", "4", "8", "16", "+Inf")] == [3, 3, 5, 6, 6, 6]
    assert got["callqa_asr_batch_size_count"] == 6
    assert got["callqa_asr_batch_size_sum"] == 3 * 1 + 2 * 3 + 8


def test_a_taken_port_is_refused_with_the_setting_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(data_dir=tmp_path, metrics_port=port)
        sources = SimpleNamespace(settings=settings, engine=None, sip_server=None, sip_bridge=None,
                              follower=None, mirror_bridge=None)  # fmt: skip
        with pytest.raises(ConfigError, match=r"metrics_port.*choose a free port"):
            MetricsEndpoint(sources).start()


def test_before_the_engine_runs_the_host_figures_are_served(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, metrics_port=0)
    sources = SimpleNamespace(settings=settings, engine=None, sip_server=None, sip_bridge=None,
                              follower=None, mirror_bridge=None)  # fmt: skip
    endpoint = MetricsEndpoint(sources)
    port = endpoint.start()
    try:
        text = urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=5).read()
    finally:
        endpoint.stop()
    names = {s.name for f in text_string_to_metric_families(text.decode()) for s in f.samples}
    assert {"callqa_data_filesystem_free_bytes", "callqa_stage_cpu_seconds_total",
            "callqa_udp_socket_drops_total", "callqa_udp_receive_queue_bytes",
            "process_cpu_seconds_total"} <= names  # fmt: skip
    assert "callqa_live_lines" not in names


def test_rtp_counts_of_a_mirrored_call_grow_live_and_stay_after_its_end(tmp_path: Path) -> None:
    from core.ingest.sip_bridge import MirrorBridge
    from kernels.g711 import ulaw_encode
    from telephony.follow import CallFollower
    from telephony.packets import UdpDatagram
    from tests.telephony import test_follow as calls

    not_live = SimpleNamespace(find=lambda _call_id: None)  # the engine is not under test
    bridge = MirrorBridge(not_live)  # type: ignore[arg-type]
    follower = CallFollower(tmp_path, bridge.on_call_ended)
    sources = SimpleNamespace(sip_server=None, sip_bridge=None, follower=follower,
                              mirror_bridge=bridge)  # fmt: skip
    caller = (calls.CALLER_IP, calls.CALLER_RTP)
    callee = (calls.CALLEE_IP, calls.CALLEE_RTP)
    d = calls.Dialog(call_id="mirrored-1")
    invite = d.request("INVITE", 1, calls.sdp(*caller), to_tag=False)
    ok = d.response(200, "OK", 1, "INVITE", calls.sdp(*callee))
    datagrams = [
        UdpDatagram(calls.T0, calls.CALLER_IP, 5060, calls.CALLEE_IP, 5060, invite),
        UdpDatagram(calls.T0 + 0.5, calls.CALLEE_IP, 5060, calls.CALLER_IP, 5060, ok),
    ]
    codes = ulaw_encode(calls.tone(1.0, 440))
    for (src, dst), ssrc, t0 in (((caller, callee), 1, 1.0), ((callee, caller), 2, 1.01)):
        datagrams += [UdpDatagram(t, *src, *dst, rtp)
                      for t, rtp in calls.rtp_stream(codes, 0, ssrc, calls.T0 + t0)]  # fmt: skip
    datagrams.sort(key=lambda dg: dg.timestamp_s)
    assert len(datagrams) == 102
    for dg in datagrams[:62]:
        follower.feed(dg)
    during = packet_counts(sources)
    assert during is not None and 40 <= during["received"] <= 60  # some wait in a leg's queue
    for dg in datagrams[62:]:
        follower.feed(dg)
    follower.close()
    assert follower.live_legs() == []
    after = packet_counts(sources)
    assert after is not None
    assert (after["received"], after["lost"], after["malformed"]) == (100, 0, 0)
