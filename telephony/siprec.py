"""SIPREC (RFC 7866) recording sessions: detection, bodies, metadata (RFC 7865) and roles.

A recording INVITE is recognised by `Require: siprec`, by `+sip.src` in its Contact, or by a
multipart/mixed body that carries recording metadata next to the SDP. The metadata is read in
two dialects:

* RFC 7865, namespace `urn:ietf:params:xml:ns:recording:1`: `participant_id`, `stream_id`,
  `session_id` attributes, `<participantstreamassoc>` saying who sends which stream;
* the pre-RFC draft form that Oracle/Acme SBCs send, namespace
  `urn:ietf:params:xml:ns:recording`: `id=` and `session=` attributes and `<send>`/`<recv>`
  directly inside `<participant>`.

Vendor extension data (`<extensiondata>`, e.g. Acme's `apkt:ucid`, `apkt:callerOrig`,
`apkt:callingParty`) is kept by local name. Roles: the participants' addresses of record are
matched against configured agent patterns; the stream an agent sends is the agent's leg.
"""

from __future__ import annotations

import fnmatch
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field

import defusedxml
import defusedxml.ElementTree as SafeET

from telephony.sip.headers import Headers
from telephony.sip.message import (
    SipParseError,
    SipRequest,
    parse_name_addr,
    parse_params,
    parse_uri,
)

RFC_NAMESPACE = "urn:ietf:params:xml:ns:recording:1"
DRAFT_NAMESPACE = "urn:ietf:params:xml:ns:recording"
METADATA_TYPES = ("application/rs-metadata+xml", "application/rs-metadata")
SDP_TYPE = "application/sdp"
MAX_METADATA_BYTES = 65_535
AGENT_SIDES = ("caller", "callee", "first", "second")


class MetadataError(ValueError):
    """Recording metadata that cannot be read; the text says what was wrong."""


# ---------------------------------------------------------------- bodies


@dataclass
class BodyPart:
    content_type: str
    headers: Headers
    body: bytes


def parse_multipart(content_type: str, body: bytes) -> list[BodyPart]:
    """The parts of a multipart body (RFC 2046 §5.1) with their own headers."""
    _, params = parse_params(content_type)
    boundary = params.get("boundary")
    if not boundary:
        raise SipParseError("multipart body without a boundary parameter")
    delimiter = b"--" + boundary.encode("utf-8", errors="replace")
    newline = b"\r\n" if b"\r\n" + delimiter in body else b"\n"
    chunks = (newline + body).split(newline + delimiter)
    parts: list[BodyPart] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.split(b"\n", 1)[1] if b"\n" in chunk else b""
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = chunk.partition(b"\n\n")
        if not sep:
            head, content = b"", chunk
        headers = Headers()
        for line in head.decode("utf-8", errors="replace").splitlines():
            name, colon, value = line.partition(":")
            if colon:
                headers.add(name.strip(), value.strip())
        part_type = (headers.get("Content-Type") or "text/plain").split(";")[0].strip().lower()
        parts.append(BodyPart(part_type, headers, content))
    if not parts:
        raise SipParseError("multipart body without parts")
    return parts


def split_bodies(request: SipRequest) -> tuple[str | None, bytes | None]:
    """The SDP text and the recording metadata of a request, each None when absent."""
    ctype = request.content_type.split(";")[0].strip().lower()
    if not request.body:
        return None, None
    if ctype == SDP_TYPE:
        return request.body.decode("utf-8", errors="replace"), None
    if ctype in METADATA_TYPES:
        return None, request.body
    if ctype.startswith("multipart/"):
        sdp: str | None = None
        metadata: bytes | None = None
        for part in parse_multipart(request.content_type, request.body):
            if part.content_type == SDP_TYPE and sdp is None:
                sdp = part.body.decode("utf-8", errors="replace")
            elif part.content_type in METADATA_TYPES and metadata is None:
                metadata = part.body
        return sdp, metadata
    return None, None


def option_tags(headers: Headers, name: str) -> list[str]:
    return [tag.strip().lower() for tag in headers.get_all(name) if tag.strip()]


def is_recording_invite(request: SipRequest) -> bool:
    """Whether an INVITE opens a SIPREC recording session rather than a plain call."""
    if "siprec" in option_tags(request.headers, "Require"):
        return True
    for contact in request.headers.get_all("Contact"):
        try:
            if "+sip.src" in parse_name_addr(contact).params:
                return True
        except SipParseError:
            continue
    ctype = request.content_type.split(";")[0].strip().lower()
    if ctype.startswith("multipart/"):
        try:
            _, metadata = split_bodies(request)
        except SipParseError:
            return False
        return metadata is not None
    return False


# ---------------------------------------------------------------- metadata


@dataclass
class Participant:
    id: str
    name: str | None = None
    aors: list[str] = field(default_factory=list)
    sends: list[str] = field(default_factory=list)
    receives: list[str] = field(default_factory=list)
    extensions: dict[str, str] = field(default_factory=dict)

    @property
    def aor(self) -> str | None:
        return self.aors[0] if self.aors else None


@dataclass
class Stream:
    id: str
    label: str | None = None
    session_id: str | None = None


@dataclass
class RecordingMetadata:
    """The recording metadata of one recording session, merged over its updates."""

    dialect: str
    datamode: str | None = None
    session_ids: list[str] = field(default_factory=list)
    sip_session_ids: list[str] = field(default_factory=list)
    participants: dict[str, Participant] = field(default_factory=dict)
    streams: dict[str, Stream] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)

    def stream_by_label(self, label: str) -> Stream | None:
        for stream in self.streams.values():
            if stream.label == label:
                return stream
        return None

    def senders(self, stream_id: str) -> list[Participant]:
        return [p for p in self.participants.values() if stream_id in p.sends]

    def call_identifiers(self) -> dict[str, str]:
        """The identifiers that tie this recording to the SBC's and PBX's own records."""
        ids = dict(self.extensions)
        if self.sip_session_ids:
            ids["sip_session_id"] = self.sip_session_ids[0]
        if self.session_ids:
            ids["recording_session_id"] = self.session_ids[0]
        return ids

    def merge(self, update: RecordingMetadata) -> RecordingMetadata:
        """Apply an update (a re-INVITE's metadata, complete or partial) onto this one."""
        merged = RecordingMetadata(
            dialect=update.dialect,
            datamode=update.datamode or self.datamode,
            session_ids=_union(self.session_ids, update.session_ids),
            sip_session_ids=_union(self.sip_session_ids, update.sip_session_ids),
            participants={k: _copy_participant(v) for k, v in self.participants.items()},
            streams={k: Stream(v.id, v.label, v.session_id) for k, v in self.streams.items()},
            extensions={**self.extensions, **update.extensions},
        )
        for pid, new in update.participants.items():
            old = merged.participants.get(pid)
            if old is None:
                merged.participants[pid] = _copy_participant(new)
                continue
            old.name = new.name or old.name
            old.aors = _union(new.aors, old.aors)  # the newest address first
            if new.sends or new.receives:
                old.sends, old.receives = list(new.sends), list(new.receives)
            old.extensions.update(new.extensions)
        for sid, stream in update.streams.items():
            old_stream = merged.streams.get(sid)
            if old_stream is None:
                merged.streams[sid] = Stream(stream.id, stream.label, stream.session_id)
            else:
                old_stream.label = stream.label or old_stream.label
                old_stream.session_id = stream.session_id or old_stream.session_id
        return merged


def _copy_participant(p: Participant) -> Participant:
    return Participant(
        p.id, p.name, list(p.aors), list(p.sends), list(p.receives), dict(p.extensions)
    )


def _union(a: Iterable[str], b: Iterable[str]) -> list[str]:
    out: list[str] = []
    for item in (*a, *b):
        if item not in out:
            out.append(item)
    return out


def _split_tag(tag: object) -> tuple[str, str]:
    text = str(tag)
    if text.startswith("{"):
        ns, _, local = text[1:].partition("}")
        return ns, local
    return "", text


def _local(element: ET.Element) -> str:
    return _split_tag(element.tag)[1]


def _attr(element: ET.Element, *names: str) -> str | None:
    for name in names:
        value = element.get(name)
        if value:
            return value.strip()
    return None


def _text(element: ET.Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    text = element.text.strip()
    return text or None


def _children(element: ET.Element, local: str) -> list[ET.Element]:
    return [child for child in element if _local(child) == local]


def _extension_items(element: ET.Element, own_namespaces: tuple[str, ...]) -> dict[str, str]:
    """Leaf values of `<extensiondata>` blocks and foreign-namespace children, by local name."""
    items: dict[str, str] = {}
    for child in element:
        ns, local = _split_tag(child.tag)
        if local == "extensiondata" or (ns and ns not in own_namespaces):
            for leaf in child.iter():
                value = _text(leaf)
                leaf_local = _local(leaf)
                if value is not None and leaf_local != "extensiondata" and len(leaf) == 0:
                    items.setdefault(leaf_local, value)
    return items


def parse_metadata(data: bytes | str) -> RecordingMetadata:
    """Parse RFC 7865 or pre-RFC (Oracle/Acme) recording metadata XML."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_METADATA_BYTES:
        raise MetadataError(f"metadata of {len(raw)} bytes exceeds {MAX_METADATA_BYTES}")
    try:
        # In any encoding (a UTF-16 document hides a DOCTYPE from a byte search): no DTD, so
        # no entity expansion and no external entity is ever read.
        root = SafeET.fromstring(raw, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise MetadataError(
            f"metadata with a DOCTYPE or entity declaration is refused: {exc}"
        ) from exc
    except ET.ParseError as exc:
        raise MetadataError(f"metadata is not well-formed XML: {exc}") from exc
    except (LookupError, ValueError) as exc:  # the XML declaration names an unusable encoding
        raise MetadataError(f"metadata in an encoding that cannot be read: {exc}") from exc
    ns, local = _split_tag(root.tag)
    if local != "recording":
        raise MetadataError(f"metadata root is <{local}>, expected <recording>")
    if ns == RFC_NAMESPACE:
        dialect = "rfc7865"
    elif ns == DRAFT_NAMESPACE:
        dialect = "pre-rfc"
    else:
        raise MetadataError(f"unknown metadata namespace {ns!r}")
    own = (RFC_NAMESPACE, DRAFT_NAMESPACE)
    meta = RecordingMetadata(dialect=dialect, datamode=_text(_first(root, "datamode")))
    meta.extensions.update(_extension_items(root, own))
    for element in root:
        kind = _local(element)
        if kind == "session":
            sid = _attr(element, "session_id", "id")
            if sid:
                meta.session_ids.append(sid)
            for sip_id in _children(element, "sipSessionID"):
                value = _text(sip_id)
                if value:
                    meta.sip_session_ids.append(value)
            meta.extensions.update(
                {
                    k: v
                    for k, v in _extension_items(element, own).items()
                    if k not in meta.extensions
                }
            )
        elif kind == "participant":
            _read_participant(meta, element, own)
        elif kind == "stream":
            stream_id = _attr(element, "stream_id", "id")
            if not stream_id:
                raise MetadataError("<stream> without stream_id or id")
            meta.streams[stream_id] = Stream(
                stream_id,
                _text(_first(element, "label")),
                _attr(element, "session_id", "session"),
            )
        elif kind == "participantstreamassoc":
            pid = _attr(element, "participant_id", "id")
            if not pid:
                raise MetadataError("<participantstreamassoc> without participant_id")
            p = meta.participants.setdefault(pid, Participant(pid))
            p.sends = _union(p.sends, [t for t in map(_text, _children(element, "send")) if t])
            p.receives = _union(
                p.receives, [t for t in map(_text, _children(element, "recv")) if t]
            )
    return meta


def _first(element: ET.Element, local: str) -> ET.Element | None:
    found = _children(element, local)
    return found[0] if found else None


def _read_participant(meta: RecordingMetadata, element: ET.Element, own: tuple[str, ...]) -> None:
    pid = _attr(element, "participant_id", "id")
    if not pid:
        raise MetadataError("<participant> without participant_id or id")
    p = meta.participants.setdefault(pid, Participant(pid))
    for name_id in _children(element, "nameID"):
        aor = _attr(name_id, "aor")
        if aor:
            p.aors = _union(p.aors, [aor])
        p.name = p.name or _text(_first(name_id, "name"))
    for aor_element in _children(element, "aor"):
        aor = _text(aor_element)
        if aor:
            p.aors = _union(p.aors, [aor])
        p.name = p.name or _attr(aor_element, "display")
    p.name = p.name or _text(_first(element, "name"))
    p.sends = _union(p.sends, [t for t in map(_text, _children(element, "send")) if t])
    p.receives = _union(p.receives, [t for t in map(_text, _children(element, "recv")) if t])
    p.extensions.update(_extension_items(element, own))


# ---------------------------------------------------------------- roles


def _user_and_host(aor: str) -> tuple[str, str]:
    try:
        uri = parse_uri(aor)
    except SipParseError:
        user, _, host = aor.partition("@")
        return user.strip(), host.strip().lower()
    return uri.user, uri.host


@dataclass(frozen=True)
class AgentPatterns:
    """Which addresses of record belong to agents.

    Forms: `1000-1999` (a numeric range of the user part), `@agents.example.com` (a domain
    and its subdomains), `re:REGEX` (searched in the whole AoR), `agent*` (a glob on the user
    part), `1001` (an exact user part) or `sip:1001@pbx` (an exact AoR).
    """

    patterns: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> AgentPatterns:
        """Comma-separated patterns; write `\\,` for a comma inside a pattern."""
        items = [p.replace("\x00", ",").strip() for p in text.replace("\\,", "\x00").split(",")]
        for item in items:
            if item.startswith("re:"):
                try:
                    re.compile(item[3:])
                except re.error as exc:
                    raise ValueError(f"agent pattern {item!r} is not a valid regex: {exc}") from exc
        return cls(tuple(item for item in items if item))

    def matches(self, aor: str | None) -> bool:
        if not aor:
            return False
        user, host = _user_and_host(aor)
        digits = user.lstrip("+")
        for pattern in self.patterns:
            if pattern.startswith("re:"):
                if re.search(pattern[3:], aor):
                    return True
            elif pattern.startswith("@"):
                domain = pattern[1:].lower()
                if host == domain or host.endswith("." + domain):
                    return True
            elif re.fullmatch(r"\d+-\d+", pattern):
                low, high = (int(x) for x in pattern.split("-"))
                if digits.isdigit() and low <= int(digits) <= high:
                    return True
            elif ":" in pattern:
                if aor.strip("<>").lower() == pattern.lower():
                    return True
            elif any(ch in pattern for ch in "*?["):
                if fnmatch.fnmatchcase(user, pattern):
                    return True
            elif user == pattern:
                return True
        return False


@dataclass
class RoleDecision:
    """Which offered stream is the agent's and which the customer's, and why."""

    roles: list[str]
    reason: str
    agent: Participant | None = None
    customer: Participant | None = None
    caller: Participant | None = None
    callee: Participant | None = None

    @property
    def agent_id(self) -> str | None:
        if self.agent is None or self.agent.aor is None:
            return None
        user, _ = _user_and_host(self.agent.aor)
        return user or None


def _is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def _caller_and_callee(meta: RecordingMetadata) -> tuple[Participant | None, Participant | None]:
    people = list(meta.participants.values())
    if not people:
        return None, None
    caller = next((p for p in people if _is_true(p.extensions.get("callingParty"))), people[0])
    callee = next((p for p in people if p is not caller), None)
    return caller, callee


def assign_roles(
    labels: list[str | None],
    meta: RecordingMetadata | None,
    patterns: AgentPatterns,
    default_side: str = "callee",
) -> RoleDecision:
    """Roles of two recorded streams, given by their SDP labels in m-line order.

    A stream sent by a participant whose AoR matches the agent patterns is the agent's. When
    no participant (or every participant) matches, `default_side` decides: `caller` or
    `callee` (the caller is the participant Acme marks `callingParty`, else the first one
    listed), `first` or `second` (m-line order).
    """
    if default_side not in AGENT_SIDES:
        raise ValueError(f"default agent side must be one of {AGENT_SIDES}, got {default_side!r}")
    senders: list[Participant | None] = []
    for label in labels:
        sender = None
        if meta is not None and label is not None:
            stream = meta.stream_by_label(label)
            if stream is not None:
                found = meta.senders(stream.id)
                sender = found[0] if found else None
        senders.append(sender)
    caller, callee = _caller_and_callee(meta) if meta is not None else (None, None)
    matched = [i for i, s in enumerate(senders) if s is not None and patterns.matches(s.aor)]
    if matched and len(matched) < len(labels):
        agent_index, reason = matched[0], "agent pattern"
    else:
        agent_index, reason = _default_index(default_side, senders, caller, callee), default_side
    roles = ["customer"] * len(labels)
    if labels:
        roles[agent_index] = "agent"
    agent = senders[agent_index] if labels else None
    customer = next((s for i, s in enumerate(senders) if i != agent_index and s), None)
    if meta is not None and agent is None and reason in ("caller", "callee"):
        agent = caller if reason == "caller" else callee
    if meta is not None and customer is None:
        customer = next((p for p in meta.participants.values() if p is not agent), None)
    return RoleDecision(roles, reason, agent, customer, caller, callee)


def _default_index(
    side: str,
    senders: list[Participant | None],
    caller: Participant | None,
    callee: Participant | None,
) -> int:
    if side == "second":
        return 1 if len(senders) > 1 else 0
    if side == "first" or not senders:
        return 0
    wanted = caller if side == "caller" else callee
    for i, sender in enumerate(senders):
        if wanted is not None and sender is wanted:
            return i
    # Without metadata the caller's stream is taken to be the first m-line.
    return 0 if side == "caller" or len(senders) == 1 else 1


def plain_call_role(
    caller_aor: str | None,
    callee_aor: str | None,
    patterns: AgentPatterns,
    default_side: str = "callee",
) -> tuple[str, str | None]:
    """Role of the one stream of a plain SIP call (sent by the caller) and the agent's AoR.

    The caller is the agent when its AoR matches the patterns; the callee is when its does;
    otherwise `default_side` says who the agent is (`caller`/`first`, or `callee`/`second`).
    """
    if patterns.matches(caller_aor):
        return "agent", caller_aor
    if patterns.matches(callee_aor):
        return "customer", callee_aor
    if default_side in ("caller", "first"):
        return "agent", caller_aor
    return "customer", callee_aor


def aor_user(aor: str | None) -> str | None:
    """The user part of an AoR (an extension number, an agent login), or None."""
    if not aor:
        return None
    user, _ = _user_and_host(aor)
    return user or None
