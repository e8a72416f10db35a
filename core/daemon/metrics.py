"""The Prometheus endpoint of `callqa serve` (``metrics_host``:``metrics_port``, ``/metrics``).

Most figures already live in the objects that do the work; :class:`DaemonCollector` reads
them when Prometheus scrapes, so the hot paths carry no metrics code:

* calls: live lines and the engine's call counters;
* RTP: the packet counts of every leg of the recording server and of the mirror port, those
  of calls that ended (the bridges sum them) plus those of the calls in progress
  (``RtpLeg.counts_taken``), and the datagrams the kernel dropped on the daemon's UDP
  sockets (``/proc/net/udp``);
* ASR: the scheduler's queue, busy time, batch sizes and totals;
* CPU seconds per pipeline stage (``core.stage_cpu``) and the free space of the data folder;
* retention: what the daily passes deleted since start, their failures, the last pass.

What is an event in time is observed as it happens: :class:`EventMetrics` observes the live
engine's call events as they are published (``EventHub.observe``) and keeps the transcript
and alert latency histograms and the alerts and findings per rubric item. Only calls the
box keeps count there (a capacity benchmark's calls do not).

Counters never go back: a figure that is the sum of parts read at different moments (a call
that just ended is in neither the live nor the ended sum for an instant) is reported as the
highest value seen so far.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client import Counter as PrometheusCounter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import start_http_server

from core import stage_cpu
from core.capacity.observe import SocketDrops
from core.config import ConfigError, Settings
from core.daemon.retention import RetentionJob
from core.live.engine import LiveEngine
from core.live.events import CallEvent, LiveAlert, TranscriptLine

logger = logging.getLogger(__name__)

PREFIX = "callqa"
LATENCY_BUCKETS_S = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
"""Transcript and alert latency buckets: the live target is 2 s at p95."""
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
RTP_METRICS = {  # packet count (telephony.rtp.LegStats) -> metric name, help
    "received": ("rtp_packets_received", "RTP packets received (known payload type)."),
    "lost": ("rtp_packets_lost", "RTP packets that never arrived in time."),
    "late": ("rtp_packets_late", "RTP packets that arrived after their audio was played out."),
    "duplicates": ("rtp_packets_duplicate", "RTP packets received twice."),
    "malformed": ("rtp_packets_malformed", "Datagrams on RTP ports that are not RTP."),
    "unknown_payload": ("rtp_packets_unknown_payload", "RTP packets of an unknown payload type."),
}
MAX_CALLS_FOLLOWED = 100_000
"""Calls whose rubric is remembered for their alerts; past it the oldest are forgotten (a
call whose end was missed must not hold memory for ever)."""


class MetricSources(Protocol):
    """What the endpoint reads: the running daemon (``core.daemon.serve.Daemon``)."""

    settings: Settings
    engine: LiveEngine | None
    sip_server: Any
    """``telephony.server.RecordingServer``, when SIP is on."""
    sip_bridge: Any
    """``core.ingest.sip_bridge.SipBridge``, when SIP is on."""
    follower: Any
    """``telephony.follow.CallFollower`` of the mirror port, when one is followed."""
    mirror_bridge: Any
    """``core.ingest.sip_bridge.MirrorBridge``, when a mirror port is followed."""
    retention: Any
    """``core.daemon.retention.RetentionJob``, once the daemon started."""


class _Rising:
    """Counters reported as the highest value seen (see the module notes)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def __call__(self, value: float, *key: str) -> float:
        with self._lock:
            best = max(value, self._seen.get(key, 0.0))
            self._seen[key] = best
            return best


def _copy(read: Callable[[], list[Any]]) -> list[Any]:
    """A list made from a table another thread may change meanwhile (tried again then)."""
    for _ in range(3):
        try:
            return read()
        except RuntimeError:  # changed size while copied
            continue
    return []


def packet_counts(sources: MetricSources) -> Counter[str] | None:
    """RTP packet counts of every leg received so far: those of the calls that ended (summed
    by the bridges) and those of the calls in progress. None when no call comes by RTP."""
    bridges = [b for b in (sources.sip_bridge, sources.mirror_bridge) if b is not None]
    if not bridges:
        return None
    totals: Counter[str] = Counter()
    for bridge in bridges:
        totals.update(dict(bridge.packets))
    legs: list[Any] = []
    server = sources.sip_server
    if server is not None:
        calls = _copy(lambda: list(server.calls.values()))
        legs += [slot.leg for call in calls for slot in list(call.session.slots)]
    if sources.follower is not None:
        legs += _copy(sources.follower.live_legs)
    for leg in legs:
        totals.update(leg.counts_taken)
    return totals


class DaemonCollector:
    """Figures read from the daemon's objects at each scrape (see the module notes)."""

    def __init__(self, sources: MetricSources) -> None:
        self.sources = sources
        self._rising = _Rising()
        self._drops = SocketDrops(os.getpid())

    def describe(self) -> Iterable[Metric]:
        return []  # collected on demand only: nothing is read at registration

    def collect(self) -> Iterator[Metric]:
        engine = self.sources.engine
        if engine is not None:
            yield from self._calls(engine)
            yield from self._asr(engine)
        yield from self._rtp()
        yield from self._host()
        if getattr(self.sources, "retention", None) is not None:
            yield from self._retention(self.sources.retention)

    def _counter(self, name: str, help_text: str, value: float) -> CounterMetricFamily:
        return CounterMetricFamily(f"{PREFIX}_{name}", help_text, value=self._rising(value, name))

    def _calls(self, engine: LiveEngine) -> Iterator[Metric]:
        live = sum(1 for call in engine.live_calls() if not call.ended)
        yield GaugeMetricFamily(f"{PREFIX}_live_lines", "Calls in progress.", value=live)
        counters = engine.counters
        yield self._counter("calls_started", "Calls started.", counters["calls_started"])
        ended = CounterMetricFamily(
            f"{PREFIX}_calls_ended", "Calls ended and filed, by outcome.", labels=["status"]
        )
        for status, key in (("scored", "calls_scored"), ("failed", "calls_failed")):
            ended.add_metric([status], self._rising(counters[key], "calls_ended", status))
        yield ended
        yield self._counter("calls_recovered", "Calls re-scored after a crash or stop.",
                            counters["recovered"])  # fmt: skip

    def _rtp(self) -> Iterator[Metric]:
        counts = packet_counts(self.sources)
        if counts is not None:
            for key, (name, help_text) in RTP_METRICS.items():
                yield self._counter(name, help_text, counts[key])
        yield self._counter(
            "udp_socket_drops", "Datagrams the kernel dropped on the daemon's UDP sockets "
            "(read at each scrape: drops of a socket closed since are not seen).",
            self._drops.update(),
        )  # fmt: skip
        yield GaugeMetricFamily(
            f"{PREFIX}_udp_receive_queue_bytes",
            "Bytes waiting unread in the daemon's UDP sockets, 90th percentile over the "
            "sockets: near zero while the receive path keeps up, growing while it falls behind.",
            value=self._drops.queue_p90_bytes,
        )

    def _asr(self, engine: LiveEngine) -> Iterator[Metric]:
        sched = engine.scheduler
        yield GaugeMetricFamily(f"{PREFIX}_asr_queue_utterances",
                                "Utterances waiting for the ASR or being transcribed.",
                                value=sched.backlog)  # fmt: skip
        memory_s, disk_s = sched.queued_audio_s_by_place
        queued = GaugeMetricFamily(f"{PREFIX}_asr_queue_audio_seconds",
                                   "Seconds of audio waiting for the ASR, by where it waits.",
                                   labels=["place"])  # fmt: skip
        queued.add_metric(["memory"], memory_s)
        queued.add_metric(["disk"], disk_s)
        yield queued
        yield GaugeMetricFamily(f"{PREFIX}_asr_workers", "Threads calling the model at once.",
                                value=sched.workers)  # fmt: skip
        stats = sched.stats
        yield self._counter("asr_busy_seconds", "Seconds the ASR workers spent transcribing, "
                            "summed over workers.", stats.busy_s)  # fmt: skip
        yield self._counter("asr_audio_seconds", "Seconds of audio transcribed.", stats.audio_s)
        yield self._counter("asr_utterances", "Utterances (and parts) transcribed.",
                            stats.utterances)  # fmt: skip
        yield self._counter("asr_partials_skipped", "Parts of utterances skipped under load.",
                            stats.partials_skipped)  # fmt: skip
        yield self._counter("asr_early_skipped", "Early decodes (live_early_decode_s) skipped "
                            "under load.", stats.early_skipped)  # fmt: skip
        early = engine.early.counts
        yield self._counter("asr_early_decodes", "Turns transcribed early, in a pause before "
                            "their end was certain (live_early_decode_s).",
                            early["queued"])  # fmt: skip
        yield self._counter("asr_early_decodes_used", "Early decodes a finished utterance took "
                            "its transcript from.", early["used"])  # fmt: skip
        yield self._counter("asr_failures", "Batches the model failed on.", stats.failures)
        yield self._counter("asr_not_speech_utterances", "Finished utterances the speech check "
                            "dropped as not speech (asr_speech_check).",
                            engine.counters["not_speech_utterances"])  # fmt: skip
        yield batch_histogram(dict(stats.batch_sizes))

    def _host(self) -> Iterator[Metric]:
        cpu = CounterMetricFamily(f"{PREFIX}_stage_cpu_seconds",
                                  "CPU seconds used by each stage of the pipeline.",
                                  labels=["stage"])  # fmt: skip
        for stage, seconds in stage_cpu.snapshot().items():
            cpu.add_metric([stage], self._rising(seconds, "stage_cpu", stage))
        yield cpu
        try:
            usage = shutil.disk_usage(self.sources.settings.data_dir)
        except OSError:
            return
        yield GaugeMetricFamily(f"{PREFIX}_data_filesystem_free_bytes",
                                "Bytes free for the daemon on the data folder's file system.",
                                value=usage.free)  # fmt: skip
        yield GaugeMetricFamily(f"{PREFIX}_data_filesystem_size_bytes",
                                "Size of the data folder's file system in bytes.",
                                value=usage.total)  # fmt: skip


    def _retention(self, job: RetentionJob) -> Iterator[Metric]:
        deleted = CounterMetricFamily(
            f"{PREFIX}_retention_deleted", "What retention deleted since the daemon started: "
            "whole calls, recordings, transcripts, and recording files removed from disk.",
            labels=["kind"],
        )  # fmt: skip
        for kind in ("calls", "recordings", "transcripts", "files"):
            deleted.add_metric([kind], job.deleted[kind])
        yield deleted
        yield self._counter("retention_failures", "Retention passes that failed.", job.failures)
        if job.last is not None and job.last_run_at is not None:
            yield GaugeMetricFamily(f"{PREFIX}_retention_last_run_timestamp_seconds",
                                    "When the last retention pass ended (Unix time).",
                                    value=job.last_run_at)  # fmt: skip
            yield GaugeMetricFamily(f"{PREFIX}_retention_last_run_seconds",
                                    "How long the last retention pass took.",
                                    value=job.last.elapsed_s)  # fmt: skip
            yield GaugeMetricFamily(f"{PREFIX}_retention_held_calls",
                                    "Calls the last pass kept because they are under review "
                                    "or appeal.", value=len(job.last.held))  # fmt: skip


def batch_histogram(sizes: dict[int, int]) -> HistogramMetricFamily:
    """The ASR batch sizes so far (a count per size) as a Prometheus histogram."""
    buckets: list[tuple[str, float]] = []
    for bound in BATCH_BUCKETS:
        buckets.append((str(bound), sum(n for size, n in sizes.items() if size <= bound)))
    buckets.append(("+Inf", sum(sizes.values())))
    return HistogramMetricFamily(
        f"{PREFIX}_asr_batch_size", "Utterances per batch the model transcribed.",
        buckets=buckets, sum_value=sum(size * n for size, n in sizes.items()),
    )  # fmt: skip


class EventMetrics:
    """Latencies, alerts and findings, observed from the engine's call events on one thread."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.transcript_latency = Histogram(
            f"{PREFIX}_transcript_latency_seconds",
            "From the end of an utterance's speech to its transcript, by kind (a finished "
            "utterance or a part of one still going on).",
            ["kind"], buckets=LATENCY_BUCKETS_S, registry=registry,
        )  # fmt: skip
        self.alert_latency = Histogram(
            f"{PREFIX}_alert_latency_seconds",
            "From the end of the speech (or event) behind an alert to the alert.",
            buckets=LATENCY_BUCKETS_S, registry=registry,
        )  # fmt: skip
        self.alerts = PrometheusCounter(
            f"{PREFIX}_alerts", "Alerts raised during calls, by rubric item.",
            ["rubric", "item", "severity"], registry=registry,
        )  # fmt: skip
        self.findings = PrometheusCounter(
            f"{PREFIX}_findings", "Findings of the calls scored, by rubric item.",
            ["rubric", "item", "severity"], registry=registry,
        )  # fmt: skip
        for kind in ("final", "partial"):  # shown from the start, at 0
            self.transcript_latency.labels(kind)
        self._rubric_of: dict[str, str] = {}
        self._lock = threading.Lock()  # events of different calls come on different threads
        self._engine: LiveEngine | None = None

    def follow(self, engine: LiveEngine) -> None:
        self._engine = engine
        engine.hub.observe(self.observe)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.hub.unobserve(self.observe)

    def observe(self, event: CallEvent) -> None:
        """Count one event (on the thread that publishes it; see ``EventHub.observe``)."""
        if event.internal:
            return
        with self._lock:
            self._count(event)

    def _count(self, event: CallEvent) -> None:
        if event.kind == "started":
            self._rubric_of[event.call_id] = str(event.data.get("rubric_id", ""))
            if len(self._rubric_of) > MAX_CALLS_FOLLOWED:
                del self._rubric_of[next(iter(self._rubric_of))]
        elif event.kind == "transcript":
            line: TranscriptLine = event.data
            if line.latency_ms is not None:
                kind = "partial" if line.partial else "final"
                self.transcript_latency.labels(kind).observe(line.latency_ms / 1000.0)
        elif event.kind == "alert":
            alert: LiveAlert = event.data
            rubric = self._rubric_of.get(event.call_id) or self._rubric_now(event.call_id)
            self.alerts.labels(rubric, alert.finding.item_id, alert.finding.severity).inc()
            if alert.live:
                self.alert_latency.observe(alert.latency_ms / 1000.0)
        elif event.kind == "scored":
            for finding in event.data.findings:
                self.findings.labels(event.data.rubric_id, finding.item_id,
                                     finding.severity).inc()  # fmt: skip
        elif event.kind == "ended":
            self._rubric_of.pop(event.call_id, None)

    def _rubric_now(self, call_id: str) -> str:
        """The rubric of a call whose start was not seen (one re-scored after a restart)."""
        call = None if self._engine is None else self._engine.find(call_id)
        return "" if call is None else call.rubric.id


class MetricsEndpoint:
    """The registry and its HTTP server; :meth:`start` once the engine runs, then :meth:`stop`."""

    def __init__(self, sources: MetricSources) -> None:
        self.sources = sources
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.registry.register(DaemonCollector(sources))
        self.events = EventMetrics(self.registry)
        self.port: int | None = None
        self._server: Any = None

    def start(self) -> int:
        """Serve ``/metrics``; returns the bound port. Raises ConfigError when it is taken."""
        settings = self.sources.settings
        if self.sources.engine is not None:
            self.events.follow(self.sources.engine)
        try:
            self._server, _thread = start_http_server(
                settings.metrics_port, addr=settings.metrics_host, registry=self.registry
            )
        except OSError as exc:
            self.events.close()
            raise ConfigError(
                f"setting 'metrics_port': cannot listen on {settings.metrics_host}:"
                f"{settings.metrics_port} ({exc}); choose a free port, or 0 to turn metrics off"
            ) from exc
        self.port = int(self._server.server_port)
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.events.close()
