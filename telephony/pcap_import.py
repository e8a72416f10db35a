"""Importing calls from a packet capture: pcap/pcapng in, one stereo recording per call out.

The capture is read frame by frame (:mod:`telephony.pcap`), decoded to UDP
(:mod:`telephony.packets`) and followed call by call (:mod:`telephony.follow`), exactly as
the live port-mirror receiver does, with capture timestamps as the clock. Calls without
any audio (rejected, cancelled, SIP only) produce no recording and are left out.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

from telephony.follow import CallFollower, EndedCall, FollowOptions, FollowStats
from telephony.packets import DecodeStats, PacketDecoder
from telephony.pcap import CaptureReader, CaptureStats
from telephony.rtp import LegStats

logger = logging.getLogger(__name__)

OFFLINE_JITTER_DEPTH_MS = 250  # offline, waiting longer for reordered packets costs nothing


@dataclass
class ImportedCall:
    """One call found in the capture, with its recording (agent left, customer right)."""

    call_id: str
    caller: str
    callee: str
    recording: Path
    started_at: str  # ISO 8601 (UTC) time of the recording's first sample
    duration_s: float
    end_reason: str
    agent_side: str  # caller or callee
    agent: LegStats | None
    customer: LegStats | None


@dataclass
class ImportReport:
    """Everything an import found, including what it skipped."""

    calls: list[ImportedCall] = field(default_factory=list)
    calls_without_audio: int = 0
    capture: CaptureStats = field(default_factory=CaptureStats)
    decode: DecodeStats = field(default_factory=DecodeStats)
    follow: FollowStats = field(default_factory=FollowStats)

    def summary(self) -> str:
        return (
            f"{self.capture.frames} frames, {self.decode.udp} UDP datagrams, "
            f"{self.follow.sip_messages} SIP messages, {self.follow.calls_started} calls "
            f"({len(self.calls)} with audio), {self.decode.malformed} malformed frames, "
            f"{self.follow.unmatched} datagrams outside any call"
        )


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


def import_capture(
    path: Path | str, out_dir: Path | str, options: FollowOptions | None = None
) -> ImportReport:
    """Follow every SIP call in the capture at ``path``; recordings go to ``out_dir``."""
    path = Path(path)
    out_dir = Path(out_dir)
    report = ImportReport()

    def ended(call: EndedCall) -> None:
        if call.recording is None:
            report.calls_without_audio += 1
            return
        start = call.audio_start_s if call.audio_start_s is not None else call.started_s
        report.calls.append(
            ImportedCall(
                call_id=call.call_id,
                caller=call.caller,
                callee=call.callee,
                recording=call.recording,
                started_at=_iso(start),
                duration_s=call.duration_s,
                end_reason=call.reason,
                agent_side=call.agent_side,
                agent=call.agent,
                customer=call.customer,
            )
        )

    follower = CallFollower(out_dir, ended, options)
    decoder = PacketDecoder()
    with open(path, "rb") as f:
        reader = CaptureReader(f, str(path))
        try:
            for frame in reader:
                dgram = decoder.decode_frame(frame)
                if dgram is not None:
                    follower.feed(dgram)
        finally:
            follower.close()
    report.capture = reader.stats
    report.decode = decoder.stats
    report.follow = follower.stats
    report.calls.sort(key=lambda c: c.started_at)
    logger.info("%s: %s", path, report.summary())
    return report


def import_pcap(
    path: Path | str, out_dir: Path | str, *, agent_side: str = "callee"
) -> list[ImportedCall]:
    """The calls with audio in a pcap/pcapng file, each recorded as a WAV in ``out_dir``."""
    options = FollowOptions(agent_side=agent_side, jitter_depth_ms=OFFLINE_JITTER_DEPTH_MS)
    return import_capture(path, out_dir, options).calls
