"""One recording session per call: RTP ports, media streams, the recording and call facts.

A `RecordingSession` turns an SDP offer into receiving sockets: it picks the audio m-lines to
record (`telephony.stream_choice`: live before paused, by the metadata's senders), decides
which is the agent's and which the customer's, or that one carries both (`assign_roles`:
SIPREC metadata and the configured agent patterns, or the caller and callee of a plain
call), allocates an RTP port for each, and writes them into one `CallRecorder`: the agent on
channel 0 (left) and the customer on channel 1 (right), or a mono file for a one-stream call.

Updates (re-INVITE, UPDATE) pause and resume streams in every form an SRC uses
(`a=inactive`, `a=recvonly`, `c=IN IP4 0.0.0.0`, port 0) and apply new metadata: a complete
snapshot replaces what was known, a partial one merges; the roles are decided again, and a
stream whose role changed is written to its new channel from then on. Each of these
decisions goes into the call's decision record (`telephony.call_decisions`). At the end it
reports a `CallInfo`.

For a SIPREC call the parties (caller, callee, agent, customer) come from the metadata only:
the INVITE's From and To are the SRC and the recorder, not the people on the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from telephony.call_decisions import DecisionLog
from telephony.media import PortPoolExhausted
from telephony.recorder import CallRecorder
from telephony.rs_metadata import RecordingMetadata, apply_update, describe_changes
from telephony.rtp import AudioSink, LegStats, RtpLeg
from telephony.sip.sdp import (
    MediaAnswer,
    MediaDescription,
    SessionDescription,
    answer_direction,
    choose_codec,
    telephone_event_type,
)
from telephony.siprec import (
    AgentPatterns,
    RoleDecision,
    aor_user,
    assign_roles,
    plain_call_role,
    stereo_roles,
)
from telephony.stream_choice import choose_streams, media_state

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 8000
PORT_ATTEMPTS = 8
AGENT_CHANNEL = 0
CUSTOMER_CHANNEL = 1
MIN_AUDIO_S = 1.0
"""A call with less recorded audio than this (or no RTP at all) is a call with no audio."""


class PortPool(Protocol):
    def allocate(self) -> int: ...

    def release(self, port: int) -> None: ...


class MediaEndpoint(Protocol):
    async def aclose(self) -> None: ...


class MediaOpener(Protocol):
    async def __call__(self, host: str, port: int, leg: RtpLeg) -> MediaEndpoint: ...


SinkFactory = Callable[[str], AudioSink | None]
"""Given a stream's role (agent, customer or mixed), where its decoded audio goes too."""
CallStartedHook = Callable[["RecordingSession"], SinkFactory | None]
"""Called once a session's roles and recording are known, before its streams open."""
CallUpdatedHook = Callable[["RecordingSession"], None]
"""Called after a metadata update was applied (the agent may have changed)."""


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
    pause_form: str = ""
    """How the SRC paused the stream (`a=inactive`, `c=0.0.0.0`, ...), empty while live."""


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
    """The one stream's role in a mono recording: agent, customer or mixed."""
    role_reason: str = ""
    call_identifiers: dict[str, str] = field(default_factory=dict)
    leg_stats: dict[str, LegStats] = field(default_factory=dict)
    labels: dict[str, str | None] = field(default_factory=dict)
    metadata_dialect: str | None = None
    agent_ids_seen: list[str] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    """The recording metadata as known at the end (`RecordingMetadata.summary`)."""
    decisions: list[dict[str, Any]] = field(default_factory=list)
    no_audio: bool = False
    """All streams paused throughout, or under `MIN_AUDIO_S` of RTP: nothing to score."""


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
        self.on_updated: CallUpdatedHook | None = None
        """Set by the `on_started` hook's owner to follow metadata updates."""
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
        self.signalled_from = caller
        self.signalled_to = callee
        self.metadata: RecordingMetadata | None = None
        self.decision: RoleDecision | None = None
        self.decisions = DecisionLog(call_id)
        self.slots: list[StreamSlot] = []
        self.recorder: CallRecorder | None = None
        self.started_at = _utc_now()
        self.session_id = str(secrets.randbelow(2**31))
        self.session_version = 0
        self.finished = False
        self._answers: list[MediaAnswer | None] = []
        self.last_offer: SessionDescription | None = None
        self._agent_ids: list[str] = []

    # ---------------------------------------------------------------- parties

    @property
    def siprec(self) -> bool:
        return self.source == "siprec"

    @property
    def caller(self) -> str | None:
        """The caller of the recorded call (for SIPREC, from the metadata; else From)."""
        if not self.siprec:
            return self.signalled_from
        d = self.decision
        return d.caller.aor if d is not None and d.caller is not None else None

    @property
    def callee(self) -> str | None:
        if not self.siprec:
            return self.signalled_to
        d = self.decision
        return d.callee.aor if d is not None and d.callee is not None else None

    @property
    def agent_aor(self) -> str | None:
        if self.siprec:
            d = self.decision
            return d.agent.aor if d is not None and d.agent is not None else None
        if self.decision is not None and self.decision.agent is not None:
            return self.decision.agent.aor
        _, agent = plain_call_role(self.caller, self.callee, self.patterns, self.default_side)
        return agent

    @property
    def customer_aor(self) -> str | None:
        if self.siprec:
            d = self.decision
            return d.customer.aor if d is not None and d.customer is not None else None
        agent = self.agent_aor
        return self.callee if agent == self.caller else self.caller

    @property
    def agent_id(self) -> str | None:
        """The agent as known now (it follows metadata updates); None when unknown."""
        return aor_user(self.agent_aor)

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
        if metadata is not None:
            self._note_rejected(metadata, "the INVITE")
        choice = choose_streams(offer, metadata)
        chosen = choice.taken
        if not chosen:
            raise SessionError("no PCMU or PCMA audio stream offered", 488)
        taken = ", ".join(f"{i} (label {offer.media[i].label})" for i in chosen)
        self.decisions.add("streams", f"recording m-line {taken} of {len(offer.media)}",
                           streams=choice.as_record(offer))  # fmt: skip
        labels = [offer.media[i].label for i in chosen]
        roles = self._decide_roles(labels)
        channels = self._channels(roles)
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

    def _decide_roles(self, labels: list[str | None]) -> list[str]:
        """Roles of the streams with these labels, noted in the decision record."""
        if self.siprec or len(labels) > 1:
            meta = self.metadata if self.siprec else None
            self.decision = assign_roles(labels, meta, self.patterns, self.default_side)
            roles = self.decision.roles
            notes = list(self.decision.notes)
        else:
            role, agent = plain_call_role(self.caller, self.callee, self.patterns,
                                          self.default_side)  # fmt: skip
            roles = [role]
            notes = [f"plain call: the one stream is the caller's; agent {agent}"]
        if len(roles) == 2:
            fixed = stereo_roles(roles, self.default_side)
            if fixed != roles:
                notes.append(f"stereo recording: roles {roles} recorded as {fixed}")
            roles = fixed
        agent_id = self.agent_id
        if agent_id and agent_id not in self._agent_ids:
            self._agent_ids.append(agent_id)
        reason = self.decision.reason if self.decision is not None else "plain call"
        self.decisions.add(
            "agent", f"agent {agent_id or 'unknown'} ({reason}); streams "
            + ", ".join(f"{label}: {role}" for label, role in zip(labels, roles, strict=True)),
            agent_id=agent_id, agent_aor=self.agent_aor, reason=reason, notes=notes,
            roles=dict(zip([str(x) for x in labels], roles, strict=True)),
        )  # fmt: skip
        return roles

    @staticmethod
    def _channels(roles: list[str]) -> list[int]:
        if len(roles) == 1:
            return [0]
        return [AGENT_CHANNEL if r == "agent" else CUSTOMER_CHANNEL for r in roles]

    def _note_rejected(self, metadata: RecordingMetadata, where: str) -> None:
        if metadata.rejected:
            self.decisions.add("metadata", f"{len(metadata.rejected)} elements of the metadata "
                               f"in {where} left out: {'; '.join(metadata.rejected)}",
                               rejected=metadata.rejected, warn=True)  # fmt: skip

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
        # Paused or not as offered before its socket opens: no thread feeds it yet, so a
        # burst of set-ups does not wait for the receive thread's lock once per stream.
        leg.paused = not media_state(media).live
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
            self._apply_state(slot, media, now_s, first=True)  # the leg is as offered already
            return
        raise SessionError(f"could not open an RTP port: {last_error}", 500)

    def _apply_state(
        self, slot: StreamSlot, media: MediaDescription, now_s: float, first: bool = False
    ) -> None:
        """Pause or resume a stream as its offered m-line says (see `media_state`); the
        caller holds ``media_lock`` when this changes the leg."""
        state = media_state(media)
        slot.direction = answer_direction(media.direction)
        was_paused = slot.leg.paused
        if state.live and was_paused:
            slot.active_since_s = now_s
        if was_paused == state.live:
            slot.leg.paused = not state.live
        if state.live and was_paused and not first:
            self.decisions.add("resume", f"label {slot.label} resumed ({state.form})",
                               m_line=slot.index, form=state.form)  # fmt: skip
        elif not state.live and (first or not was_paused):
            self.decisions.add("pause", f"label {slot.label} paused ({state.form})",
                               m_line=slot.index, form=state.form)  # fmt: skip
        slot.pause_form = "" if state.live else state.form

    def _answer(self, offer: SessionDescription, now_s: float) -> list[MediaAnswer | None]:
        self.last_offer = offer
        answers: list[MediaAnswer | None] = [None] * len(offer.media)
        for slot in self.slots:
            if slot.index < len(answers):
                # An m-line offered with port 0 is answered with port 0 (RFC 3264 §8.2); the
                # stream's socket stays open for the offer that resumes it.
                port = 0 if offer.media[slot.index].port == 0 else slot.port
                answers[slot.index] = MediaAnswer(port, slot.payload_types, slot.direction)
        self._answers = answers
        self.session_version += 1
        return answers

    # ---------------------------------------------------------------- updates

    async def update(
        self,
        offer: SessionDescription | None,
        metadata: RecordingMetadata | None,
        now_s: float,
    ) -> list[MediaAnswer | None] | None:
        """Apply a re-INVITE or UPDATE: directions pause or resume streams, metadata is
        applied. Returns the answers for a new offer, or None when it carried no SDP."""
        if offer is not None and len(offer.media) < len(self._answers):
            raise SessionError("an updated offer may not remove m-lines", 488)
        if metadata is not None:
            self._apply_metadata(metadata)
        if offer is None:
            return None
        self._follow_live_streams(offer)
        with self.media_lock:
            for slot in self.slots:
                self._apply_state(slot, offer.media[slot.index], now_s)
        return self._answer(offer, now_s)

    def _follow_live_streams(self, offer: SessionDescription) -> None:
        """When a recorded stream is paused while the SRC offers another one live (a party's
        audio moved to another m-line), record that one instead, on the same port and
        channel. The recording's channels are set at the start: a stream beyond them is
        not taken."""
        held = {slot.index for slot in self.slots}
        choice = choose_streams(offer, self.metadata if self.siprec else None, len(self.slots))
        moved = False
        for index in choice.taken:
            if index in held or not media_state(offer.media[index]).live:
                continue
            paused = [s for s in self.slots if not media_state(offer.media[s.index]).live]
            if not paused:
                break
            slot = self._same_sender(paused, offer.media[index].label)
            old_label = slot.label
            held.discard(slot.index)
            held.add(index)
            slot.index, slot.label = index, offer.media[index].label
            moved = True
            self.decisions.add(
                "streams", f"label {old_label} is paused and label {slot.label} live: "
                f"recording m-line {index} (label {slot.label}) on its port",
                streams=choice.as_record(offer),
            )  # fmt: skip
        if moved and self.siprec:
            roles = self._decide_roles([slot.label for slot in self.slots])
            if roles != [slot.role for slot in self.slots]:
                self._reassign(roles)

    def _same_sender(self, slots: list[StreamSlot], label: str | None) -> StreamSlot:
        """The slot among `slots` whose stream has the same senders as `label`'s."""
        if self.metadata is not None:
            wanted = {p.id for p in self.metadata.senders_of_label(label)}
            for slot in slots:
                if wanted and {p.id for p in self.metadata.senders_of_label(slot.label)} == wanted:
                    return slot
        return slots[0]

    def _apply_metadata(self, update: RecordingMetadata) -> None:
        old = self.metadata
        self.metadata = apply_update(old, update)
        self._note_rejected(update, "an update")
        how = "complete snapshot replaced the metadata" if update.complete else (
            "partial update merged")  # fmt: skip
        changes = describe_changes(old, self.metadata)
        self.decisions.add(
            "metadata", f"{how}: {'; '.join(changes) or 'nothing changed'}",
            datamode=update.datamode, changes=changes, rejected=update.rejected,
            metadata=self.metadata.summary(),
        )  # fmt: skip
        if not self.siprec or not self.slots:
            return
        before = (self.agent_id, [slot.role for slot in self.slots])
        roles = self._decide_roles([slot.label for slot in self.slots])
        if roles != before[1]:
            self._reassign(roles)
        if self.on_updated is not None and (self.agent_id, roles) != before:
            try:
                self.on_updated(self)
            except Exception:
                logger.exception("call %s: the call-updated hook failed", self.call_id)

    def _reassign(self, roles: list[str]) -> None:
        """Write each stream to the channel and live leg of its new role from now on."""
        channels = self._channels(roles)
        with self.media_lock:
            for slot, role, channel in zip(self.slots, roles, channels, strict=True):
                slot.role, slot.channel = role, channel
                slot.leg.channel = channel
                slot.leg.on_audio = self.sinks(role) if self.sinks is not None else None
        self.roles = list(roles)

    def current_answers(self) -> list[MediaAnswer | None]:
        return list(self._answers)

    # ---------------------------------------------------------------- activity

    def idle_s(self, now_s: float) -> float:
        """Seconds since the last RTP packet on any live stream (from start or resume if
        none); paused streams do not count, unless every stream is paused.

        A stream counts a packet when its leg's packet counters move; the caller samples this
        regularly, so the resolution is its sampling period.
        """
        latest = 0.0
        live = [slot for slot in self.slots if not slot.leg.paused] or self.slots
        for slot in self.slots:
            seen = slot.leg.packets_seen
            if seen != slot.packets_seen:
                slot.packets_seen = seen
                slot.active_since_s = now_s
        for slot in live:
            latest = max(latest, slot.active_since_s)
        return max(0.0, now_s - latest)

    @property
    def all_paused(self) -> bool:
        return bool(self.slots) and all(slot.leg.paused for slot in self.slots)

    # ---------------------------------------------------------------- end

    async def _close_media(self) -> None:
        open_slots = [(slot, slot.endpoint) for slot in self.slots if slot.endpoint is not None]
        closed = await asyncio.gather(
            *(endpoint.aclose() for _, endpoint in open_slots), return_exceptions=True
        )
        for (slot, _), outcome in zip(open_slots, closed, strict=True):
            if isinstance(outcome, BaseException):
                logger.debug("closing the RTP socket of port %d: %s", slot.port, outcome)
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
        stats = {slot.role: slot.leg.stats for slot in self.slots}
        duration_s = frames / SAMPLE_RATE_HZ
        received = sum(s.received for s in stats.values())
        no_audio = received == 0 or duration_s < MIN_AUDIO_S
        if no_audio:
            self.decisions.add("audio", f"no audio: {received} RTP packets, {duration_s:.2f} s "
                               "recorded; stored without a score",
                               packets=received, duration_s=round(duration_s, 3))  # fmt: skip
        stereo = len(self.slots) == 2
        meta = self.metadata
        return CallInfo(
            call_id=self.call_id,
            source=self.source,
            recording_path=path,
            channels=len(self.slots),
            started_at=self.started_at,
            ended_at=_utc_now(),
            duration_s=duration_s,
            end_reason=reason,
            peer=self.peer,
            caller=self.caller,
            callee=self.callee,
            agent_id=self.agent_id,
            agent_aor=self.agent_aor,
            customer_aor=self.customer_aor,
            agent_channel="left" if stereo else None,
            mono_speaker=None if stereo else self.slots[0].role,
            role_reason=self.decision.reason if self.decision else "plain call",
            call_identifiers=meta.call_identifiers() if meta is not None else {},
            leg_stats=stats,
            labels={slot.role: slot.label for slot in self.slots},
            metadata_dialect=meta.dialect if meta is not None else None,
            agent_ids_seen=list(self._agent_ids),
            metadata=meta.summary() if meta is not None else None,
            decisions=self.decisions.to_json(),
            no_audio=no_audio,
        )
