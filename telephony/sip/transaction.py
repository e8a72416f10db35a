"""SIP transactions (RFC 3261 §17, with the INVITE "Accepted" state of RFC 6026).

Server transactions absorb retransmitted requests by re-sending their last response, so the
recording logic (the transaction user, "TU") sees each request once. Timers follow the RFC:

* INVITE, non-2xx final: timer G re-sends it on unreliable transports (T1, doubling up to
  T2) until the ACK; timer H (64·T1) gives up waiting; timer I (T4, 0 on TCP) absorbs late
  ACKs.
* INVITE, 2xx final: the 2xx is re-sent on unreliable transports until the ACK (which has
  its own branch and is matched by Call-ID and CSeq); timer L (64·T1) ends the transaction
  and reports a missing ACK.
* non-INVITE: timer J (64·T1, 0 on TCP) keeps the final response for retransmissions.

The one client transaction needed here, for a BYE the recorder sends, uses timers E, F, K.
Timers run on the asyncio loop; `TimerSettings` makes T1 short in tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from telephony.sip.message import (
    BRANCH_COOKIE,
    SipParseError,
    SipRequest,
    SipResponse,
)

logger = logging.getLogger(__name__)

T1_S = 0.5
T2_S = 4.0
T4_S = 5.0

Send = Callable[[bytes], None]
TransactionKey = tuple[str, ...]


@dataclass(frozen=True)
class TimerSettings:
    """RFC 3261 timer base values in seconds (§17.1.1.1): round trip, cap, network lifetime."""

    t1_s: float = T1_S
    t2_s: float = T2_S
    t4_s: float = T4_S

    @property
    def timeout_s(self) -> float:
        """64·T1: how long a transaction waits for the other side (timers B, F, H, J, L)."""
        return 64 * self.t1_s


def transaction_key(request: SipRequest, method: str | None = None) -> TransactionKey:
    """The server-transaction matching key of RFC 3261 §17.2.3.

    With an RFC 3261 branch: branch, sent-by and method (an ACK matches its INVITE). Older
    peers without the magic cookie are matched on Call-ID, CSeq number, From tag and Via.
    """
    vias = request.vias
    if not vias:
        raise SipParseError("request without Via")
    top = vias[0]
    method = method or request.method
    if method == "ACK":
        method = "INVITE"
    branch = top.branch or ""
    if branch.startswith(BRANCH_COOKIE):
        return (branch, top.sent_by.lower(), method)
    number, _ = request.cseq
    from_tag = request.from_addr.tag or ""
    return (request.call_id, str(number), from_tag, top.sent_by.lower(), branch, method)


class ServerTransaction:
    """Common part of the two server transaction kinds."""

    kind = "server"

    def __init__(
        self,
        layer: TransactionLayer,
        key: TransactionKey,
        request: SipRequest,
        send: Send,
        reliable: bool,
    ) -> None:
        self.layer = layer
        self.key = key
        self.request = request
        self.send = send
        self.reliable = reliable
        self.state = "trying"
        self.last_response: SipResponse | None = None
        self._wire: bytes = b""
        self._timers: list[asyncio.TimerHandle] = []
        self.retransmissions_absorbed = 0

    @property
    def timers(self) -> TimerSettings:
        return self.layer.timers

    @property
    def terminated(self) -> bool:
        return self.state == "terminated"

    def _transmit(self, response: SipResponse) -> None:
        self.last_response = response
        self._wire = response.serialize()
        self._send_wire()

    def _send_wire(self) -> None:
        try:
            self.send(self._wire)
        except OSError as exc:
            logger.debug("transport error sending a response: %s", exc)

    def _later(self, delay_s: float, callback: Callable[[], None]) -> None:
        self._timers.append(self.layer.loop.call_later(delay_s, callback))

    def _cancel_timers(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    def terminate(self) -> None:
        if self.state == "terminated":
            return
        self.state = "terminated"
        self._cancel_timers()
        self.layer._forget(self)

    def respond(self, response: SipResponse) -> None:
        raise NotImplementedError

    def on_retransmission(self, request: SipRequest) -> None:
        raise NotImplementedError


class NonInviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.2: Trying → Proceeding → Completed → Terminated."""

    kind = "non-invite"

    def respond(self, response: SipResponse) -> None:
        if self.state in ("completed", "terminated"):
            logger.debug("response %d after the final one ignored", response.status)
            return
        self._transmit(response)
        if response.status < 200:
            self.state = "proceeding"
            return
        self.state = "completed"
        self._later(0.0 if self.reliable else self.timers.timeout_s, self.terminate)

    def on_retransmission(self, request: SipRequest) -> None:
        self.retransmissions_absorbed += 1
        if self.state in ("proceeding", "completed"):
            self._send_wire()


class InviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.1 with RFC 6026: Proceeding → Accepted | Completed → Confirmed."""

    kind = "invite"

    def __init__(
        self,
        layer: TransactionLayer,
        key: TransactionKey,
        request: SipRequest,
        send: Send,
        reliable: bool,
    ) -> None:
        super().__init__(layer, key, request, send, reliable)
        self.state = "proceeding"
        self.acked = False
        self._interval_s = self.timers.t1_s

    def respond(self, response: SipResponse) -> None:
        if self.state != "proceeding":
            logger.debug("response %d in state %s ignored", response.status, self.state)
            return
        self._transmit(response)
        if response.status < 200:
            return
        self._interval_s = self.timers.t1_s
        if response.status < 300:
            self.state = "accepted"
            self.layer._accepted[self.ack_key] = self
            if not self.reliable:
                self._later(self._interval_s, self._retransmit)
            self._later(self.timers.timeout_s, self._timer_l)
        else:
            self.state = "completed"
            if not self.reliable:
                self._later(self._interval_s, self._retransmit)
            self._later(self.timers.timeout_s, self._timer_h)

    @property
    def ack_key(self) -> tuple[str, int]:
        return (self.request.call_id, self.request.cseq[0])

    def _retransmit(self) -> None:
        if self.state not in ("accepted", "completed") or self.acked:
            return
        self._send_wire()
        self._interval_s = min(2 * self._interval_s, self.timers.t2_s)
        self._later(self._interval_s, self._retransmit)

    def _timer_h(self) -> None:
        if self.state == "completed":
            logger.debug("no ACK for the final response to %s", self.request.call_id)
            self.layer.counters["ack_timeouts"] += 1
            self.terminate()

    def _timer_l(self) -> None:
        if not self.acked:
            self.layer.counters["ack_timeouts"] += 1
            callback = self.layer.on_ack_timeout
            if callback is not None:
                callback(self.request)
        self.terminate()

    def on_retransmission(self, request: SipRequest) -> None:
        self.retransmissions_absorbed += 1
        if request.method == "ACK":
            if self.state == "completed":
                self.state = "confirmed"
                self._cancel_timers()
                self._later(0.0 if self.reliable else self.timers.t4_s, self.terminate)
            return
        if self.state in ("proceeding", "accepted", "completed") and self._wire:
            self._send_wire()

    def ack_2xx(self) -> None:
        """The ACK for the 2xx arrived: stop re-sending it."""
        self.acked = True

    def terminate(self) -> None:
        if self.layer._accepted.get(self.ack_key) is self:
            del self.layer._accepted[self.ack_key]
        super().terminate()


class NonInviteClientTransaction:
    """RFC 3261 §17.1.2 for a request the recorder sends (BYE): timers E, F, K."""

    def __init__(
        self,
        layer: TransactionLayer,
        request: SipRequest,
        send: Send,
        reliable: bool,
        on_final: Callable[[SipResponse | None], None] | None = None,
    ) -> None:
        self.layer = layer
        self.request = request
        self.send = send
        self.reliable = reliable
        self.on_final = on_final
        self.state = "trying"
        self.response: SipResponse | None = None
        self._wire = request.serialize()
        self._interval_s = layer.timers.t1_s
        self._timers: list[asyncio.TimerHandle] = []
        branch = request.vias[0].branch or ""
        self.key = (branch, request.cseq[1])

    def start(self) -> None:
        self.layer._clients[self.key] = self
        self._send()
        if not self.reliable:
            self._timers.append(self.layer.loop.call_later(self._interval_s, self._timer_e))
        self._timers.append(self.layer.loop.call_later(self.layer.timers.timeout_s, self._timer_f))

    def _send(self) -> None:
        try:
            self.send(self._wire)
        except OSError as exc:
            logger.debug("transport error sending %s: %s", self.request.method, exc)

    def _timer_e(self) -> None:
        if self.state not in ("trying", "proceeding"):
            return
        self._send()
        if self.state == "proceeding":
            self._interval_s = self.layer.timers.t2_s
        else:
            self._interval_s = min(2 * self._interval_s, self.layer.timers.t2_s)
        self._timers.append(self.layer.loop.call_later(self._interval_s, self._timer_e))

    def _timer_f(self) -> None:
        if self.state in ("trying", "proceeding"):
            self._finish(None)

    def on_response(self, response: SipResponse) -> None:
        if self.state not in ("trying", "proceeding"):
            return
        if response.status < 200:
            self.state = "proceeding"
            return
        self.response = response
        self.state = "completed"
        self._finish(response)

    def _finish(self, response: SipResponse | None) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self.state = "terminated"
        self.layer._clients.pop(self.key, None)
        if self.on_final is not None:
            self.on_final(response)


class TransactionLayer:
    """Matches requests and responses to transactions and keeps the transaction tables."""

    def __init__(
        self,
        timers: TimerSettings | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        on_ack_timeout: Callable[[SipRequest], None] | None = None,
    ) -> None:
        self.timers = timers or TimerSettings()
        self.loop = loop or asyncio.get_running_loop()
        self.on_ack_timeout = on_ack_timeout
        self._server: dict[TransactionKey, ServerTransaction] = {}
        self._accepted: dict[tuple[str, int], InviteServerTransaction] = {}
        self._clients: dict[tuple[str, str], NonInviteClientTransaction] = {}
        self.counters: dict[str, int] = {"retransmissions_absorbed": 0, "ack_timeouts": 0}

    def __len__(self) -> int:
        return len(self._server)

    def absorb(self, request: SipRequest) -> bool:
        """True when an existing transaction took this request (a retransmission or the ACK of
        a non-2xx final response) and the TU must not see it.

        The ACK of a 2xx is not absorbed (the TU confirms the dialog with it), but it stops
        the 2xx retransmissions of its INVITE.
        """
        key = transaction_key(request)
        existing = self._server.get(key)
        if request.method == "ACK":
            if existing is not None and existing.state in ("completed", "confirmed"):
                existing.on_retransmission(request)
                self.counters["retransmissions_absorbed"] += 1
                return True
            accepted = self._accepted.get((request.call_id, request.cseq[0]))
            if accepted is not None:
                accepted.ack_2xx()
            return False
        if existing is not None:
            existing.on_retransmission(request)
            self.counters["retransmissions_absorbed"] += 1
            return True
        return False

    def create(self, request: SipRequest, send: Send, reliable: bool) -> ServerTransaction:
        """A new server transaction for a request that `absorb` did not take."""
        if request.method == "ACK":
            raise ValueError("an ACK does not create a server transaction")
        key = transaction_key(request)
        cls = InviteServerTransaction if request.method == "INVITE" else NonInviteServerTransaction
        transaction = cls(self, key, request, send, reliable)
        self._server[key] = transaction
        return transaction

    def find_invite(self, cancel: SipRequest) -> InviteServerTransaction | None:
        """The INVITE transaction a CANCEL refers to (same key with method INVITE)."""
        found = self._server.get(transaction_key(cancel, method="INVITE"))
        return found if isinstance(found, InviteServerTransaction) else None

    def send_request(
        self,
        request: SipRequest,
        send: Send,
        reliable: bool,
        on_final: Callable[[SipResponse | None], None] | None = None,
    ) -> NonInviteClientTransaction:
        transaction = NonInviteClientTransaction(self, request, send, reliable, on_final)
        transaction.start()
        return transaction

    def receive_response(self, response: SipResponse) -> bool:
        """Give a response to its client transaction; False when none matches."""
        vias = response.vias
        if not vias:
            return False
        key = (vias[0].branch or "", response.cseq[1])
        client = self._clients.get(key)
        if client is None:
            return False
        client.on_response(response)
        return True

    def _forget(self, transaction: ServerTransaction) -> None:
        if self._server.get(transaction.key) is transaction:
            del self._server[transaction.key]

    def close(self) -> None:
        for transaction in list(self._server.values()):
            transaction.terminate()
        for client in list(self._clients.values()):
            client._finish(None)
