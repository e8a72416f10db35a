"""SIP messages (RFC 3261 §7): parse and serialise requests and responses.

`parse_message` reads one message from a UDP datagram; `StreamFramer` cuts messages out of a
TCP byte stream by their Content-Length. Header fields are kept in `Headers` (see
`telephony.sip.headers`: long names, compact forms expanded, case-insensitive lookups). Limits
on the size of a message and on its number of header fields protect the receiver; every
malformed case raises `SipParseError` with its own message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from telephony.sip.headers import COMPACT_FORMS as COMPACT_FORMS  # re-exported
from telephony.sip.headers import Headers, is_number
from telephony.sip.headers import canonical_name as canonical_name  # re-exported
from telephony.sip.headers import split_list as split_list  # re-exported

SIP_VERSION = "SIP/2.0"
MAX_MESSAGE_BYTES = 65_535
MAX_HEADERS = 100
BRANCH_COOKIE = "z9hG4bK"

_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_STATUS_LINE_RE = re.compile(r"^SIP/2\.0 ([1-6][0-9][0-9]) ?(.*)$")


class SipParseError(ValueError):
    """A message that cannot be read as SIP; the text says what was wrong."""


class SipLimitError(SipParseError):
    """A message over a configured limit; `limit` names it (`message_bytes`, `headers`)."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


def parse_params(text: str) -> tuple[str, dict[str, str]]:
    """Split `value;a=1;b` into the value and its parameters (names lowercased)."""
    parts = _split_outside_quotes(text, ";")
    params: dict[str, str] = {}
    for part in parts[1:]:
        name, _, val = part.partition("=")
        name = name.strip().lower()
        if name:
            params[name] = val.strip().strip('"')
    return parts[0].strip(), params


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    for i, ch in enumerate(text):
        if ch == '"' and (i == 0 or text[i - 1] != "\\"):
            in_quotes = not in_quotes
        elif not in_quotes and ch == "<":
            in_angle = True
        elif not in_quotes and ch == ">":
            in_angle = False
        elif ch == sep and not in_quotes and not in_angle:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


@dataclass
class SipUri:
    """A `sip:`/`sips:`/`tel:` URI split into the parts the recorder needs."""

    scheme: str
    user: str
    host: str
    port: int | None = None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def aor(self) -> str:
        """The address of record: `scheme:user@host` without port or parameters."""
        if self.scheme == "tel" or not self.host:
            return f"{self.scheme}:{self.user}"
        user = f"{self.user}@" if self.user else ""
        return f"{self.scheme}:{user}{self.host}"

    def __str__(self) -> str:
        text = self.aor
        if self.port is not None:
            text += f":{self.port}"
        for name, val in self.params.items():
            text += f";{name}={val}" if val else f";{name}"
        return text


def parse_uri(text: str) -> SipUri:
    """Parse a SIP, SIPS or tel URI; raises `SipParseError` when it is none of these."""
    text = text.strip().strip("<>")
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("sip", "sips", "tel"):
        raise SipParseError(f"not a SIP URI: {text[:80]!r}")
    rest = rest.split("?", 1)[0]
    main, *param_parts = rest.split(";")
    params: dict[str, str] = {}
    for part in param_parts:
        name, _, val = part.partition("=")
        if name:
            params[name.lower()] = val
    if scheme == "tel":
        return SipUri(scheme, main, "", None, params)
    user, at, hostport = main.rpartition("@")
    if not at:
        user, hostport = "", main
    host, port = _split_hostport(hostport)
    if not host:
        raise SipParseError(f"SIP URI without a host: {text[:80]!r}")
    return SipUri(scheme, user, host.lower(), port, params)


def _split_hostport(text: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"bad IPv6 reference: {text[:80]!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.partition(":")
    if not port_text:
        return host, None
    if not is_number(port_text) or not 0 < int(port_text) < 65536:
        raise SipParseError(f"bad port in {text[:80]!r}")
    return host, int(port_text)


@dataclass
class NameAddr:
    """A From/To/Contact value: optional display name, URI, header parameters."""

    display: str
    uri: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        text = f'"{self.display}" <{self.uri}>' if self.display else f"<{self.uri}>"
        for name, val in self.params.items():
            text += f";{name}={val}" if val else f";{name}"
        return text


def parse_name_addr(value: str) -> NameAddr:
    """Parse `"Name" <sip:u@h>;tag=x` or the bare `sip:u@h;tag=x` form."""
    value = value.strip()
    lt = value.find("<")
    if lt >= 0:
        gt = value.find(">", lt)
        if gt < 0:
            raise SipParseError(f"unclosed '<' in {value[:80]!r}")
        display = value[:lt].strip().strip('"')
        uri = value[lt + 1 : gt].strip()
        _, params = parse_params("x" + value[gt + 1 :])
    else:
        display = ""
        uri, params = parse_params(value)
    if not uri:
        raise SipParseError(f"no URI in {value[:80]!r}")
    return NameAddr(display, uri, params)


@dataclass
class Via:
    """One Via value: transport, sent-by host and port, parameters (branch, received, rport)."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> str:
        return f"{self.host}:{self.port or 5060}"


def parse_via(value: str) -> Via:
    main, params = parse_params(value)
    proto, _, sent_by = main.strip().partition(" ")
    parts = proto.replace(" ", "").split("/")
    if len(parts) != 3 or parts[0].upper() != "SIP":
        raise SipParseError(f"bad Via: {value[:80]!r}")
    host, port = _split_hostport(sent_by.strip())
    if not host:
        raise SipParseError(f"Via without sent-by: {value[:80]!r}")
    return Via(parts[2].upper(), host, port, params)


def parse_cseq(value: str) -> tuple[int, str]:
    number, _, method = value.strip().partition(" ")
    method = method.strip()
    if not is_number(number) or not method or len(number) > 10:
        raise SipParseError(f"bad CSeq: {value[:80]!r}")
    return int(number), method.upper()


class _MessageBase:
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def call_id(self) -> str:
        return (self.headers.get("Call-ID") or "").strip()

    @property
    def cseq(self) -> tuple[int, str]:
        return parse_cseq(self.headers.get("CSeq") or "")

    @property
    def vias(self) -> list[Via]:
        return [parse_via(v) for v in self.headers.get_all("Via")]

    @property
    def from_addr(self) -> NameAddr:
        return parse_name_addr(self.headers.get("From") or "")

    @property
    def to_addr(self) -> NameAddr:
        return parse_name_addr(self.headers.get("To") or "")

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").strip()

    def _serialize(self, start_line: str) -> bytes:
        lines = [start_line]
        for name, value in self.headers:
            if name.lower() != "content-length":
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8") + self.body


@dataclass
class SipRequest(_MessageBase):
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    def serialize(self) -> bytes:
        return self._serialize(f"{self.method} {self.uri} {self.version}")


@dataclass
class SipResponse(_MessageBase):
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    def serialize(self) -> bytes:
        return self._serialize(f"{self.version} {self.status} {self.reason}")


SipMessage = SipRequest | SipResponse


def _find_header_end(data: bytes, start: int = 0) -> tuple[int, int]:
    """Offset of the blank line that ends the header section, and the length of that mark."""
    crlf = data.find(b"\r\n\r\n", start)
    lf = data.find(b"\n\n", start)
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        return crlf, 4
    if lf >= 0:
        return lf, 2
    return -1, 0


def _parse_head(head: bytes, max_headers: int) -> tuple[str, Headers]:
    text = head.decode("utf-8", errors="replace")
    lines = text.replace("\r\n", "\n").split("\n")
    start_line = lines[0].strip()
    if not start_line:
        raise SipParseError("empty start line")
    fields: list[list[str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            if not fields:
                raise SipParseError("continuation line before the first header field")
            fields[-1][1] = f"{fields[-1][1]} {line.strip()}".strip()
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not _TOKEN_RE.match(name):
            raise SipParseError(f"bad header line: {line[:80]!r}")
        fields.append([name, value.strip()])
        if len(fields) > max_headers:
            raise SipLimitError(f"more than {max_headers} header fields", "headers")
    return start_line, Headers((n, v) for n, v in fields)


def _build(start_line: str, headers: Headers, body: bytes) -> SipMessage:
    if start_line.startswith("SIP/"):
        m = _STATUS_LINE_RE.match(start_line)
        if m is None:
            raise SipParseError(f"bad status line: {start_line[:80]!r}")
        return SipResponse(int(m.group(1)), m.group(2).strip(), headers, body)
    parts = start_line.split(" ")
    if len(parts) != 3:
        raise SipParseError(f"bad request line: {start_line[:80]!r}")
    method, uri, version = parts
    if not _TOKEN_RE.match(method):
        raise SipParseError(f"bad method: {method[:40]!r}")
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"unsupported version: {version[:20]!r}")
    if not uri or ":" not in uri:
        raise SipParseError(f"bad request URI: {uri[:80]!r}")
    return SipRequest(method.upper(), uri, headers, body)


def _content_length(headers: Headers) -> int | None:
    values = [v for n, v in headers if n == "Content-Length"]
    if not values:
        return None
    if len(set(values)) > 1 or not is_number(values[0]) or len(values[0]) > 9:
        raise SipParseError(f"bad Content-Length: {values[0][:20]!r}")
    return int(values[0])


def parse_message(
    data: bytes, max_bytes: int = MAX_MESSAGE_BYTES, max_headers: int = MAX_HEADERS
) -> SipMessage:
    """Parse one SIP message from a datagram (RFC 3261 §18.3 rules for the body length).

    A body shorter than Content-Length is an error; bytes beyond it are dropped. Without
    Content-Length the body runs to the end of the datagram.
    """
    if len(data) > max_bytes:
        raise SipLimitError(
            f"message of {len(data)} bytes exceeds the limit of {max_bytes}", "message_bytes"
        )
    data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError("empty message")
    end, mark = _find_header_end(data)
    if end < 0:
        head, body = data, b""
        if not data.endswith(b"\n"):
            raise SipParseError("truncated message: no end of header section")
    else:
        head, body = data[:end], data[end + mark :]
    start_line, headers = _parse_head(head, max_headers)
    length = _content_length(headers)
    if length is not None:
        if length > len(body):
            raise SipParseError(
                f"Content-Length {length} exceeds the {len(body)} body bytes received"
            )
        body = body[:length]
    return _build(start_line, headers, body)


class StreamFramer:
    """Cuts SIP messages out of a stream transport (RFC 3261 §18.3: Content-Length required).

    `feed` returns the complete messages received so far. After a `SipParseError` the stream
    cannot be resynchronised and the connection should be closed.
    """

    def __init__(self, max_bytes: int = MAX_MESSAGE_BYTES, max_headers: int = MAX_HEADERS) -> None:
        self.max_bytes = max_bytes
        self.max_headers = max_headers
        self._buffer = bytearray()

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[SipMessage]:
        self._buffer += data
        messages: list[SipMessage] = []
        while True:
            message = self._next()
            if message is None:
                return messages
            messages.append(message)

    def _next(self) -> SipMessage | None:
        # Keep-alive CRLFs between messages (RFC 5626 §3.5.1) are skipped.
        skip = 0
        while skip < len(self._buffer) and self._buffer[skip] in (0x0D, 0x0A):
            skip += 1
        if skip:
            del self._buffer[:skip]
        if not self._buffer:
            return None
        end, mark = _find_header_end(bytes(self._buffer))
        if end < 0:
            if len(self._buffer) > self.max_bytes:
                raise SipLimitError(
                    f"header section longer than the limit of {self.max_bytes} bytes",
                    "message_bytes",
                )
            return None
        start_line, headers = _parse_head(bytes(self._buffer[:end]), self.max_headers)
        length = _content_length(headers)
        if length is None:
            raise SipParseError("Content-Length is required on a stream transport")
        total = end + mark + length
        if total > self.max_bytes:
            raise SipLimitError(
                f"message of {total} bytes exceeds the limit of {self.max_bytes}", "message_bytes"
            )
        if len(self._buffer) < total:
            return None
        body = bytes(self._buffer[end + mark : total])
        del self._buffer[:total]
        return _build(start_line, headers, body)


REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    503: "Service Unavailable",
    513: "Message Too Large",
}


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    to_tag: str | None = None,
    body: bytes = b"",
) -> SipResponse:
    """A response that copies Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2).

    `to_tag` is added to To when the request's To has no tag yet (not on 100 Trying).
    """
    headers = Headers()
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq"):
            headers.add(name, value)
        elif name == "To":
            if to_tag and status != 100 and ";tag=" not in value.replace(" ", "").lower():
                value = f"{value};tag={to_tag}"
            headers.add(name, value)
        elif (name == "Timestamp" and status == 100) or (
            name == "Record-Route" and 100 < status < 300
        ):
            headers.add(name, value)
    return SipResponse(status, reason or REASON_PHRASES.get(status, ""), headers, body)
