"""SIP message parsing and serialisation: compact forms, folding, lists, framing, limits."""

from __future__ import annotations

import pytest

from telephony.sip.message import (
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    StreamFramer,
    make_response,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
    split_list,
)

INVITE = (
    b"INVITE sip:srs@10.0.0.5:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "SBC" <sip:src@10.0.0.1>;tag=1928301774\r\n'
    b"To: <sip:srs@10.0.0.5>\r\n"
    b"Call-ID: a84b4c76e66710@10.0.0.1\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:src@10.0.0.1:5060>;+sip.src\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 10\r\n"
    b"\r\n"
    b"v=0\r\no=x\r\n"
)


def test_parse_request_fields() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, SipRequest)
    assert msg.method == "INVITE"
    assert msg.uri == "sip:srs@10.0.0.5:5060"
    assert msg.call_id == "a84b4c76e66710@10.0.0.1"
    assert msg.cseq == (314159, "INVITE")
    assert msg.from_addr.tag == "1928301774"
    assert msg.from_addr.display == "SBC"
    assert msg.to_addr.tag is None
    via = msg.vias[0]
    assert (via.transport, via.host, via.port, via.branch) == (
        "UDP",
        "10.0.0.1",
        5060,
        "z9hG4bK776asdhds",
    )
    assert "rport" in via.params
    assert msg.body == b"v=0\r\no=x\r\n"


def test_round_trip_keeps_headers_and_body() -> None:
    msg = parse_message(INVITE)
    again = parse_message(msg.serialize())
    assert isinstance(again, SipRequest)
    assert list(again.headers) == list(msg.headers)
    assert again.body == msg.body
    assert again.serialize() == msg.serialize()


def test_compact_forms_are_expanded() -> None:
    data = (
        b"OPTIONS sip:srs@h SIP/2.0\r\n"
        b"v: SIP/2.0/TCP h2;branch=z9hG4bKa\r\n"
        b"f: <sip:a@h2>;tag=x\r\n"
        b"t: <sip:srs@h>\r\n"
        b"i: compact-1\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"m: <sip:a@h2>\r\n"
        b"k: timer, replaces\r\n"
        b"s: hello\r\n"
        b"o: dialog\r\n"
        b"e: gzip\r\n"
        b"c: text/plain\r\n"
        b"l: 2\r\n"
        b"\r\nhi"
    )
    msg = parse_message(data)
    assert msg.call_id == "compact-1"
    assert msg.headers.get("Supported") == "timer, replaces"
    assert msg.headers.get_all("k") == ["timer", "replaces"]
    assert msg.headers.get("Subject") == "hello"
    assert msg.headers.get("Event") == "dialog"
    assert msg.headers.get("Content-Encoding") == "gzip"
    assert msg.content_type == "text/plain"
    assert msg.body == b"hi"
    assert [name for name, _ in msg.headers][:4] == ["Via", "From", "To", "Call-ID"]
    assert b"Call-ID: compact-1\r\n" in msg.serialize()


def test_folded_lines_are_joined() -> None:
    data = (
        b"OPTIONS sip:srs@h SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP h2;branch=z9hG4bKb\r\n"
        b"Subject: I know you're there,\r\n"
        b"   pick up the phone\r\n"
        b"\tand talk to me!\r\n"
        b"Call-ID: fold\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert msg.headers.get("Subject") == "I know you're there, pick up the phone and talk to me!"


def test_multi_value_headers_split_outside_quotes_and_brackets() -> None:
    data = (
        b"INVITE sip:srs@h SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP p1:5060;branch=z9hG4bK1, SIP/2.0/UDP p2;branch=z9hG4bK2\r\n"
        b"Via: SIP/2.0/TCP p3:5070;branch=z9hG4bK3\r\n"
        b'Contact: "Doe, John" <sip:j@h;a=b,c>;q=0.5, <sip:k@h>\r\n'
        b"Require: siprec\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert [v.host for v in msg.vias] == ["p1", "p2", "p3"]
    assert msg.vias[2].port == 5070
    contacts = msg.headers.get_all("Contact")
    assert len(contacts) == 2
    first = parse_name_addr(contacts[0])
    assert first.display == "Doe, John"
    assert first.uri == "sip:j@h;a=b,c"
    assert first.params == {"q": "0.5"}
    assert split_list('a, "b,c", <d,e>') == ["a", '"b,c"', "<d,e>"]


def test_parse_response() -> None:
    data = (
        b"SIP/2.0 180 Ringing\r\n"
        b"Via: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
        b"CSeq: 2 BYE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert isinstance(msg, SipResponse)
    assert (msg.status, msg.reason, msg.cseq) == (180, "Ringing", (2, "BYE"))


def test_uri_and_via_helpers() -> None:
    uri = parse_uri("<sip:+861012345@pbx.example.com:5080;transport=tcp>")
    assert (uri.user, uri.host, uri.port) == ("+861012345", "pbx.example.com", 5080)
    assert uri.params == {"transport": "tcp"}
    assert uri.aor == "sip:+861012345@pbx.example.com"
    assert parse_uri("tel:+123").aor == "tel:+123"
    assert parse_uri("sip:[2001:db8::1]:5062").port == 5062
    with pytest.raises(SipParseError, match="not a SIP URI"):
        parse_uri("http://example.com")
    with pytest.raises(SipParseError, match="bad Via"):
        parse_via("HTTP/1.1 host")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty message"),
        (b"\r\n\r\n", "empty message"),
        (b"\x00\xff\x13garbage", "truncated message"),
        (b"HELLO\r\n\r\n", "bad request line"),
        (b"INVITE sip:a@b SIP/3.0\r\n\r\n", "unsupported version"),
        (b"INVITE nouri SIP/2.0\r\n\r\n", "bad request URI"),
        (b"IN VITE sip:a@b SIP/2.0\r\n\r\n", "bad request line"),
        (b"SIP/2.0 99 Odd\r\n\r\n", "bad status line"),
        (b"SIP/2.0 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
        (b"SIP/2.0 200 OK\r\n folded first\r\n\r\n", "continuation line"),
        (b"SIP/2.0 200 OK\r\nContent-Length: 50\r\n\r\nshort", "Content-Length 50 exceeds"),
        (b"SIP/2.0 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
        (b"SIP/2.0 200 OK\r\nl: 1\r\nl: 2\r\n\r\nab", "bad Content-Length"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h", "truncated message"),
    ],
)
def test_malformed_messages_raise_precise_errors(data: bytes, message: str) -> None:
    with pytest.raises(SipParseError, match=message):
        parse_message(data)


def test_longer_datagram_is_cut_at_content_length() -> None:
    data = b"SIP/2.0 200 OK\r\nContent-Length: 3\r\n\r\nabcdef"
    assert parse_message(data).body == b"abc"


def test_missing_content_length_on_udp_takes_the_rest() -> None:
    data = b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\nbody bytes"
    assert parse_message(data).body == b"body bytes"


def test_limits_on_size_and_header_count() -> None:
    huge = b"OPTIONS sip:a@b SIP/2.0\r\nSubject: " + b"x" * 70_000 + b"\r\n\r\n"
    with pytest.raises(SipParseError, match="exceeds the limit of 65535"):
        parse_message(huge)
    many = b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X-H: 1\r\n" * 101 + b"\r\n"
    with pytest.raises(SipParseError, match="more than 100 header fields"):
        parse_message(many)
    assert parse_message(many, max_headers=200).headers.get("X-H") == "1"
    with pytest.raises(SipParseError, match="exceeds the limit of 100"):
        parse_message(INVITE, max_bytes=100)


def test_stream_framer_cuts_messages_at_any_split_point() -> None:
    one = parse_message(INVITE).serialize()
    two = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKq\r\nCSeq: 1 BYE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    stream = b"\r\n\r\n" + one + two + one
    for cut in range(0, len(stream), 7):
        framer = StreamFramer()
        got = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert [type(m).__name__ for m in got] == ["SipRequest", "SipResponse", "SipRequest"]
        assert got[0].body == b"v=0\r\no=x\r\n"
        assert framer.pending_bytes == 0
    framer = StreamFramer()
    got = []
    for i in range(len(stream)):
        got += framer.feed(stream[i : i + 1])
    assert len(got) == 3


def test_stream_framer_errors() -> None:
    framer = StreamFramer()
    with pytest.raises(SipParseError, match="Content-Length is required"):
        framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n")
    framer = StreamFramer(max_bytes=1000)
    with pytest.raises(SipParseError, match="header section longer than the limit"):
        framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * 300)
    framer = StreamFramer(max_bytes=1000)
    with pytest.raises(SipParseError, match="exceeds the limit of 1000"):
        framer.feed(b"SIP/2.0 200 OK\r\nContent-Length: 5000\r\n\r\n")


def test_make_response_copies_dialog_headers_and_adds_tag() -> None:
    request = parse_message(INVITE)
    assert isinstance(request, SipRequest)
    trying = make_response(request, 100, to_tag="abc")
    assert trying.headers.get("To") == "<sip:srs@10.0.0.5>"
    ok = make_response(request, 200, to_tag="abc", body=b"x")
    assert ok.reason == "OK"
    assert ok.to_addr.tag == "abc"
    assert ok.headers.get("Via") == request.headers.get("Via")
    assert ok.headers.get("CSeq") == "314159 INVITE"
    assert ok.headers.get("Contact") is None
    wire = ok.serialize()
    assert wire.startswith(b"SIP/2.0 200 OK\r\n")
    assert wire.endswith(b"Content-Length: 1\r\n\r\nx")


def test_headers_set_replaces_all_and_remove() -> None:
    h = Headers([("Via", "a"), ("X-Id", "1"), ("v", "b"), ("x", "90")])
    assert h.get_all("Via") == ["a", "b"]
    assert h.get("Session-Expires") == "90"
    h.set("via", "c")
    assert list(h) == [("Via", "c"), ("X-Id", "1"), ("Session-Expires", "90")]
    h.remove("x-id")
    assert len(h) == 2
    assert "Via" in h
    assert "X-Id" not in h
