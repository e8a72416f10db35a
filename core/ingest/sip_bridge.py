"""Calls recorded by the SIP/SIPREC server, or followed on a mirror port, fed live to the
engine.

The recording server (``telephony.server``) records each call to a spool file as before;
this bridge opens a live call in the engine when a session's roles are known, hands every
leg's decoded audio to it as the jitter buffers release it, and ends it at BYE or timeout
with what signalling knew about the call. Runs on the server's event loop.

A mixed stream feeds one leg (`core.ingest.receive.scored_leg`). When a metadata update
changes the agent, the live call's agent and team follow it at once, so that alerts and
routing name the agent on the line now. A call with no audio is stored as `no audio`,
without a score; the recorder's decision record is stored with every call.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from typing import Any

import numpy as np

from core.ingest.receive import NO_AUDIO_STATUS, call_meta, scored_leg
from core.live.call import CallSetup, LiveCall
from core.live.engine import LiveEngine
from core.stage_cpu import current_stage, name_thread
from core.storage.live_calls import team_of
from telephony.follow import EndedCall, FollowedCall
from telephony.rtp import AudioSink, LegStats
from telephony.sessions import CallInfo, RecordingSession, SinkFactory
from telephony.siprec import aor_user

logger = logging.getLogger(__name__)


def _sinks(engine: LiveEngine, call: LiveCall) -> SinkFactory:
    """Where each role's decoded audio goes: into the live call's leg.

    The receive path hands each leg's audio over in pieces of up to 200 ms (``RtpLeg`` takes
    a leg's datagrams ten at a time, and what is left when the leg is released by time, or
    flushed when the call ends, before ``on_call_ended`` calls ``end_call``), and the leg
    runs its DSP on whole chunks of at least 100 ms (``core.live.leg``).

    A sink runs on the thread that receives the call's media: the server's RTP receive
    thread or a mirror port's capture thread, which telephony starts without a stage. The
    first audio names such a thread ``receive`` (``core.stage_cpu``), so that the DSP the
    engine charges to ``dsp`` is taken out of ``receive`` and not counted twice.
    """
    feed = engine.feed

    def sink_for(role: str) -> AudioSink | None:
        leg = scored_leg(role)
        if leg not in call.legs:
            return None

        def sink(at_sample: int, pcm: np.ndarray) -> None:
            if current_stage() == "other":
                name_thread("receive")
            feed(call, leg, pcm, at_sample)

        return sink

    return sink_for


PACKET_COUNTS = ("received", "lost", "late", "duplicates", "malformed", "unknown_payload")


def add_packets(totals: Counter[str], legs: list[LegStats | None]) -> None:
    """Add the packet counts (PACKET_COUNTS) of an ended call's legs to ``totals``."""
    for stats in legs:
        if stats is not None:
            for name in PACKET_COUNTS:
                totals[name] += int(getattr(stats, name))


class SipBridge:
    def __init__(self, engine: LiveEngine) -> None:
        self.engine = engine
        self.refused = 0
        self.packets: Counter[str] = Counter()
        """RTP packet counts (PACKET_COUNTS) of the legs of every call ended so far."""

    def on_call_started(self, session: RecordingSession) -> SinkFactory | None:
        """Open the live call; a call the engine cannot take is still recorded."""
        roles = tuple(dict.fromkeys(scored_leg(r) for r in session.roles))
        assert session.recorder is not None
        meta: dict[str, Any] = {"sip_call_id": session.call_id, "peer": session.peer}
        if "mixed" in session.roles:
            meta["mixed"] = True
        setup = CallSetup(
            source=session.source,
            external_id=session.call_id,
            agent_id=session.agent_id,
            caller=session.caller,
            callee=session.callee,
            sample_rate=session.recorder.sample_rate,
            recording_path=session.recorder.path,
            legs=roles,  # type: ignore[arg-type]
            meta=meta,
        )
        try:
            call = self.engine.open_call(setup)
        except Exception:
            self.refused += 1
            logger.exception("call %s: not scored live; it is recorded only", session.call_id,
                             extra={"call_id": session.call_id})  # fmt: skip
            return None
        session.on_updated = lambda changed: self._follow(call, changed)
        return _sinks(self.engine, call)

    def _follow(self, call: LiveCall, session: RecordingSession) -> None:
        """A metadata update: the live call's agent, team and parties follow it."""
        agent_id = session.agent_id
        if agent_id != call.setup.agent_id:
            team = self.engine.writer.submit(team_of, agent_id).result() if agent_id else None
            logger.info("call %s: agent %s (team %s) after a metadata update, was %s",
                        call.call_id, agent_id, team, call.setup.agent_id)  # fmt: skip
            call.setup.agent_id, call.setup.team_id = agent_id, team
        call.setup.caller = session.caller or call.setup.caller
        call.setup.callee = session.callee or call.setup.callee

    def on_call_ended(self, info: CallInfo) -> None:
        add_packets(self.packets, list(info.leg_stats.values()))
        call = self.engine.find(info.call_id)
        if call is None:
            logger.warning("call %s ended but was not live; recording kept at %s",
                           info.call_id, info.recording_path,
                           extra={"call_id": info.call_id})  # fmt: skip
            return
        if info.agent_id != call.setup.agent_id:
            call.setup.agent_id = info.agent_id
            call.setup.team_id = (
                self.engine.writer.submit(team_of, info.agent_id).result() if info.agent_id
                else None
            )  # fmt: skip
        if info.caller:
            call.setup.caller = info.caller
        if info.callee:
            call.setup.callee = info.callee
        meta: dict[str, Any] = call_meta(info)
        self.engine.end_call(call, info.end_reason, meta=meta, duration_s=info.duration_s,
                             unscored_status=NO_AUDIO_STATUS if info.no_audio else None)


class MirrorBridge:
    """Calls followed on a mirrored switch port (``telephony.follow``), fed live the same way.

    Runs on the capture thread. The agent is the configured side of each call (the callee
    for inbound centers); its id is the user part of that side's URI.
    """

    def __init__(self, engine: LiveEngine) -> None:
        self.engine = engine
        self.refused = 0
        self.packets: Counter[str] = Counter()
        """RTP packet counts (PACKET_COUNTS) of the legs of every call ended so far."""

    def on_call_started(self, followed: FollowedCall) -> SinkFactory | None:
        agent_uri = followed.callee if followed.agent_side == "callee" else followed.caller
        setup = CallSetup(
            source="mirror", external_id=followed.call_id, agent_id=aor_user(agent_uri),
            caller=followed.caller, callee=followed.callee, recording_path=followed.recording,
            meta={"sip_call_id": followed.call_id, "agent_side": followed.agent_side},
        )  # fmt: skip
        try:
            call = self.engine.open_call(setup)
        except Exception:
            self.refused += 1
            logger.exception("mirrored call %s: not scored live; it is recorded only",
                             followed.call_id, extra={"call_id": followed.call_id})  # fmt: skip
            return None
        return _sinks(self.engine, call)

    def on_call_ended(self, ended: EndedCall) -> None:
        add_packets(self.packets, [ended.agent, ended.customer])
        call = self.engine.find(ended.call_id)
        if call is None:
            if ended.recording is not None:
                logger.warning("mirrored call %s was not live; recording kept at %s",
                               ended.call_id, ended.recording,
                               extra={"call_id": ended.call_id})  # fmt: skip
            return
        meta: dict[str, Any] = {"end_reason": ended.reason, "legs": {
            role: dataclasses.asdict(stats) for role, stats in
            (("agent", ended.agent), ("customer", ended.customer)) if stats is not None
        }}  # fmt: skip
        self.engine.end_call(call, ended.reason, meta=meta, duration_s=ended.duration_s)
