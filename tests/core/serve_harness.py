"""Running `callqa serve` as a real process for tests, with a gRPC client to it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from core.daemon.child import LOOPBACK, ServeProcess
from proto import callqa_pb2 as pb

HOST = LOOPBACK


class Daemon(ServeProcess):
    """`callqa serve` for a test: the given model, and a long shutdown grace."""

    def __init__(self, data_dir: Path, model_dir: Path, env: dict[str, str] | None = None,
                 rtp_range: tuple[int, int] = (0, 0),
                 extra_env: dict[str, str] | None = None) -> None:  # fmt: skip
        settings = {"model": str(model_dir), "shutdown_grace_s": "60"}
        if rtp_range[0]:
            settings["rtp_port_first"], settings["rtp_port_last"] = map(str, rtp_range)
        for name, value in (env or {}).items():  # CALLQA_<NAME> given by a test
            settings[name.removeprefix("CALLQA_").lower()] = value
        super().__init__(data_dir, settings, extra_env=extra_env)

    def start(self, timeout_s: float = 120.0) -> Daemon:
        super().start(timeout_s)
        return self


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
    from core.audio.wav import read_wav

    rec = read_wav(path)
    to16 = [np.clip(ch * 32768.0, -32768, 32767).astype(np.int16) for ch in rec.channels]
    return to16[0], to16[1]
