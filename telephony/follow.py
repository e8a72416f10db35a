"""Following SIP calls in captured traffic (port mirror, pcap) and recording their audio.

A :class:`CallFollower` sees every UDP datagram of a capture. SIP messages set up calls:
the SDP a side sends says where that side receives RTP, so RTP addressed there carries the
*other* side's voice. SDP in a request belongs to the side that sent it (told apart by the
From tag, so re-INVITEs from either side work); SDP in a response belongs to the side that
answers. Offers in the INVITE and late offers (SDP in the 200 OK, answer in the ACK) both
work. Each call gets one stereo recording: the agent on the left channel, the customer on
the right; which side is the agent is configured (``agent_side``: the callee for inbound
call centers, the caller for outbound ones).

A call ends at BYE or CANCEL (after a short linger for RTP still in flight), when INVITE
fails, or when neither SIP nor RTP was seen for ``idle_timeout_s``. Time is capture time:
the timestamps of the datagrams.

SIP over TCP and TLS, and SRTP, are not followed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from telephony.packets import UdpDatagram
from telephony.recorder import AGENT_CHANNEL, CUSTOMER_CHANNEL, CallRecorder
from telephony.rtp import AudioSink, LegStats, RtpLeg
from telephony.sip.message import SipMessage, SipParseError, SipRequest, parse_message
from telephony.sip.sdp import SdpError, SessionDescription, parse_sdp

logger = logging.getLogger(__name__)

CALLER = "caller"
CALLEE = "callee"
IDLE_TIMEOUT_S = 60.0
SETUP_TIMEOUT_S = 180.0
BYE_LINGER_S = 0.5
EXPIRY_INTERVAL_S = 1.0
MAX_CALLS = 10_000
SAMPLE_RATE_HZ = 8000
_SIP_START = re.compile(rb"^(?:[A-Z]{3,16} [^ ]+ SIP/2\.0\r?\n|SIP/2\.0 [1-6]\d\d)")
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


def _other(side: str) -> str:
    return CALLEE if side == CALLER else CALLER


@dataclass
class FollowOptions:
    """How calls are followed."""

    agent_side: str = CALLEE  # whose voice goes on the left (agent) channel
    idle_timeout_s: float = IDLE_TIMEOUT_S  # no SIP and no RTP this long ends a call
    setup_timeout_s: float = SETUP_TIMEOUT_S  # an INVITE with no media this long is dropped
    bye_linger_s: float = BYE_LINGER_S  # RTP still accepted this long after BYE
    jitter_depth_ms: int = 60
    max_calls: int = MAX_CALLS  # calls followed at once; further INVITEs are ignored

    def __post_init__(self) -> None:
        if self.agent_side not in (CALLER, CALLEE):
            raise ValueError(f"agent_side must be 'caller' or 'callee', got {self.agent_side!r}")


@dataclass
class EndedCall:
    """A call that ended, with its recording (None when no audio was ever seen)."""

    call_id: str
    caller: str
    callee: str
    recording: Path | None
    started_s: float  # capture time of the INVITE
    audio_start_s: float | None  # capture time of sample 0 of the recording
    ended_s: float
    duration_s: float  # of the recording
    reason: str  # bye, cancel, rejected, idle, setup_timeout, end_of_capture
    agent_side: str
    agent: LegStats | None = None
    customer: LegStats | None = None


@dataclass
class FollowStats:
    sip_messages: int = 0
    sip_malformed: int = 0
    sdp_malformed: int = 0
    rtp_routed: int = 0
    unmatched: int = 0
    calls_started: int = 0
    calls_ended: int = 0
    calls_refused: int = 0


@dataclass
class _Call:
    call_id: str
    caller: str
    callee: str
    caller_tag: str | None
    started_s: float
    last_s: float
    sdp: dict[str, SessionDescription] = field(default_factory=dict)
    media: dict[str, tuple[str, int, dict[int, str]]] = field(default_factory=dict)
    routes: list[tuple[str, int]] = field(default_factory=list)
    legs: dict[str, RtpLeg] = field(default_factory=dict)  # keyed by whose voice
    recorder: CallRecorder | None = None
    sinks: Callable[[str], AudioSink | None] | None = None
    end_at: float | None = None
    end_reason: str = ""
    answered: bool = False


EndedCallback = Callable[[EndedCall], None]


@dataclass(frozen=True)
class FollowedCall:
    """A followed call whose audio has begun: what a live consumer needs to take it."""

    call_id: str
    caller: str
    callee: str
    agent_side: str
    recording: Path


StartedCallback = Callable[[FollowedCall], Callable[[str], AudioSink | None] | None]
"""Given a call whose first RTP arrived, where each role's audio goes too (or None)."""


class CallFollower:
    """Feeds captured UDP datagrams in, calls ``on_call_ended`` for every finished call."""

    def __init__(
        self,
        out_dir: Path,
        on_call_ended: EndedCallback,
        options: FollowOptions | None = None,
        on_call_started: StartedCallback | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.options = options or FollowOptions()
        self.on_call_ended = on_call_ended
        self.on_call_started = on_call_started
        self.stats = FollowStats()
        self._calls: dict[str, _Call] = {}
        self._routes: dict[tuple[str, int], tuple[_Call, str]] = {}
        self._port_routes: dict[int, tuple[_Call, str] | None] = {}
        self._now = 0.0
        self._next_expiry = 0.0
        self._names: set[str] = set()

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def live_legs(self) -> list[RtpLeg]:
        """The legs of the calls followed now: a copy, which another thread may take while
        the capture thread feeds them (read their ``RtpLeg.counts_taken``)."""
        return [leg for call in list(self._calls.values()) for leg in list(call.legs.values())]

    # ------------------------------------------------------------------ input

    def feed(self, dgram: UdpDatagram) -> None:
        """Take one datagram of the capture, in capture order."""
        ts = dgram.timestamp_s
        if ts > self._now:
            self._now = ts
        route = self._routes.get((dgram.dst, dgram.dport))
        if route is None and dgram.payload[:1].isupper() and _SIP_START.match(dgram.payload):
            self._sip(dgram)
        else:
            if route is None:
                route = self._port_routes.get(dgram.dport)
            if route is None:
                self.stats.unmatched += 1
            else:
                self._rtp(route[0], route[1], dgram)
        if self._now >= self._next_expiry:
            self._next_expiry = self._now + EXPIRY_INTERVAL_S
            self.expire(self._now)

    def expire(self, now_s: float) -> None:
        """End calls whose BYE linger passed, that went idle, or that never got media."""
        opts = self.options
        for call in list(self._calls.values()):
            last = call.last_s
            for leg in call.legs.values():
                if leg.last_packet_s is not None and leg.last_packet_s > last:
                    last = leg.last_packet_s
            if call.end_at is not None and now_s >= call.end_at:
                self._end(call, call.end_reason)
            elif now_s - last >= opts.idle_timeout_s:
                self._end(call, "idle")
            elif call.recorder is None and now_s - call.started_s >= opts.setup_timeout_s:
                self._end(call, "setup_timeout")
            else:
                for leg in call.legs.values():
                    leg.tick(now_s)

    def close(self) -> None:
        """The capture is over: end every call still open."""
        for call in list(self._calls.values()):
            self._end(call, call.end_reason or "end_of_capture")

    # ------------------------------------------------------------------ SIP

    def _sip(self, dgram: UdpDatagram) -> None:
        try:
            msg = parse_message(dgram.payload)
            call_id = msg.call_id
            _, cseq_method = msg.cseq
            from_tag = msg.from_addr.tag
            to_addr = msg.to_addr
        except SipParseError as exc:
            self.stats.sip_malformed += 1
            logger.debug("malformed SIP from %s:%d: %s", dgram.src, dgram.sport, exc)
            return
        if not call_id:
            self.stats.sip_malformed += 1
            return
        self.stats.sip_messages += 1
        call = self._calls.get(call_id)
        if call is None:
            if not isinstance(msg, SipRequest) or msg.method != "INVITE" or to_addr.tag:
                return  # not a new call (or one whose start the capture missed)
            if len(self._calls) >= self.options.max_calls:
                self.stats.calls_refused += 1
                return
            call = _Call(
                call_id,
                caller=_uri(msg.from_addr.uri),
                callee=_uri(to_addr.uri),
                caller_tag=from_tag,
                started_s=dgram.timestamp_s,
                last_s=dgram.timestamp_s,
            )
            self._calls[call_id] = call
            self.stats.calls_started += 1
        call.last_s = dgram.timestamp_s
        sender = CALLER if from_tag == call.caller_tag else CALLEE  # who sent the request
        if isinstance(msg, SipRequest):
            if msg.method in ("INVITE", "ACK", "UPDATE", "PRACK"):
                self._sdp(call, sender, msg)
            elif msg.method in ("BYE", "CANCEL") and call.end_at is None:
                call.end_at = dgram.timestamp_s + self.options.bye_linger_s
                call.end_reason = "bye" if msg.method == "BYE" else "cancel"
            return
        status = msg.status
        if cseq_method in ("INVITE", "UPDATE", "PRACK") and 180 <= status < 300:
            self._sdp(call, _other(sender), msg)
        if cseq_method == "INVITE":
            if 200 <= status < 300:
                call.answered = True
            elif status >= 300 and not call.answered and call.end_at is None:
                call.end_at = dgram.timestamp_s  # the call never came about
                call.end_reason = "rejected"

    def _sdp(self, call: _Call, side: str, msg: SipMessage) -> None:
        text = _sdp_body(msg)
        if text is None:
            return
        try:
            sdp = parse_sdp(text)
        except SdpError as exc:
            self.stats.sdp_malformed += 1
            logger.debug("call %s: unusable SDP: %s", call.call_id, exc)
            return
        audio = sdp.audio()
        if not audio:
            return
        media = audio[0]
        if media.connection is None:
            return
        call.sdp[side] = sdp
        call.media[side] = (media.connection, media.port, media.payload_map())
        # RTP sent to where `side` receives carries the other side's voice.
        self._route(call, (media.connection, media.port), _other(side))

    def _route(self, call: _Call, key: tuple[str, int], voice: str) -> None:
        old = self._routes.get(key)
        if old is not None and old[0] is not call:
            old[0].routes.remove(key)
        self._routes[key] = (call, voice)
        if key not in call.routes:
            call.routes.append(key)
        port = key[1]
        if port not in self._port_routes:
            self._port_routes[port] = (call, voice)
        else:
            existing = self._port_routes[port]
            if existing is not None and existing[0] is call:
                self._port_routes[port] = (call, voice)
            else:
                self._port_routes[port] = None  # two calls on one port: match by address only

    # ------------------------------------------------------------------ RTP

    def _rtp(self, call: _Call, voice: str, dgram: UdpDatagram) -> None:
        if call.end_at is not None and dgram.timestamp_s > call.end_at:
            return
        leg = call.legs.get(voice)
        if leg is None:
            leg = self._open_leg(call, voice)
        self.stats.rtp_routed += 1
        leg.feed(dgram.payload, dgram.timestamp_s)

    def _open_leg(self, call: _Call, voice: str) -> RtpLeg:
        if call.recorder is None:
            call.recorder = CallRecorder(self._recording_path(call.call_id), 2, SAMPLE_RATE_HZ)
            if self.on_call_started is not None:
                started = FollowedCall(call.call_id, call.caller, call.callee,
                                       self.options.agent_side, call.recorder.path)  # fmt: skip
                try:
                    call.sinks = self.on_call_started(started)
                except Exception:
                    logger.exception("call %s: the call-started handler failed", call.call_id)
        receiver = call.media.get(_other(voice))
        sender = call.media.get(voice)
        payload_map = {**(sender[2] if sender else {}), **(receiver[2] if receiver else {})}
        channel = AGENT_CHANNEL if voice == self.options.agent_side else CUSTOMER_CHANNEL
        role = "agent" if voice == self.options.agent_side else "customer"
        sink = call.sinks(role) if call.sinks is not None else None
        leg = RtpLeg(
            channel, payload_map, call.recorder, depth_ms=self.options.jitter_depth_ms,
            on_audio=sink,
        )
        call.legs[voice] = leg
        return leg

    def _recording_path(self, call_id: str) -> Path:
        base = _UNSAFE.sub("_", call_id)[:80] or "call"
        name = base
        n = 1
        while name in self._names or (self.out_dir / f"{name}.wav").exists():
            n += 1
            name = f"{base}-{n}"
        self._names.add(name)
        return self.out_dir / f"{name}.wav"

    # ------------------------------------------------------------------ ending

    def _end(self, call: _Call, reason: str) -> None:
        self._calls.pop(call.call_id, None)
        for key in call.routes:
            route = self._routes.get(key)
            if route is not None and route[0] is call:
                del self._routes[key]
            route = self._port_routes.get(key[1])
            if route is not None and route[0] is call:
                del self._port_routes[key[1]]
        for leg in call.legs.values():
            leg.flush()
        recording = None
        duration = 0.0
        audio_start = None
        if call.recorder is not None:
            duration = call.recorder.duration_s
            audio_start = call.recorder.origin_s
            recording = call.recorder.close()
        agent = call.legs.get(self.options.agent_side)
        customer = call.legs.get(_other(self.options.agent_side))
        self.stats.calls_ended += 1
        ended = EndedCall(
            call_id=call.call_id,
            caller=call.caller,
            callee=call.callee,
            recording=recording,
            started_s=call.started_s,
            audio_start_s=audio_start,
            ended_s=self._now,
            duration_s=duration,
            reason=reason,
            agent_side=self.options.agent_side,
            agent=agent.stats if agent else None,
            customer=customer.stats if customer else None,
        )
        try:
            self.on_call_ended(ended)
        except Exception:
            logger.exception("call %s: the end-of-call handler failed", call.call_id)


def _uri(uri: str) -> str:
    return uri.strip().strip("<>")


def _sdp_body(msg: SipMessage) -> str | None:
    """The SDP text of a message: a plain application/sdp body or the SDP part of multipart."""
    if not msg.body:
        return None
    ctype = msg.content_type.lower()
    body = msg.body
    if ctype.startswith("application/sdp"):
        return body.decode("utf-8", errors="replace")
    if ctype.startswith("multipart/"):
        match = re.search(r'boundary="?([^";]+)"?', msg.content_type)
        if match is None:
            return None
        boundary = b"--" + match.group(1).encode()
        for part in body.split(boundary):
            head, sep, content = part.partition(b"\r\n\r\n")
            if not sep:
                head, sep, content = part.partition(b"\n\n")
            if sep and b"application/sdp" in head.lower():
                return content.decode("utf-8", errors="replace").rstrip("\r\n-")
    return None
