"""The admin web's view of the daemon (`callqa serve`): is it up, over its gRPC API.

Pages built from stored data work without the daemon; every page shows a banner when it
is down. The answer is cached for a few seconds so that a page does not wait on the
network for every request.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

HEALTH_TIMEOUT_S = 0.5
CACHE_S = 5.0
SERVICE_NAME = "callqa.v1.CallQa"
# Reconnect soon after the daemon comes back (gRPC's default backoff grows to 2 minutes).
CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 500),
                   ("grpc.min_reconnect_backoff_ms", 500),
                   ("grpc.max_reconnect_backoff_ms", 3000))


@dataclass(frozen=True)
class DaemonStatus:
    up: bool
    address: str
    detail: str = ""


class DaemonClient:
    """A channel to the daemon, opened once; `status()` asks its health service."""

    def __init__(self, address: str, token: str = "") -> None:
        self.address = address
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._lock = threading.Lock()
        self._cached: tuple[float, DaemonStatus] | None = None

    @property
    def channel(self) -> grpc.Channel:
        return self._channel

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def status(self) -> DaemonStatus:
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < CACHE_S:
                return self._cached[1]
            status = self._ask()
            self._cached = (time.monotonic(), status)
            return status

    def _ask(self) -> DaemonStatus:
        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME),
                timeout=HEALTH_TIMEOUT_S, metadata=self._metadata,
            )
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            return DaemonStatus(False, self.address, str(code.name if code else exc))
        serving = reply.status == health_pb2.HealthCheckResponse.SERVING
        return DaemonStatus(serving, self.address,
                            "" if serving else health_pb2.HealthCheckResponse.ServingStatus.Name(
                                reply.status))

    def close(self) -> None:
        self._channel.close()
