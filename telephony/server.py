"""The recording server: SIP over UDP and TCP, one `RecordingSession` per call.

It answers SIPREC sessions from an SBC (RFC 7866) and plain SIP calls with one audio stream:

* only configured peers are served: others get nothing on UDP and 403 on TCP;
* INVITE → 100, then 200 with a receive-only SDP answer and `+sip.srs` in Contact; 488 when
  no PCMU/PCMA audio is offered; 420 with Unsupported for an unknown Require; 503 with
  Retry-After at the session limit; re-INVITE and UPDATE pause (`a=inactive`, `a=recvonly`,
  `c=IN IP4 0.0.0.0`, port 0), resume and update metadata; BYE and CANCEL end the call
  (after the sender's BYE the streams stay open until no RTP came for 0.1 s, at most 0.5 s,
  for packets still on their way); a stop sends BYE to every session; OPTIONS answers what
  the server supports;
  481 for requests outside any known dialog;
* new calls, and OPTIONS probes outside a dialog, get 503 with Retry-After while the server
  drains (`drain`, on SIGTERM), is at its session limit or is short of disk
  (`telephony.health`), so that a dispatcher sends calls to another recorder;
* every Contact it sends (200 to INVITE, re-INVITE and UPDATE) carries its port and, over
  TCP, `;transport=tcp`, so that requests later in the dialog reach it again;
* a call whose live streams carry no RTP for `rtp_idle_timeout_s` (paused streams are
  exempt, up to an hour when all are paused) ends (the BYE may have been
  lost) and the server sends its own BYE;
* RTP and RTCP are received by one thread for every call (`telephony.media.ReceiveThread`:
  epoll, the ready sockets read in rounds), which feeds the legs' receive paths (parse,
  jitter buffer, decode, recording, the live sink) outside the event loop, and lets them
  release held audio by the arrival clock on its own tick; the event loop takes the receive
  thread's lock when it touches a leg (open, pause, end), and is let in between two rounds;
* malformed messages and every limit hit are counted in `counters`, logged at debug level
  and dropped; nothing a peer sends stops the server.

When a call's roles and recording are known, `on_call_started(RecordingSession)` may return
a function giving, per role, where that leg's decoded audio goes besides the recording (the
live daemon's pipeline). At the end of each call `on_call_ended(CallInfo)` is called; it may
return an awaitable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telephony.health import Availability, DiskSpace, Refusal
from telephony.media import ReceiveThread, RtpPortPool, ThreadMediaStream
from telephony.rtp import RtpLeg
from telephony.sessions import (
    CallInfo,
    CallStartedHook,
    MediaEndpoint,
    RecordingSession,
    SessionError,
)
from telephony.sip.dialog import Dialog, DialogId, dialog_id_of
from telephony.sip.message import (
    SipMessage,
    SipParseError,
    SipRequest,
    SipResponse,
    make_response,
    parse_name_addr,
    parse_uri,
)
from telephony.sip.sdp import SdpError, SessionDescription, answer_sdp, parse_sdp
from telephony.sip.transaction import ServerTransaction, TimerSettings, TransactionLayer
from telephony.sip.transport import Peer, TransportLayer
from telephony.sip.transport import PeerFilter as PeerFilter  # re-exported
from telephony.siprec import (
    METADATA_TYPES,
    SDP_TYPE,
    AgentPatterns,
    MetadataError,
    RecordingMetadata,
    is_recording_invite,
    option_tags,
    parse_metadata,
    split_bodies,
)

logger = logging.getLogger(__name__)

ALLOWED_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE")
SUPPORTED_OPTIONS = ("siprec",)
RETRY_AFTER_S = 5
IDLE_CHECK_INTERVAL_S = 1.0
DRAIN_POLL_S = 0.1
BYE_ANSWER_WAIT_S = 2.0
BYE_MEDIA_QUIET_S = 0.1
"""After a BYE, the streams close once none has had a packet for this long..."""
BYE_MEDIA_WAIT_S = 0.5
"""...or this long after the BYE at most."""
BYE_MEDIA_POLL_S = 0.02
"""How long a stop waits for the answers to the BYEs it sent before closing the sockets."""
BYE_REASON_TEXTS = {"rtp_timeout": "RTP timeout", "no_ack": "no ACK",
                    "shutdown": "recording server stopping"}  # fmt: skip
PAUSED_IDLE_LIMIT_S = 3600.0
SERVER_NAME = "callqa"

CallEndedCallback = Callable[[CallInfo], Awaitable[None] | None]


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server is configured with (see the `sip_*` and `rtp_*` settings)."""

    recordings_dir: Path
    host: str = "0.0.0.0"
    port: int = 5060
    transports: tuple[str, ...] = ("udp", "tcp")
    allowed_peers: tuple[str, ...] = ("127.0.0.1", "::1")
    rtp_port_first: int = 20000
    rtp_port_last: int = 29999
    max_sessions: int = 100
    disk_min_free_mb: float = 0.0
    """New calls are refused while less is free under `recordings_dir` (0: never)."""
    max_message_bytes: int = 65_535
    max_headers: int = 100
    rtp_idle_timeout_s: float = 30.0
    compiled_receive: bool = True
    """RTP read in compiled rounds (`telephony.lanes`); false: all through the Python path."""
    agent_patterns: AgentPatterns = field(default_factory=AgentPatterns)
    default_agent_side: str = "callee"
    timers: TimerSettings = field(default_factory=TimerSettings)
    idle_check_interval_s: float = IDLE_CHECK_INTERVAL_S


@dataclass
class Call:
    dialog: Dialog
    session: RecordingSession
    peer: Peer
    invite_tx: ServerTransaction
    confirmed: bool = False
    ready: bool = False
    updating: bool = False
    ending: bool = False


class RecordingServer:
    """SIP recording server; `await start()`, then `await stop()`."""

    def __init__(
        self,
        settings: ServerSettings,
        on_call_ended: CallEndedCallback | None = None,
        on_call_started: CallStartedHook | None = None,
    ) -> None:
        self.settings = settings
        self.on_call_ended = on_call_ended
        self.on_call_started = on_call_started
        self.counters: Counter[str] = Counter()
        self.transport = TransportLayer(
            settings.host, settings.allowed_peers, settings.max_message_bytes,
            settings.max_headers, on_message=self._dispatch, counters=self.counters,
        )  # fmt: skip
        self.ports = RtpPortPool(settings.rtp_port_first, settings.rtp_port_last)
        self.health = Availability(
            settings.max_sessions, DiskSpace(settings.recordings_dir), settings.disk_min_free_mb
        )
        """Whether new calls are taken (OPTIONS 200) or refused (503); see `drain`."""
        self.calls: dict[DialogId, Call] = {}
        self._setting_up: set[tuple[str, ...]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._callbacks: set[asyncio.Task[Any]] = set()
        self._byes: set[asyncio.Future[None]] = set()
        """BYEs the server sent that have no final answer yet."""
        self._layer: TransactionLayer | None = None
        self._monitor: asyncio.Task[None] | None = None
        self.receiver: ReceiveThread | None = None
        """The RTP receive thread, while the server is started."""

    # ---------------------------------------------------------------- lifecycle

    @property
    def layer(self) -> TransactionLayer:
        assert self._layer is not None, "the server is not started"
        return self._layer

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    @property
    def udp_port(self) -> int | None:
        """The bound UDP port, once started with UDP."""
        return self.transport.udp_port

    @property
    def tcp_port(self) -> int | None:
        """The bound TCP port, once started with TCP."""
        return self.transport.tcp_port

    async def start(self) -> None:
        """Bind the configured transports (port 0 picks a free port, the same for both)."""
        self._layer = TransactionLayer(
            self.settings.timers, self.loop, on_ack_timeout=self._on_ack_timeout
        )
        await self.transport.start(self.settings.transports, self.settings.port)
        self.receiver = ReceiveThread(compiled=self.settings.compiled_receive)
        self._monitor = self.loop.create_task(self._watch_idle())
        logger.info(
            "recording server on %s (udp %s, tcp %s)", self.settings.host, self.udp_port,
            self.tcp_port,
        )  # fmt: skip

    async def stop(self) -> None:
        """End every call (reason `shutdown`) with a BYE to its sender, wait for the callbacks
        and (briefly) the answers to the BYEs, close the sockets."""
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        for task in list(self._tasks):  # requests still being handled
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for call in list(self.calls.values()):  # the SRC stops streaming at our BYE
            await self._end_call(call, "shutdown", send_bye=True)
        if self._callbacks:
            await asyncio.gather(*self._callbacks, return_exceptions=True)
        if self._byes:  # answered, or retransmitted until the wait is over
            await asyncio.wait(list(self._byes), timeout=BYE_ANSWER_WAIT_S)
        await self.transport.close()
        if self.receiver is not None:
            self.receiver.close()
            self.receiver = None
        if self._layer is not None:
            self._layer.close()

    async def wait_callbacks(self) -> None:
        """Wait until the `on_call_ended` callbacks started so far have finished."""
        while self._callbacks:
            await asyncio.gather(*list(self._callbacks), return_exceptions=True)

    @property
    def active_calls(self) -> int:
        return len(self.calls) + len(self._setting_up)

    async def drain(self, timeout_s: float) -> int:
        """Refuse new calls from now on (503, to OPTIONS probes too) and wait up to
        `timeout_s` for the calls in progress to end; returns how many are still going."""
        self.health.draining = True
        deadline = self.loop.time() + timeout_s
        if self.active_calls:
            logger.info("draining: %d calls in progress, up to %.0f s", self.active_calls,
                        timeout_s)  # fmt: skip
        while self.active_calls and self.loop.time() < deadline:
            await asyncio.sleep(DRAIN_POLL_S)
        return self.active_calls

    # ---------------------------------------------------------------- dispatch

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.counters["internal_errors"] += 1
            logger.error("request handling failed", exc_info=task.exception())

    def _dispatch(self, message: SipMessage, peer: Peer) -> None:
        if isinstance(message, SipResponse):
            try:
                if not self.layer.receive_response(message):
                    self.counters["stray_responses"] += 1
            except SipParseError as exc:
                self.transport.count_parse_error(exc, peer)
            return
        try:
            self._check_request(message)
            if self.layer.absorb(message):
                self.counters["retransmissions_absorbed"] += 1
                return
        except SipParseError as exc:
            self.transport.count_parse_error(exc, peer)
            self._bad_request(message, peer, str(exc))
            return
        known = message.method in ALLOWED_METHODS
        self.counters[f"requests_{message.method.lower() if known else 'other'}"] += 1
        if message.method == "ACK":
            self._on_ack(message)
            return
        tx = self.layer.create(message, peer.send, peer.reliable)
        self._spawn(self._handle(message, tx, peer))

    @staticmethod
    def _check_request(request: SipRequest) -> None:
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            if not request.headers.get(name):
                raise SipParseError(f"request without {name}")
        _, method = request.cseq
        if method != request.method:
            raise SipParseError(f"CSeq method {method} differs from {request.method}")
        request.from_addr  # noqa: B018 - parse now so a bad From is a bad request
        request.to_addr  # noqa: B018
        request.vias  # noqa: B018

    def _bad_request(self, request: SipRequest, peer: Peer, why: str) -> None:
        if request.method == "ACK" or not request.headers.get("Via"):
            return
        try:
            response = make_response(request, 400, f"Bad Request ({why[:60]})")
            peer.send(response.serialize())
        except (SipParseError, OSError):
            pass

    async def _handle(self, request: SipRequest, tx: ServerTransaction, peer: Peer) -> None:
        try:
            await self._route(request, tx, peer)
        except Exception:
            self.counters["internal_errors"] += 1
            logger.exception("%s %s failed", request.method, request.call_id,
                             extra={"sip_call_id": request.call_id})  # fmt: skip
            if tx.last_response is None or tx.last_response.status < 200:
                tx.respond(make_response(request, 500, to_tag="error"))

    async def _route(self, request: SipRequest, tx: ServerTransaction, peer: Peer) -> None:
        method = request.method
        in_dialog = bool(request.to_addr.tag)
        if method == "INVITE" and not in_dialog:
            await self._on_invite(request, tx, peer)
        elif method in ("INVITE", "UPDATE"):
            await self._on_update(request, tx, peer)
        elif method == "BYE":
            await self._on_bye(request, tx)
        elif method == "CANCEL":
            self._on_cancel(request, tx)
        elif method == "OPTIONS":
            self._on_options(request, tx, in_dialog)
        else:
            response = make_response(request, 405)
            response.headers.add("Allow", ", ".join(ALLOWED_METHODS))
            tx.respond(response)

    def _on_options(self, request: SipRequest, tx: ServerTransaction, in_dialog: bool) -> None:
        """200 with the capabilities; out of dialog, 503 while new calls would be refused,
        so that a dispatcher probing with OPTIONS stops sending calls here."""
        refusal: Refusal | None = None if in_dialog else self.health.refusal(self.active_calls)
        if refusal is None:
            tx.respond(self._with_capabilities(make_response(request, 200, to_tag="options")))
            return
        self.counters["options_unavailable"] += 1
        logger.debug("OPTIONS from %s answered 503: %s", request.call_id, refusal.why)
        response = make_response(request, 503, to_tag="options")
        response.headers.add("Retry-After", str(RETRY_AFTER_S))
        response.headers.add("Warning", f'399 {SERVER_NAME} "{refusal.why[:80]}"')
        tx.respond(self._with_capabilities(response))

    def _with_capabilities(self, response: SipResponse) -> SipResponse:
        response.headers.add("Allow", ", ".join(ALLOWED_METHODS))
        response.headers.add("Accept", ", ".join((SDP_TYPE, *METADATA_TYPES)))
        response.headers.add("Supported", ", ".join(SUPPORTED_OPTIONS))
        response.headers.add("Server", SERVER_NAME)
        return response

    def _reject(self, request: SipRequest, tx: ServerTransaction, status: int, counter: str,
                why: str = "") -> None:  # fmt: skip
        self.counters[counter] += 1
        logger.info("%s %s refused with %d: %s", request.method, request.call_id, status, why,
                    extra={"sip_call_id": request.call_id})  # fmt: skip
        response = make_response(request, status, to_tag=f"r{status}")
        if status == 503:
            response.headers.add("Retry-After", str(RETRY_AFTER_S))
        if status == 420:
            unknown = [t for t in option_tags(request.headers, "Require")
                       if t not in SUPPORTED_OPTIONS]  # fmt: skip
            response.headers.add("Unsupported", ", ".join(unknown))
        if status in (405, 488):
            response.headers.add("Allow", ", ".join(ALLOWED_METHODS))
        if why and status >= 400:
            response.headers.add("Warning", f'399 {SERVER_NAME} "{why[:80]}"')
        tx.respond(response)

    # ---------------------------------------------------------------- INVITE

    def _bodies(
        self, request: SipRequest
    ) -> tuple[SessionDescription | None, RecordingMetadata | None, str | None]:
        """Parse the SDP and metadata; SDP errors raise, metadata errors are counted and
        returned (third) for the call's decision record."""
        sdp_text, metadata_xml = split_bodies(request)
        offer = parse_sdp(sdp_text) if sdp_text is not None else None
        metadata = None
        if metadata_xml is not None:
            try:
                metadata = parse_metadata(metadata_xml)
            except MetadataError as exc:
                self.counters["bad_metadata"] += 1
                logger.warning("call %s: recording metadata ignored: %s", request.call_id, exc,
                               extra={"sip_call_id": request.call_id})  # fmt: skip
                return offer, None, f"the metadata in the {request.method} was refused: {exc}"
            self.counters["metadata_elements_rejected"] += len(metadata.rejected)
        return offer, metadata, None

    async def _on_invite(self, request: SipRequest, tx: ServerTransaction, peer: Peer) -> None:
        unknown = [t for t in option_tags(request.headers, "Require")
                   if t not in SUPPORTED_OPTIONS]  # fmt: skip
        if unknown:
            self._reject(request, tx, 420, "unsupported_require", ", ".join(unknown))
            return
        refusal = self.health.refusal(self.active_calls)
        if refusal is not None:
            self._reject(request, tx, 503, refusal.counter, refusal.why)
            return
        try:
            offer, metadata, refused = self._bodies(request)
            dialog = Dialog.from_invite(request)
        except (SdpError, SipParseError) as exc:
            self._reject(request, tx, 400, "bad_invites", str(exc))
            return
        if offer is None:
            self._reject(request, tx, 488, "not_acceptable", "no SDP offer")
            return
        if tx.state != "proceeding":  # cancelled before it could be handled
            return
        tx.respond(make_response(request, 100))
        siprec = is_recording_invite(request)
        assert self.receiver is not None, "the server is not started"
        session = RecordingSession(
            call_id=request.call_id,
            source="siprec" if siprec else "sip",
            peer=str(peer),
            recordings_dir=self.settings.recordings_dir,
            ports=self.ports,
            open_media=self._open_thread_media,
            bind_host=self.settings.host,
            patterns=self.settings.agent_patterns,
            default_side=self.settings.default_agent_side,
            caller=_aor(request.headers.get("From")),
            callee=_aor(request.headers.get("To")),
            on_started=self.on_call_started,
            media_lock=self.receiver.lock,
        )
        if refused:
            session.decisions.add("metadata", refused)
        call = Call(dialog, session, peer, tx)
        self._setting_up.add(tx.key)
        try:
            answers = await session.start(offer, metadata, self.loop.time())
        except SessionError as exc:
            counter = {488: "not_acceptable", 503: "limit_rtp_ports"}.get(exc.status, "errors")
            self._reject(request, tx, exc.status, counter, str(exc))
            return
        finally:
            self._setting_up.discard(tx.key)
        self.calls[dialog.id] = call
        if tx.state != "proceeding":  # cancelled while the streams were opening
            await self._end_call(call, "cancel", send_bye=False, notify=False)
            return
        body = answer_sdp(
            offer, answers, self.transport.local_host(peer.host), session.session_id,
            session.session_version,
        )  # fmt: skip
        tx.respond(self._ok(request, dialog, peer, body))
        call.ready = True
        self.counters[f"calls_{session.source}"] += 1
        logger.info(
            "call %s from %s: recording %s to %s", request.call_id, peer,
            ", ".join(f"{slot.role} (label {slot.label}) on port {slot.port}"
                      for slot in session.slots),
            session.recorder and session.recorder.path, extra={"sip_call_id": request.call_id},
        )  # fmt: skip

    async def _open_thread_media(self, host: str, port: int, leg: RtpLeg) -> MediaEndpoint:
        assert self.receiver is not None
        stream = ThreadMediaStream.open(self.receiver, host, port, leg)
        # Binding is synchronous here; yield as opening on the loop does, so that requests
        # that came in meanwhile (a CANCEL of this INVITE) are handled before the answer.
        try:
            await asyncio.sleep(0)
        except BaseException:  # cancelled (the server stops): nothing stays bound
            stream.close()
            raise
        return stream

    def _ok(self, request: SipRequest, dialog: Dialog, peer: Peer, body: str) -> SipResponse:
        response = make_response(request, 200, to_tag=dialog.local_tag, body=body.encode())
        response.headers.add("Contact", self._contact(peer))
        response.headers.add("Content-Type", "application/sdp")
        return self._with_capabilities(response)

    def _contact(self, peer: Peer) -> str:
        """The Contact of every dialog response: where this peer reaches the server again
        (address, port and, over TCP, the transport), since the SBC refreshes its target
        from it."""
        host = self.transport.local_host(peer.host)
        if ":" in host:
            host = f"[{host}]"
        transport = ";transport=tcp" if peer.reliable else ""
        return f"<sip:srs@{host}:{peer.local_port}{transport}>;+sip.srs"

    def _on_cancel(self, request: SipRequest, tx: ServerTransaction) -> None:
        invite_tx = self.layer.find_invite(request)
        if invite_tx is None:
            self._reject(request, tx, 481, "no_transaction", "no INVITE to cancel")
            return
        tx.respond(make_response(request, 200))
        if invite_tx.state != "proceeding":
            return
        self.counters["calls_cancelled"] += 1
        invite_tx.respond(make_response(invite_tx.request, 487, to_tag="cancelled"))

    def _on_ack(self, request: SipRequest) -> None:
        call = self.calls.get(dialog_id_of(request))
        if call is None:
            self.counters["stray_acks"] += 1
            return
        if request.cseq[0] == call.invite_tx.request.cseq[0]:
            call.confirmed = True
            call.dialog.state = "confirmed"

    def _on_ack_timeout(self, request: SipRequest) -> None:
        for call in list(self.calls.values()):
            if call.invite_tx.request is request and not call.confirmed:
                logger.warning("call %s: no ACK for the 200 OK; ending it", request.call_id,
                               extra={"sip_call_id": request.call_id})  # fmt: skip
                self._spawn(self._end_call(call, "no_ack", send_bye=True))

    # ---------------------------------------------------------------- in dialog

    def _find(self, request: SipRequest, tx: ServerTransaction) -> Call | None:
        call = self.calls.get(dialog_id_of(request))
        if call is None or call.ending:
            self._reject(request, tx, 481, "no_dialog", "no such dialog")
            return None
        if not call.dialog.accept_cseq(request):
            self._reject(request, tx, 500, "cseq_out_of_order", "CSeq out of order")
            return None
        return call

    async def _on_update(self, request: SipRequest, tx: ServerTransaction, peer: Peer) -> None:
        call = self._find(request, tx)
        if call is None:
            return
        if call.updating:
            self._reject(request, tx, 491, "request_pending", "an update is in progress")
            return
        try:
            offer, metadata, refused = self._bodies(request)
        except (SdpError, SipParseError) as exc:
            self._reject(request, tx, 400, "bad_updates", str(exc))
            return
        if refused:
            call.session.decisions.add("metadata", refused)
        call.updating = True
        try:
            answers = await call.session.update(offer, metadata, self.loop.time())
        except SessionError as exc:
            self._reject(request, tx, exc.status, "not_acceptable", str(exc))
            return
        finally:
            call.updating = False
        call.dialog.update_target(request)
        self.counters[f"updates_{request.method.lower()}"] += 1
        session = call.session
        if offer is not None and answers is not None:
            body = answer_sdp(
                offer, answers, self.transport.local_host(peer.host), session.session_id,
                session.session_version,
            )  # fmt: skip
            tx.respond(self._ok(request, call.dialog, peer, body))
        elif request.method == "INVITE" and session.last_offer is not None:
            # An INVITE without an offer asks for one: offer what was last agreed.
            body = answer_sdp(
                session.last_offer, session.current_answers(), self.transport.local_host(peer.host),
                session.session_id, session.session_version,
            )  # fmt: skip
            tx.respond(self._ok(request, call.dialog, peer, body))
        else:
            response = make_response(request, 200)
            response.headers.add("Contact", self._contact(peer))
            tx.respond(self._with_capabilities(response))

    async def _on_bye(self, request: SipRequest, tx: ServerTransaction) -> None:
        call = self._find(request, tx)
        if call is None:
            return
        tx.respond(make_response(request, 200))
        await self._await_last_media(call)
        await self._end_call(call, "bye", send_bye=False)

    async def _await_last_media(self, call: Call) -> None:
        """After the sender's BYE, keep the streams open until none has had a datagram for
        `BYE_MEDIA_QUIET_S` (at most `BYE_MEDIA_WAIT_S`): the last RTP, sent before the BYE
        on another path or thread, may arrive after it. What came is counted
        (`rtp_after_bye`)."""
        legs = [slot.leg for slot in call.session.slots]
        first = last = sum(leg.datagrams_arrived for leg in legs)
        now = self.loop.time()
        deadline, quiet_since = now + BYE_MEDIA_WAIT_S, now
        while now < deadline and now - quiet_since < BYE_MEDIA_QUIET_S:
            await asyncio.sleep(BYE_MEDIA_POLL_S)
            now = self.loop.time()
            arrived = sum(leg.datagrams_arrived for leg in legs)
            if arrived != last:
                last, quiet_since = arrived, now
        if last > first:
            self.counters["rtp_after_bye"] += last - first
            logger.debug("call %s: %d RTP datagrams came after its BYE", call.dialog.call_id,
                         last - first)  # fmt: skip

    # ---------------------------------------------------------------- ending

    async def _end_call(self, call: Call, reason: str, send_bye: bool, notify: bool = True) -> None:
        """End a call; its `CallInfo` goes to `on_call_ended` unless it never started."""
        if call.ending:
            return
        call.ending = True
        self.calls.pop(call.dialog.id, None)
        if send_bye:
            self._send_bye(call, reason)
        info = await call.session.finish(reason)
        self.counters[f"ended_{reason}"] += 1
        if not notify:
            info.recording_path.unlink(missing_ok=True)
            return
        logger.info(
            "call %s ended (%s): %.1f s in %s", info.call_id, reason, info.duration_s,
            info.recording_path, extra={"sip_call_id": info.call_id},
        )  # fmt: skip
        if self.on_call_ended is not None:
            try:
                result = self.on_call_ended(info)
            except Exception:
                self.counters["callback_errors"] += 1
                logger.exception("call %s: the call-ended callback failed", info.call_id,
                                 extra={"sip_call_id": info.call_id})  # fmt: skip
                return
            if result is not None:
                task = self.loop.create_task(_guard(result, self.counters, info.call_id))
                self._callbacks.add(task)
                task.add_done_callback(self._callbacks.discard)

    def _send_bye(self, call: Call, reason: str) -> None:
        peer = call.peer
        host = self.transport.local_host(peer.host)
        answered: asyncio.Future[None] = self.loop.create_future()

        def on_final(_: SipResponse | None) -> None:
            if not answered.done():
                answered.set_result(None)

        try:
            bye = call.dialog.create_request("BYE", host, peer.local_port, peer.transport)
            text = BYE_REASON_TEXTS.get(reason, reason)
            bye.headers.add("Reason", f'SIP;cause=200;text="{text}"')
            self.layer.send_request(bye, peer.send, peer.reliable, on_final)
            self.counters["byes_sent"] += 1
            self._byes.add(answered)
            answered.add_done_callback(self._byes.discard)
        except (OSError, SipParseError) as exc:
            logger.debug("call %s: BYE not sent: %s", call.dialog.call_id, exc)

    async def _watch_idle(self) -> None:
        limit = self.settings.rtp_idle_timeout_s
        while True:
            await asyncio.sleep(self.settings.idle_check_interval_s)
            now = self.loop.time()
            # Legs release audio by the arrival clock on the receive thread's own tick.
            for call in list(self.calls.values()):
                if not call.ready or call.ending:
                    continue
                idle = call.session.idle_s(now)
                wait = max(limit, PAUSED_IDLE_LIMIT_S) if call.session.all_paused else limit
                if idle >= wait:
                    self.counters["limit_rtp_idle"] += 1
                    logger.info("call %s: no RTP for %.0f s; ending it", call.dialog.call_id,
                                idle, extra={"sip_call_id": call.dialog.call_id})  # fmt: skip
                    await self._end_call(call, "rtp_timeout", send_bye=True)


async def _guard(result: Awaitable[None], counters: Counter[str], call_id: str) -> None:
    try:
        await result
    except Exception:
        counters["callback_errors"] += 1
        logger.exception("call %s: the call-ended callback failed", call_id,
                         extra={"sip_call_id": call_id})  # fmt: skip


def _aor(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return parse_uri(parse_name_addr(value).uri).aor
    except SipParseError:
        return None
