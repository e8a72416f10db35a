"""`callqa serve` in a child process, for the demo and the benchmarks.

Ports on loopback are chosen free unless given: gRPC, SIP, and a block of RTP ports (another
daemon on the machine may hold the default RTP range).

The child gets its settings through `CALLQA_<NAME>` variables (nothing is inherited from the
caller's own `CALLQA_*` environment) over a settings file: the one given (`callqa bench`
passes on the box's own, so the daemons it measures run as configured), else an empty one
(no ``/etc/callqa`` settings leak in). What would take the child off loopback or away from
the caller (a gRPC token or TLS, a mirror interface, the box's log file, its metrics port) is
reset. The child logs to a file, and is ready once the standard gRPC health service answers
SERVING.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from core.config import Settings, load_settings
from core.ports import LOOPBACK, free_port, free_port_range, free_port_tcp_udp, local_address
from proto import callqa_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parents[2]


RTP_BLOCK = 2000
"""RTP ports a child gets, from 30000 up: another daemon on the machine may hold the
default range (`rtp_port_first`, `rtp_port_last`)."""
RTP_LOWEST_PORT, RTP_HIGHEST_PORT = 30000, 60000
RTP_PROBE = 16
"""How many ports of the block must be free now."""


ISOLATED = {
    "grpc_token": "", "grpc_token_read": "", "grpc_token_admin": "", "grpc_token_ingest": "",
    "grpc_token_listen": "", "grpc_tokens_file": "", "grpc_tls_cert_file": "",
    "grpc_tls_key_file": "", "grpc_tls_client_ca_file": "",
    "mirror_interface": "", "log_file": "", "sip_enabled": "true", "sip_transports": "udp,tcp",
    "metrics_port": "0",
}  # fmt: skip
"""Settings a child always starts with (its caller's ``settings`` may still change them)."""


class ServeProcess:
    """A `callqa serve` child on loopback: gRPC and SIP on free ports unless given."""

    def __init__(
        self, data_dir: Path, settings: dict[str, str] | None = None,
        config_file: Path | None = None, extra_env: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.data_dir = Path(data_dir)
        self.settings = dict(settings or {})
        self.config_file = config_file
        self.extra_env = dict(extra_env or {})
        """Environment variables that are not settings (``CALLQA_STOP_AT`` of a crash test)."""
        self.grpc_port = int(self.settings.get("grpc_port") or free_port())
        self.sip_port = int(self.settings.get("sip_port") or free_port_tcp_udp())
        if "rtp_port_first" not in self.settings:
            first, last = free_port_range(RTP_BLOCK, lowest=RTP_LOWEST_PORT,
                                          highest=RTP_HIGHEST_PORT, probe=RTP_PROBE)
            self.settings.update(rtp_port_first=str(first), rtp_port_last=str(last))
        self.log_path = self.data_dir / f"serve-{self.grpc_port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _values(self) -> dict[str, str]:
        return {
            "data_dir": str(self.data_dir), "grpc_host": LOOPBACK,
            "grpc_port": str(self.grpc_port), "sip_host": LOOPBACK,
            "sip_port": str(self.sip_port), "sip_allowed_peers": LOOPBACK,
            **ISOLATED, **self.settings,
        }  # fmt: skip

    def _settings_path(self) -> Path:
        if self.config_file is not None:
            return Path(self.config_file)
        empty = self.data_dir / "serve-empty.toml"  # no /etc/callqa settings leak in
        if not empty.is_file():
            empty.parent.mkdir(parents=True, exist_ok=True)
            empty.write_text("", encoding="utf-8")
        return empty

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQA_")}
        values = self._values()
        env["CALLQA_CONFIG"] = str(self._settings_path())
        # Through `Settings`: unknown names and values of the wrong type are refused here.
        env.update(Settings().replace(**values).to_env(tuple(values)))
        env.update(self.extra_env)
        return env

    def read_settings(self) -> Settings:
        """The settings the child reads: its file, then its variables (none of the caller's)."""
        return load_settings(self._settings_path(), self._values(), environ={})

    def start(self, timeout_s: float = 180.0) -> ServeProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "core.cli", "serve"], env=env, stdout=log,
                stderr=subprocess.STDOUT, cwd=REPO,
            )  # fmt: skip
        self.wait_healthy(timeout_s)
        return self

    @property
    def address(self) -> str:
        """Where a client on this machine reaches the child's API (`grpc_host` and port)."""
        return local_address(self._values()["grpc_host"], self.grpc_port)

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)

    def stub(self) -> pb_grpc.CallQaStub:
        return pb_grpc.CallQaStub(self.channel())

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self.channel() as ch:
            health = health_pb2_grpc.HealthStub(ch)
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"callqa serve exited with {self.proc.returncode}:\n{self.log()}"
                    )
                try:
                    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        raise RuntimeError(f"callqa serve did not become healthy:\n{self.log()}")

    def log(self, tail_chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail_chars:]
        except FileNotFoundError:
            return ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def stop(self, timeout_s: float = 90.0) -> int | None:
        """SIGTERM, wait; kill when it does not stop in time. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode
