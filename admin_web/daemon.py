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

from core.api.client import ApiClient, Metadata
from core.config import Settings

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
    """A channel to the daemon, opened once (TLS and tokens from the client settings);
    `status()` asks its health service."""

    def __init__(self, address: str, settings: Settings) -> None:
        self.address = address
        self._api = ApiClient(settings, address, options=CHANNEL_OPTIONS)
        self._channel = self._api.channel
        self._lock = threading.Lock()
        self._cached: tuple[float, DaemonStatus] | None = None

    @property
    def channel(self) -> grpc.Channel:
        return self._channel

    @property
    def metadata(self) -> Metadata:
        """The token metadata of the `read` role (the calls that only look)."""
        return self._api.metadata

    def metadata_for(self, method: str) -> Metadata:
        """The token metadata for a call of `method` (its role's token)."""
        return self._api.metadata_for(method)

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
                timeout=HEALTH_TIMEOUT_S, metadata=self.metadata,
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
