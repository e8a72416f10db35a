"""SIPREC (RFC 7866) recording sessions: detection, bodies and roles.

A recording INVITE is recognised by `Require: siprec`, by `+sip.src` in its Contact, or by a
multipart/mixed body that carries recording metadata next to the SDP. The metadata itself
(RFC 7865 and the draft dialects) is read by `telephony.rs_metadata`.

Roles (`assign_roles`): the agent is the participant whose address of record matches the
configured agent patterns, else the configured default side (the caller or the callee of
the recorded call, as the metadata names them). A stream is the agent's when the metadata
says the agent sends it; a stream several participants send is mixed; where the metadata
says nothing about who sends what, m-line order stands for caller then callee.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from telephony.rs_metadata import (
    DRAFT_NAMESPACE as DRAFT_NAMESPACE,
)
from telephony.rs_metadata import (
    MAX_METADATA_BYTES as MAX_METADATA_BYTES,
)
from telephony.rs_metadata import (
    RFC_NAMESPACE as RFC_NAMESPACE,
)
from telephony.rs_metadata import (
    MetadataError as MetadataError,
)
from telephony.rs_metadata import (
    Participant,
    RecordingMetadata,
)
from telephony.rs_metadata import (
    parse_metadata as parse_metadata,
)
from telephony.sip.headers import Headers, is_number
from telephony.sip.message import (
    SipParseError,
    SipRequest,
    parse_name_addr,
    parse_params,
    parse_uri,
)

METADATA_TYPES = ("application/rs-metadata+xml", "application/rs-metadata")
SDP_TYPE = "application/sdp"
AGENT_SIDES = ("caller", "callee", "first", "second")


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
                if is_number(digits) and low <= int(digits) <= high:
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
    """Who the agent is and why, and the role of each recorded stream and why.

    `roles` has one entry per stream given to `assign_roles`: `agent`, `customer` or `mixed`
    (a stream that carries both parties). `reason` says how the agent was found: `agent
    pattern`, or the default side (`caller`, `callee`, `first`, `second`); `notes` say it in
    words, with how the streams were mapped.
    """

    roles: list[str]
    reason: str
    agent: Participant | None = None
    customer: Participant | None = None
    caller: Participant | None = None
    callee: Participant | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def agent_id(self) -> str | None:
        return aor_user(self.agent.aor) if self.agent is not None else None


def _is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def _caller_and_callee(
    meta: RecordingMetadata | None,
) -> tuple[Participant | None, Participant | None]:
    """The caller (Acme's `callingParty` mark, else the first participant listed) and the
    callee (the next participant)."""
    people = list(meta.participants.values()) if meta is not None else []
    if not people:
        return None, None
    caller = next((p for p in people if _is_true(p.extensions.get("callingParty"))), people[0])
    callee = next((p for p in people if p is not caller), None)
    return caller, callee


def _who(p: Participant | None) -> str:
    if p is None:
        return "unknown"
    return p.aor or p.name or f"participant {p.id}"


def assign_roles(
    labels: list[str | None],
    meta: RecordingMetadata | None,
    patterns: AgentPatterns,
    default_side: str = "callee",
) -> RoleDecision:
    """Roles of the recorded streams, given by their SDP labels in m-line order.

    The agent: the participant whose AoR matches the agent patterns (when some but not all
    do), else `default_side`: `caller` or `callee` of the recorded call, or the sender of
    the `first` or `second` stream. A stream the agent sends is the agent's, one several
    participants send is mixed; streams whose senders the metadata does not give are mapped
    by position (the caller's first), as for a call without metadata.
    """
    if default_side not in AGENT_SIDES:
        raise ValueError(f"default agent side must be one of {AGENT_SIDES}, got {default_side!r}")
    notes: list[str] = []
    people = list(meta.participants.values()) if meta is not None else []
    caller, callee = _caller_and_callee(meta)
    senders = [meta.senders_of_label(label) if meta is not None else [] for label in labels]
    mixed = [meta is not None and meta.is_mixed(label) for label in labels]
    sided = [i for i in range(len(labels)) if not mixed[i]]
    matched = [p for p in people if patterns.matches(p.aor)]
    agent: Participant | None = None
    if matched and len(matched) < len(people):
        agent, reason = matched[0], "agent pattern"
        notes.append(f"agent {_who(agent)}: matches agent_patterns")
    else:
        reason = default_side
        why = "no participant matches agent_patterns" if not matched else (
            "every participant matches agent_patterns")  # fmt: skip
        if not people:
            why = "no participants in the metadata"
        if default_side in ("caller", "callee"):
            agent = caller if default_side == "caller" else callee
        else:
            position = 0 if default_side == "first" else 1
            if position < len(sided) and senders[sided[position]]:
                agent = senders[sided[position]][0]
        notes.append(f"agent {_who(agent)}: {why}; default_agent_side is {default_side}")
    roles = ["mixed" if m else "customer" for m in mixed]
    agent_index = next((i for i in sided if agent is not None and agent in senders[i]), None)
    if agent_index is not None:
        notes.append(f"streams mapped by the metadata: {_who(agent)} sends label "
                     f"{labels[agent_index]}")  # fmt: skip
    elif sided and not any(senders[i] for i in sided):
        position = _agent_position(reason, default_side, agent, caller)
        if position < len(sided):
            agent_index = sided[position]
        notes.append("the metadata does not say who sends which stream: m-line order stands "
                     "for caller, then callee")  # fmt: skip
    elif len(sided) > 1:  # senders known, but the agent sends none of the streams
        agent_index = sided[_agent_position(reason, default_side, agent, caller)
                            if default_side != "second" else 1]  # fmt: skip
        notes.append(f"{_who(agent)} sends none of the recorded streams: by position")
    if agent_index is not None:
        roles[agent_index] = "agent"
    if any(mixed):
        notes.append("mixed: " + ", ".join(str(labels[i]) for i in range(len(labels)) if mixed[i])
                     + " carry both parties")  # fmt: skip
    customer = next((s[0] for i, s in enumerate(senders)
                     if i != agent_index and s and s[0] is not agent), None)  # fmt: skip
    if customer is None:
        customer = next((p for p in people if p is not agent), None)
    return RoleDecision(roles, reason, agent, customer, caller, callee, notes)


def _agent_position(
    reason: str, side: str, agent: Participant | None, caller: Participant | None
) -> int:
    """The agent's stream by m-line order (the caller's stream first)."""
    if reason == "agent pattern":
        return 0 if agent is not None and agent is caller else 1
    return 0 if side in ("caller", "first") else 1


def stereo_roles(roles: list[str], default_side: str) -> list[str]:
    """Agent and customer for a stereo recording: a mixed stream takes the side left free."""
    out = list(roles)
    if "agent" not in out:
        pick = out.index("mixed") if "mixed" in out else (0 if default_side in ("caller", "first")
                                                          else 1)  # fmt: skip
        out[pick] = "agent"
    return ["agent" if i == out.index("agent") else "customer" for i in range(len(out))]


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
