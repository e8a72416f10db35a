"""Who may call what: tokens per role over a real gRPC channel to the real server, the
secrets file, the refusal to listen off loopback without authentication, and the box's own
clients (`callqa watch`, the admin web) sending the token from the settings."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from core.api.auth import METHOD_ROLES, ROLES, load_tokens
from core.api.client import ApiClient
from core.config import ConfigError
from proto import callqa_pb2 as pb
from tests.core.api.api_server import ApiHost, api_settings, serving

REPO = Path(__file__).resolve().parents[3]
SERVICE = pb.DESCRIPTOR.services_by_name["CallQa"]
TOKENS = {role: f"{role}-token-0123456789abcdef" for role in ROLES}
ALL_ROLES_TOKEN = "all-roles-token-0123456789abcdef"
ACCESS_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHost]:
    data_dir = tmp_path_factory.mktemp("auth")
    secrets = data_dir / "tokens.toml"
    secrets.write_text(f'grpc_token_listen = ["{TOKENS["listen"]}", "second-listen-token-42"]\n'
                       f'grpc_token_ingest = "{TOKENS["ingest"]}"\n')  # fmt: skip
    secrets.chmod(0o600)
    settings = api_settings(
        data_dir, grpc_token=ALL_ROLES_TOKEN, grpc_token_read=TOKENS["read"],
        grpc_token_admin=TOKENS["admin"], grpc_tokens_file=str(secrets),
    )  # fmt: skip
    with serving(settings) as h:
        yield h


def _invoke(channel: grpc.Channel, method: Any, token: str | None) -> grpc.StatusCode:
    """Call `method` with an empty request (an empty stream for client streams) and a short
    deadline; the status it ends with (OK for a call that answered, DEADLINE_EXCEEDED for a
    stream that went on)."""
    request_cls = pb.DESCRIPTOR.message_types_by_name[method.input_type.name]
    request = getattr(pb, request_cls.name)()
    path = f"/{SERVICE.full_name}/{method.name}"
    ser, de = request.SerializeToString, getattr(pb, method.output_type.name).FromString
    metadata = [("authorization", f"Bearer {token}")] if token is not None else None
    streams_in, streams_out = method.client_streaming, method.server_streaming
    try:
        if streams_in and streams_out:
            list(channel.stream_stream(path, ser, de)(iter([]), timeout=0.3, metadata=metadata))
        elif streams_out:
            list(channel.unary_stream(path, ser, de)(request, timeout=0.3, metadata=metadata))
        else:
            channel.unary_unary(path, ser, de)(request, timeout=0.3, metadata=metadata)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_every_method_of_the_proto_has_a_role() -> None:
    assert {m.name for m in SERVICE.methods} <= set(METHOD_ROLES)


def test_each_role_reaches_its_methods_and_no_other(host: ApiHost) -> None:
    channel = grpc.insecure_channel(host.address)
    refused: dict[str, set[str]] = {}
    for role, token in TOKENS.items():
        for method in SERVICE.methods:
            code = _invoke(channel, method, token)
            if METHOD_ROLES[method.name] == role:
                assert code not in ACCESS_CODES, (role, method.name, code)
            else:
                assert code == grpc.StatusCode.PERMISSION_DENIED, (role, method.name, code)
                refused.setdefault(role, set()).add(method.name)
    assert all(refused.get(role) for role in ROLES)
    for method in SERVICE.methods:  # the all-roles token and a second listen token
        assert _invoke(channel, method, ALL_ROLES_TOKEN) not in ACCESS_CODES, method.name
    second = next(m for m in SERVICE.methods if METHOD_ROLES[m.name] == "listen")
    assert _invoke(channel, second, "second-listen-token-42") not in ACCESS_CODES


def test_no_token_or_a_wrong_one_is_unauthenticated(host: ApiHost) -> None:
    channel = grpc.insecure_channel(host.address)
    stub = host.stub(channel)
    for metadata in (None, [("authorization", "Bearer read-token-0123456789abcdeX")],
                     [("authorization", TOKENS["read"])],  # no scheme
                     [("authorization", f"Basic {TOKENS['read']}")]):  # fmt: skip
        with pytest.raises(grpc.RpcError) as err:
            stub.GetCapacity(pb.GetCapacityRequest(), metadata=metadata, timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, metadata
        assert "authorization: Bearer" in (err.value.details() or "")
    with pytest.raises(grpc.RpcError) as err:
        stub.PutRubric(pb.PutRubricRequest(yaml="x"), timeout=5,
                       metadata=[("authorization", f"Bearer {TOKENS['read']}")])  # fmt: skip
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'admin' role" in err.value.details() and "read" in err.value.details()
    # Health checks need no token: a load balancer or a watchdog holds no secret.
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_the_clients_send_each_role_its_token(host: ApiHost) -> None:
    client = ApiClient(host.settings.replace(grpc_token=""), host.address)
    stub = host.stub(client.channel)
    assert stub.GetCapacity(pb.GetCapacityRequest(), metadata=client.metadata, timeout=5)
    with pytest.raises(grpc.RpcError) as err:  # admin: the admin token, which passes
        stub.ActivateRubric(pb.ActivateRubricRequest(rubric_id="nope", version=3), timeout=5,
                            metadata=client.metadata_for("ActivateRubric"))  # fmt: skip
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert client.metadata_for("StreamAudio") == (("authorization",
                                                   f"Bearer {TOKENS['ingest']}"),)  # fmt: skip
    client.close()

    from admin_web.daemon import DaemonClient

    site = DaemonClient(host.address, host.settings.replace(grpc_token=""))
    assert site.status().up
    assert site.metadata_for("SetRubricRoutes") == (("authorization",
                                                     f"Bearer {TOKENS['admin']}"),)  # fmt: skip
    site.close()


def test_callqa_watch_sends_the_read_token(host: ApiHost) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQA_")}
    env["CALLQA_CONFIG"] = os.devnull
    command = [sys.executable, "-m", "core.cli", "watch", "call", "no-such-call", "--address",
               host.address]  # fmt: skip
    env["CALLQA_GRPC_TOKEN_READ"] = TOKENS["read"]
    with_token = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env,
                                cwd=REPO)  # fmt: skip
    assert with_token.returncode == 2 and "NOT_FOUND" in with_token.stderr, with_token.stderr


def test_the_secrets_file_is_checked(tmp_path: Path) -> None:
    secrets = tmp_path / "tokens.toml"
    secrets.write_text('grpc_token_read = "wallboard-token-0123456789"\n')
    secrets.chmod(0o644)
    settings = api_settings(tmp_path, grpc_tokens_file=str(secrets))
    with pytest.raises(ConfigError, match=r"mode 0644.*chmod 600"):
        load_tokens(settings)
    secrets.chmod(0o600)
    assert load_tokens(settings).roles_of("wallboard-token-0123456789") == {"read"}
    for text, why in (('grpc_token_reed = "wallboard-token-0123456789"\n', "unknown name"),
                      ('grpc_token_read = "short"\n', "16 characters"),
                      ('grpc_token_read = "has a space in it, see"\n', "without spaces"),
                      ("grpc_token_read = 5\n", "a list of tokens"),
                      ("grpc_token_read = \n", "grpc_tokens_file")):  # fmt: skip
        secrets.write_text(text)
        with pytest.raises(ConfigError, match=why):
            load_tokens(settings)
    with pytest.raises(ConfigError, match="16 characters"):
        load_tokens(api_settings(tmp_path, grpc_token="s3cret"))
    # A file this user cannot read: the daemon stops; a client goes on with its own token.
    elsewhere = api_settings(tmp_path, grpc_tokens_file=str(tmp_path / "not-here.toml"),
                             grpc_token_read="wallboard-token-0123456789")  # fmt: skip
    with pytest.raises(ConfigError, match="cannot read"):
        load_tokens(elsewhere)
    client = ApiClient(elsewhere, "127.0.0.1:9")
    assert client.metadata == (("authorization", "Bearer wallboard-token-0123456789"),)
    client.close()


def test_no_listening_off_loopback_without_authentication(tmp_path: Path) -> None:
    refused = api_settings(tmp_path, grpc_host="0.0.0.0")
    with pytest.raises(ConfigError, match=r"without authentication.*127\.0"), serving(refused):
        pass
    with serving(api_settings(tmp_path / "t", grpc_host="0.0.0.0", grpc_token_read="r" * 20)):
        pass  # a token: allowed
    no_tls = api_settings(tmp_path / "c", grpc_tls_client_ca_file="/x/ca.pem")
    with pytest.raises(ConfigError, match="grpc_tls_client_ca_file' needs TLS"), serving(no_tls):
        pass
    # `callqa serve` says so at once, before the model or any port.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQA_")}
    env.update(CALLQA_CONFIG=os.devnull, CALLQA_DATA_DIR=str(tmp_path / "serve"))
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "serve", "--grpc-host", "0.0.0.0", "--no-sip"],
        capture_output=True, text=True, timeout=60, env=env, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "refusing to serve the gRPC API on 0.0.0.0 without authentication" in done.stderr
    assert not (tmp_path / "serve" / "callqa.db").exists()


def test_the_clients_find_the_daemon_on_this_box() -> None:
    from core.api.client import daemon_address
    from core.config import Settings

    for host, address in (("0.0.0.0", "127.0.0.1:7"), ("127.0.0.1", "127.0.0.1:7"),
                          ("::1", "[::1]:7"), ("[::1]", "[::1]:7"),
                          ("qa-box", "qa-box:7")):  # fmt: skip
        assert daemon_address(Settings(grpc_host=host, grpc_port=7)) == address


def test_a_client_follows_a_token_rotated_in_the_secrets_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin web and `callqa watch` send the file's new token once it has changed (the
    daemon takes it at SIGHUP); a file that is being written wrong leaves the old one."""
    from core.api import client as client_module

    monkeypatch.setattr(client_module, "TOKENS_FILE_LOOK_S", 0.0)
    secrets = tmp_path / "grpc-tokens.toml"
    secrets.write_text('grpc_token_read = "old-token-0123456789abc"\n')
    secrets.chmod(0o600)
    client = ApiClient(api_settings(tmp_path, grpc_tokens_file=str(secrets)), "127.0.0.1:9")
    try:
        assert client.metadata == (("authorization", "Bearer old-token-0123456789abc"),)
        secrets.write_text('grpc_token_read = "new-token-0123456789abcdef"\n')
        assert client.metadata == (("authorization", "Bearer new-token-0123456789abcdef"),)
        secrets.write_text('grpc_token_read = "short"\n')  # malformed: kept as it was
        assert client.metadata == (("authorization", "Bearer new-token-0123456789abcdef"),)
    finally:
        client.close()
