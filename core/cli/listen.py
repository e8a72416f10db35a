"""`callqa listen CALL`: play a live call on this machine's sound card (a supervisor's 监听).

The daemon's ``ListenCall`` stream sends each leg's audio as the box receives it, stamped with
its arrival; a reader thread puts it into the jitter buffer (`core.cli.playout`), and the main
thread writes its frames to the sound card. For each frame written, the latency from arrival
on the box to playback is the time after the write, plus the device's own output latency,
less the arrival stamp of the oldest audio in the frame; the summary at the end gives its
median, 95th percentile and maximum. The daemon logs every listening (who, which call, when).
"""

from __future__ import annotations

import argparse
import getpass
import json
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from core.cli.playout import MAX_S, TARGET_S, Frame, PlayoutBuffer
from core.cli.sound_card import find_device, open_stream, port_audio
from core.config import Settings
from core.stats import percentile

LEG_CHOICES = ("agent", "customer", "both")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "listen", help="play a live call on the speakers (supervisor listening, 监听)",
    )  # fmt: skip
    p.add_argument("call", help="live call id (or the sender's id for it)")
    p.add_argument("--leg", choices=LEG_CHOICES, default="both",
                   help="which side to hear (default both: agent left, customer right)")
    p.add_argument("--mix", action="store_true", help="both legs in one channel")
    p.add_argument("--device", dest="sound_device", metavar="N",
                   help="playback device: its number or name (default: the system's)")  # fmt: skip
    p.add_argument("--buffer-ms", type=int, default=round(TARGET_S * 1000),
                   help="jitter buffer: audio held before playback starts (default %(default)s)")
    p.add_argument("--listener", help="your name for the daemon's audit log (default user@host)")
    p.add_argument("--address", help="daemon address host:port (default: the settings)")
    p.add_argument("--token", help="bearer token (default: setting grpc_token_listen, else "
                   "grpc_token, or the grpc_tokens_file)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_listen)
    return p


@dataclass
class ListenSummary:
    call_id: str = ""
    legs: str = ""
    played_s: float = 0.0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_max_ms: float | None = None
    late_samples: int = 0
    skipped_samples: int = 0
    silence_frames: int = 0
    dropped_by_box_samples: int = 0
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        del out["latencies_ms"]
        return out

    def line(self) -> str:
        lat = ("no audio" if self.latency_max_ms is None else
               f"latency from arrival to playback p50 {self.latency_p50_ms:.0f} ms, "
               f"p95 {self.latency_p95_ms:.0f} ms, max {self.latency_max_ms:.0f} ms")  # fmt: skip
        return f"listened to {self.played_s:.1f} s of call {self.call_id} ({self.legs}); {lat}"


class _Reader:
    """Reads the ListenCall stream on a thread into the jitter buffer."""

    def __init__(self, stream: Any, buffer: PlayoutBuffer, legs: dict[Any, str]) -> None:
        self.stream = stream
        self.buffer = buffer
        self.legs = legs
        self.cond = threading.Condition()
        self.error: Any = None
        self.call_id = ""
        self.dropped = 0
        self.thread = threading.Thread(target=self._run, name="callqa-listen", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import grpc
        import numpy as np

        try:
            for piece in self.stream:
                pcm = np.frombuffer(piece.pcm16, dtype="<i2")
                arrived = piece.arrived_at.ToNanoseconds() / 1e9
                with self.cond:
                    self.call_id = piece.call_id
                    self.dropped += piece.dropped_samples
                    self.buffer.put(self.legs.get(piece.leg, ""), piece.position_samples, pcm,
                                    arrived, time.monotonic())  # fmt: skip
                    self.cond.notify()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self.error = exc
        finally:
            with self.cond:
                self.buffer.finish()
                self.cond.notify()


def play(reader: _Reader, out: Any, output_latency_s: float, summary: ListenSummary) -> None:
    """Write the buffer's frames to ``out`` until the stream ends and the buffer is empty."""
    buffer = reader.buffer
    frames = 0
    while True:
        with reader.cond:
            item = buffer.next_frame(time.monotonic())
            if isinstance(item, float):
                reader.cond.wait(min(item, buffer.frame / buffer.sample_rate))
                continue
        if item is None:
            break
        frame: Frame = item
        out.write(frame.pcm.tobytes())
        frames += 1
        if frame.arrived_wall is not None:
            summary.latencies_ms.append(
                (time.time() + output_latency_s - frame.arrived_wall) * 1000.0
            )
    summary.played_s = frames * buffer.frame / buffer.sample_rate
    summary.late_samples = buffer.late_samples
    summary.skipped_samples = buffer.skipped_samples
    summary.silence_frames = buffer.silence_frames


def cmd_listen(args: argparse.Namespace, config: Settings) -> int:
    import grpc

    from core.api.client import ApiClient
    from proto import callqa_pb2 as pb
    from proto import callqa_pb2_grpc as pb_grpc

    legs = ("agent", "customer") if args.leg == "both" else (args.leg,)
    channels = 1 if args.mix or len(legs) == 1 else 2
    pa = port_audio()
    client = None
    try:
        device = find_device(pa, args.sound_device, output=True, channels=channels)
        client = ApiClient(config, args.address or None, args.token)
        stub = pb_grpc.CallQaStub(client.channel)
        leg = {"agent": pb.LEG_AGENT, "customer": pb.LEG_CUSTOMER}.get(args.leg, pb.LEG_UNSPECIFIED)
        who = args.listener or f"{getpass.getuser()}@{socket.gethostname()}"
        stream = stub.ListenCall(pb.ListenRequest(call_id=args.call, leg=leg, listener=who),
                                 metadata=client.metadata_for("ListenCall"))  # fmt: skip
        first = next(stream, None)  # the call's rate, and its errors, before opening the card
        if first is None:
            print(f"callqa: call {args.call} ended before any audio came", file=sys.stderr)
            return 0
        rate = first.sample_rate_hz
        target_s = max(0.0, args.buffer_ms / 1000.0)
        buffer = PlayoutBuffer(rate, legs, mix=args.mix, target_s=target_s,
                               max_s=max(MAX_S, target_s + MAX_S - TARGET_S))  # fmt: skip
        names = {pb.LEG_AGENT: "agent", pb.LEG_CUSTOMER: "customer"}
        out = open_stream(pa, device, output=True, rate=rate, channels=channels,
                          frames=buffer.frame)  # fmt: skip
        summary = ListenSummary(call_id=first.call_id, legs="+".join(legs))
        reader = _Reader(_chain(first, stream), buffer, names)
        try:
            play(reader, out, float(out.get_output_latency()), summary)
        except KeyboardInterrupt:
            stream.cancel()
        finally:
            out.stop_stream()
            out.close()
        summary.dropped_by_box_samples = reader.dropped
        _summarize(summary)
        if args.json:
            print(json.dumps(summary.to_json()), flush=True)
        else:
            print(summary.line(), file=sys.stderr)
        if reader.error is not None:
            raise reader.error
        return 0
    except grpc.RpcError as exc:
        print(f"callqa: error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            client.close()
        pa.terminate()


def _chain(first: Any, rest: Any) -> Any:
    yield first
    yield from rest


def _summarize(summary: ListenSummary) -> None:
    lat = summary.latencies_ms
    if lat:
        summary.latency_p50_ms = percentile(lat, 50)
        summary.latency_p95_ms = percentile(lat, 95)
        summary.latency_max_ms = max(lat)
