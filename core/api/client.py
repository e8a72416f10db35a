"""The client side of the gRPC API as the box's own tools use it (`callqa watch`, the admin
web): where the daemon is, TLS from the client settings, and the token for each method's role.
A client follows the secrets file: when a token is rotated there (and the daemon reloaded
with SIGHUP), it sends the new one from its next call on, without a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from core.api.auth import METHOD_ROLES, READ, Tokens, load_tokens
from core.config import ConfigError, Settings
from core.ports import local_address

logger = logging.getLogger(__name__)

Metadata = tuple[tuple[str, str], ...]
TOKENS_FILE_LOOK_S = 2.0
"""How often at most a client looks whether ``grpc_tokens_file`` has changed."""


def daemon_address(settings: Settings) -> str:
    """The daemon's API on this box: its `grpc_host` (loopback when it listens on every
    address) and `grpc_port`."""
    return local_address(settings.grpc_host, settings.grpc_port)


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
        self.settings = settings
        self.tokens = Tokens()
        self._token = token
        self._file_seen: tuple[int, int] | None = None
        self._looked_at = 0.0
        if token is None:
            self._file_seen = self._file_stamp()
            self.tokens = load_tokens(settings, file_unreadable_ok=True)
        self.channel = open_channel(settings, self.address, options)

    def _file_stamp(self) -> tuple[int, int] | None:
        if not self.settings.grpc_tokens_file:
            return None
        try:
            st = Path(self.settings.grpc_tokens_file).expanduser().stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _follow_tokens_file(self) -> None:
        """Take the secrets file's tokens again once it has changed (a token rotated and
        the daemon reloaded): looked at once every ``TOKENS_FILE_LOOK_S`` at most."""
        now = time.monotonic()
        if now - self._looked_at < TOKENS_FILE_LOOK_S:
            return
        self._looked_at = now
        stamp = self._file_stamp()
        if stamp == self._file_seen:
            return
        try:
            tokens = load_tokens(self.settings, file_unreadable_ok=True)
        except ConfigError as exc:  # half written, or wrong: keep the tokens in use
            logger.warning("the tokens file is not taken again: %s", exc)
            return
        self._file_seen = stamp
        self.tokens = tokens

    def metadata_for(self, method: str) -> Metadata:
        """What to send with a call of `method` (its name in the CallQa service)."""
        return self._role_metadata(METHOD_ROLES.get(method, READ))

    @property
    def metadata(self) -> Metadata:
        """The `read` role's metadata, for the calls that only look."""
        return self._role_metadata(READ)

    def _role_metadata(self, role: str) -> Metadata:
        if self._token is None and self.settings.grpc_tokens_file:
            self._follow_tokens_file()
        token = self.tokens.token_for(role) if self._token is None else self._token
        return (("authorization", f"Bearer {token}"),) if token else ()

    def close(self) -> None:
        self.channel.close()
