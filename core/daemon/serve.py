"""`callqa serve`: the daemon. Every live line transcribed and scored as it happens.

It runs, in one process:

* the live engine (``core.live.engine``): the one Whisper model, the rules, the writer;
* the SIP/SIPREC recording server (``telephony.server``) on its own event-loop thread,
  bridged into the engine (``core.ingest.sip_bridge``);
* the gRPC API (``core.api``): streams in (`StreamAudio`), alerts and calls out, rubric
  management, capacity; with the standard health service and server reflection.
* the Prometheus metrics endpoint (``core.daemon.metrics``) unless ``metrics_port`` is 0;
* the daily retention pass (``core.daemon.retention``) when a ``retention_*_days`` is set.

SIGTERM and SIGINT stop it gracefully: the health service reports NOT_SERVING, new SIP calls
and OPTIONS probes get 503 while SIP calls in progress may go on to their BYE (up to
``sip_drain_s``), then the calls still in progress are ended and scored (within
``shutdown_grace_s``; the rest are scored at the next start). SIGHUP reloads the rubric
routes and the API's tokens from the settings (`Daemon.reload`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.api.auth import TOKEN_SETTINGS, check_exposure, load_tokens
from core.api.server import create_server, reload_tokens
from core.asr.types import Transcriber
from core.config import ConfigError, Settings, load_settings
from core.daemon.file_modes import make_private, use_private_umask
from core.daemon.retention import RetentionJob
from core.live.engine import LiveEngine
from core.live.routing import RubricRoutes
from core.logs import setup_logging
from core.ports import host_port
from core.stage_cpu import name_thread

logger = logging.getLogger(__name__)


@dataclass
class ServeOptions:
    config_file: Path | None = None
    overrides: Mapping[str, Any] | None = None
    environ: Mapping[str, str] | None = None


class Daemon:
    """The running daemon; :meth:`start`, then :meth:`stop` (or :meth:`run_forever`)."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        env = dict(os.environ if options.environ is None else options.environ)
        overrides = dict(options.overrides or {})
        self.settings: Settings = load_settings(options.config_file, overrides, env)
        try:
            RubricRoutes.parse(self.settings.rubric_routes)
        except ValueError as exc:
            raise ConfigError(f"setting 'rubric_routes': {exc}") from exc
        # Before anything starts: no gRPC API open to the network without authentication.
        check_exposure(self.settings.grpc_host, self.settings, load_tokens(self.settings))
        self.engine: LiveEngine | None = None
        self.grpc: Any = None
        self.grpc_port: int | None = None
        self.sip_server: Any = None
        self.sip_bridge: Any = None
        self.capture: Any = None
        self.follower: Any = None
        self.mirror_bridge: Any = None
        self.metrics: Any = None
        self.retention: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._stopping = False
        self.started_at = time.time()

    # ---------------------------------------------------------------- start

    def start(self) -> None:
        from core.scoring.recording import get_engine

        settings = self.settings
        make_private(settings.data_dir)
        sys.setswitchinterval(settings.gil_switch_interval_s)
        factory: Callable[[], Transcriber] = lambda: get_engine(settings)  # noqa: E731
        if not settings.asr_enabled:
            from core.live.features_only import FeaturesOnly

            logger.warning("asr_enabled is false: the front end runs, nothing is transcribed")
            factory = FeaturesOnly
        self.engine = LiveEngine(settings, factory)
        self.engine.start()
        self.retention = RetentionJob(settings)
        self.retention.start()
        if settings.metrics_port:  # first: a port taken stops the start before SIP binds
            self._start_metrics()
        address = host_port(settings.grpc_host, settings.grpc_port)
        self.grpc, self.grpc_port = create_server(address, self)
        if settings.sip_enabled:
            self._start_sip()
        if settings.mirror_interface:
            self._start_mirror()
        logger.info(
            "callqa serving: gRPC on %s%s, model %s on %s",
            host_port(settings.grpc_host, self.grpc_port), "" if self.sip_server is None else
            f", SIP on {host_port(settings.sip_host, self.sip_port or 0)}",
            settings.model, getattr(self.engine.scheduler.engine, "device", "?"),
        )  # fmt: skip

    @property
    def sip_port(self) -> int | None:
        if self.sip_server is None:
            return None
        port: int | None = self.sip_server.udp_port or self.sip_server.tcp_port
        return port

    def _start_sip(self) -> None:
        from core.ingest.receive import server_settings
        from core.ingest.sip_bridge import SipBridge
        from telephony.server import RecordingServer

        assert self.engine is not None
        settings = server_settings(self.settings)
        self.sip_bridge = SipBridge(self.engine)
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            name_thread("receive")
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self.sip_server = RecordingServer(
                settings, on_call_ended=self.sip_bridge.on_call_ended,
                on_call_started=self.sip_bridge.on_call_started,
            )  # fmt: skip
            try:
                self._loop.run_until_complete(self.sip_server.start())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._loop_thread = threading.Thread(target=run, name="callqa-sip", daemon=True)
        self._loop_thread.start()
        ready.wait()
        if errors:
            raise ConfigError(f"SIP could not start on port {settings.port}: {errors[0]}")

    def _start_metrics(self) -> None:
        from core.daemon.metrics import MetricsEndpoint

        self.metrics = MetricsEndpoint(self)
        port = self.metrics.start()
        logger.info("Prometheus metrics on http://%s:%d/metrics", self.settings.metrics_host, port)

    def _start_mirror(self) -> None:
        from core.ingest.sip_bridge import MirrorBridge
        from telephony.capture import CaptureError, follow_interface
        from telephony.follow import FollowOptions

        assert self.engine is not None
        interface = self.settings.mirror_interface
        try:
            options = FollowOptions(agent_side=self.settings.mirror_agent_side)
        except ValueError as exc:
            raise ConfigError(f"setting 'mirror_agent_side': {exc}") from exc
        bridge = self.mirror_bridge = MirrorBridge(self.engine)
        try:
            self.capture, self.follower = follow_interface(
                interface, self.settings.data_dir / "spool" / "mirror", bridge.on_call_ended,
                options, on_call_started=bridge.on_call_started,
            )  # fmt: skip
        except (CaptureError, OSError) as exc:
            raise ConfigError(
                f"setting 'mirror_interface': cannot capture on {interface}: {exc}"
            ) from exc
        (self.settings.data_dir / "spool" / "mirror").mkdir(parents=True, exist_ok=True)
        self.capture.start()
        logger.info("following mirrored calls on %s", interface)

    # ---------------------------------------------------------------- reload

    def reload(self) -> None:
        """Re-read the rubric routes and the API's tokens (SIGHUP); calls in progress keep
        their rubric, and calls to the API under way finish. Nothing changes when either is
        refused."""
        env = os.environ if self.options.environ is None else self.options.environ
        try:
            settings = load_settings(self.options.config_file, self.options.overrides or {}, env)
            routes = RubricRoutes.parse(settings.rubric_routes)
            # Only the tokens change: the address and TLS stay as the API was started.
            token_settings = self.settings.replace(
                grpc_tokens_file=settings.grpc_tokens_file,
                **{name: getattr(settings, name) for name in TOKEN_SETTINGS},
            )
            if self.grpc is not None:
                tokens = reload_tokens(self.grpc, self.settings.grpc_host, token_settings)
        except (ConfigError, ValueError) as exc:
            logger.error("reload refused, the settings are kept: %s", exc)
            return
        assert self.engine is not None
        self.engine.routes = routes
        logger.info("rubric routes reloaded: %s", settings.rubric_routes or "(none)")
        if self.grpc is not None:
            logger.info("API tokens reloaded: %s", tokens.describe())

    # ---------------------------------------------------------------- stop

    def stop(self) -> None:
        """Graceful stop; see the module notes. Safe to call twice."""
        if self._stopping:
            self._stopped.wait()
            return
        self._stopping = True
        grace = self.settings.shutdown_grace_s
        logger.info("stopping: ending live calls (grace %.0f s)", grace)
        if self.retention is not None:
            self.retention.stop()  # after the batch it is doing
        from core.api.server import mark_not_serving

        if self.grpc is not None:
            mark_not_serving(self.grpc)
        if self.sip_server is not None and self._loop is not None:
            self._drain_sip()
            future = asyncio.run_coroutine_threadsafe(self.sip_server.stop(), self._loop)
            try:
                future.result(timeout=grace)
            except Exception:
                logger.exception("the SIP server did not stop cleanly")
        if self.capture is not None:
            self.capture.stop()
            self.follower.close()  # ends the calls it follows
        deadline = time.monotonic() + grace
        left: list[str] = []
        if self.engine is not None:
            # Streams get their calls' last events (scored, ended) before the port closes.
            self.engine.end_all("shutdown")
            self.engine.wait_calls(grace)
        if self.grpc is not None:
            self.grpc.stop(grace=2.0).wait(3.0)
        if self.engine is not None:
            left = self.engine.shutdown(max(1.0, deadline - time.monotonic()))
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(5)
        if self.metrics is not None:
            self.metrics.stop()
        logger.info("stopped%s", f"; {len(left)} calls left for the next start" if left else "")
        self._stopped.set()

    def _drain_sip(self) -> None:
        """New SIP calls and OPTIONS probes get 503 from now on; calls in progress may go on
        to their BYE for up to `sip_drain_s`."""
        assert self._loop is not None
        drain_s = self.settings.sip_drain_s
        future = asyncio.run_coroutine_threadsafe(self.sip_server.drain(drain_s), self._loop)
        try:
            left = future.result(timeout=drain_s + 5.0)
        except Exception:
            logger.exception("the SIP server did not drain")
            return
        if left:
            logger.info("drained for %.0f s; %d SIP calls still in progress end now", drain_s,
                        left)  # fmt: skip

    def run_forever(self) -> None:
        """Serve until SIGTERM or SIGINT; SIGHUP reloads routes and tokens."""
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=self.reload).start())
        self.start()
        while not stop.wait(1.0):
            if self.engine is not None:
                self.engine.disk.check()  # logs when the data disk fills up and frees again
        self.stop()


def run_serve(options: ServeOptions) -> int:
    use_private_umask()  # the log file too
    daemon = Daemon(options)
    settings = daemon.settings
    setup_logging(settings.log_level, settings.log_file, settings.log_format)
    daemon.run_forever()
    return 0
