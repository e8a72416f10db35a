"""Properties of the telephony parsers, checked with hypothesis.

Round trips (parse ∘ serialise) for SIP messages, RTP packets and pcap files; generated SDP
offers, RTCP compounds and recording metadata read back as built; and for every parser, any
input (random bytes, or a fixture damaged) is either read or refused with the parser's own
error and a message (the fuzz targets of tests/fuzz/targets.py hold those checks).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telephony.pcap import CaptureReader, PcapWriter
from telephony.rs_metadata import SIPREC_NAMESPACE
from telephony.rtcp import RtcpStats, parse_rtcp
from telephony.rtp_packet import RtpPacket, parse_rtp
from telephony.sip.headers import Headers
from telephony.sip.message import SipRequest, SipResponse, StreamFramer, parse_message
from telephony.sip.sdp import MediaAnswer, answer_sdp, parse_sdp
from telephony.siprec import DRAFT_NAMESPACE, RFC_NAMESPACE, parse_metadata
from tests.fuzz import seeds
from tests.fuzz.strategies import PROPERTY_SETTINGS, any_input
from tests.fuzz.targets import TARGETS

TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
    min_size=1,
    max_size=12,
)
HEADER_NAMES = st.one_of(
    st.sampled_from(["Via", "From", "To", "Call-ID", "CSeq", "Contact", "v", "f", "i", "m"]),
    TOKEN.filter(lambda n: n.lower() not in ("content-length", "l")),
)
HEADER_VALUES = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40
).filter(lambda v: v == v.strip())


@st.composite
def sip_messages(draw: st.DrawFn) -> SipRequest | SipResponse:
    headers = Headers(draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=8)))
    body = draw(st.binary(max_size=64))
    if draw(st.booleans()):
        uri = f"sip:{draw(TOKEN)}@{draw(TOKEN)}"
        return SipRequest(draw(TOKEN).upper(), uri, headers, body)
    reason = draw(HEADER_VALUES)
    return SipResponse(draw(st.integers(100, 699)), reason, headers, body)


@PROPERTY_SETTINGS
@given(sip_messages())
def test_sip_message_round_trip(msg: SipRequest | SipResponse) -> None:
    again = parse_message(msg.serialize())
    assert type(again) is type(msg)
    assert [h for h in again.headers if h[0] != "Content-Length"] == list(msg.headers)
    assert again.body == msg.body
    if isinstance(msg, SipRequest):
        assert isinstance(again, SipRequest)
        assert (again.method, again.uri) == (msg.method, msg.uri)
    else:
        assert isinstance(again, SipResponse)
        assert (again.status, again.reason) == (msg.status, msg.reason)


@PROPERTY_SETTINGS
@given(st.lists(sip_messages(), min_size=1, max_size=4), st.lists(st.integers(0, 400)))
def test_stream_framing_does_not_depend_on_the_cuts(
    messages: list[SipRequest | SipResponse], cuts: list[int]
) -> None:
    stream = b"\r\n".join(m.serialize() for m in messages)
    framer = StreamFramer()
    got: list[bytes] = []
    pos = 0
    for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
        got += [m.serialize() for m in framer.feed(stream[pos:cut])]
        pos = max(pos, cut)
    assert got == [m.serialize() for m in messages]
    assert framer.pending_bytes == 0


@st.composite
def rtp_packets(draw: st.DrawFn) -> RtpPacket:
    has_ext = draw(st.booleans())
    return RtpPacket(
        payload_type=draw(st.integers(0, 127)),
        sequence_number=draw(st.integers(0, 0xFFFF)),
        timestamp=draw(st.integers(0, 0xFFFFFFFF)),
        ssrc=draw(st.integers(0, 0xFFFFFFFF)),
        marker=draw(st.booleans()),
        payload=draw(st.binary(max_size=200)),
        csrc=draw(st.lists(st.integers(0, 0xFFFFFFFF), max_size=15)),
        extension_profile=draw(st.integers(0, 0xFFFF)) if has_ext else None,
        extension=draw(st.binary(max_size=12).map(lambda b: b + bytes(-len(b) % 4)))
        if has_ext
        else b"",
        padding_size=draw(st.integers(0, 255)),
    )


@PROPERTY_SETTINGS
@given(rtp_packets())
def test_rtp_packet_round_trip(packet: RtpPacket) -> None:
    assert parse_rtp(packet.serialize()) == packet


@st.composite
def sdp_offers(draw: st.DrawFn) -> tuple[str, list[str | None]]:
    labels = draw(st.lists(st.one_of(st.none(), TOKEN), min_size=1, max_size=5))
    lines = ["v=0", "o=SBC 1 1 IN IP4 10.0.0.1", "s=-", "c=IN IP4 10.0.0.1", "t=0 0"]
    for i, label in enumerate(labels):
        lines += [f"m=audio {20000 + 2 * i} RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000"]
        lines += [f"a=label:{label}"] if label is not None else []
        lines.append(draw(st.sampled_from(["a=sendonly", "a=sendrecv", "a=inactive"])))
    return "\r\n".join(lines) + "\r\n", labels


@PROPERTY_SETTINGS
@given(sdp_offers())
def test_sdp_answer_keeps_the_offers_streams(
    offer_and_labels: tuple[str, list[str | None]],
) -> None:
    text, labels = offer_and_labels
    offer = parse_sdp(text)
    assert [m.label for m in offer.media] == labels
    answers = [MediaAnswer(30000 + 2 * i, [0, 101]) for i in range(len(labels))]
    answer = parse_sdp(answer_sdp(offer, answers, "10.0.0.5", "7", 1))
    assert [m.label for m in answer.media] == labels
    assert [m.port for m in answer.media] == [a.port for a in answers]
    assert all(m.direction in ("recvonly", "inactive") for m in answer.media)


REPORT_BLOCKS = st.lists(st.tuples(*(st.integers(0, 0xFFFFFFFF) for _ in range(6))), max_size=31)


@PROPERTY_SETTINGS
@given(REPORT_BLOCKS, REPORT_BLOCKS, st.booleans())
def test_rtcp_compound_reads_back(sr_blocks: list, rr_blocks: list, bye: bool) -> None:
    def packet(pt: int, count: int, body: bytes) -> bytes:
        return struct.pack("!BBH", 0x80 | count, pt, len(body) // 4) + body

    blocks = [struct.pack("!IIIIII", *b) for b in sr_blocks + rr_blocks]
    sr = packet(
        200,
        len(sr_blocks),
        struct.pack("!IIIIII", 9, 1, 0, 160, 5, 800) + b"".join(blocks[: len(sr_blocks)]),
    )
    rr = packet(201, len(rr_blocks), struct.pack("!I", 9) + b"".join(blocks[len(sr_blocks) :]))
    stats = RtcpStats()
    parse_rtcp(sr + rr + (packet(203, 1, struct.pack("!I", 9)) if bye else b""), stats)
    assert (stats.sender_reports, stats.receiver_reports, stats.byes) == (1, 1, int(bye))
    last = {b[0]: b for b in sr_blocks + rr_blocks}
    assert set(stats.reports) == set(last)
    for ssrc, b in last.items():
        got = stats.reports[ssrc]
        assert (got.highest_sequence, got.jitter, got.last_sr) == (b[2], b[3], b[4])


@PROPERTY_SETTINGS
@given(
    st.lists(
        st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 999_999), st.binary(max_size=300)),
        max_size=6,
    ),
    st.booleans(),
)
def test_pcap_writer_round_trip(
    tmp_path_factory: pytest.TempPathFactory, frames: list[tuple[int, int, bytes]], nano: bool
) -> None:
    path = tmp_path_factory.mktemp("pcap") / "round.pcap"
    with PcapWriter(path, nanosecond=nano) as writer:
        for sec, usec, data in frames:
            writer.write(sec + usec / 1e6, data)
    read = list(CaptureReader(io.BytesIO(Path(path).read_bytes())))
    assert [f.data for f in read] == [d for _, _, d in frames]
    for f, (sec, usec, _) in zip(read, frames, strict=True):
        assert f.timestamp_s == pytest.approx(sec + usec / 1e6, abs=2e-6)


def _metadata_xml(dialect: str, people: list[tuple[str, str]], streams: list[str]) -> bytes:
    """A recording-metadata document in one dialect (BroadWorks' is `siprec`): participant i
    sends stream i."""
    ns = {"rfc7865": RFC_NAMESPACE, "pre-rfc": DRAFT_NAMESPACE}.get(dialect, SIPREC_NAMESPACE)
    root = "recording_metadata" if dialect == "siprec" else "recording"
    pid, sid = ("participant_id", "stream_id") if dialect == "rfc7865" else ("id", "id")
    parts = [f"<{root} xmlns={quoteattr(ns)}><datamode>complete</datamode>"]
    for i, (ident, aor) in enumerate(people):
        send = f"<send>s{i}</send>" if dialect != "rfc7865" and i < len(streams) else ""
        parts.append(
            f"<participant {pid}={quoteattr(ident)}>"
            f"<nameID aor={quoteattr(aor)}/>{send}</participant>"
        )
    for i, label in enumerate(streams):
        parts.append(f"<stream {sid}='s{i}'><label>{escape(label)}</label></stream>")
        if dialect == "rfc7865" and i < len(people):
            parts.append(
                f"<participantstreamassoc participant_id={quoteattr(people[i][0])}>"
                f"<send>s{i}</send></participantstreamassoc>"
            )
    parts.append(f"</{root}>")
    return "".join(parts).encode("utf-8")


@PROPERTY_SETTINGS
@given(
    st.sampled_from(["rfc7865", "pre-rfc", "siprec"]),
    st.lists(
        st.tuples(TOKEN, TOKEN.map(lambda u: f"sip:{u}@pbx.example.com")),
        min_size=1,
        max_size=4,
        unique_by=lambda p: p[0],
    ),
    st.lists(TOKEN, max_size=4, unique=True),
)
def test_metadata_reads_back_as_built(
    dialect: str, people: list[tuple[str, str]], labels: list[str]
) -> None:
    meta = parse_metadata(_metadata_xml(dialect, people, labels))
    assert meta.dialect == dialect
    assert {p.id: p.aor for p in meta.participants.values()} == dict(people)
    for i, label in enumerate(labels):
        stream = meta.stream_by_label(label)
        assert stream is not None and stream.id == f"s{i}"
        senders = [p.id for p in meta.senders(stream.id)]
        assert senders == ([people[i][0]] if i < len(people) else [])


FIXTURES = {
    "sip": seeds.sip_messages(),
    "sdp": seeds.sdp_bodies(),
    "rs_metadata": seeds.metadata_documents(),
    "rtp": seeds.rtp_packets(),
    "rtp_leg": seeds.rtp_streams(),
    "rtcp": seeds.rtcp_packets(),
    "pcap": seeds.captures(),
}


@pytest.mark.parametrize("name", list(FIXTURES))
def test_any_input_is_read_or_refused_with_the_parsers_error(name: str) -> None:
    run = TARGETS[name].load()

    @PROPERTY_SETTINGS
    @given(any_input(FIXTURES[name]))
    def check(data: bytes) -> None:
        run(data)

    check()
