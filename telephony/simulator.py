"""A call simulator: SIPREC recording sessions with real-time RTP, the way an SBC sends them.

`Simulator.run(plans)` places one recording session per `CallPlan` on a recording server
(SIP over UDP) and streams both legs of each call in real time:

* signalling: an INVITE with a multipart/mixed body, the SDP offer (two `sendonly` audio
  m-lines, the agent's labelled `1` first, the customer's labelled `2`) and RFC 7865
  metadata (the agent participant first, the customer marked as the calling party of an
  inbound call), `Require: siprec` and `+sip.src` in Contact. The INVITE is re-sent on
  timer A (T1, doubling) until a response comes and given up after 64·T1 (timer B); a final
  response of 300 or more is acknowledged and ends the attempt (`rejected`, with its status
  and Retry-After). After the 200 comes the ACK (re-sent for each re-sent 200), the RTP,
  then a BYE (timers E and F) whose 200 ends the call. The recorder's RTP address of each
  stream is read from the SDP answer, matched by label (else by m-line order).
* media: ONE thread sends every call's packets: 20 ms of G.711 (160 samples) per packet, a
  random SSRC, sequence number and timestamp base per stream, the marker bit on the first
  packet. Packet k of a call is due at `first_packet_monotonic + k * 0.02` on the monotonic
  clock (absolute deadlines, so there is no drift); due packets leave in one pass, and a
  packet may leave at most `early_s` before its deadline so that calls whose deadlines are
  close share one wake-up. Each stream sends from its own UDP socket with `socket.sendto`.
  The sender's own CPU time (`time.thread_time()` in that thread) is reported in
  `SenderStats`, apart from the rest of the process.

`first_packet_wall` of a `CallOutcome` is the `time.time()` at which the first RTP packet of
the call left: audio second t of the call was sent at `first_packet_wall + t` (to within the
sender's lateness, see `SenderStats.max_late_s`).

The simulator is asyncio code (`await Simulator(...).run(plans)`); `simulate(...)` runs it
to completion from synchronous code. Sockets: one for SIP, two per call while it lasts (the
soft limit on open files is raised towards what the plans need).

The sender thread shares the GIL with the event loop and with whatever else runs in the
process; a thread holding the GIL delays packets by up to the interpreter's switch interval
(5 ms by default). A process that only simulates may lower it, as `callqa simulate` does
(`sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)`); a recorder in the same process adds its
own packet handling to the sender's waits.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import heapq
import itertools
import logging
import secrets
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from kernels.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from telephony.sip.dialog import new_branch, new_tag
from telephony.sip.headers import Headers
from telephony.sip.message import (
    SipParseError,
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
    parse_name_addr,
    parse_uri,
)
from telephony.sip.sdp import MediaDescription, SdpError, SessionDescription, parse_sdp
from telephony.sip.transaction import TimerSettings
from telephony.siprec import RFC_NAMESPACE, SDP_TYPE, parse_multipart

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 8000
FRAME_SAMPLES = 160
PACKET_S = FRAME_SAMPLES / SAMPLE_RATE_HZ
CODECS: dict[str, int] = {"PCMU": 0, "PCMA": 8}
AGENT = "agent"
CUSTOMER = "customer"
ROLES = (AGENT, CUSTOMER)
STREAM_LABELS = {AGENT: "1", CUSTOMER: "2"}
DIRECTIONS = ("inbound", "outbound")
DEFAULT_AGENT_AOR = "sip:1001@pbx.example.com"
DEFAULT_CUSTOMER_AOR = "sip:+15550100001@carrier.example.net"
AGENT_DOMAIN = "pbx.example.com"
EXTENSION_NAMESPACE = "urn:x-callqa:simulator"
USER_AGENT = "callqa-simulator"
MULTIPART_BOUNDARY = "callqa-sim-boundary"
MAX_FORWARDS = 70
EARLY_S = 0.0005
LATE_THRESHOLD_S = 0.002
HANGUP_DELAY_S = 0.1
SEND_BUFFER_BYTES = 1 << 18
GIL_SWITCH_INTERVAL_S = 0.001

OK = "ok"
REJECTED = "rejected"
FAILED = "failed"

_RTP_HEADER = struct.Struct("!BBHII")
_RTP_HEADER_BYTES = _RTP_HEADER.size


# ---------------------------------------------------------------- plans


def _as_pcm16(audio: object, what: str) -> np.ndarray:
    """Mono int16 PCM from an int16 array, or from float audio in [-1, 1] (scaled by 32768)."""
    if not isinstance(audio, np.ndarray):
        raise TypeError(f"{what}: expected a NumPy array of 8 kHz mono PCM, got {type(audio)}")
    if audio.ndim != 1:
        raise ValueError(
            f"{what}: expected mono audio (a 1-D array), got shape {audio.shape}; give each "
            "leg its own channel, or load a stereo WAV with load_plan_from_wav"
        )
    if audio.size == 0:
        raise ValueError(f"{what}: the audio is empty")
    if audio.dtype == np.int16:
        return np.ascontiguousarray(audio)
    if audio.dtype in (np.float32, np.float64):
        if not np.isfinite(audio).all():
            raise ValueError(f"{what}: the audio holds NaN or infinite samples")
        scaled = np.rint(audio.astype(np.float64) * 32768.0)
        return np.clip(scaled, -32768, 32767).astype(np.int16)
    raise ValueError(
        f"{what}: expected int16 or float32 PCM, got {audio.dtype}; convert it with "
        "audio.astype(np.int16) or scale floats to [-1, 1]"
    )


def _user_of(aor: str) -> str:
    try:
        return parse_uri(aor).user
    except SipParseError:
        return aor


@dataclass(frozen=True, eq=False)
class CallPlan:
    """One call to simulate: both legs' audio, who speaks them, the codec and when to start.

    `agent_audio` and `customer_audio` are 8 kHz mono PCM, int16 or float in [-1, 1]
    (float audio is scaled by 32768 and stored as int16). The legs may differ in length;
    each stream ends with its own audio. `direction` says who placed the call: `inbound`
    (the customer called the agent, the usual call-center case) or `outbound`; the metadata
    marks that participant as the calling party.
    """

    agent_audio: np.ndarray
    customer_audio: np.ndarray
    agent_aor: str = DEFAULT_AGENT_AOR
    customer_aor: str = DEFAULT_CUSTOMER_AOR
    codec: str = "PCMU"
    start_offset_s: float = 0.0
    sample_rate: int = SAMPLE_RATE_HZ
    direction: str = "inbound"
    name: str = ""

    def __post_init__(self) -> None:
        if self.sample_rate != SAMPLE_RATE_HZ:
            raise ValueError(
                f"the audio must be sampled at {SAMPLE_RATE_HZ} Hz, got {self.sample_rate} Hz;"
                " resample it first (e.g. `sox in.wav -r 8000 out.wav`)"
            )
        codec = str(self.codec).upper()
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {self.codec!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if not self.start_offset_s >= 0.0:
            raise ValueError(f"start_offset_s must be 0 or more, got {self.start_offset_s}")
        for aor, what in ((self.agent_aor, "agent_aor"), (self.customer_aor, "customer_aor")):
            try:
                parse_uri(aor)
            except SipParseError as exc:
                raise ValueError(f"{what}: {exc}") from exc
        object.__setattr__(self, "codec", codec)
        object.__setattr__(self, "agent_audio", _as_pcm16(self.agent_audio, "agent audio"))
        object.__setattr__(self, "customer_audio", _as_pcm16(self.customer_audio, "customer audio"))

    @property
    def agent_id(self) -> str:
        """The user part of the agent's AoR (the extension or login)."""
        return _user_of(self.agent_aor)

    @property
    def duration_s(self) -> float:
        """Seconds of audio of the longer leg."""
        return max(len(self.agent_audio), len(self.customer_audio)) / SAMPLE_RATE_HZ

    def audio(self, role: str) -> np.ndarray:
        return self.agent_audio if role == AGENT else self.customer_audio


def agent_aor_for(agent_id: str | int, domain: str = AGENT_DOMAIN) -> str:
    """`sip:<agent_id>@<domain>`: the AoR of an agent extension."""
    return f"sip:{agent_id}@{domain}"


WAVE_PCM = 1
WAVE_ALAW = 6
WAVE_MULAW = 7
WAVE_EXTENSIBLE = 0xFFFE


def read_wav_legs(path: Path | str) -> tuple[int, list[np.ndarray]]:
    """The sample rate and the int16 channels of a PCM16, mu-law or A-law WAV file.

    Raises `ValueError` saying what is wrong with a file that is not one of these.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a folder, not a WAV file") from None
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    chunks: dict[bytes, tuple[int, int]] = {}
    pos = 12
    while pos + 8 <= len(data) and b"data" not in chunks:
        chunk_id, size = struct.unpack_from("<4sI", data, pos)
        chunks.setdefault(chunk_id, (pos + 8, size))
        pos += 8 + size + (size & 1)
    if b"fmt " not in chunks or b"data" not in chunks:
        raise ValueError(f"{path}: the WAV file lacks its 'fmt ' or 'data' chunk")
    fmt_at, fmt_size = chunks[b"fmt "]
    if fmt_size < 16 or fmt_at + 16 > len(data):
        raise ValueError(f"{path}: the WAV 'fmt ' chunk is truncated")
    tag, n_channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", data, fmt_at)
    if tag == WAVE_EXTENSIBLE and fmt_size >= 40 and fmt_at + 26 <= len(data):
        tag = struct.unpack_from("<H", data, fmt_at + 24)[0]
    width = {WAVE_PCM: 16, WAVE_ALAW: 8, WAVE_MULAW: 8}.get(tag)
    if width is None or bits != width or n_channels < 1 or block_align != n_channels * width // 8:
        raise ValueError(
            f"{path}: WAV encoding {tag} with {bits} bits is not supported; "
            "use 16-bit PCM, G.711 mu-law or A-law"
        )
    data_at, data_size = chunks[b"data"]
    frames = min(data_size, len(data) - data_at) // block_align
    raw = np.frombuffer(data, np.uint8, frames * block_align, data_at)
    if tag == WAVE_PCM:
        pcm = raw.view("<i2").astype(np.int16)
    else:
        codes = np.ascontiguousarray(raw)
        pcm = ulaw_decode(codes) if tag == WAVE_MULAW else alaw_decode(codes)
    interleaved = pcm.reshape(frames, n_channels)
    return rate, [np.ascontiguousarray(interleaved[:, c]) for c in range(n_channels)]


def load_plan_from_wav(
    path: Path | str,
    *,
    agent_id: str | int = "1001",
    agent_aor: str | None = None,
    customer_aor: str = DEFAULT_CUSTOMER_AOR,
    codec: str = "PCMU",
    start_offset_s: float = 0.0,
    direction: str = "inbound",
) -> CallPlan:
    """A plan from a stereo 8 kHz WAV file: the agent on the left, the customer on the right.

    16-bit PCM, G.711 mu-law and A-law files are read; a mu-law file sent as PCMU (or an
    A-law one as PCMA) sends the file's own audio unchanged. `agent_aor` overrides the AoR
    made from `agent_id` (`sip:<agent_id>@pbx.example.com`).
    """
    rate, channels = read_wav_legs(path)
    if rate != SAMPLE_RATE_HZ:
        raise ValueError(
            f"{path}: sampled at {rate} Hz; the simulator sends 8 kHz G.711, "
            "resample it (e.g. `sox in.wav -r 8000 out.wav`)"
        )
    if len(channels) != 2:
        raise ValueError(
            f"{path}: {len(channels)} channel(s); a stereo file is expected "
            "(the agent on the left, the customer on the right)"
        )
    if not len(channels[0]):
        raise ValueError(f"{path}: the file holds no audio")
    return CallPlan(
        agent_audio=channels[0],
        customer_audio=channels[1],
        agent_aor=agent_aor or agent_aor_for(agent_id),
        customer_aor=customer_aor,
        codec=codec,
        start_offset_s=start_offset_s,
        direction=direction,
        name=Path(path).name,
    )


# ---------------------------------------------------------------- results


@dataclass
class CallOutcome:
    """What happened to one planned call.

    `status`: `ok` (answered, streamed, BYE answered with 200), `rejected` (the INVITE got a
    final response of 300 or more: `sip_status`, `reason`, `retry_after_s`) or `failed`
    (no answer, an unusable answer, a transport error, the recorder hung up, the BYE failed;
    `reason` says which). Times: `first_packet_wall` (`time.time()`) and
    `first_packet_monotonic` (`time.monotonic()`) of the first RTP packet of the call.
    """

    index: int
    call_id: str
    agent_aor: str
    customer_aor: str
    codec: str
    status: str = FAILED
    sip_status: int | None = None
    reason: str = ""
    retry_after_s: int | None = None
    provisional: list[int] = field(default_factory=list)
    invite_retransmissions: int = 0
    setup_s: float | None = None
    first_packet_wall: float | None = None
    first_packet_monotonic: float | None = None
    last_packet_monotonic: float | None = None
    packets_sent: dict[str, int] = field(default_factory=lambda: {AGENT: 0, CUSTOMER: 0})
    send_errors: int = 0
    remote_rtp: dict[str, tuple[str, int]] = field(default_factory=dict)
    duration_s: float = 0.0
    bye_status: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def agent_id(self) -> str:
        return _user_of(self.agent_aor)

    def summary(self) -> str:
        """One line for a person: the call, its status and what was sent."""
        status = self.status if self.sip_status is None else f"{self.status} {self.sip_status}"
        text = f"{self.call_id} agent {self.agent_id}: {status}"
        if self.reason and self.status != OK:
            text += f" ({self.reason})"
        if self.retry_after_s is not None:
            text += f", retry after {self.retry_after_s} s"
        if self.first_packet_wall is not None:
            text += (
                f"; {self.duration_s:.1f} s sent, packets agent {self.packets_sent[AGENT]}"
                f" customer {self.packets_sent[CUSTOMER]}"
            )
        return text


@dataclass
class SenderStats:
    """The RTP sender thread over one run.

    `cpu_s` is that thread's CPU time; `stream_seconds` the seconds of audio sent summed over
    streams (two per call). Lateness is measured against each packet's deadline when it is
    sent: `max_late_s`, `mean_late_s`, and `late_packets` later than `late_threshold_s`.
    """

    packets: int = 0
    send_errors: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    stream_seconds: float = 0.0
    wakeups: int = 0
    max_late_s: float = 0.0
    mean_late_s: float = 0.0
    late_packets: int = 0
    late_threshold_s: float = LATE_THRESHOLD_S

    @property
    def cpu_per_stream_second(self) -> float:
        """CPU seconds spent per second of one stream's audio (0 when nothing was sent)."""
        return self.cpu_s / self.stream_seconds if self.stream_seconds else 0.0

    @property
    def cpu_per_packet_s(self) -> float:
        return self.cpu_s / self.packets if self.packets else 0.0


@dataclass
class SimulationResult:
    calls: list[CallOutcome]
    sender: SenderStats

    @property
    def ok(self) -> int:
        return sum(1 for call in self.calls if call.ok)


# ---------------------------------------------------------------- the RTP sender


class _Leg:
    """One RTP stream of a call, as the sender thread sees it."""

    __slots__ = (
        "buf", "dest", "n_packets", "n_samples", "payload", "pt", "role", "sent", "seq0",
        "sock", "ssrc", "ts0", "view",
    )  # fmt: skip

    def __init__(self, role: str, sock: socket.socket, payload: memoryview, pt: int) -> None:
        self.role = role
        self.sock = sock
        self.dest: tuple[str, int] = ("", 0)
        self.payload = payload
        self.n_samples = len(payload)
        self.n_packets = -(-self.n_samples // FRAME_SAMPLES)
        self.pt = pt
        self.ssrc = secrets.randbits(32)
        self.seq0 = secrets.randbits(16)
        self.ts0 = secrets.randbits(32)
        self.buf = bytearray(_RTP_HEADER_BYTES + FRAME_SAMPLES)
        self.view = memoryview(self.buf)
        self.sent = 0


class _MediaCall:
    """The media of one call: its legs, the next packet index and the first packet's times."""

    __slots__ = (
        "cancelled", "first_mono", "first_wall", "last_mono", "legs", "n_packets", "next_k",
        "on_done", "send_errors", "t0",
    )  # fmt: skip

    def __init__(self, legs: list[_Leg], on_done: Callable[[], None]) -> None:
        self.legs = legs
        self.n_packets = max(leg.n_packets for leg in legs)
        self.next_k = 0
        self.t0 = 0.0
        self.first_wall: float | None = None
        self.first_mono: float | None = None
        self.last_mono: float | None = None
        self.send_errors = 0
        self.cancelled = False
        self.on_done = on_done


class MediaSender:
    """One thread that sends the RTP of every call on absolute monotonic deadlines.

    `add` hands it a call's media (from any thread); the first packet leaves at once and
    packet k at `t0 + k * PACKET_S`, where t0 is when the first one left. The sender owns
    the legs' sockets from then on: after the last packet (or after `cancel`, or `stop`) it
    closes them and calls the call's `on_done` in the sender thread.
    """

    def __init__(self, early_s: float = EARLY_S, late_threshold_s: float = LATE_THRESHOLD_S):
        self.early_s = early_s
        self.late_threshold_s = late_threshold_s
        self._incoming: deque[_MediaCall] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="callqa-rtp-sender", daemon=True)
        self.stats = SenderStats(late_threshold_s=late_threshold_s)
        self._late_sum = 0.0
        self._late_count = 0
        self._samples = 0
        self._heap: list[tuple[float, int, _MediaCall]] = []

    def start(self) -> None:
        self._thread.start()

    def add(self, call: _MediaCall) -> None:
        if self._stopping:
            self._done(call)
            return
        self._incoming.append(call)
        self._wake.set()

    def cancel(self, call: _MediaCall) -> None:
        """Stop sending a call's packets; its `on_done` still comes."""
        call.cancelled = True
        self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> SenderStats:
        """Stop the thread (calls still running are cut short) and return its statistics."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return self.stats

    def _run(self) -> None:
        cpu0 = time.thread_time()
        wall0 = time.monotonic()
        try:
            self._loop()
        except Exception:  # a bug here must not leave the calls waiting forever
            logger.exception("the RTP sender failed")
        finally:
            self.stats.cpu_s = time.thread_time() - cpu0
            self.stats.wall_s = time.monotonic() - wall0
            self.stats.mean_late_s = self._late_sum / self._late_count if self._late_count else 0
            self.stats.stream_seconds = self._samples / SAMPLE_RATE_HZ
            self._finish_all()

    def _finish_all(self) -> None:
        while self._incoming:
            self._done(self._incoming.popleft())
        for _, _, call in self._heap:
            self._done(call)
        self._heap.clear()

    def _done(self, call: _MediaCall) -> None:
        """The sender is done with a call: it closes the call's sockets, then says so."""
        for leg in call.legs:
            with contextlib.suppress(OSError):
                leg.sock.close()
        try:
            call.on_done()
        except Exception:
            logger.exception("an RTP call-done callback failed")

    def _loop(self) -> None:
        monotonic = time.monotonic
        sleep = time.sleep
        heap = self._heap
        order = itertools.count()
        incoming = self._incoming
        wake = self._wake
        early = self.early_s
        stats = self.stats
        while not self._stopping:
            while incoming:
                heapq.heappush(heap, (monotonic(), next(order), incoming.popleft()))
            if not heap:
                wake.wait()
                wake.clear()
                continue
            now = monotonic()
            wait = heap[0][0] - now
            if wait > early:
                # A plain sleep costs less than waiting on the event; calls added meanwhile
                # start when it ends (their first packet's time is taken when it is sent).
                sleep(wait)
                continue
            stats.wakeups += 1
            horizon = now + early
            while heap and heap[0][0] <= horizon:
                due, tie, call = heapq.heappop(heap)
                if call.cancelled:
                    self._done(call)
                    continue
                self._send(call, due, monotonic())
                if call.next_k < call.n_packets:
                    heapq.heappush(heap, (call.t0 + call.next_k * PACKET_S, tie, call))
                else:
                    self._done(call)

    def _send(self, call: _MediaCall, due: float, now: float) -> None:
        """Send packet `call.next_k` of every leg that still has audio."""
        k = call.next_k
        stats = self.stats
        if k == 0:
            call.first_wall = time.time()
            call.first_mono = now = time.monotonic()
            call.t0 = now
        else:
            late = now - due
            if late > 0.0:
                self._late_sum += late
                if late > stats.max_late_s:
                    stats.max_late_s = late
                if late > self.late_threshold_s:
                    stats.late_packets += 1
            self._late_count += 1
        offset = k * FRAME_SAMPLES
        pack_into = _RTP_HEADER.pack_into
        for leg in call.legs:
            if k >= leg.n_packets:
                continue
            n = leg.n_samples - offset
            if n > FRAME_SAMPLES:
                n = FRAME_SAMPLES
            marker = 0x80 if k == 0 else 0
            pack_into(
                leg.buf, 0, 0x80, marker | leg.pt, (leg.seq0 + k) & 0xFFFF,
                (leg.ts0 + offset) & 0xFFFFFFFF, leg.ssrc,
            )  # fmt: skip
            end = _RTP_HEADER_BYTES + n
            leg.buf[_RTP_HEADER_BYTES:end] = leg.payload[offset : offset + n]
            try:
                leg.sock.sendto(leg.buf if n == FRAME_SAMPLES else leg.view[:end], leg.dest)
            except OSError:
                call.send_errors += 1
                stats.send_errors += 1
                continue
            leg.sent += 1
            stats.packets += 1
            self._samples += n
        call.last_mono = time.monotonic()
        call.next_k = k + 1


# ---------------------------------------------------------------- SIP bodies


def _b64id() -> str:
    return base64.b64encode(secrets.token_bytes(16)).decode("ascii")


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _addrtype(host: str) -> str:
    return "IP6" if ":" in host else "IP4"


def offer_sdp(local_host: str, ports: dict[str, int], codec: str) -> str:
    """The SDP offer: one sendonly audio m-line per leg, the agent's first, labelled."""
    pt = CODECS[codec]
    addrtype = _addrtype(local_host)
    lines = [
        "v=0",
        f"o=callqa-sim {secrets.randbelow(2**31)} 1 IN {addrtype} {local_host}",
        "s=SIPREC",
        f"c=IN {addrtype} {local_host}",
        "t=0 0",
    ]
    for role in ROLES:
        lines += [
            f"m=audio {ports[role]} RTP/AVP {pt}",
            f"a=rtpmap:{pt} {codec}/{SAMPLE_RATE_HZ}",
            f"a=label:{STREAM_LABELS[role]}",
            "a=sendonly",
        ]
    return "\r\n".join(lines) + "\r\n"


def recording_metadata(plan: CallPlan, call_id: str) -> str:
    """RFC 7865 metadata: the agent participant first, the customer second, one stream each.

    The calling party (the customer of an inbound call, the agent of an outbound one) carries
    `callingParty` extension data, so a recorder without agent patterns still knows who is
    the caller and who the callee.
    """
    session_id = _b64id()
    people = {AGENT: _b64id(), CUSTOMER: _b64id()}
    streams = {AGENT: _b64id(), CUSTOMER: _b64id()}
    aors = {AGENT: plan.agent_aor, CUSTOMER: plan.customer_aor}
    names = {AGENT: f"Agent {plan.agent_id}", CUSTOMER: "Customer"}
    caller = CUSTOMER if plan.direction == "inbound" else AGENT
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<recording xmlns="{RFC_NAMESPACE}" xmlns:sim="{EXTENSION_NAMESPACE}">',
        "  <datamode>complete</datamode>",
        f"  <session session_id={quoteattr(session_id)}>",
        f"    <sipSessionID>{escape(call_id)}</sipSessionID>",
        "  </session>",
    ]
    for role in ROLES:
        lines += [
            f"  <participant participant_id={quoteattr(people[role])}>",
            f"    <nameID aor={quoteattr(aors[role])}>",
            f"      <name>{escape(names[role])}</name>",
            "    </nameID>",
        ]
        if role == caller:
            lines += [
                "    <extensiondata>",
                "      <sim:callingParty>true</sim:callingParty>",
                "    </extensiondata>",
            ]
        lines.append("  </participant>")
    for role in ROLES:
        lines += [
            f"  <stream stream_id={quoteattr(streams[role])} session_id={quoteattr(session_id)}>",
            f"    <label>{STREAM_LABELS[role]}</label>",
            "  </stream>",
        ]
    for role in ROLES:
        other = CUSTOMER if role == AGENT else AGENT
        lines += [
            f"  <participantstreamassoc participant_id={quoteattr(people[role])}>",
            f"    <send>{streams[role]}</send>",
            f"    <recv>{streams[other]}</recv>",
            "  </participantstreamassoc>",
        ]
    lines.append("</recording>")
    return "\n".join(lines) + "\n"


def multipart_body(sdp: str, metadata: str) -> tuple[str, bytes]:
    """The Content-Type and body of a SIPREC INVITE: the SDP, then the metadata."""
    b = MULTIPART_BOUNDARY
    # RFC 2046 §5.1.1: the CRLF before each delimiter belongs to the delimiter.
    body = (
        f"--{b}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n"
        f"--{b}\r\nContent-Type: application/rs-metadata+xml\r\n"
        f"Content-Disposition: recording-session\r\n\r\n{metadata}\r\n"
        f"--{b}--\r\n"
    )
    return f"multipart/mixed;boundary={b}", body.encode("utf-8")


def answer_of(response: SipResponse) -> SessionDescription:
    """The SDP answer of a 200 OK (a bare SDP body or an SDP part of a multipart one)."""
    ctype = response.content_type
    main = ctype.split(";")[0].strip().lower()
    if main.startswith("multipart/"):
        for part in parse_multipart(ctype, response.body):
            if part.content_type == SDP_TYPE:
                return parse_sdp(part.body.decode("utf-8", errors="replace"))
        raise SdpError("the 200 OK carries no SDP part")
    if not response.body:
        raise SdpError("the 200 OK carries no SDP answer")
    return parse_sdp(response.body.decode("utf-8", errors="replace"))


def remote_streams(
    answer: SessionDescription, codec: str, fallback_host: str
) -> dict[str, tuple[str, int]]:
    """The recorder's RTP address for each role, from the answer's m-line of that label.

    Raises `SdpError` when a stream was refused (port 0) or answered without our codec.
    """
    result: dict[str, tuple[str, int]] = {}
    pt = CODECS[codec]
    for index, role in enumerate(ROLES):
        label = STREAM_LABELS[role]
        media: MediaDescription | None = next((m for m in answer.media if m.label == label), None)
        if media is None and index < len(answer.media):
            media = answer.media[index]  # RFC 3264: the answer keeps the offer's order
        if media is None or media.port == 0:
            raise SdpError(f"the recorder refused the {role} stream (label {label})")
        if pt not in media.payload_types:
            raise SdpError(f"the {role} stream was answered without {codec}")
        host = media.connection or answer.connection or fallback_host
        if host in ("0.0.0.0", "::"):
            host = fallback_host
        result[role] = (host, media.port)
    return result


# ---------------------------------------------------------------- signalling


class _SipEndpoint(asyncio.DatagramProtocol):
    """The simulator's SIP socket: hands responses and requests to their call."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.simulator._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("SIP socket error: %s", exc)


@dataclass
class _CallState:
    """The signalling state of one simulated call (the UAC side of its dialog)."""

    plan: CallPlan
    outcome: CallOutcome
    local_tag: str
    local_uri: str
    remote_uri: str
    cseq: int
    responses: asyncio.Queue[SipResponse] = field(default_factory=asyncio.Queue)
    remote_bye: asyncio.Event = field(default_factory=asyncio.Event)
    remote_tag: str = ""
    remote_target: str = ""
    route_set: list[str] = field(default_factory=list)
    ack_wire: bytes | None = None


class Simulator:
    """Places simulated SIPREC calls on a recording server at `target_host:target_port` (UDP).

    `timers` are the RFC 3261 timer bases (T1 for timers A, B, E, F). `hangup_delay_s` is
    the pause between a call's last RTP packet and its BYE, so that the last packets reach
    the recorder before the call ends. `early_s` is how early a packet may leave to share a
    wake-up of the sender; `late_threshold_s` is the lateness counted in
    `SenderStats.late_packets`.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        local_host: str = "127.0.0.1",
        sip_port: int = 0,
        timers: TimerSettings | None = None,
        hangup_delay_s: float = HANGUP_DELAY_S,
        early_s: float = EARLY_S,
        late_threshold_s: float = LATE_THRESHOLD_S,
    ) -> None:
        if not 0 < target_port < 65536:
            raise ValueError(f"target port must be 1-65535, got {target_port}")
        if not 0 <= sip_port < 65536:
            raise ValueError(f"local SIP port must be 0-65535, got {sip_port}")
        if early_s < 0 or late_threshold_s < 0 or hangup_delay_s < 0:
            raise ValueError("early_s, late_threshold_s and hangup_delay_s must be 0 or more")
        self.target_host = target_host
        self.target_port = target_port
        self.local_host = local_host
        self.sip_port = sip_port
        self.timers = timers or TimerSettings()
        self.hangup_delay_s = hangup_delay_s
        self.early_s = early_s
        self.late_threshold_s = late_threshold_s
        self.counters: dict[str, int] = {
            "malformed": 0, "stray_responses": 0, "requests_answered": 0,
            "ack_retransmissions": 0,
        }  # fmt: skip
        self._calls: dict[str, _CallState] = {}
        self._endpoint: _SipEndpoint | None = None
        self._sender: MediaSender | None = None
        self._local_port = 0
        self._target: tuple[str, int] = (target_host, target_port)
        self._running = False

    # ---------------------------------------------------------------- running

    async def run(self, plans: Sequence[CallPlan]) -> SimulationResult:
        """Place every planned call (each at its start offset) and wait until all have ended.

        Returns the outcome of each call, in the order of `plans`, and the sender's
        statistics. Cancelling the run hangs up the calls in progress (BYE, not awaited).
        """
        plans = list(plans)
        if not plans:
            raise ValueError("no calls to simulate")
        for i, plan in enumerate(plans):
            if not isinstance(plan, CallPlan):
                raise TypeError(f"plan {i}: expected a CallPlan, got {type(plan).__name__}")
        if self._running:
            raise RuntimeError("this simulator is already running; make one per run")
        self._running = True
        try:
            return await self._run(plans)
        finally:
            self._running = False

    async def _run(self, plans: list[CallPlan]) -> SimulationResult:
        _allow_descriptors(2 * len(plans) + 64)
        cache: dict[tuple[int, str], tuple[np.ndarray, memoryview]] = {}
        payloads = [self._payload(plan, cache) for plan in plans]
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.local_host else socket.AF_INET
        infos = await loop.getaddrinfo(
            self.target_host, self.target_port, family=family, type=socket.SOCK_DGRAM
        )
        if not infos:
            raise OSError(f"cannot resolve {self.target_host}")
        address = infos[0][4]
        self._target = (str(address[0]), int(address[1]))
        transport, endpoint = await loop.create_datagram_endpoint(
            lambda: _SipEndpoint(self), local_addr=(self.local_host, self.sip_port)
        )
        self._endpoint = endpoint
        self._local_port = int(transport.get_extra_info("sockname")[1])
        sender = MediaSender(self.early_s, self.late_threshold_s)
        self._sender = sender
        sender.start()
        start = loop.time()
        tasks = [
            loop.create_task(self._call(i, plan, start, payload))
            for i, (plan, payload) in enumerate(zip(plans, payloads, strict=True))
        ]
        try:
            outcomes = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            stats = sender.stop()
            transport.close()
            self._calls.clear()
            self._sender = None
            self._endpoint = None
        return SimulationResult(list(outcomes), stats)

    @staticmethod
    def _payload(
        plan: CallPlan, cache: dict[tuple[int, str], tuple[np.ndarray, memoryview]]
    ) -> dict[str, memoryview]:
        """Each leg's G.711 code bytes, encoded once per distinct audio array and codec."""
        result: dict[str, memoryview] = {}
        for role in ROLES:
            audio = plan.audio(role)
            key = (id(audio), plan.codec)
            if key not in cache:
                codes = ulaw_encode(audio) if plan.codec == "PCMU" else alaw_encode(audio)
                cache[key] = (audio, memoryview(codes.tobytes()))  # the array keeps id valid
            result[role] = cache[key][1]
        return result

    # ---------------------------------------------------------------- one call

    async def _call(
        self, index: int, plan: CallPlan, start: float, payloads: dict[str, memoryview]
    ) -> CallOutcome:
        loop = asyncio.get_running_loop()
        call_id = f"sim-{secrets.token_hex(8)}@{self.local_host}"
        outcome = CallOutcome(index, call_id, plan.agent_aor, plan.customer_aor, plan.codec)
        delay = start + plan.start_offset_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        contact_host = _hostport(self.local_host, self._local_port)
        state = _CallState(
            plan=plan,
            outcome=outcome,
            local_tag=new_tag(),
            local_uri=f"sip:src@{contact_host}",
            remote_uri=f"sip:srs@{_hostport(self.target_host, self.target_port)}",
            cseq=secrets.randbelow(2**15) + 1,
        )
        self._calls[call_id] = state
        sockets: dict[str, socket.socket] = {}
        answered = False
        bye_sent = False
        try:
            for role in ROLES:
                sockets[role] = self._rtp_socket()
            ports = {role: int(s.getsockname()[1]) for role, s in sockets.items()}
            invite = self._invite(state, ports)
            t_invite = loop.time()
            final = await self._transact(state, invite, invite=True)
            if final is None:
                outcome.reason = "no final response to the INVITE (timer B)"
                return outcome
            outcome.setup_s = loop.time() - t_invite
            outcome.sip_status = final.status
            if final.status >= 300:
                self._send(self._ack_non_2xx(invite, final).serialize())
                outcome.status = REJECTED
                outcome.reason = final.reason
                retry = (final.headers.get("Retry-After") or "").split(";")[0].strip()
                outcome.retry_after_s = int(retry) if retry.isdigit() else None
                return outcome
            answered = True
            self._confirm(state, final)
            try:
                outcome.remote_rtp = remote_streams(answer_of(final), plan.codec, self._target[0])
            except (SdpError, SipParseError) as exc:
                outcome.reason = f"unusable SDP answer: {exc}"
                bye_sent = True
                await self._hang_up(state)
                return outcome
            media = await self._stream(state, sockets, payloads)
            if state.remote_bye.is_set():
                outcome.reason = "the recorder ended the call (BYE)"
                return outcome
            if media.send_errors:
                outcome.reason = f"{media.send_errors} RTP packet(s) could not be sent"
            await asyncio.sleep(self.hangup_delay_s)
            if state.remote_bye.is_set():
                outcome.reason = "the recorder ended the call (BYE)"
                return outcome
            bye_sent = True
            bye = await self._hang_up(state)
            if bye is None:
                outcome.reason = "no answer to the BYE (timer F)"
            elif bye.status >= 300:
                outcome.bye_status = bye.status
                outcome.reason = f"the BYE was answered {bye.status} {bye.reason}"
            else:
                outcome.bye_status = bye.status
                outcome.status = OK
                outcome.reason = outcome.reason or "OK"
            return outcome
        except asyncio.CancelledError:
            if answered and not bye_sent and not state.remote_bye.is_set():
                with contextlib.suppress(OSError, SipParseError):
                    self._send(self._bye(state).serialize())
            raise
        except OSError as exc:
            outcome.reason = f"transport error: {exc}"
            return outcome
        except Exception as exc:  # one broken call must not stop the others
            logger.exception("simulated call %s failed", call_id)
            outcome.reason = f"internal error: {exc!r}"
            return outcome
        finally:
            for sock in sockets.values():
                sock.close()
            self._calls.pop(call_id, None)

    def _rtp_socket(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.local_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            sock.bind((self.local_host, 0))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def _stream(
        self, state: _CallState, sockets: dict[str, socket.socket], payloads: dict[str, memoryview]
    ) -> _MediaCall:
        """Hand the call's media (and its sockets) to the sender thread; return when it is
        sent, or cut short by the recorder's BYE."""
        assert self._sender is not None
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def on_done() -> None:  # in the sender thread
            with contextlib.suppress(RuntimeError):  # the loop is gone
                loop.call_soon_threadsafe(_resolve, done)

        pt = CODECS[state.plan.codec]
        legs = []
        for role in ROLES:
            leg = _Leg(role, sockets[role], payloads[role], pt)
            leg.dest = state.outcome.remote_rtp[role]
            legs.append(leg)
        media = _MediaCall(legs, on_done)
        sockets.clear()  # the sender closes them when it is done with the call
        self._sender.add(media)
        bye_wait = loop.create_task(state.remote_bye.wait())
        try:
            waiters: set[asyncio.Future[Any]] = {done, bye_wait}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if not done.done():
                self._sender.cancel(media)
                await done
        finally:
            bye_wait.cancel()
            if not done.done():
                self._sender.cancel(media)
        self._collect(state.outcome, media)
        return media

    @staticmethod
    def _collect(outcome: CallOutcome, media: _MediaCall) -> None:
        outcome.first_packet_wall = media.first_wall
        outcome.first_packet_monotonic = media.first_mono
        outcome.last_packet_monotonic = media.last_mono
        outcome.send_errors = media.send_errors
        for leg in media.legs:
            outcome.packets_sent[leg.role] = leg.sent
        samples = max(min(leg.n_samples, media.next_k * FRAME_SAMPLES) for leg in media.legs)
        outcome.duration_s = samples / SAMPLE_RATE_HZ

    # ---------------------------------------------------------------- messages

    def _via(self) -> str:
        return (
            f"SIP/2.0/UDP {_hostport(self.local_host, self._local_port)};"
            f"branch={new_branch()};rport"
        )

    def _invite(self, state: _CallState, ports: dict[str, int]) -> SipRequest:
        plan = state.plan
        ctype, body = multipart_body(
            offer_sdp(self.local_host, ports, plan.codec),
            recording_metadata(plan, state.outcome.call_id),
        )
        headers = Headers()
        headers.add("Via", self._via())
        headers.add("Max-Forwards", str(MAX_FORWARDS))
        headers.add("From", f"<{state.local_uri}>;tag={state.local_tag}")
        headers.add("To", f"<{state.remote_uri}>")
        headers.add("Call-ID", state.outcome.call_id)
        headers.add("CSeq", f"{state.cseq} INVITE")
        headers.add("Contact", f"<{state.local_uri}>;+sip.src")
        headers.add("Require", "siprec")
        headers.add("Accept", "application/sdp")
        headers.add("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS")
        headers.add("User-Agent", USER_AGENT)
        headers.add("MIME-Version", "1.0")
        headers.add("Content-Type", ctype)
        return SipRequest("INVITE", state.remote_uri, headers, body)

    @staticmethod
    def _ack_non_2xx(invite: SipRequest, response: SipResponse) -> SipRequest:
        """RFC 3261 §17.1.1.3: the ACK of a non-2xx final response, in the INVITE transaction."""
        headers = Headers()
        headers.add("Via", invite.headers.get("Via") or "")
        headers.add("Max-Forwards", str(MAX_FORWARDS))
        headers.add("From", invite.headers.get("From") or "")
        headers.add("To", response.headers.get("To") or "")
        headers.add("Call-ID", invite.call_id)
        headers.add("CSeq", f"{invite.cseq[0]} ACK")
        return SipRequest("ACK", invite.uri, headers)

    def _confirm(self, state: _CallState, ok: SipResponse) -> None:
        """The dialog of a 2xx (RFC 3261 §12.1.2), then its ACK, kept for re-sent 2xx."""
        state.remote_tag = ok.to_addr.tag or ""
        contacts = ok.headers.get_all("Contact")
        state.remote_target = parse_name_addr(contacts[0]).uri if contacts else state.remote_uri
        state.route_set = list(reversed(ok.headers.get_all("Record-Route")))
        ack = self._in_dialog(state, "ACK", state.cseq)
        state.ack_wire = ack.serialize()
        self._send(state.ack_wire)

    def _in_dialog(self, state: _CallState, method: str, cseq: int) -> SipRequest:
        headers = Headers()
        headers.add("Via", self._via())
        headers.add("Max-Forwards", str(MAX_FORWARDS))
        for route in state.route_set:
            headers.add("Route", route)
        to_tag = f";tag={state.remote_tag}" if state.remote_tag else ""
        headers.add("From", f"<{state.local_uri}>;tag={state.local_tag}")
        headers.add("To", f"<{state.remote_uri}>{to_tag}")
        headers.add("Call-ID", state.outcome.call_id)
        headers.add("CSeq", f"{cseq} {method}")
        headers.add("User-Agent", USER_AGENT)
        return SipRequest(method, state.remote_target or state.remote_uri, headers)

    def _bye(self, state: _CallState) -> SipRequest:
        state.cseq += 1
        return self._in_dialog(state, "BYE", state.cseq)

    async def _hang_up(self, state: _CallState) -> SipResponse | None:
        return await self._transact(state, self._bye(state), invite=False)

    async def _transact(
        self, state: _CallState, request: SipRequest, *, invite: bool
    ) -> SipResponse | None:
        """Send a request until its final response (RFC 3261 §17.1.1 timers A/B for INVITE,
        §17.1.2 timers E/F otherwise); None when none came within 64·T1."""
        loop = asyncio.get_running_loop()
        t1, t2 = self.timers.t1_s, self.timers.t2_s
        wire = request.serialize()
        key = request.cseq
        deadline = loop.time() + self.timers.timeout_s
        interval = t1
        resend_at = loop.time() + interval
        proceeding = False
        self._send(wire)
        while True:
            now = loop.time()
            if now >= deadline:
                return None
            wake = deadline if invite and proceeding else min(resend_at, deadline)
            try:
                response = await asyncio.wait_for(state.responses.get(), max(0.0, wake - now))
            except TimeoutError:
                now = loop.time()
                if now >= resend_at and now < deadline and not (invite and proceeding):
                    self._send(wire)
                    if invite:
                        state.outcome.invite_retransmissions += 1
                        interval *= 2  # timer A doubles without a cap
                    else:
                        interval = t2 if proceeding else min(2 * interval, t2)
                    resend_at = now + interval
                continue
            try:
                if response.cseq != key:
                    continue
            except SipParseError:
                continue
            if response.status < 200:
                proceeding = True
                if invite:
                    state.outcome.provisional.append(response.status)
                continue
            return response

    # ---------------------------------------------------------------- the socket

    def _send(self, data: bytes) -> None:
        endpoint = self._endpoint
        if endpoint is None or endpoint.transport is None or endpoint.transport.is_closing():
            raise OSError("the SIP socket is closed")
        endpoint.transport.sendto(data, self._target)

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if not data.strip(b"\r\n"):
            return  # a keep-alive
        try:
            message = parse_message(data)
            call_id = message.call_id
            cseq = message.cseq
        except SipParseError:
            self.counters["malformed"] += 1
            return
        state = self._calls.get(call_id)
        if isinstance(message, SipResponse):
            if state is None:
                self.counters["stray_responses"] += 1
                return
            if cseq[1] == "INVITE" and 200 <= message.status < 300 and state.ack_wire:
                self.counters["ack_retransmissions"] += 1  # the 2xx came again: so does the ACK
                with contextlib.suppress(OSError):
                    self._send(state.ack_wire)
                return
            state.responses.put_nowait(message)
            return
        self._on_request(message, state, addr)

    def _on_request(self, request: SipRequest, state: _CallState | None, addr: Any) -> None:
        if request.method == "ACK":
            return
        self.counters["requests_answered"] += 1
        if request.method == "OPTIONS":
            response = make_response(request, 200)
            response.headers.add("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS")
        elif state is None or (request.from_addr.tag or "") != state.remote_tag:
            response = make_response(request, 481)
        elif request.method == "BYE":
            state.remote_bye.set()
            response = make_response(request, 200)
        else:
            response = make_response(request, 405)
            response.headers.add("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS")
        endpoint = self._endpoint
        if endpoint is not None and endpoint.transport is not None:
            endpoint.transport.sendto(response.serialize(), addr)


def _allow_descriptors(count: int) -> None:
    """Raise the soft limit on open files towards `count` (two sockets per call), within the
    hard limit; with fewer the calls beyond it fail with a transport error."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= count:
        return
    target = count if hard == resource.RLIM_INFINITY else min(count, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def simulate(
    target_host: str, target_port: int, plans: Sequence[CallPlan], **options: Any
) -> SimulationResult:
    """Run a simulation to completion from synchronous code (`options` go to `Simulator`)."""
    simulator = Simulator(target_host, target_port, **options)
    return asyncio.run(simulator.run(plans))
