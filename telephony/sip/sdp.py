"""SDP (RFC 8866) offers as SIPREC and SIP peers send them, and the recorder's answers.

`parse_sdp` reads the session and its media descriptions: port, protocol, payload types,
`a=rtpmap`, `a=fmtp`, `a=label` (RFC 4574, how SIPREC names its streams), the direction
(media-level, else session-level, else sendrecv) and `a=rtcp`. `answer_sdp` builds the answer
of RFC 3264: one m-line per offered one, in order, accepted ones receive only (`a=recvonly`),
refused ones with port 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from telephony.sip.headers import is_number

MAX_MEDIA = 32
MAX_SDP_BYTES = 65_535
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
STATIC_PAYLOADS: dict[int, tuple[str, int]] = {0: ("PCMU", 8000), 8: ("PCMA", 8000)}
RECORDABLE_CODECS = ("PCMU", "PCMA")
TELEPHONE_EVENT = "telephone-event"


class SdpError(ValueError):
    """A session description that cannot be used; the text says what was wrong."""


@dataclass
class RtpMap:
    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1


@dataclass
class Origin:
    username: str = "-"
    session_id: str = "0"
    session_version: str = "0"
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"


@dataclass
class MediaDescription:
    """One `m=` section with the attributes the recorder uses."""

    kind: str
    port: int
    proto: str
    formats: list[str]
    port_count: int = 1
    connection: str | None = None
    rtpmap: dict[int, RtpMap] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: str = "sendrecv"
    label: str | None = None
    rtcp_port: int | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def is_rtp(self) -> bool:
        return self.proto.upper().startswith("RTP/")

    @property
    def payload_types(self) -> list[int]:
        if not self.is_rtp:
            return []
        return [int(f) for f in self.formats if is_number(f) and int(f) < 128]

    def encoding(self, payload_type: int) -> str | None:
        """The encoding name of a payload type (rtpmap, else the static RFC 3551 table)."""
        if payload_type in self.rtpmap:
            return self.rtpmap[payload_type].encoding
        static = STATIC_PAYLOADS.get(payload_type)
        return static[0] if static else None

    def payload_map(self) -> dict[int, str]:
        """Payload type → encoding name, for every offered type with a known name."""
        result: dict[int, str] = {}
        for pt in self.payload_types:
            name = self.encoding(pt)
            if name is not None:
                result[pt] = name
        return result


@dataclass
class SessionDescription:
    origin: Origin
    name: str = "-"
    connection: str | None = None
    direction: str = "sendrecv"
    media: list[MediaDescription] = field(default_factory=list)
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    def audio(self) -> list[MediaDescription]:
        return [m for m in self.media if m.kind == "audio" and m.port != 0]


def _parse_origin(value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SdpError(f"bad o= line: {value[:80]!r}")
    return Origin(*parts)


def _connection_address(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN":
        raise SdpError(f"bad c= line: {value[:80]!r}")
    return parts[2].split("/")[0]


def _parse_media(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"bad m= line: {value[:80]!r}")
    kind, port_text, proto, *formats = parts
    port_main, _, count_text = port_text.partition("/")
    if not is_number(port_main) or int(port_main) > 65535:
        raise SdpError(f"bad port in m= line: {value[:80]!r}")
    count = int(count_text) if is_number(count_text) else 1
    return MediaDescription(kind.lower(), int(port_main), proto, formats, port_count=count)


def _parse_rtpmap(value: str) -> RtpMap:
    pt_text, _, codec = value.partition(" ")
    pieces = codec.strip().split("/")
    if not is_number(pt_text) or len(pieces) < 2 or not is_number(pieces[1]):
        raise SdpError(f"bad a=rtpmap: {value[:80]!r}")
    channels = int(pieces[2]) if len(pieces) > 2 and is_number(pieces[2]) else 1
    return RtpMap(int(pt_text), pieces[0], int(pieces[1]), channels)


def _apply_attribute(media: MediaDescription, name: str, value: str | None) -> None:
    media.attributes.append((name, value))
    if name in DIRECTIONS:
        media.direction = name
    elif name == "rtpmap" and value is not None:
        rtpmap = _parse_rtpmap(value)
        media.rtpmap[rtpmap.payload_type] = rtpmap
    elif name == "fmtp" and value is not None:
        pt_text, _, params = value.partition(" ")
        if is_number(pt_text):
            media.fmtp[int(pt_text)] = params.strip()
    elif name == "label" and value is not None:
        media.label = value.strip()
    elif name == "rtcp" and value is not None:
        port_text = (value.split() or [""])[0]
        if is_number(port_text):
            media.rtcp_port = int(port_text)


def parse_sdp(text: str) -> SessionDescription:
    """Parse an SDP body; raises `SdpError` naming the first line that cannot be used."""
    if len(text) > MAX_SDP_BYTES:
        raise SdpError(f"SDP of {len(text)} characters exceeds {MAX_SDP_BYTES}")
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    lines = [line for line in lines if line]
    if not lines or lines[0] != "v=0":
        raise SdpError("SDP must start with v=0")
    origin: Origin | None = None
    session = SessionDescription(origin=Origin())
    media: MediaDescription | None = None
    media_direction: dict[int, bool] = {}
    for line in lines[1:]:
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SdpError(f"bad SDP line: {line[:80]!r}")
        kind, value = line[0], line[2:]
        if kind == "m":
            if len(session.media) >= MAX_MEDIA:
                raise SdpError(f"more than {MAX_MEDIA} media descriptions")
            media = _parse_media(value)
            session.media.append(media)
            media_direction[id(media)] = False
        elif kind == "o" and media is None:
            origin = _parse_origin(value)
        elif kind == "s" and media is None:
            session.name = value
        elif kind == "c":
            address = _connection_address(value)
            if media is None:
                session.connection = address
            else:
                media.connection = address
        elif kind == "a":
            name, colon, attr_value = value.partition(":")
            val = attr_value if colon else None
            if media is None:
                session.attributes.append((name, val))
                if name in DIRECTIONS:
                    session.direction = name
            else:
                _apply_attribute(media, name, val)
                if name in DIRECTIONS:
                    media_direction[id(media)] = True
    if origin is None:
        raise SdpError("SDP without an o= line")
    session.origin = origin
    for m in session.media:
        if not media_direction[id(m)]:
            m.direction = session.direction
        if m.connection is None:
            m.connection = session.connection
    return session


def choose_codec(media: MediaDescription) -> int | None:
    """The first offered payload type the recorder can decode (PCMU or PCMA), or None."""
    for pt in media.payload_types:
        name = media.encoding(pt)
        if name is not None and name.upper() in RECORDABLE_CODECS:
            rate = media.rtpmap[pt].clock_rate if pt in media.rtpmap else 8000
            if rate == 8000:
                return pt
    return None


def telephone_event_type(media: MediaDescription) -> int | None:
    """The payload type of RFC 4733 telephone events at 8 kHz, if offered."""
    for pt in media.payload_types:
        rtpmap = media.rtpmap.get(pt)
        if rtpmap and rtpmap.encoding.lower() == TELEPHONE_EVENT and rtpmap.clock_rate == 8000:
            return pt
    return None


def answer_direction(offered: str) -> str:
    """RFC 3264 §6.1 for a party that only receives: sending peers get recvonly."""
    return "recvonly" if offered in ("sendrecv", "sendonly") else "inactive"


@dataclass
class MediaAnswer:
    """What to answer for one offered m-line: the local port (0 refuses) and payload types."""

    port: int
    payload_types: list[int] = field(default_factory=list)
    direction: str = "recvonly"


def answer_sdp(
    offer: SessionDescription,
    answers: Sequence[MediaAnswer | None],
    address: str,
    session_id: str,
    session_version: int,
    username: str = "callqa",
) -> str:
    """The answer to `offer`: one m-line per offered one, `None` or port 0 refuses it."""
    if len(answers) != len(offer.media):
        raise ValueError(f"{len(answers)} answers for {len(offer.media)} offered media")
    addrtype = "IP6" if ":" in address else "IP4"
    lines = [
        "v=0",
        f"o={username} {session_id} {session_version} IN {addrtype} {address}",
        "s=callqa",
        f"c=IN {addrtype} {address}",
        "t=0 0",
    ]
    for offered, answer in zip(offer.media, answers, strict=True):
        if answer is None or answer.port == 0 or not answer.payload_types:
            formats = " ".join(offered.formats) or "0"
            lines.append(f"m={offered.kind} 0 {offered.proto} {formats}")
            continue
        pts = " ".join(str(pt) for pt in answer.payload_types)
        lines.append(f"m={offered.kind} {answer.port} {offered.proto} {pts}")
        for pt in answer.payload_types:
            name = offered.encoding(pt) or ""
            rtpmap = offered.rtpmap.get(pt)
            rate = rtpmap.clock_rate if rtpmap else 8000
            lines.append(f"a=rtpmap:{pt} {name}/{rate}")
            if pt in offered.fmtp:
                lines.append(f"a=fmtp:{pt} {offered.fmtp[pt]}")
        if offered.label is not None:
            lines.append(f"a=label:{offered.label}")
        lines.append(f"a={answer.direction}")
    return "\r\n".join(lines) + "\r\n"
