"""SDP offers from SIPREC and SIP peers, and the recorder's receive-only answers."""

from __future__ import annotations

import pytest

from telephony.sip.sdp import (
    MediaAnswer,
    SdpError,
    answer_direction,
    answer_sdp,
    choose_codec,
    parse_sdp,
    telephone_event_type,
)

SIPREC_OFFER = """v=0
o=SBC 2890844526 2890844526 IN IP4 10.0.0.1
s=SIPREC
c=IN IP4 10.0.0.1
t=0 0
m=audio 49170 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=label:96
a=sendonly
m=audio 49180 RTP/AVP 0
c=IN IP4 10.0.0.2
a=label:97
a=rtcp:49191
a=sendonly
m=video 49200 RTP/AVP 31
a=label:98
a=sendonly
"""


def test_parse_siprec_offer() -> None:
    sdp = parse_sdp(SIPREC_OFFER.replace("\n", "\r\n"))
    assert sdp.origin.session_id == "2890844526"
    assert sdp.connection == "10.0.0.1"
    assert len(sdp.media) == 3
    a, b, v = sdp.media
    assert (a.kind, a.port, a.proto, a.payload_types) == ("audio", 49170, "RTP/AVP", [8, 0, 101])
    assert a.label == "96"
    assert a.direction == "sendonly"
    assert a.connection == "10.0.0.1"
    assert a.fmtp[101] == "0-15"
    assert a.payload_map() == {8: "PCMA", 0: "PCMU", 101: "telephone-event"}
    assert b.payload_map() == {0: "PCMU"}
    assert b.connection == "10.0.0.2"
    assert b.rtcp_port == 49191
    assert v.kind == "video"
    assert choose_codec(a) == 8
    assert choose_codec(b) == 0
    assert choose_codec(v) is None
    assert telephone_event_type(a) == 101
    assert [m.label for m in sdp.audio()] == ["96", "97"]


def test_session_level_direction_and_defaults() -> None:
    text = (
        "v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 h\nt=0 0\na=inactive\n"
        "m=audio 4000 RTP/AVP 0\nm=audio 4002 RTP/AVP 0\na=sendrecv\n"
    )
    sdp = parse_sdp(text)
    assert [m.direction for m in sdp.media] == ["inactive", "sendrecv"]
    plain = parse_sdp("v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 18 9\n")
    assert plain.media[0].direction == "sendrecv"
    assert choose_codec(plain.media[0]) is None


def test_direction_of_answers() -> None:
    assert answer_direction("sendonly") == "recvonly"
    assert answer_direction("sendrecv") == "recvonly"
    assert answer_direction("inactive") == "inactive"
    assert answer_direction("recvonly") == "inactive"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must start with v=0"),
        ("v=1\n", "must start with v=0"),
        ("v=0\ns=-\n", "without an o= line"),
        ("v=0\no=- 1 1 IN IP4\n", "bad o= line"),
        ("v=0\no=- 1 1 IN IP4 h\nc=IN\n", "bad c= line"),
        ("v=0\no=- 1 1 IN IP4 h\nm=audio x RTP/AVP 0\n", "bad port"),
        ("v=0\no=- 1 1 IN IP4 h\nm=audio 1\n", "bad m= line"),
        ("v=0\no=- 1 1 IN IP4 h\nnonsense\n", "bad SDP line"),
        ("v=0\no=- 1 1 IN IP4 h\nm=audio 1 RTP/AVP 0\na=rtpmap:x\n", "bad a=rtpmap"),
        ("v=0\no=- 1 1 IN IP4 h\n" + "m=audio 1 RTP/AVP 0\n" * 40, "more than 32 media"),
    ],
)
def test_bad_sdp(text: str, message: str) -> None:
    with pytest.raises(SdpError, match=message):
        parse_sdp(text)


def test_answer_keeps_order_labels_and_refuses_with_port_zero() -> None:
    offer = parse_sdp(SIPREC_OFFER)
    text = answer_sdp(
        offer,
        [MediaAnswer(30000, [8, 101]), MediaAnswer(30002, [0], "inactive"), None],
        "192.0.2.10",
        session_id="77",
        session_version=2,
    )
    assert text.endswith("\r\n")
    answer = parse_sdp(text)
    assert answer.origin.session_version == "2"
    assert answer.connection == "192.0.2.10"
    a, b, v = answer.media
    assert (a.port, a.payload_types, a.direction, a.label) == (30000, [8, 101], "recvonly", "96")
    assert a.payload_map() == {8: "PCMA", 101: "telephone-event"}
    assert a.fmtp[101] == "0-15"
    assert (b.port, b.direction, b.label) == (30002, "inactive", "97")
    assert (v.kind, v.port, v.payload_types) == ("video", 0, [31])
    with pytest.raises(ValueError, match="2 answers for 3 offered media"):
        answer_sdp(offer, [None, None], "h", "1", 1)
