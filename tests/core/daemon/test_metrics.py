"""The metrics endpoint's parts that need no daemon: the batch histogram, a taken port."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.config import ConfigError, Settings
from core.daemon.metrics import MetricsEndpoint, batch_histogram
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
        sources = SimpleNamespace(settings=settings, engine=None, sip_server=None, sip_bridge=None)
        with pytest.raises(ConfigError, match=r"metrics_port.*choose a free port"):
            MetricsEndpoint(sources).start()


def test_before_the_engine_runs_the_host_figures_are_served(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, metrics_port=0)
    sources = SimpleNamespace(settings=settings, engine=None, sip_server=None, sip_bridge=None)
    endpoint = MetricsEndpoint(sources)
    port = endpoint.start()
    try:
        text = urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=5).read()
    finally:
        endpoint.stop()
    names = {s.name for f in text_string_to_metric_families(text.decode()) for s in f.samples}
    assert {"callqa_data_filesystem_free_bytes", "callqa_stage_cpu_seconds_total",
            "callqa_udp_socket_drops_total", "process_cpu_seconds_total"} <= names  # fmt: skip
    assert "callqa_live_lines" not in names
