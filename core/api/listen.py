"""`ListenCall`: a live call's audio out to a supervisor, and the audit log of each listening.

The stream taps the call in the engine (`core.live.listening`) and sends each piece of audio
as the engine takes it from the receiver, stamped with that moment (`arrived_at`), so that
the client can keep its own latency from arrival to playback in view.

Listening to a customer's call is audited: when a listening starts and when it stops, a line
goes to the log ``callqa.audit`` with who (the name the client gave, its address and the
fingerprint of its token, never the token), which call and legs, when, and for how long. The
daemon's log (standard error, the journal, ``log_file``) keeps these lines; the daemon has no
audit table of its own (the admin web's audit log is its own database).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from core.api import convert
from core.api.auth import bearer
from core.calls import Speaker
from core.live.call import LiveCall
from core.live.engine import LiveEngine
from core.live.listening import AudioTap, attach, detach
from proto import callqa_pb2 as pb

audit = logging.getLogger("callqa.audit")

POLL_S = 0.5
LEGS: dict[Speaker, Any] = {"agent": pb.LEG_AGENT, "customer": pb.LEG_CUSTOMER}
TOKEN_FINGERPRINT_CHARS = 12


def listen_call(engine: LiveEngine, request: pb.ListenRequest, context: Any) -> Iterator[
    pb.ListenAudio
]:
    """The body of the ListenCall RPC (see proto/callqa.proto)."""
    call = engine.find(request.call_id)
    if call is None or call.ended:
        context.abort(grpc.StatusCode.NOT_FOUND,
                      f"no live call {request.call_id!r}; a stored call's recording is played "
                      "on the admin web's call page")  # fmt: skip
        return
    legs = _legs(call, request.leg, context)
    tap = AudioTap(legs, call.setup.sample_rate)
    if not attach(call, tap):
        context.abort(grpc.StatusCode.NOT_FOUND, f"call {call.call_id} has just ended")
        return
    who = Listener.of(request, context)
    started = time.monotonic()
    heard = "+".join(sorted(legs))
    fields = {"call_id": call.call_id, "legs": heard, **who.fields()}
    if len(legs) == 1:
        fields["leg"] = heard
    audit.info("listen started: call %s legs %s by %s", call.call_id, heard, who,
               extra={**fields, "audit": "listen_started"})  # fmt: skip
    reason = "the call ended"
    rate = call.setup.sample_rate
    try:
        while True:
            if not context.is_active():
                reason = "the listener left"
                break
            piece = tap.get(POLL_S)
            if piece is None:
                if tap.closed:
                    break
                continue
            yield pb.ListenAudio(
                call_id=call.call_id, leg=LEGS[piece.speaker], sample_rate_hz=rate,
                position_samples=piece.position, pcm16=piece.pcm.astype("<i2").tobytes(),
                arrived_at=convert.ts(piece.arrived_wall), dropped_samples=piece.dropped_before,
            )  # fmt: skip
    except GeneratorExit:
        reason = "the listener left"
        raise
    finally:
        detach(call, tap)
        audio_s = tap.samples_sent / rate / len(legs)
        audit.info(
            "listen ended: call %s legs %s by %s after %.1f s (%.1f s of audio heard, "
            "%d samples lost to a slow listener): %s", call.call_id, heard, who,
            time.monotonic() - started, audio_s, tap.samples_dropped, reason,
            extra={**fields, "audit": "listen_ended"},
        )  # fmt: skip


def _legs(call: LiveCall, leg: int, context: Any) -> frozenset[Speaker]:
    if leg == pb.LEG_UNSPECIFIED:
        return frozenset(call.legs)
    wanted = next((sp for sp, value in LEGS.items() if value == leg), None)
    if wanted is None or wanted not in call.legs:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      f"call {call.call_id} has no leg {pb.Leg.Name(leg) if wanted else leg}; "
                      f"it has {', '.join(sorted(call.legs))}")  # fmt: skip
        raise AssertionError("abort raises")
    return frozenset((wanted,))


@dataclass(frozen=True)
class Listener:
    """Who listens, for the audit log: the name the client gave, its address, and its
    token's fingerprint (the first characters of the token's SHA-256, which name the token
    without revealing it; empty without a token)."""

    name: str
    peer: str
    token_sha256: str

    @classmethod
    def of(cls, request: pb.ListenRequest, context: Any) -> Listener:
        token = bearer(context.invocation_metadata())
        digest = hashlib.sha256(token.encode()).hexdigest() if token else ""
        return cls(request.listener.strip(), str(context.peer()),
                   digest[:TOKEN_FINGERPRINT_CHARS])  # fmt: skip

    def fields(self) -> dict[str, str]:
        """The log record's fields (the JSON log format shows them)."""
        return {"listener": self.name, "peer": self.peer, "token_sha256": self.token_sha256}

    def __str__(self) -> str:
        token = f"token sha256:{self.token_sha256}" if self.token_sha256 else "no token"
        return f"{self.name or '(no name given)'!r} from {self.peer} ({token})"
