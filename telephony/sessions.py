"""One recording session per call: RTP ports, media streams, the recording and call facts.

A `RecordingSession` turns an SDP offer into receiving sockets: it picks the audio m-lines it
can record (PCMU or PCMA), decides which one is the agent's and which the customer's (SIPREC
metadata and the configured agent patterns, or the caller and callee of a plain call),
allocates an RTP port pair for each, and writes them into one `CallRecorder`: the agent on
channel 0 (left) and the customer on channel 1 (right), or a mono file for a one-stream call.
Updates (re-INVITE, UPDATE) pause and resume streams (`a=inactive`) and merge new metadata.
At the end it reports a `CallInfo`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from telephony.media import PortPoolExhausted
from telephony.recorder import CallRecorder
from telephony.rtp import AudioSink, LegStats, RtpLeg
from telephony.sip.sdp import (
    MediaAnswer,
    SessionDescription,
    answer_direction,
    choose_codec,
    telephone_event_type,
)
from telephony.siprec import (
    AgentPatterns,
    RecordingMetadata,
    RoleDecision,
    aor_user,
    assign_roles,
    plain_call_role,
)

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 8000
MAX_RECORDED_STREAMS = 2
PORT_ATTEMPTS = 8
AGENT_CHANNEL = 0
CUSTOMER_CHANNEL = 1


class PortPool(Protocol):
    def allocate(self) -> int: ...

    def release(self, port: int) -> None: ...


class MediaEndpoint(Protocol):
    def close(self) -> None: ...


class MediaOpener(Protocol):
    async def __call__(self, host: str, port: int, leg: RtpLeg) -> MediaEndpoint: ...


SinkFactory = Callable[[str], AudioSink | None]
"""Given a stream's role (agent or customer), where its decoded audio goes too (or None)."""
CallStartedHook = Callable[["RecordingSession"], SinkFactory | None]
"""Called once a session's roles and recording are known, before its streams open."""


class SessionError(Exception):
    """A session cannot be set up; `status` is the SIP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class StreamSlot:
    """One recorded stream: its m-line, role, channel, local port and receive path."""

    index: int
    label: str | None
    role: str
    channel: int
    port: int
    payload_types: list[int]
    leg: RtpLeg
    endpoint: MediaEndpoint | None = None
    direction: str = "recvonly"
    packets_seen: int = -1
    active_since_s: float = 0.0


@dataclass
class CallInfo:
    """What the recorder knows about a finished call."""

    call_id: str
    source: str
    recording_path: Path
    channels: int
    started_at: str
    ended_at: str
    duration_s: float
    end_reason: str
    peer: str
    caller: str | None = None
    callee: str | None = None
    agent_id: str | None = None
    agent_aor: str | None = None
    customer_aor: str | None = None
    agent_channel: str | None = None
    mono_speaker: str | None = None
    role_reason: str = ""
    call_identifiers: dict[str, str] = field(default_factory=dict)
    leg_stats: dict[str, LegStats] = field(default_factory=dict)
    labels: dict[str, str | None] = field(default_factory=dict)
    metadata_dialect: str | None = None
    agent_ids_seen: list[str] = field(default_factory=list)


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class RecordingSession:
    """The media side of one call, from the first offer to `finish`."""

    def __init__(
        self,
        call_id: str,
        source: str,
        peer: str,
        recordings_dir: Path,
        ports: PortPool,
        open_media: MediaOpener,
        bind_host: str,
        patterns: AgentPatterns,
        default_side: str,
        caller: str | None = None,
        callee: str | None = None,
        on_started: CallStartedHook | None = None,
        media_lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.call_id = call_id
        # Held while this side touches a leg that a receive thread may be feeding.
        self.media_lock: AbstractContextManager[Any] = media_lock or contextlib.nullcontext()
        self.on_started = on_started
        self.sinks: SinkFactory | None = None
        self.roles: list[str] = []
        self.source = source
        self.peer = peer
        self.recordings_dir = recordings_dir
        self.ports = ports
        self.open_media = open_media
        self.bind_host = bind_host
        self.patterns = patterns
        self.default_side = default_side
        self.caller = caller
        self.callee = callee
        self.metadata: RecordingMetadata | None = None
        self.decision: RoleDecision | None = None
        self.slots: list[StreamSlot] = []
        self.recorder: CallRecorder | None = None
        self.started_at = _utc_now()
        self.session_id = str(secrets.randbelow(2**31))
        self.session_version = 0
        self.finished = False
        self._answers: list[MediaAnswer | None] = []
        self.last_offer: SessionDescription | None = None
        self._agent_ids: list[str] = []

    # ---------------------------------------------------------------- setup

    def recording_path(self) -> Path:
        day = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
        stamp = dt.datetime.now(dt.UTC).strftime("%H%M%S")
        return self.recordings_dir / day / f"{stamp}-{secrets.token_hex(6)}.wav"

    async def start(
        self, offer: SessionDescription, metadata: RecordingMetadata | None, now_s: float
    ) -> list[MediaAnswer | None]:
        """Open the streams for the first offer; raises `SessionError` (488, 503, 500)."""
        self.metadata = metadata
        chosen = [
            i for i, m in enumerate(offer.media)
            if m.kind == "audio" and m.port != 0 and choose_codec(m) is not None
        ][:MAX_RECORDED_STREAMS]  # fmt: skip
        if not chosen:
            raise SessionError("no PCMU or PCMA audio stream offered", 488)
        labels = [offer.media[i].label for i in chosen]
        if len(chosen) > 1:
            self.decision = assign_roles(labels, metadata, self.patterns, self.default_side)
            roles = self.decision.roles
            channels = [AGENT_CHANNEL if r == "agent" else CUSTOMER_CHANNEL for r in roles]
            if roles.count("agent") != 1:
                roles, channels = ["agent", "customer"], [AGENT_CHANNEL, CUSTOMER_CHANNEL]
        else:
            roles, channels = self._single_role(labels, metadata), [0]
        self._note_agent()
        # All ports are taken before any socket opens, so a session's ports are neighbours
        # in a fresh pool (P, P+2), which simple SIPREC test clients rely on.
        ports: list[int] = []
        try:
            for _ in chosen:
                ports.append(self.ports.allocate())
        except PortPoolExhausted as exc:
            for port in ports:
                self.ports.release(port)
            raise SessionError(f"no free RTP port: {exc}", 503) from exc
        self.recorder = CallRecorder(self.recording_path(), len(chosen), SAMPLE_RATE_HZ)
        self.roles = list(roles)
        try:
            if self.on_started is not None:
                self.sinks = self.on_started(self)
            planned = list(zip(chosen, roles, channels, list(ports), strict=True))
            for index, role, channel, port in planned:
                ports.remove(port)
                media = offer.media[index]
                await self._open_slot(index, media.label, role, channel, port, offer, now_s)
        except BaseException:
            for port in ports:
                self.ports.release(port)
            await self._close_media()
            self.recorder.close()
            self.recorder.path.unlink(missing_ok=True)
            raise
        return self._answer(offer, now_s)

    def _single_role(self, labels: list[str | None], meta: RecordingMetadata | None) -> list[str]:
        if meta is not None and meta.participants:
            self.decision = assign_roles(labels, meta, self.patterns, self.default_side)
            return self.decision.roles
        role, _ = plain_call_role(self.caller, self.callee, self.patterns, self.default_side)
        return [role]

    def _note_agent(self) -> None:
        agent_id = self.decision.agent_id if self.decision is not None else None
        if agent_id and agent_id not in self._agent_ids:
            self._agent_ids.append(agent_id)

    async def _open_slot(
        self,
        index: int,
        label: str | None,
        role: str,
        channel: int,
        port: int,
        offer: SessionDescription,
        now_s: float,
    ) -> None:
        media = offer.media[index]
        pt = choose_codec(media)
        assert pt is not None
        payload_types = [pt]
        event_pt = telephone_event_type(media)
        if event_pt is not None:
            payload_types.append(event_pt)
        sink = self.sinks(role) if self.sinks is not None else None
        leg = RtpLeg(channel, media.payload_map(), self.recorder, SAMPLE_RATE_HZ, on_audio=sink)
        last_error: Exception | None = None
        for attempt in range(PORT_ATTEMPTS):
            if attempt:  # the port was taken by another program: try the next free one
                try:
                    port = self.ports.allocate()
                except PortPoolExhausted as exc:
                    raise SessionError(f"no free RTP port: {exc}", 503) from exc
            try:
                endpoint = await self.open_media(self.bind_host, port, leg)
            except OSError as exc:
                self.ports.release(port)
                last_error = exc
                continue
            slot = StreamSlot(index, label, role, channel, port, payload_types, leg, endpoint)
            slot.active_since_s = now_s
            self.slots.append(slot)
            with self.media_lock:
                self._apply_direction(slot, media.direction, now_s)
            return
        raise SessionError(f"could not open an RTP port: {last_error}", 500)

    def _apply_direction(self, slot: StreamSlot, offered: str, now_s: float) -> None:
        slot.direction = answer_direction(offered)
        paused = slot.direction == "inactive"
        if slot.leg.paused and not paused:
            slot.active_since_s = now_s
        slot.leg.paused = paused

    def _answer(self, offer: SessionDescription, now_s: float) -> list[MediaAnswer | None]:
        self.last_offer = offer
        answers: list[MediaAnswer | None] = [None] * len(offer.media)
        for slot in self.slots:
            if slot.index < len(answers):
                answers[slot.index] = MediaAnswer(slot.port, slot.payload_types, slot.direction)
        self._answers = answers
        self.session_version += 1
        return answers

    @property
    def agent_id(self) -> str | None:
        """The agent as known now: from the recording metadata, else the call's parties."""
        if self._agent_ids:
            return self._agent_ids[0]
        if self.decision is not None and self.decision.agent is not None:
            return aor_user(self.decision.agent.aor)
        _, agent_aor = plain_call_role(self.caller, self.callee, self.patterns, self.default_side)
        return aor_user(agent_aor)

    # ---------------------------------------------------------------- updates

    async def update(
        self,
        offer: SessionDescription | None,
        metadata: RecordingMetadata | None,
        now_s: float,
    ) -> list[MediaAnswer | None] | None:
        """Apply a re-INVITE or UPDATE: directions pause or resume streams, metadata merges.

        Returns the answers for a new offer, or None when the request carried no SDP.
        """
        if metadata is not None:
            self.metadata = metadata if self.metadata is None else self.metadata.merge(metadata)
            labels = [slot.label for slot in self.slots]
            if self.source == "siprec" and self.metadata.participants:
                self.decision = assign_roles(
                    labels, self.metadata, self.patterns, self.default_side
                )
                self._note_agent()
        if offer is None:
            return None
        if len(offer.media) < len(self._answers):
            raise SessionError("an updated offer may not remove m-lines", 488)
        with self.media_lock:
            for slot in self.slots:
                media = offer.media[slot.index]
                if media.port == 0:
                    self._apply_direction(slot, "inactive", now_s)
                else:
                    self._apply_direction(slot, media.direction, now_s)
        return self._answer(offer, now_s)

    def current_answers(self) -> list[MediaAnswer | None]:
        return list(self._answers)

    # ---------------------------------------------------------------- activity

    def idle_s(self, now_s: float) -> float:
        """Seconds since the last RTP packet on any stream (from start or resume if none).

        A stream counts a packet when its leg's packet counters move; the caller samples this
        regularly, so the resolution is its sampling period.
        """
        latest = 0.0
        for slot in self.slots:
            seen = slot.leg.packets_seen
            if seen != slot.packets_seen:
                slot.packets_seen = seen
                slot.active_since_s = now_s
            latest = max(latest, slot.active_since_s)
        return max(0.0, now_s - latest)

    def tick(self, now_s: float) -> None:
        """Let each leg release audio that waited long enough (on the media clock)."""
        with self.media_lock:
            for slot in self.slots:
                slot.leg.tick(now_s)

    @property
    def all_paused(self) -> bool:
        return bool(self.slots) and all(slot.leg.paused for slot in self.slots)

    # ---------------------------------------------------------------- end

    async def _close_media(self) -> None:
        for slot in self.slots:
            if slot.endpoint is not None:
                try:
                    slot.endpoint.close()
                except OSError as exc:
                    logger.debug("closing the RTP socket of port %d: %s", slot.port, exc)
                slot.endpoint = None
                self.ports.release(slot.port)
        # Closed first, then flushed: no receive thread feeds the legs (or writes into
        # their shared recording) any more.
        for slot in self.slots:
            slot.leg.flush()

    async def finish(self, reason: str) -> CallInfo:
        """Close the streams and the recording; the facts of the call for its consumers."""
        self.finished = True
        await self._close_media()
        assert self.recorder is not None
        frames = self.recorder.frames
        path = self.recorder.close()
        decision = self.decision
        stereo = len(self.slots) == 2
        info = CallInfo(
            call_id=self.call_id,
            source=self.source,
            recording_path=path,
            channels=len(self.slots),
            started_at=self.started_at,
            ended_at=_utc_now(),
            duration_s=frames / SAMPLE_RATE_HZ,
            end_reason=reason,
            peer=self.peer,
            caller=self.caller,
            callee=self.callee,
            agent_channel="left" if stereo else None,
            mono_speaker=None if stereo else self.slots[0].role,
            role_reason=decision.reason if decision else "plain call",
            leg_stats={slot.role: slot.leg.stats for slot in self.slots},
            labels={slot.role: slot.label for slot in self.slots},
            agent_ids_seen=list(self._agent_ids),
        )
        if self.metadata is not None:
            info.call_identifiers = self.metadata.call_identifiers()
            info.metadata_dialect = self.metadata.dialect
        if decision is not None:
            if decision.caller is not None:
                info.caller = decision.caller.aor
            if decision.callee is not None:
                info.callee = decision.callee.aor
            info.agent_aor = decision.agent.aor if decision.agent else None
            info.customer_aor = decision.customer.aor if decision.customer else None
        else:
            role, agent_aor = plain_call_role(
                self.caller, self.callee, self.patterns, self.default_side
            )
            info.agent_aor = agent_aor
            info.customer_aor = self.callee if role == "agent" else self.caller
        info.agent_id = self._agent_ids[0] if self._agent_ids else aor_user(info.agent_aor)
        return info
