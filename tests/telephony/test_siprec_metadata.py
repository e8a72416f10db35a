"""SIPREC detection, multipart bodies, RFC 7865 and Acme metadata, and agent/customer roles."""

from __future__ import annotations

from pathlib import Path

import pytest

from telephony.sip.message import SipRequest, parse_message
from telephony.siprec import (
    AgentPatterns,
    MetadataError,
    assign_roles,
    is_recording_invite,
    parse_metadata,
    parse_multipart,
    plain_call_role,
    split_bodies,
)

SCENARIOS = Path(__file__).parent / "scenarios"
RFC_XML = (SCENARIOS / "rfc7865_metadata.xml").read_bytes()
ACME_XML = (SCENARIOS / "acme_metadata.xml").read_bytes()

SDP = b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=label:1\r\n"


def _invite(headers: str, content_type: str, body: bytes) -> SipRequest:
    head = (
        "INVITE sip:srs@h SIP/2.0\r\n"
        "Via: SIP/2.0/UDP s;branch=z9hG4bKz\r\nFrom: <sip:s@h>;tag=1\r\nTo: <sip:srs@h>\r\n"
        f"Call-ID: c\r\nCSeq: 1 INVITE\r\n{headers}Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    msg = parse_message(head.encode() + body)
    assert isinstance(msg, SipRequest)
    return msg


def _multipart(boundary: str, metadata: bytes, newline: bytes = b"\r\n") -> bytes:
    nl = newline
    return (
        b"--" + boundary.encode() + nl + b"Content-Type: application/sdp" + nl + nl + SDP + nl
        + b"--" + boundary.encode() + nl
        + b"Content-Type: application/rs-metadata+xml" + nl
        + b"Content-Disposition: recording-session" + nl + nl
        + metadata + nl + b"--" + boundary.encode() + b"--" + nl
    )  # fmt: skip


def test_multipart_split_in_crlf_and_lf_forms() -> None:
    for nl in (b"\r\n", b"\n"):
        body = _multipart("uniqueBoundary", RFC_XML, nl)
        parts = parse_multipart('multipart/mixed;boundary="uniqueBoundary"', body)
        assert [p.content_type for p in parts] == ["application/sdp", "application/rs-metadata+xml"]
        assert parts[1].headers.get("Content-Disposition") == "recording-session"
        assert parts[1].body == RFC_XML
        if nl == b"\r\n":
            assert parts[0].body == SDP


def test_detection_of_recording_invites() -> None:
    body = _multipart("b1", ACME_XML)
    mixed = "multipart/mixed;boundary=b1"
    assert is_recording_invite(_invite("Require: siprec\r\n", mixed, body))
    assert is_recording_invite(_invite("Contact: <sip:s@h>;+sip.src\r\n", "application/sdp", SDP))
    assert is_recording_invite(_invite("", mixed, body))
    plain = _invite("Contact: <sip:s@h>\r\n", "application/sdp", SDP)
    assert not is_recording_invite(plain)
    sdp, meta = split_bodies(_invite("", mixed, body))
    assert sdp is not None and "m=audio 4000" in sdp
    assert meta == ACME_XML
    other = mixed.replace("b1", "b2")
    legacy = _invite("", other, _multipart("b2", ACME_XML).replace(b"+xml", b""))
    assert split_bodies(legacy)[1] == ACME_XML


def test_rfc7865_metadata() -> None:
    meta = parse_metadata(RFC_XML)
    assert meta.dialect == "rfc7865"
    assert meta.datamode == "complete"
    assert meta.session_ids == ["hVpd7YQgRW2nD22h7q60JQ=="]
    customer = meta.participants["srfBElmCRp2QB23b7Mpk0w=="]
    agent = meta.participants["zSfPoSvdSDCmU3A3TRDxAw=="]
    assert customer.aor == "sip:+8613800138000@carrier.example.net"
    assert customer.name == "王先生"
    assert agent.name == "Agent Li"
    assert agent.sends == ["i1Pz3to5hGk8fuXl+PbwCw=="]
    assert agent.receives == ["UAAMm5GRQKSCMVvLyl4rFw=="]
    stream = meta.stream_by_label("97")
    assert stream is not None and stream.id == "i1Pz3to5hGk8fuXl+PbwCw=="
    assert meta.senders(stream.id) == [agent]
    ids = meta.call_identifiers()
    assert ids["callId"] == "pbx-call-4711"
    assert ids["queue"] == "broadband"
    assert ids["sip_session_id"].startswith("ab30317f1a784dc48ff824d0d3715d86;remote=")
    assert ids["recording_session_id"] == "hVpd7YQgRW2nD22h7q60JQ=="


def test_acme_pre_rfc_metadata() -> None:
    meta = parse_metadata(ACME_XML.decode())
    assert meta.dialect == "pre-rfc"
    assert set(meta.participants) == {"ZBy4QmKqRw6W4YF4T4lL0Q==", "8Ff2Y6C0SVi3f0pQ3Q2cQw=="}
    agent = meta.participants["ZBy4QmKqRw6W4YF4T4lL0Q=="]
    assert agent.aor == "sip:2001@agents.example.com"
    assert agent.sends == ["Aq0Lt6NmRKuPKQAk4NgbQg=="]
    assert agent.extensions == {"callingParty": "false"}
    assert meta.streams["pWYzS5m4SJu+L0qE+8Iv/g=="].label == "1"
    assert meta.streams["pWYzS5m4SJu+L0qE+8Iv/g=="].session_id == "Q1+oNhZqTEWdUTHU+d9rdQ=="
    ids = meta.call_identifiers()
    assert ids["ucid"] == "00FA080018803B69810C6D;encoding=hex"
    assert ids["callerOrig"] == "true"
    assert ids["recording_session_id"] == "Q1+oNhZqTEWdUTHU+d9rdQ=="


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (b"not xml", "not well-formed"),
        (b"<other xmlns='urn:ietf:params:xml:ns:recording:1'/>", "expected <recording>"),
        (b"<recording xmlns='urn:x'/>", "unknown metadata namespace"),
        (
            b"<?xml version='1.0'?><!DOCTYPE r [<!ENTITY a 'aaaa'>]>"
            b"<recording xmlns='urn:ietf:params:xml:ns:recording:1'>&a;</recording>",
            "DOCTYPE",
        ),
    ],
)
def test_bad_metadata(xml: bytes, message: str) -> None:
    with pytest.raises(MetadataError, match=message):
        parse_metadata(xml)


def test_bad_elements_are_left_out_one_by_one() -> None:
    meta = parse_metadata(
        b"<recording xmlns='urn:ietf:params:xml:ns:recording:1'><participant/>"
        b"<participant participant_id='p1'><nameID aor='sip:1@h'/></participant>"
        b"<stream stream_id=''><label>9</label></stream>"
        b"<stream stream_id='s1'><label>1</label></stream></recording>"
    )
    assert list(meta.participants) == ["p1"] and list(meta.streams) == ["s1"]
    assert meta.rejected == [
        "<participant> without participant_id or id", "<stream> without stream_id or id"
    ]


def test_reinvite_metadata_update_merges() -> None:
    meta = parse_metadata(ACME_XML)
    update = parse_metadata(
        b"<recording xmlns='urn:ietf:params:xml:ns:recording'><datamode>partial</datamode>"
        b"<participant id='ZBy4QmKqRw6W4YF4T4lL0Q=='><nameID aor='sip:2002@agents.example.com'>"
        b"<name>2002</name></nameID><send>Aq0Lt6NmRKuPKQAk4NgbQg==</send></participant>"
        b"<participant id='new'><nameID aor='sip:3000@x'/></participant>"
        b"<stream id='s3'><label>3</label></stream></recording>"
    )
    merged = meta.merge(update)
    assert merged.datamode == "partial"
    agent = merged.participants["ZBy4QmKqRw6W4YF4T4lL0Q=="]
    assert agent.aors == ["sip:2002@agents.example.com", "sip:2001@agents.example.com"]
    assert agent.receives == []
    assert merged.participants["new"].aor == "sip:3000@x"
    assert merged.streams["s3"].label == "3"
    assert merged.streams["Aq0Lt6NmRKuPKQAk4NgbQg=="].label == "2"
    assert merged.call_identifiers()["ucid"].startswith("00FA08")
    assert meta.participants["ZBy4QmKqRw6W4YF4T4lL0Q=="].aors == ["sip:2001@agents.example.com"]


def test_agent_patterns() -> None:
    p = AgentPatterns.parse(
        r"1000-1999, @agents.example.com, re:^sip:agent-\d{2\,3}@, ops*, 777, sip:boss@hq"
    )
    assert p.matches("sip:1500@pbx")
    assert p.matches("sip:+1999@pbx")
    assert not p.matches("sip:2000@pbx")
    assert p.matches("sip:x@agents.example.com")
    assert p.matches("sip:x@eu.agents.example.com")
    assert not p.matches("sip:x@notagents.example.com")
    assert p.matches("sip:agent-123@anywhere")
    assert not p.matches("sip:agent-1@anywhere")
    assert p.matches("sip:ops7@h")
    assert p.matches("sip:777@h")
    assert p.matches("<sip:boss@hq>")
    assert not p.matches("sip:7777@h")
    assert not p.matches(None)
    with pytest.raises(ValueError, match="not a valid regex"):
        AgentPatterns.parse("re:(")


def test_roles_from_patterns_and_defaults() -> None:
    rfc = parse_metadata(RFC_XML)
    by_range = assign_roles(["96", "97"], rfc, AgentPatterns.parse("1000-1999"))
    assert by_range.roles == ["customer", "agent"]
    assert by_range.reason == "agent pattern"
    assert by_range.agent_id == "1042"
    assert by_range.customer is not None
    assert by_range.customer.aor == "sip:+8613800138000@carrier.example.net"

    acme = parse_metadata(ACME_XML)
    by_domain = assign_roles(["1", "2"], acme, AgentPatterns.parse("@agents.example.com"))
    assert by_domain.roles == ["customer", "agent"]
    assert by_domain.agent_id == "2001"

    # Nobody matches: Acme marks the customer as the calling party.
    nobody = AgentPatterns.parse("5000-5999")
    assert assign_roles(["1", "2"], acme, nobody, "callee").roles == ["customer", "agent"]
    assert assign_roles(["1", "2"], acme, nobody, "caller").roles == ["agent", "customer"]
    decision = assign_roles(["1", "2"], acme, nobody, "caller")
    assert decision.caller is not None and decision.caller.aor == "sip:+14085551234@sbc.carrier.net"
    # RFC sample: no calling-party mark, the first participant listed is the caller.
    assert assign_roles(["96", "97"], rfc, nobody, "callee").roles == ["customer", "agent"]
    assert assign_roles(["96", "97"], rfc, nobody, "first").roles == ["agent", "customer"]
    assert assign_roles(["96", "97"], rfc, nobody, "second").roles == ["customer", "agent"]
    # Everybody matches (an internal call): the default side decides.
    everyone = AgentPatterns.parse("re:.")
    assert assign_roles(["96", "97"], rfc, everyone, "caller").roles == ["agent", "customer"]
    # No metadata at all: m-line order stands for caller and callee.
    assert assign_roles(["1", "2"], None, nobody, "callee").roles == ["customer", "agent"]
    assert assign_roles(["1", "2"], None, nobody, "caller").roles == ["agent", "customer"]
    with pytest.raises(ValueError, match="default agent side"):
        assign_roles(["1"], None, nobody, "left")


def test_plain_call_role() -> None:
    p = AgentPatterns.parse("1000-1999")
    assert plain_call_role("sip:1001@pbx", "sip:555@x", p) == ("agent", "sip:1001@pbx")
    assert plain_call_role("sip:555@x", "sip:1001@pbx", p) == ("customer", "sip:1001@pbx")
    assert plain_call_role("sip:555@x", "sip:556@x", p, "callee") == ("customer", "sip:556@x")
    assert plain_call_role("sip:555@x", "sip:556@x", p, "caller") == ("agent", "sip:555@x")
