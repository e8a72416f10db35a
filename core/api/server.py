"""The daemon's gRPC server: the CallQa service, the standard health service, reflection.

With tokens configured, every call must carry ``authorization: Bearer <token>`` of a role
that may call its method (`core.api.auth`; health checks excepted, so that load balancers
and systemd watchdogs need no secret). With ``grpc_tls_cert_file`` and ``grpc_tls_key_file``
set, the port speaks TLS only; with ``grpc_tls_client_ca_file`` too, a client must present a
certificate that CA signed. Off loopback, the server refuses to start without a token or
client certificates.
"""

from __future__ import annotations

import logging
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from core.api.auth import AccessCheck, Tokens, check_exposure, load_tokens
from core.api.context import ApiContext
from core.api.requests import RequestCheck
from core.api.service import CallQaService
from core.config import ConfigError, Settings
from core.stage_cpu import name_thread
from proto import callqa_pb2, callqa_pb2_grpc

logger = logging.getLogger(__name__)

SERVICE = callqa_pb2.DESCRIPTOR.services_by_name["CallQa"]
SERVICE_NAME = SERVICE.full_name
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest message: a ScoreRecording request carries a whole WAV file."""


def create_server(address: str, context: ApiContext) -> tuple[grpc.Server, int]:
    """Serve the API for `context` on `address` (``HOST:PORT``, port 0: any free one).

    Returns the started server and its port. The token, TLS files and worker count come
    from the context's settings.
    """
    settings = context.settings
    tokens = load_tokens(settings)
    check_exposure(address.rpartition(":")[0], settings, tokens)
    credentials = _tls_credentials(settings)
    # The token first: a caller without one learns nothing from the checks of its request.
    # Installed even without tokens (it then lets every call pass): a reload may add some.
    access = AccessCheck(tokens)
    interceptors = [access, RequestCheck(SERVICE)]
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
    try:
        if credentials is not None:
            port = server.add_secure_port(address, credentials)
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
    server._callqa_access = access
    return server, port


def _tls_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS for the port from the settings (None: plain), client certificates required when
    ``grpc_tls_client_ca_file`` is set."""
    cert, key = settings.grpc_tls_cert_file, settings.grpc_tls_key_file
    if bool(cert) != bool(key):
        raise ConfigError("settings 'grpc_tls_cert_file' and 'grpc_tls_key_file' go together")
    if not cert:
        return None
    client_ca = settings.grpc_tls_client_ca_file
    pem = {name: _read_pem(name, value) for name, value in (
        ("grpc_tls_cert_file", cert), ("grpc_tls_key_file", key),
        ("grpc_tls_client_ca_file", client_ca)) if value}  # fmt: skip
    return grpc.ssl_server_credentials(
        [(pem["grpc_tls_key_file"], pem["grpc_tls_cert_file"])],
        root_certificates=pem.get("grpc_tls_client_ca_file"),
        require_client_auth=bool(client_ca),
    )


def _read_pem(setting: str, path: str) -> bytes:
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"setting {setting!r}: cannot read {path}: {exc}") from exc
    if b"-----BEGIN " not in data:
        raise ConfigError(f"setting {setting!r}: {path} is not a PEM file")
    return data


def reload_tokens(server: grpc.Server, host: str, settings: Settings) -> Tokens:
    """Take the tokens of ``settings`` (its ``grpc_token*`` settings and ``grpc_tokens_file``)
    from the next call on, for the API ``server`` serves on ``host``; calls under way finish.

    Raises ConfigError, and the tokens in use stay, when a token is malformed, the file
    cannot be read, or the API would be left open off loopback.
    """
    tokens = load_tokens(settings)
    check_exposure(host, settings, tokens)
    server._callqa_access.tokens = tokens
    return tokens


def mark_not_serving(server: grpc.Server) -> None:
    """Health checks answer NOT_SERVING from now on (the daemon is stopping)."""
    health_servicer = getattr(server, "_callqa_health", None)
    if health_servicer is not None:
        health_servicer.enter_graceful_shutdown()
