"""Who may call what on the gRPC API: roles, their bearer tokens, and the check before a call.

Every method of `callqa.v1.CallQa` belongs to exactly one role (`METHOD_ROLES`):

* ``read``: wallboards, agent desktops, `callqa watch`: watching and listing, never changing;
* ``admin``: rubric administration (and the capacity benchmark, which loads the box);
* ``ingest``: audio in (StreamAudio, ScoreRecording);
* ``listen``: a live call's audio out.

A role's tokens come from its setting (``grpc_token_<role>``) and from the secrets file
``grpc_tokens_file``; ``grpc_token`` holds every role. One token string set for several
roles holds them all. With no token set, the API asks for none (loopback, or client
certificates, guard it then: see `check_exposure`). A call without a valid token gets
UNAUTHENTICATED, a valid token outside its roles PERMISSION_DENIED. The standard health
service needs no token; server reflection needs any valid one.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from core.config import ConfigError, Settings
from proto import callqa_pb2

READ, ADMIN, INGEST, LISTEN = "read", "admin", "ingest", "listen"
ROLES = (READ, ADMIN, INGEST, LISTEN)

METHOD_ROLES: dict[str, str] = {
    "StreamAudio": INGEST,
    "ScoreRecording": INGEST,
    "WatchAlerts": READ,
    "WatchCall": READ,
    "WatchCalls": READ,
    "ListLiveCalls": READ,
    "GetCall": READ,
    "ListCalls": READ,
    "SearchTranscripts": READ,
    "ListRubrics": READ,
    "ListRubricRoutes": READ,
    "GetCapacity": READ,
    "PutRubric": ADMIN,
    "ActivateRubric": ADMIN,
    "SetRubricRoutes": ADMIN,
    "RunBenchmark": ADMIN,
    "ListenCall": LISTEN,
}
"""The one table of which role may call a method (by its name in the CallQa service). A
method missing here is refused to every token."""

ALL_ROLES_SETTING = "grpc_token"
ROLE_SETTINGS: dict[str, str] = {role: f"grpc_token_{role}" for role in ROLES}
SETTING_ROLES: dict[str, tuple[str, ...]] = {
    ALL_ROLES_SETTING: ROLES, **{name: (role,) for role, name in ROLE_SETTINGS.items()}
}
TOKEN_SETTINGS = tuple(SETTING_ROLES)
MIN_TOKEN_CHARS = 16

SERVICE_PREFIX = "/" + callqa_pb2.DESCRIPTOR.services_by_name["CallQa"].full_name + "/"
HEALTH_PREFIX = "/grpc.health.v1.Health/"


def method_role(method: str) -> str | None:
    """The role of a full method name (``/callqa.v1.CallQa/GetCall``); None: not a CallQa
    method, or one no role may call."""
    if not method.startswith(SERVICE_PREFIX):
        return None
    return METHOD_ROLES.get(method[len(SERVICE_PREFIX):])


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Tokens:
    """The configured tokens, by the setting that names them (settings first, then the file)."""

    by_setting: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def configured(self) -> bool:
        return any(self.by_setting.values())

    def describe(self) -> str:
        """How many tokens each setting holds (never the tokens), for the log."""
        counts = [f"{name} {len(values)}" for name, values in self.by_setting.items() if values]
        return ", ".join(counts) if counts else "none (the API takes calls without a token)"

    def roles_of(self, token: str) -> frozenset[str] | None:
        """The roles a presented token holds; None when it is no configured token. Every
        configured token is compared (in constant time), whichever matches."""
        given = _digest(token)
        roles: set[str] = set()
        matched = False
        for name, tokens in self.by_setting.items():
            for known in tokens:
                if hmac.compare_digest(given, _digest(known)):
                    matched = True
                    roles.update(SETTING_ROLES[name])
        return frozenset(roles) if matched else None

    def token_for(self, role: str) -> str:
        """The token a client sends for `role`: the role's own, else the all-roles one, else
        "" (none configured)."""
        for name in (ROLE_SETTINGS[role], ALL_ROLES_SETTING):
            if self.by_setting.get(name):
                return self.by_setting[name][0]
        return ""


def read_secrets_file(path: Path) -> dict[str, tuple[str, ...]]:
    """The tokens of a secrets file; refused when group or others may read it."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"setting 'grpc_tokens_file': cannot read {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"setting 'grpc_tokens_file': {path} is open to group or others (mode "
            f"{stat.S_IMODE(mode):04o}); make it readable by its owner only: chmod 600 {path}"
        )
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"setting 'grpc_tokens_file': {path}: {exc}") from exc
    out: dict[str, tuple[str, ...]] = {}
    for name, value in table.items():
        if name not in TOKEN_SETTINGS:
            raise ConfigError(f"{path}: unknown name {name!r} (known: {', '.join(TOKEN_SETTINGS)})")
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ConfigError(f"{path}: {name} must be a token or a list of tokens")
        out[name] = tuple(values)
    return out


def _check_token(token: str, source: str) -> None:
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"{source}: a token must have {MIN_TOKEN_CHARS} characters at least")
    if not all(33 <= ord(c) <= 126 for c in token):
        raise ConfigError(f"{source}: a token holds printable ASCII only, without spaces")


def load_tokens(settings: Settings, *, file_unreadable_ok: bool = False) -> Tokens:
    """The tokens of the settings and of ``grpc_tokens_file``, each checked.

    `file_unreadable_ok`: a secrets file this user may not read is left out (a client run by
    another user than the daemon's, with its token in its own settings); the daemon needs it.
    """
    found: dict[str, list[str]] = {name: [] for name in TOKEN_SETTINGS}
    for name in TOKEN_SETTINGS:
        value = getattr(settings, name)
        if value:
            _check_token(value, f"setting {name!r}")
            found[name].append(value)
    path = Path(settings.grpc_tokens_file).expanduser()
    if settings.grpc_tokens_file and not (file_unreadable_ok and not os.access(path, os.R_OK)):
        for name, values in read_secrets_file(path).items():
            for value in values:
                _check_token(value, f"{path}: {name}")
                found[name].append(value)
    return Tokens({name: tuple(values) for name, values in found.items() if values})


def is_loopback(host: str) -> bool:
    """Whether a listening address is reachable from this machine only."""
    if host.startswith("unix:"):
        return True
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, settings: Settings, tokens: Tokens) -> None:
    """Refuse an API on `host` that anyone on the network could use: off loopback it needs a
    token or client certificates."""
    if settings.grpc_tls_client_ca_file and not settings.grpc_tls_cert_file:
        raise ConfigError(
            "setting 'grpc_tls_client_ca_file' needs TLS: set 'grpc_tls_cert_file' and "
            "'grpc_tls_key_file' too"
        )
    if is_loopback(host) or tokens.configured:
        return
    if settings.grpc_tls_client_ca_file:
        return
    raise ConfigError(
        f"refusing to serve the gRPC API on {host} without authentication: "
        "anyone on the network could read every transcript and change the rubrics. Set "
        "tokens (grpc_token_read, grpc_token_admin, grpc_token_ingest, grpc_token_listen or "
        "grpc_token, or a grpc_tokens_file) or client certificates (grpc_tls_client_ca_file), "
        "or listen on 127.0.0.1 (grpc_host)"
    )


def bearer(metadata: Any) -> str:
    """The token of an ``authorization: Bearer <token>`` metadata entry ("" when none)."""
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            scheme, _, token = text.strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


def _refusal(handler: Any, code: grpc.StatusCode, detail: str) -> Any:
    """A handler of the same shape as `handler` that fails the call with `code`."""

    def refuse(request: Any, context: grpc.ServicerContext) -> None:
        context.abort(code, detail)

    kinds: dict[tuple[bool, bool], Callable[..., Any]] = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[(bool(handler.request_streaming), bool(handler.response_streaming))]
    return make(refuse)


class AccessCheck(grpc.ServerInterceptor):
    """Checks each call's bearer token against its method's role (see the module notes)."""

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens
        """Replaced whole when the daemon reloads its tokens; with none, every call passes."""

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        method = details.method
        handler = continuation(details)
        tokens = self.tokens  # one read: a reload swaps the whole set
        if handler is None or method.startswith(HEALTH_PREFIX) or not tokens.configured:
            return handler
        role = method_role(method)
        roles = tokens.roles_of(bearer(details.invocation_metadata))
        if roles is None:
            return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED,
                            "a valid token is required: send the metadata "
                            "'authorization: Bearer <token>'")  # fmt: skip
        if not method.startswith(SERVICE_PREFIX):
            return handler  # server reflection: any valid token
        if role is None or role not in roles:
            name = method[len(SERVICE_PREFIX):]
            needs = f"the {role!r} role" if role else "a role no token holds"
            return _refusal(handler, grpc.StatusCode.PERMISSION_DENIED,
                            f"{name} needs {needs}; this token holds "
                            f"{', '.join(sorted(roles))}")  # fmt: skip
        return handler
