"""The real gRPC server of `core.api` in the test process, over a real live engine with the
ASR left out (`FeaturesOnly`), for tests of the API's own behaviour: access, TLS, limits and
the answers to malformed requests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from core.api.server import create_server
from core.config import Settings
from core.live.engine import LiveEngine
from core.live.features_only import FeaturesOnly
from proto import callqa_pb2_grpc as pb_grpc


@dataclass
class ApiHost:
    """What `create_server` serves (an `ApiContext`), and the port it got."""

    settings: Settings
    engine: LiveEngine | None = None
    sip_bridge: Any = None
    port: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stub(self, channel: grpc.Channel | None = None) -> pb_grpc.CallQaStub:
        return pb_grpc.CallQaStub(channel or grpc.insecure_channel(self.address))


def api_settings(data_dir: Path, **changes: Any) -> Settings:
    """Settings of a test API on loopback, any free port, without SIP or the ASR."""
    base = Settings(data_dir=data_dir, grpc_host="127.0.0.1", grpc_port=0, sip_enabled=False,
                    asr_enabled=False)  # fmt: skip
    return base.replace(**changes) if changes else base


@contextmanager
def serving(settings: Settings, address: str | None = None) -> Iterator[ApiHost]:
    """The API served for `settings` until the block ends."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    host = ApiHost(settings, LiveEngine(settings, FeaturesOnly))
    assert host.engine is not None
    host.engine.start()
    server = None
    try:
        server, host.port = create_server(address or f"{settings.grpc_host}:0", host)
        yield host
    finally:
        if server is not None:
            server.stop(grace=None)
        host.engine.end_all("shutdown")
        host.engine.wait_calls(10.0)
        host.engine.shutdown(5.0)
