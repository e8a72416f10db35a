"""The client side of the gRPC API as the box's own tools use it (`callqa watch`, the admin
web): where the daemon is, TLS from the client settings, and the token for each method's role.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from core.api.auth import METHOD_ROLES, READ, Tokens, load_tokens
from core.config import ConfigError, Settings
from core.ports import host_port

Metadata = tuple[tuple[str, str], ...]


def daemon_address(settings: Settings) -> str:
    """The daemon's API on this box: its `grpc_host` (loopback when it listens on every
    address) and `grpc_port`."""
    host = settings.grpc_host
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = "127.0.0.1"
    return host_port(host, settings.grpc_port)


def _read(setting: str, path: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"setting {setting!r}: cannot read {path}: {exc}") from exc


def uses_tls(settings: Settings) -> bool:
    return bool(settings.grpc_client_ca_file or settings.grpc_tls_cert_file
                or settings.grpc_client_cert_file)  # fmt: skip


def open_channel(
    settings: Settings, address: str, options: Sequence[tuple[str, Any]] = ()
) -> grpc.Channel:
    """A channel to `address`: TLS when the client settings (or this box's daemon) use it,
    with the client certificate when one is set."""
    if not uses_tls(settings):
        return grpc.insecure_channel(address, options=list(options))
    cert = _read("grpc_client_cert_file", settings.grpc_client_cert_file)
    key = _read("grpc_client_key_file", settings.grpc_client_key_file)
    if bool(cert) != bool(key):
        raise ConfigError("settings 'grpc_client_cert_file' and 'grpc_client_key_file' go together")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read("grpc_client_ca_file", settings.grpc_client_ca_file),
        private_key=key, certificate_chain=cert,
    )  # fmt: skip
    return grpc.secure_channel(address, credentials, options=list(options))


class ApiClient:
    """A channel to the daemon and the token metadata for each method."""

    def __init__(
        self, settings: Settings, address: str | None = None, token: str | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:  # fmt: skip
        """`token` given: sent on every call, whatever the method (a command-line flag)."""
        self.address = address or daemon_address(settings)
        self.tokens = Tokens()
        if token is None:
            self.tokens = load_tokens(settings, file_unreadable_ok=True)
        self._token = token
        self.channel = open_channel(settings, self.address, options)

    def metadata_for(self, method: str) -> Metadata:
        """What to send with a call of `method` (its name in the CallQa service)."""
        return self._role_metadata(METHOD_ROLES.get(method, READ))

    @property
    def metadata(self) -> Metadata:
        """The `read` role's metadata, for the calls that only look."""
        return self._role_metadata(READ)

    def _role_metadata(self, role: str) -> Metadata:
        token = self.tokens.token_for(role) if self._token is None else self._token
        return (("authorization", f"Bearer {token}"),) if token else ()

    def close(self) -> None:
        self.channel.close()
