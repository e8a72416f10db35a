"""The SIP UAC side of the simulator: the INVITE's bodies (the SDP offer and RFC 7865
metadata in a multipart/mixed body), reading the SDP answer, the SIP socket, each call's
dialog state, and the requests and client transactions (INVITE, ACK, BYE) of `_SipUac`,
which `Simulator` builds on."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from telephony.simulator.constants import (
    AGENT,
    CODECS,
    CUSTOMER,
    EXTENSION_NAMESPACE,
    MAX_FORWARDS,
    MULTIPART_BOUNDARY,
    ROLES,
    SAMPLE_RATE_HZ,
    STREAM_LABELS,
    USER_AGENT,
)
from telephony.simulator.plans import CallPlan
from telephony.simulator.results import CallOutcome
from telephony.sip.dialog import new_branch
from telephony.sip.headers import Headers
from telephony.sip.message import (
    SipParseError,
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
    parse_name_addr,
)
from telephony.sip.sdp import MediaDescription, SdpError, SessionDescription, parse_sdp
from telephony.sip.transaction import TimerSettings
from telephony.siprec import RFC_NAMESPACE, SDP_TYPE, parse_multipart

logger = logging.getLogger(__name__)


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

    def __init__(self, simulator: _SipUac) -> None:
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


class _SipUac:
    """The UAC side of the simulator's calls: builds their requests, runs their client
    transactions and dispatches what arrives on the SIP socket. `Simulator` sets the
    attributes declared here."""

    local_host: str
    timers: TimerSettings
    counters: dict[str, int]
    _calls: dict[str, _CallState]
    _endpoint: _SipEndpoint | None
    _local_port: int
    _target: tuple[str, int]

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
