"""The daemon's gRPC server: the CallQa service, the standard health service, reflection.

With ``grpc_token`` set, every call must carry ``authorization: Bearer <token>`` (health
checks excepted, so that load balancers and systemd watchdogs need no secret); with
``grpc_tls_cert_file`` and ``grpc_tls_key_file`` set, the port speaks TLS only.
"""

from __future__ import annotations

import hmac
import logging
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from core.api.context import ApiContext
from core.api.service import CallQaService
from core.config import ConfigError
from core.stage_cpu import name_thread
from proto import callqa_pb2, callqa_pb2_grpc

logger = logging.getLogger(__name__)

SERVICE_NAME = callqa_pb2.DESCRIPTOR.services_by_name["CallQa"].full_name
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest message: a ScoreRecording request carries a whole WAV file."""
HEALTH_PREFIX = "/grpc.health.v1.Health/"


class TokenCheck(grpc.ServerInterceptor):
    """Refuses calls without the configured bearer token (UNAUTHENTICATED)."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

        def deny(request: Any, context: Any) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")

        self._deny_unary = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.unary_stream_rpc_method_handler(deny)

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        if details.method.startswith(HEALTH_PREFIX):
            return continuation(details)
        given = dict(details.invocation_metadata).get("authorization", "")
        if hmac.compare_digest(str(given).encode(), self._expected):
            return continuation(details)
        handler = continuation(details)
        if handler is not None and handler.response_streaming:
            return self._deny_stream
        return self._deny_unary


def create_server(address: str, context: ApiContext) -> tuple[grpc.Server, int]:
    """Serve the API for `context` on `address` (``HOST:PORT``, port 0: any free one).

    Returns the started server and its port. The token, TLS files and worker count come
    from the context's settings.
    """
    settings = context.settings
    interceptors = [TokenCheck(settings.grpc_token)] if settings.grpc_token else []
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_workers,
                                   thread_name_prefix="callqa-grpc",
                                   initializer=name_thread, initargs=("grpc",)),
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )  # fmt: skip
    callqa_pb2_grpc.add_CallQaServicer_to_server(CallQaService(context), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    cert, key = settings.grpc_tls_cert_file, settings.grpc_tls_key_file
    if bool(cert) != bool(key):
        raise ConfigError("settings 'grpc_tls_cert_file' and 'grpc_tls_key_file' go together")
    try:
        if cert:
            creds = grpc.ssl_server_credentials([(Path(key).read_bytes(), Path(cert).read_bytes())])
            port = server.add_secure_port(address, creds)
        else:
            port = server.add_insecure_port(address)
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"gRPC cannot listen on {address}: {exc}") from exc
    if port == 0:
        raise ConfigError(f"gRPC cannot listen on {address} (is the port taken?)")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    server._callqa_health = health_servicer
    return server, port


def mark_not_serving(server: grpc.Server) -> None:
    """Health checks answer NOT_SERVING from now on (the daemon is stopping)."""
    health_servicer = getattr(server, "_callqa_health", None)
    if health_servicer is not None:
        health_servicer.enter_graceful_shutdown()
