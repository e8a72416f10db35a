"""`callqa capture`: a sound card or an analog line-in (older recorders tap lines this way) as a
call source.

The card is read 20 ms at a time: with two channels, channel 0 is the agent and channel 1 the
customer; with one, the leg ``--speaker`` names. Each call goes to the daemon as one
``StreamAudio`` stream, the way any integration sends a call, so it is transcribed, alerted,
scored and stored by the same pipeline as every other call; its transcript, findings and
score print as they come.

When calls start and end (`CallControl`):

* by voice (``--start-by voice``, the default): a call starts when voice is heard on any
  channel, with the half second before it, and ends after ``--end-silence-s`` of silence on
  every channel;
* by key (``--start-by key``): Enter starts a call and Enter ends it.

In both modes Enter toggles (ends the call in progress, or starts one; after a call ended by
Enter, voice starts the next one only after ``--end-silence-s`` of silence). Ctrl-C or
SIGTERM ends the call in progress and stops, as does the end of standard input in key mode;
``--calls N`` stops after N calls. The card is never read ahead of the wall clock, so a
device that hands out samples faster than real time (ALSA's ``null``, a file) still makes
real-time calls.
"""

from __future__ import annotations

import argparse
import getpass
import queue
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.cli.sound_card import find_device, open_stream, port_audio
from core.clock import utc_now_iso
from core.config import Settings

FRAME_S = 0.02
PREROLL_S = 0.5
"""Audio kept from before the voice that starts a call."""
AHEAD_S = 0.1
"""How far the reads may run ahead of the wall clock before the loop waits."""
LOST_S = 5.0
"""Reads this far behind the wall clock mean the card lost audio (it overflowed while the
loop stalled): the card's timeline is moved up to now, so that keys act at once again."""
END_SILENCE_S = 8.0
SCORE_WAIT_S = 300.0
"""How long to wait, at the end, for the daemon to score the calls sent."""
TOGGLE, STOP = "toggle", "stop"
Key = tuple[str, float]
"""A control event and when it came (``time.monotonic()``)."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "capture",
        help="take calls from a sound card or line-in (channel 0 agent, 1 customer) into the "
        "daemon",
    )  # fmt: skip
    p.add_argument("--device", dest="sound_device", metavar="N",
                   help="recording device: its number or name (default: the system's)")  # fmt: skip
    p.add_argument("--channels", type=int, choices=(1, 2), default=2,
                   help="2: agent on channel 0, customer on 1 (default); 1: one leg")  # fmt: skip
    p.add_argument("--speaker", choices=("agent", "customer"), default="agent",
                   help="whose voice a one-channel line carries (default agent)")  # fmt: skip
    p.add_argument("--rate", type=int, choices=(8000, 16000), default=8000,
                   help="sample rate in Hz (default %(default)s)")  # fmt: skip
    p.add_argument("--start-by", choices=("voice", "key"), default="voice",
                   help="start and end calls by voice activity, or by Enter (Enter toggles "
                   "in both)")  # fmt: skip
    p.add_argument("--end-silence-s", type=float, default=END_SILENCE_S,
                   help="by voice: silence that ends a call (default %(default)s s)")
    p.add_argument("--calls", type=int, help="stop after this many calls")
    p.add_argument("--agent", help="agent id of the calls")
    p.add_argument("--team", help="team id of the calls")
    p.add_argument("--rubric", help="rubric id (default: the daemon's routing)")
    p.add_argument("--address", help="daemon address host:port (default: the settings)")
    p.add_argument("--token", help="bearer token (default: setting grpc_token_ingest, else "
                   "grpc_token, or the grpc_tokens_file)")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="print only each call's score")
    p.set_defaults(func=cmd_capture)
    return p


# ---------------------------------------------------------------- when calls start and end


class CallControl:
    """Decides, frame by frame, when a call starts and ends (see the module notes)."""

    def __init__(self, by_voice: bool, end_silence_s: float, frame_s: float = FRAME_S) -> None:
        self.by_voice = by_voice
        self.end_frames = max(1, round(end_silence_s / frame_s))
        self.in_call = False
        self._quiet = 0
        self._held = False  # ended by Enter while voice went on: no new call until silence

    def step(self, voice: bool, toggled: bool) -> str | None:
        """One frame: ``voice`` heard on any channel, Enter pressed. Returns "start", "end"
        or None."""
        self._quiet = 0 if voice else self._quiet + 1
        if toggled:
            self.in_call = not self.in_call
            self._held = not self.in_call
            self._quiet = 0
            return "start" if self.in_call else "end"
        if not self.by_voice:
            return None
        if self._held and self._quiet >= self.end_frames:
            self._held = False
        if not self.in_call and voice and not self._held:
            self.in_call = True
            return "start"
        if self.in_call and self._quiet >= self.end_frames:
            self.in_call = False
            return "end"
        return None


# ---------------------------------------------------------------- one call to the daemon


@dataclass
class CallOptions:
    rate: int
    legs: tuple[int, ...]
    """The proto Leg of each channel."""
    agent_id: str
    team_id: str
    rubric: str
    device: str


class StreamedCall:
    """One captured call, streamed to the daemon; its events are printed on a thread."""

    def __init__(self, stub: Any, metadata: Any, options: CallOptions, started_by: str,
                 quiet: bool) -> None:  # fmt: skip
        from proto import callqa_pb2 as pb

        self.pb = pb
        self.options = options
        self.quiet = quiet
        self._frames: queue.Queue[Any] = queue.Queue()
        setup = pb.CallSetup(
            external_call_id=f"capture-{socket.gethostname()}-{utc_now_iso('milliseconds')}",
            agent_id=options.agent_id, team_id=options.team_id,
            encoding=pb.AUDIO_ENCODING_PCM16_LE, sample_rate_hz=options.rate,
            metadata={"capture_device": options.device, "started_by": started_by,
                      "captured_by": f"{getpass.getuser()}@{socket.gethostname()}"},
        )  # fmt: skip
        if options.rubric:
            setup.rubric_id = options.rubric
        self._frames.put(pb.AudioFrame(setup=setup))
        self.external_id = setup.external_call_id
        self.call_id = ""
        self.score: float | None = None
        self.error: Any = None
        self._events = stub.StreamAudio(self._requests(), metadata=metadata)
        self.thread = threading.Thread(target=self._read_events, name="callqa-capture-events",
                                       daemon=True)  # fmt: skip
        self.thread.start()

    def _requests(self) -> Iterator[Any]:
        while True:
            frame = self._frames.get()
            if frame is None:
                return
            yield frame

    def send(self, block: np.ndarray) -> None:
        """One block of the card's samples, shape (samples, channels)."""
        pb = self.pb
        for channel, leg in enumerate(self.options.legs):
            payload = np.ascontiguousarray(block[:, channel]).astype("<i2").tobytes()
            self._frames.put(pb.AudioFrame(audio=pb.AudioChunk(leg=leg, payload=payload)))

    def end(self) -> None:
        self._frames.put(self.pb.AudioFrame(end=self.pb.CallEnd()))
        self._frames.put(None)

    def _read_events(self) -> None:
        import grpc

        from core.cli.serve import describe_event

        try:
            for event in self._events:
                self.call_id = self.call_id or event.call_id
                kind = event.WhichOneof("event")
                if kind == "scored":
                    self.score = event.scored.score
                if not self.quiet or kind == "scored":
                    print(describe_event(event), flush=True)
        except grpc.RpcError as exc:
            self.error = exc
            print(f"callqa: error: {exc.code().name}: {exc.details()}", file=sys.stderr,
                  flush=True)  # fmt: skip


# ---------------------------------------------------------------- the capture loop


def _stdin_keys(events: queue.Queue[Key], stop_at_eof: bool) -> None:
    for _line in sys.stdin:
        events.put((TOGGLE, time.monotonic()))
    if stop_at_eof:
        events.put((STOP, time.monotonic()))


def cmd_capture(args: argparse.Namespace, config: Settings) -> int:
    from core.api.client import ApiClient
    from proto import callqa_pb2 as pb
    from proto import callqa_pb2_grpc as pb_grpc

    if args.end_silence_s <= 0:
        raise ValueError("--end-silence-s must be more than 0")
    channels = args.channels
    legs = ((pb.LEG_AGENT, pb.LEG_CUSTOMER) if channels == 2 else
            (pb.LEG_AGENT if args.speaker == "agent" else pb.LEG_CUSTOMER,))  # fmt: skip
    rate = args.rate
    frame = round(FRAME_S * rate)
    pa = port_audio()
    client = None
    card = None
    calls: list[StreamedCall] = []
    try:
        device = find_device(pa, args.sound_device, output=False, channels=channels)
        client = ApiClient(config, args.address or None, args.token)
        stub = pb_grpc.CallQaStub(client.channel)
        metadata = client.metadata_for("StreamAudio")
        options = CallOptions(rate, legs, args.agent or "", args.team or "", args.rubric or "",
                              f"{device.index}: {device.name}")  # fmt: skip
        card = open_stream(pa, device, output=False, rate=rate, channels=channels, frames=frame)
        keys: queue.Queue[Key] = queue.Queue()
        threading.Thread(target=_stdin_keys, args=(keys, args.start_by == "key"),
                         name="callqa-capture-keys", daemon=True).start()  # fmt: skip
        previous = signal.signal(signal.SIGTERM, lambda *_: keys.put((STOP, time.monotonic())))
        print(f"capturing from sound device {device.index} ({device.name}), {channels} "
              f"channel(s) at {rate} Hz; calls start and end by {args.start_by}"
              f"{'' if args.start_by == 'key' else ' (Enter toggles too)'}; Ctrl-C stops",
              file=sys.stderr, flush=True)  # fmt: skip
        try:
            _capture(card, keys, args, options, stub, metadata, calls)
        except KeyboardInterrupt:
            if calls and calls[-1].thread.is_alive():
                calls[-1].end()
        finally:
            signal.signal(signal.SIGTERM, previous)
        deadline = time.monotonic() + SCORE_WAIT_S
        for call in calls:
            call.thread.join(max(0.0, deadline - time.monotonic()))
        return 1 if any(c.error is not None for c in calls) else 0
    finally:
        if card is not None:
            card.close()
        if client is not None:
            client.close()
        pa.terminate()


def _capture(card: Any, keys: queue.Queue[Key], args: argparse.Namespace, options: CallOptions,
             stub: Any, metadata: Any, calls: list[StreamedCall]) -> None:  # fmt: skip
    from kernels.vad import StreamingVad

    rate, channels = options.rate, len(options.legs)
    frame = round(FRAME_S * rate)
    vads = [StreamingVad(rate, round(FRAME_S * 1000)) for _ in range(channels)]
    control = CallControl(args.start_by == "voice", args.end_silence_s)
    preroll: deque[np.ndarray] = deque(maxlen=max(1, round(PREROLL_S / FRAME_S)))
    current: StreamedCall | None = None
    pending: Key | None = None
    started = time.monotonic()
    read = 0
    while True:
        ahead = read / rate - (time.monotonic() - started)
        if ahead > AHEAD_S:
            time.sleep(ahead - AHEAD_S)
        elif ahead < -LOST_S:
            started = time.monotonic() - read / rate
        raw = card.read(frame, exception_on_overflow=False)
        block = np.frombuffer(raw, dtype="<i2").reshape(-1, channels)
        read += len(block)
        voice = False
        for ch, vad in enumerate(vads):
            decided = vad.process(block[:, ch].astype(np.float32) / 32768.0)
            voice = voice or bool(decided.any())
        # A key acts on the audio the card captured when it was pressed (after a stall, the
        # reads catch up with the card's buffer), one key a frame.
        if pending is None and not keys.empty():
            pending = keys.get_nowait()
        key = None
        if pending is not None and pending[1] <= started + read / rate:
            key, pending = pending[0], None
        if key == STOP:
            if current is not None:
                current.end()
            return
        toggled = key == TOGGLE
        action = control.step(voice, toggled)
        if action == "start":
            current = StreamedCall(stub, metadata, options, "key" if toggled else "voice",
                                   args.quiet)  # fmt: skip
            calls.append(current)
            for old in preroll:
                current.send(old)
            preroll.clear()
        if current is not None:
            current.send(block)
            if current.error is not None:
                return
        else:
            preroll.append(block)
        if action == "end" and current is not None:
            current.end()
            current = None
            if args.calls and len(calls) >= args.calls:
                return
