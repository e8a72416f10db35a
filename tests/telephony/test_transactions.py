"""Server and client transactions on a real event loop with short RFC 3261 timers."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Awaitable, Callable

import pytest

from telephony.sip.message import SipRequest, SipResponse, make_response, parse_message
from telephony.sip.transaction import TimerSettings, TransactionLayer

TIMERS = TimerSettings(t1_s=0.01, t2_s=0.04, t4_s=0.05)


def on_loop(fn: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    """Run an async test on a fresh event loop."""

    @functools.wraps(fn)
    def run() -> None:
        asyncio.run(fn())  # type: ignore[arg-type]

    return run


def _request(
    method: str, branch: str = "z9hG4bKbr1", cseq: int = 1, to_tag: str = ""
) -> SipRequest:
    tag = f";tag={to_tag}" if to_tag else ""
    cseq_method = "INVITE" if method == "ACK" else method
    text = (
        f"{method} sip:srs@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5099;branch={branch}\r\n"
        f"From: <sip:src@127.0.0.1>;tag=from1\r\nTo: <sip:srs@127.0.0.1>{tag}\r\n"
        f"Call-ID: call-1\r\nCSeq: {cseq} {cseq_method}\r\nContent-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, SipRequest)
    return msg


class Wire:
    def __init__(self) -> None:
        self.sent: list[tuple[float, int]] = []

    def __call__(self, data: bytes) -> None:
        msg = parse_message(data)
        assert isinstance(msg, SipResponse)
        self.sent.append((asyncio.get_running_loop().time(), msg.status))

    def statuses(self) -> list[int]:
        return [s for _, s in self.sent]


@on_loop
async def test_non_invite_absorbs_retransmissions_until_timer_j() -> None:
    layer = TransactionLayer(TIMERS)
    wire = Wire()
    options = _request("OPTIONS")
    assert not layer.absorb(options)
    tx = layer.create(options, wire, reliable=False)
    assert layer.absorb(options)  # in Trying: absorbed, nothing to re-send
    assert wire.statuses() == []
    tx.respond(make_response(options, 200, to_tag="t"))
    assert tx.state == "completed"
    assert layer.absorb(options)
    assert layer.absorb(options)
    assert wire.statuses() == [200, 200, 200]
    assert layer.counters["retransmissions_absorbed"] == 3
    await asyncio.sleep(TIMERS.timeout_s + 0.05)
    assert tx.terminated
    assert not layer.absorb(options)
    assert len(layer) == 0


@on_loop
async def test_non_invite_on_reliable_transport_ends_at_once() -> None:
    layer = TransactionLayer(TIMERS)
    wire = Wire()
    bye = _request("BYE", to_tag="x")
    tx = layer.create(bye, wire, reliable=True)
    tx.respond(make_response(bye, 200))
    await asyncio.sleep(0.005)
    assert tx.terminated
    assert len(layer) == 0


@on_loop
async def test_invite_error_response_retransmitted_by_timer_g_until_ack() -> None:
    layer = TransactionLayer(TIMERS)
    wire = Wire()
    invite = _request("INVITE")
    tx = layer.create(invite, wire, reliable=False)
    tx.respond(make_response(invite, 100))
    assert layer.absorb(invite)  # retransmitted INVITE in Proceeding: 100 again
    assert wire.statuses() == [100, 100]
    tx.respond(make_response(invite, 488, to_tag="t1"))
    start = asyncio.get_running_loop().time()
    await asyncio.sleep(0.1)
    finals = [t - start for t, s in wire.sent if s == 488]
    # Sent at 0, then T1, 3·T1, 7·T1 (capped at T2 = 4·T1), 11·T1 ...
    assert len(finals) >= 4
    gaps = [b - a for a, b in itertools.pairwise(finals)]
    assert gaps[0] == pytest.approx(0.01, abs=0.008)
    assert gaps[1] == pytest.approx(0.02, abs=0.01)
    assert max(gaps) <= 0.04 + 0.015
    ack = _request("ACK")  # same branch as the INVITE: it belongs to the transaction
    assert layer.absorb(ack)
    assert tx.state == "confirmed"
    count = len(wire.sent)
    assert layer.absorb(ack)  # a retransmitted ACK is absorbed as well
    await asyncio.sleep(0.08)
    assert len(wire.sent) == count
    assert tx.terminated


@on_loop
async def test_invite_error_without_ack_ends_with_timer_h() -> None:
    layer = TransactionLayer(TIMERS)
    invite = _request("INVITE")
    tx = layer.create(invite, Wire(), reliable=True)
    tx.respond(make_response(invite, 503, to_tag="t1"))
    await asyncio.sleep(TIMERS.timeout_s + 0.05)
    assert tx.terminated
    assert layer.counters["ack_timeouts"] == 1


@on_loop
async def test_invite_2xx_retransmitted_until_ack_with_its_own_branch() -> None:
    layer = TransactionLayer(TIMERS)
    wire = Wire()
    invite = _request("INVITE")
    tx = layer.create(invite, wire, reliable=False)
    tx.respond(make_response(invite, 200, to_tag="t1"))
    assert tx.state == "accepted"
    await asyncio.sleep(0.05)
    assert wire.statuses().count(200) >= 3
    assert layer.absorb(invite)  # retransmitted INVITE in Accepted: absorbed
    ack = _request("ACK", branch="z9hG4bKother", to_tag="t1")
    assert not layer.absorb(ack)  # the TU sees the 2xx ACK
    count = len(wire.sent)
    await asyncio.sleep(0.1)
    assert len(wire.sent) == count
    assert not tx.terminated  # timer L keeps absorbing INVITE retransmissions


@on_loop
async def test_invite_2xx_without_ack_reports_timeout() -> None:
    missing: list[str] = []
    layer = TransactionLayer(TIMERS, on_ack_timeout=lambda req: missing.append(req.call_id))
    invite = _request("INVITE")
    tx = layer.create(invite, Wire(), reliable=False)
    tx.respond(make_response(invite, 200, to_tag="t1"))
    await asyncio.sleep(TIMERS.timeout_s + 0.05)
    assert missing == ["call-1"]
    assert tx.terminated


@on_loop
async def test_cancel_finds_its_invite() -> None:
    layer = TransactionLayer(TIMERS)
    invite = _request("INVITE", branch="z9hG4bKcancelme")
    tx = layer.create(invite, Wire(), reliable=False)
    cancel = _request("CANCEL", branch="z9hG4bKcancelme")
    assert not layer.absorb(cancel)  # a CANCEL is its own transaction
    assert layer.find_invite(cancel) is tx
    assert layer.find_invite(_request("CANCEL", branch="z9hG4bKnone")) is None
    layer.close()
    assert len(layer) == 0


@on_loop
async def test_rfc2543_peers_are_matched_without_a_branch() -> None:
    layer = TransactionLayer(TIMERS)
    wire = Wire()
    old = _request("OPTIONS", branch="")
    tx = layer.create(old, wire, reliable=False)
    tx.respond(make_response(old, 200))
    assert layer.absorb(_request("OPTIONS", branch=""))
    assert not layer.absorb(_request("OPTIONS", branch="", cseq=2))


@on_loop
async def test_client_transaction_retransmits_until_response() -> None:
    layer = TransactionLayer(TIMERS)
    sent: list[bytes] = []
    finals: list[SipResponse | None] = []
    bye = _request("BYE", branch="z9hG4bKclient", to_tag="x")
    layer.send_request(bye, sent.append, reliable=False, on_final=finals.append)
    await asyncio.sleep(0.05)
    assert len(sent) >= 3
    response = make_response(bye, 200)
    assert layer.receive_response(response)
    assert finals == [response]
    count = len(sent)
    await asyncio.sleep(0.05)
    assert len(sent) == count
    assert not layer.receive_response(response)


@on_loop
async def test_client_transaction_times_out_with_timer_f() -> None:
    layer = TransactionLayer(TIMERS)
    finals: list[SipResponse | None] = []
    bye = _request("BYE", branch="z9hG4bKlost", to_tag="x")
    layer.send_request(bye, lambda data: None, reliable=True, on_final=finals.append)
    await asyncio.sleep(TIMERS.timeout_s + 0.05)
    assert finals == [None]
