"""Running a simulation: `Simulator` (placing the calls, streaming their media through the
sender thread, hanging up) and `simulate`, which runs one from synchronous code."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import Sequence
from typing import Any

import numpy as np

from kernels.g711 import alaw_encode, ulaw_encode
from telephony.simulator.constants import (
    CODECS,
    EARLY_S,
    FRAME_SAMPLES,
    HANGUP_DELAY_S,
    LATE_THRESHOLD_S,
    OK,
    REJECTED,
    ROLES,
    SAMPLE_RATE_HZ,
    SEND_BUFFER_BYTES,
)
from telephony.simulator.plans import CallPlan
from telephony.simulator.results import CallOutcome, SimulationResult
from telephony.simulator.sender import MediaSender, _Leg, _MediaCall
from telephony.simulator.signalling import (
    _CallState,
    _hostport,
    _SipEndpoint,
    _SipUac,
    answer_of,
    remote_streams,
)
from telephony.sip.dialog import new_tag
from telephony.sip.message import SipParseError
from telephony.sip.sdp import SdpError
from telephony.sip.transaction import TimerSettings

logger = logging.getLogger(__name__)


class Simulator(_SipUac):
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
