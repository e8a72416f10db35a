"""Running `callqa serve` as a real process for tests, with a gRPC client to it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from proto import callqa_pb2 as pb
from proto import callqa_pb2_grpc as pb_grpc

HOST = "127.0.0.1"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def free_port_both() -> int:
    """A port free for both TCP and UDP (SIP listens on both)."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((HOST, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


class Daemon:
    """`callqa serve` on loopback ports, logging to `log_path`."""

    def __init__(self, data_dir: Path, model_dir: Path, env: dict[str, str] | None = None,
                 rtp_range: tuple[int, int] = (0, 0)) -> None:  # fmt: skip
        self.data_dir = data_dir
        self.model_dir = model_dir
        self.grpc_port = free_port()
        self.sip_port = free_port_both()
        self.extra_env = dict(env or {})
        self.rtp_range = rtp_range
        self.log_path = data_dir / f"serve-{self.grpc_port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120.0) -> Daemon:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQA_")}
        env.update({
            "CALLQA_DATA_DIR": str(self.data_dir), "CALLQA_MODEL": str(self.model_dir),
            "CALLQA_GRPC_HOST": HOST, "CALLQA_GRPC_PORT": str(self.grpc_port),
            "CALLQA_SIP_HOST": HOST, "CALLQA_SIP_PORT": str(self.sip_port),
            "CALLQA_SIP_ALLOWED_PEERS": HOST, "CALLQA_SHUTDOWN_GRACE_S": "60",
            "CALLQA_CONFIG": str(self.data_dir / "none.toml"),
        })  # fmt: skip
        (self.data_dir / "none.toml").write_text("", encoding="utf-8")
        if self.rtp_range[0]:
            env["CALLQA_RTP_PORT_FIRST"] = str(self.rtp_range[0])
            env["CALLQA_RTP_PORT_LAST"] = str(self.rtp_range[1])
        env.update(self.extra_env)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "serve"], env=env, stdout=log,
            stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
        self.wait_healthy(timeout_s)
        return self

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"{HOST}:{self.grpc_port}")

    def stub(self) -> pb_grpc.CallQaStub:
        return pb_grpc.CallQaStub(self.channel())

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self.channel() as ch:
            health = health_pb2_grpc.HealthStub(ch)
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"callqa serve exited {self.proc.returncode}:\n{self.log()}")
                try:
                    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        raise RuntimeError(f"callqa serve did not become healthy:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except FileNotFoundError:
            return ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class EventCollector:
    """Runs a server stream on a thread and keeps what it yields."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.items: list[Any] = []
        self.error: grpc.RpcError | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self.stream:
                self.items.append(item)
        except grpc.RpcError as exc:
            self.error = exc

    def cancel(self) -> None:
        self.stream.cancel()
        self._thread.join(5)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def audio_frames(
    agent: np.ndarray, customer: np.ndarray, *, speed: float = 1.0, rubric: str = "",
    agent_id: str = "A01", external_id: str = "ext-1", stop_after_s: float | None = None,
    encoding: int = pb.AUDIO_ENCODING_PCM16_LE, end: bool = True,
) -> Iterator[pb.AudioFrame]:  # fmt: skip
    """A StreamAudio request stream: setup, then 20 ms of each leg at `speed` x real time."""
    setup = pb.CallSetup(external_call_id=external_id, agent_id=agent_id, encoding=encoding,
                         sample_rate_hz=8000)  # fmt: skip
    if rubric:
        setup.rubric_id = rubric
    yield pb.AudioFrame(setup=setup)
    t0 = time.monotonic()
    n = min(len(agent), len(customer))
    if stop_after_s is not None:
        n = min(n, int(stop_after_s * 8000))
    for i in range(0, n, 160):
        for leg, pcm in ((pb.LEG_AGENT, agent), (pb.LEG_CUSTOMER, customer)):
            chunk = pcm[i : i + 160]
            if encoding == pb.AUDIO_ENCODING_PCMU:
                from kernels.g711 import ulaw_encode

                payload = np.asarray(ulaw_encode(chunk)).tobytes()
            else:
                payload = chunk.astype("<i2").tobytes()
            yield pb.AudioFrame(audio=pb.AudioChunk(leg=leg, payload=payload))
        wait = t0 + (i + 160) / 8000 / speed - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    if end:
        yield pb.AudioFrame(end=pb.CallEnd())


def legs_int16(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from core.audio_io import read_wav

    rec = read_wav(path)
    to16 = [np.clip(ch * 32768.0, -32768, 32767).astype(np.int16) for ch in rec.channels]
    return to16[0], to16[1]
