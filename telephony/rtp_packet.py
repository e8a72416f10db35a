"""The RTP packet (RFC 3550 section 5.1): parsed from a datagram, or built to be sent.

:func:`parse_rtp` turns a datagram into an :class:`RtpPacket` or raises
:class:`RtpParseError` saying what is wrong with it; :meth:`RtpPacket.serialize` gives the
packet on the wire. What a leg does with its packets is `telephony.rtp`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

RTP_VERSION = 2
RTP_HEADER_BYTES = 12
HEADER = struct.Struct("!BBHII")
"""The fixed header: first byte, second byte, sequence number, timestamp, SSRC."""


class RtpParseError(ValueError):
    """A datagram is not a well-formed RTP packet; the message says why."""


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet, parsed (``parse_rtp``) or to be sent (``serialize``)."""

    payload_type: int = 0
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    marker: bool = False
    payload: bytes = b""
    csrc: list[int] = field(default_factory=list)
    extension_profile: int | None = None
    extension: bytes = b""
    padding_size: int = 0

    def serialize(self) -> bytes:
        """The packet on the wire."""
        b0 = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding_size:
            b0 |= 0x20
        if self.extension_profile is not None:
            b0 |= 0x10
        b1 = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        parts = [HEADER.pack(b0, b1, self.sequence_number, self.timestamp, self.ssrc)]
        parts.extend(struct.pack("!I", c) for c in self.csrc)
        if self.extension_profile is not None:
            ext = self.extension + bytes(-len(self.extension) % 4)
            parts.append(struct.pack("!HH", self.extension_profile, len(ext) // 4) + ext)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes([self.padding_size]))
        return b"".join(parts)


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP packet; raises RtpParseError for anything that is not well formed."""
    if len(data) < RTP_HEADER_BYTES:
        raise RtpParseError("RTP packet length is less than 12 bytes")
    b0, b1, seq, ts, ssrc = HEADER.unpack_from(data)
    if b0 >> 6 != RTP_VERSION:
        raise RtpParseError(f"RTP packet has version {b0 >> 6}, expected 2")
    pos = RTP_HEADER_BYTES
    cc = b0 & 0x0F
    end = len(data)
    if b0 & 0x20:
        padding = data[-1]
        if padding == 0 or padding > end - pos - 4 * cc:
            raise RtpParseError(f"RTP packet has invalid padding length {padding}")
        end -= padding
    else:
        padding = 0
    if pos + 4 * cc > end:
        raise RtpParseError("RTP packet is shorter than its CSRC list")
    csrc = list(struct.unpack_from(f"!{cc}I", data, pos)) if cc else []
    pos += 4 * cc
    profile = None
    extension = b""
    if b0 & 0x10:
        if pos + 4 > end:
            raise RtpParseError("RTP packet is shorter than its extension header")
        profile, words = struct.unpack_from("!HH", data, pos)
        pos += 4
        if pos + 4 * words > end:
            raise RtpParseError("RTP packet is shorter than its header extension")
        extension = bytes(data[pos : pos + 4 * words])
        pos += 4 * words
    return RtpPacket(
        payload_type=b1 & 0x7F,
        sequence_number=seq,
        timestamp=ts,
        ssrc=ssrc,
        marker=bool(b1 & 0x80),
        payload=bytes(data[pos:end]),
        csrc=csrc,
        extension_profile=profile,
        extension=extension,
        padding_size=padding,
    )
