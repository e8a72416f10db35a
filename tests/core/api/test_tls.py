"""TLS and client certificates (mutual TLS) on the real server, with a throwaway CA and
certificates made by the openssl command in a temporary folder: the box's own clients
(`ApiClient`, the admin web, `callqa watch`) connect with the client settings; a client
without a certificate, or with one another CA signed, is turned away."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from admin_web.daemon import DaemonClient
from core.api.client import ApiClient
from core.config import Settings
from proto import callqa_pb2 as pb
from proto import callqa_pb2_grpc as pb_grpc
from tests.core.api.api_server import ApiHost, api_settings, serving

REPO = Path(__file__).resolve().parents[3]
REFUSED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)


def _ca(folder: Path, name: str) -> None:
    _openssl(folder, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
             "-subj", f"/CN={name}")  # fmt: skip


def _signed(folder: Path, name: str, ca: str, extensions: str) -> None:
    (folder / f"{name}.ext").write_text(extensions + "\n")
    _openssl(folder, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={name}")  # fmt: skip
    _openssl(folder, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
             f"{ca}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
             "-extfile", f"{name}.ext")  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    _ca(folder, "ca")
    _ca(folder, "rogue-ca")
    _signed(folder, "server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    _signed(folder, "client", "ca", "extendedKeyUsage=clientAuth")
    _signed(folder, "rogue", "rogue-ca", "extendedKeyUsage=clientAuth")
    return folder


@pytest.fixture(scope="module")
def mtls(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHost]:
    """Client certificates and no token, on every address: allowed, certificates guard it."""
    settings = api_settings(
        tmp_path_factory.mktemp("mtls"), grpc_host="0.0.0.0",
        grpc_tls_cert_file=str(pki / "server.pem"), grpc_tls_key_file=str(pki / "server.key"),
        grpc_tls_client_ca_file=str(pki / "ca.pem"),
    )  # fmt: skip
    with serving(settings) as h:
        yield h


def _client_settings(pki: Path, cert: str | None) -> Settings:
    changes = {"grpc_client_ca_file": str(pki / "ca.pem")}
    if cert:
        changes.update(grpc_client_cert_file=str(pki / f"{cert}.pem"),
                       grpc_client_key_file=str(pki / f"{cert}.key"))  # fmt: skip
    return Settings().replace(**changes)


def _capacity(client: ApiClient) -> pb.Capacity:
    reply: pb.Capacity = pb_grpc.CallQaStub(client.channel).GetCapacity(
        pb.GetCapacityRequest(), timeout=5, metadata=client.metadata
    )
    return reply


def test_a_client_certificate_of_the_ca_gets_in(mtls: ApiHost, pki: Path) -> None:
    client = ApiClient(_client_settings(pki, "client"), mtls.address)
    assert _capacity(client).max_sessions == mtls.settings.sip_max_sessions
    client.close()
    site = DaemonClient(mtls.address, _client_settings(pki, "client"))
    assert site.status().up
    site.close()


@pytest.mark.parametrize("cert", [None, "rogue"])
def test_no_certificate_or_another_cas_is_turned_away(
    mtls: ApiHost, pki: Path, cert: str | None
) -> None:
    client = ApiClient(_client_settings(pki, cert), mtls.address)
    with pytest.raises(grpc.RpcError) as err:
        _capacity(client)
    assert err.value.code() in REFUSED
    client.close()
    with grpc.insecure_channel(mtls.address) as plain:  # no TLS at all
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.CallQaStub(plain).GetCapacity(pb.GetCapacityRequest(), timeout=3)
        assert err.value.code() in REFUSED


def test_tls_without_client_certificates(pki: Path, tmp_path: Path) -> None:
    settings = api_settings(tmp_path, grpc_tls_cert_file=str(pki / "server.pem"),
                            grpc_tls_key_file=str(pki / "server.key"))  # fmt: skip
    with serving(settings) as host:
        client = ApiClient(_client_settings(pki, None), host.address)
        assert _capacity(client).max_sessions
        client.close()
        # The daemon's certificate is checked: a client trusting another CA refuses it.
        wrong = ApiClient(Settings(grpc_client_ca_file=str(pki / "rogue-ca.pem")), host.address)
        with pytest.raises(grpc.RpcError) as err:
            _capacity(wrong)
        assert err.value.code() in REFUSED
        wrong.close()


def test_callqa_watch_over_mutual_tls(mtls: ApiHost, pki: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQA_")}
    env.update(CALLQA_CONFIG=os.devnull, CALLQA_GRPC_CLIENT_CA_FILE=str(pki / "ca.pem"),
               CALLQA_GRPC_CLIENT_CERT_FILE=str(pki / "client.pem"),
               CALLQA_GRPC_CLIENT_KEY_FILE=str(pki / "client.key"))  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "watch", "call", "no-such-call", "--address",
         mtls.address], capture_output=True, text=True, timeout=60, env=env, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 2 and "NOT_FOUND" in done.stderr, done.stderr

