"""`callqa receive`: record calls from the PBX or SBC, then score and store each one.

The recording server writes each call to a spool file under the data folder. When the call
ends, a single scoring thread transcribes and scores the file with the offline pipeline
(`core.scoring.recording.score_file`), moves the recording under `recordings/` and stores the call
with its source (`siprec` or `sip`), caller, callee, agent and the SBC's call identifiers in
one transaction. A call that cannot be scored is still stored, with status `failed`, so no
recording is lost.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from core.config import ConfigError, Settings
from telephony.server import RecordingServer, ServerSettings
from telephony.sessions import CallInfo
from telephony.sip.transport import PeerFilter
from telephony.siprec import AGENT_SIDES, AgentPatterns

logger = logging.getLogger(__name__)

SPOOL_DIR = "spool"
MIXED_SCORED_AS = "agent"
"""A mixed stream (both parties on one stream) is one leg; the rubric reads it as the agent's,
so that the agent's required phrases are found in it, while the stored call says it is mixed
(`mono_speaker`). With one leg there are no silence or overtalk findings."""
NO_AUDIO_STATUS = "no audio"
"""The status of a call stored without a score because it had no audio (`CallInfo.no_audio`)."""


@dataclass(frozen=True)
class ReceiverSettings:
    """The scoring configuration and the recording server's settings."""

    config: Settings
    server: ServerSettings
    score: bool = True


# ---------------------------------------------------------------- settings


def _csv(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def server_settings(settings: Settings) -> ServerSettings:
    """The recording server's settings, from the `sip_*`, `rtp_*` and agent settings; raises
    `ConfigError` naming a bad one."""
    v = settings
    transports = tuple(t.lower() for t in _csv(v.sip_transports))
    if not transports or any(t not in ("udp", "tcp") for t in transports):
        raise ConfigError("setting 'sip_transports' must list udp, tcp or both")
    if v.default_agent_side not in AGENT_SIDES:
        raise ConfigError(f"setting 'default_agent_side' must be one of {', '.join(AGENT_SIDES)}")
    try:
        patterns = AgentPatterns.parse(v.agent_patterns)
    except ValueError as exc:
        raise ConfigError(f"setting 'agent_patterns': {exc}") from exc
    if not 0 < v.rtp_port_first < v.rtp_port_last <= 65535:
        raise ConfigError("settings 'rtp_port_first' and 'rtp_port_last' must be a port range")
    server = ServerSettings(
        recordings_dir=v.data_dir / SPOOL_DIR,
        host=v.sip_host,
        port=v.sip_port,
        transports=transports,
        allowed_peers=_csv(v.sip_allowed_peers),
        rtp_port_first=v.rtp_port_first,
        rtp_port_last=v.rtp_port_last,
        max_sessions=v.sip_max_sessions,
        disk_min_free_mb=v.disk_min_free_mb,
        max_message_bytes=v.sip_max_message_bytes,
        max_headers=v.sip_max_headers,
        rtp_idle_timeout_s=v.rtp_idle_timeout_s,
        compiled_receive=v.rtp_compiled_receive,
        agent_patterns=patterns,
        default_agent_side=v.default_agent_side,
    )
    try:
        PeerFilter(server.allowed_peers)
    except ValueError as exc:
        raise ConfigError(f"setting 'sip_allowed_peers': {exc}") from exc
    return server


# ---------------------------------------------------------------- storing


def scored_leg(role: str) -> str:
    """The leg (agent or customer) a recorded stream's role is scored as."""
    return MIXED_SCORED_AS if role == "mixed" else role


def _leg_summary(info: CallInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for role, stats in info.leg_stats.items():
        summary = dataclasses.asdict(stats)
        summary["dtmf"] = [dataclasses.asdict(event) for event in stats.dtmf]
        out[role] = summary
    return out


def call_meta(info: CallInfo) -> dict[str, Any]:
    """What the stored call keeps about its signalling and media."""
    return {
        "sip_call_id": info.call_id,
        "peer": info.peer,
        "end_reason": info.end_reason,
        "ended_at": info.ended_at,
        "call_identifiers": info.call_identifiers,
        "agent_aor": info.agent_aor,
        "customer_aor": info.customer_aor,
        "agent_ids_seen": info.agent_ids_seen,
        "role_reason": info.role_reason,
        "metadata_dialect": info.metadata_dialect,
        "labels": info.labels,
        "channels": info.channels,
        "agent_channel": info.agent_channel,
        "mono_speaker": info.mono_speaker,
        "legs": _leg_summary(info),
        "metadata": info.metadata,
        "decisions": info.decisions,
        "no_audio": info.no_audio,
        "encoding": "pcm16",
        "sample_rate": 8000,
    }


def store_call(config: Settings, info: CallInfo, score: bool = True) -> str | None:
    """Score (unless `score` is False) and store one recorded call; returns its call id.

    Runs on the scoring thread. A call without audio is stored unscored, as `no audio`.
    """
    from core.scoring.recording import ScoreRequest, new_record, score_file
    from core.storage.db import open_db
    from core.storage.filing import store_call

    if info.no_audio:
        score = False
    db = open_db(config.db_path)
    try:
        request = ScoreRequest(
            path=info.recording_path,
            rubric_ref=config.rubric,
            agent_id=info.agent_id,
            agent_channel=info.agent_channel or "left",
            speaker=scored_leg(info.mono_speaker) if info.mono_speaker else None,  # type: ignore[arg-type]
            started_at=info.started_at,
            source=info.source,
            caller=info.caller,
            callee=info.callee,
            meta=call_meta(info),
            move=True,
        )
        if score:
            try:
                call_id = score_file(config, db, request).call_id
                logger.info("call %s stored as %s (scored)", info.call_id, call_id)
                return call_id
            except Exception:
                logger.exception("call %s: scoring failed; stored unscored", info.call_id)
        status = NO_AUDIO_STATUS if info.no_audio else "failed" if score else "recorded"
        record = new_record(request, duration_s=info.duration_s, status=status)
        store_call(config, db, info.recording_path, record, None, move=True)
        logger.info("call %s stored as %s (%s)", info.call_id, record.id, record.status)
        return record.id
    finally:
        db.close()


# ---------------------------------------------------------------- running


class Receiver:
    """The recording server plus the scoring thread it hands finished calls to."""

    def __init__(self, settings: ReceiverSettings) -> None:
        self.settings = settings
        self.server = RecordingServer(settings.server, on_call_ended=self._ended)
        self.stored = 0
        self.failed = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callqa-score")

    async def _ended(self, info: CallInfo) -> None:
        loop = asyncio.get_running_loop()
        try:
            call_id = await loop.run_in_executor(
                self._executor, store_call, self.settings.config, info, self.settings.score
            )
        except Exception:
            self.failed += 1
            logger.exception("call %s could not be stored; recording kept at %s",
                             info.call_id, info.recording_path)  # fmt: skip
            return
        if call_id is not None:
            self.stored += 1

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        """End the calls in progress, store them, and stop."""
        await self.server.stop()
        self._executor.shutdown(wait=True)


async def run_receiver(settings: ReceiverSettings, stop: asyncio.Event | None = None) -> None:
    """Record, score and store calls until `stop` is set (or forever)."""
    receiver = Receiver(settings)
    await receiver.start()
    logger.info(
        "receiving calls on %s port %s (%s)", settings.server.host,
        receiver.server.udp_port or receiver.server.tcp_port, ", ".join(settings.server.transports),
    )  # fmt: skip
    try:
        await (stop or asyncio.Event()).wait()
        await receiver.server.drain(settings.config.sip_drain_s)
    finally:
        await receiver.stop()
