"""RTCP (RFC 3550 section 6): sender and receiver reports of a leg's RTCP port, parsed.

:func:`parse_rtcp` adds one compound packet to a leg's :class:`RtcpStats`; anything else on
the port is skipped, and a malformed packet raises :class:`RtcpParseError`, which the
receiver counts and drops.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

RTCP_SR = 200
RTCP_RR = 201
RTCP_BYE = 203


@dataclass(frozen=True)
class ReportBlock:
    """One reception report (RFC 3550 6.4.1) about the source ``ssrc``."""

    ssrc: int
    fraction_lost: float
    cumulative_lost: int
    highest_sequence: int
    jitter: int  # in RTP timestamp units
    last_sr: int
    delay_since_last_sr: int


@dataclass(frozen=True)
class SenderReport:
    ssrc: int
    ntp_time: float  # seconds since 1900
    rtp_timestamp: int
    packet_count: int
    octet_count: int


@dataclass
class RtcpStats:
    packets: int = 0
    malformed: int = 0
    sender_reports: int = 0
    receiver_reports: int = 0
    byes: int = 0
    last_sender_report: SenderReport | None = None
    reports: dict[int, ReportBlock] = field(default_factory=dict)


class RtcpParseError(ValueError):
    """A datagram on the RTCP port is not a well-formed compound RTCP packet."""


def _report_blocks(data: bytes, pos: int, count: int) -> list[ReportBlock]:
    blocks = []
    for _ in range(count):
        ssrc, lost_word, highest, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", data, pos)
        cumulative = lost_word & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        blocks.append(
            ReportBlock(ssrc, (lost_word >> 24) / 256.0, cumulative, highest, jitter, lsr, dlsr)
        )
        pos += 24
    return blocks


def parse_rtcp(data: bytes, stats: RtcpStats) -> None:
    """Add one compound RTCP packet to ``stats``; raises RtcpParseError when malformed."""
    pos = 0
    if len(data) < 4:
        raise RtcpParseError("RTCP packet length is less than 4 bytes")
    while pos < len(data):
        if pos + 4 > len(data):
            raise RtcpParseError("RTCP packet has a truncated header")
        b0, pt, words = struct.unpack_from("!BBH", data, pos)
        if b0 >> 6 != 2:
            raise RtcpParseError(f"RTCP packet has version {b0 >> 6}, expected 2")
        end = pos + 4 * (words + 1)
        if end > len(data):
            raise RtcpParseError("RTCP packet is shorter than its length field")
        count = b0 & 0x1F
        if pt == RTCP_SR:
            if end - pos < 28 + 24 * count:
                raise RtcpParseError("RTCP sender report is too short for its report blocks")
            ssrc, ntp_hi, ntp_lo, rtp_ts, packets, octets = struct.unpack_from(
                "!IIIIII", data, pos + 4
            )
            stats.last_sender_report = SenderReport(
                ssrc, ntp_hi + ntp_lo / 2**32, rtp_ts, packets, octets
            )
            stats.sender_reports += 1
            for block in _report_blocks(data, pos + 28, count):
                stats.reports[block.ssrc] = block
        elif pt == RTCP_RR:
            if end - pos < 8 + 24 * count:
                raise RtcpParseError("RTCP receiver report is too short for its report blocks")
            stats.receiver_reports += 1
            for block in _report_blocks(data, pos + 8, count):
                stats.reports[block.ssrc] = block
        elif pt == RTCP_BYE:
            stats.byes += 1
        pos = end
    stats.packets += 1
