"""Recording metadata (RFC 7865 and its earlier drafts): the model, the parser, the updates.

Three dialects are read, told apart by the root element's namespace:

* `rfc7865`, namespace `urn:ietf:params:xml:ns:recording:1`: `participant_id`, `stream_id`,
  `session_id` attributes and `<participantstreamassoc>` saying who sends which stream;
* `pre-rfc`, namespace `urn:ietf:params:xml:ns:recording` (the draft form Oracle/Acme and
  Ribbon SBCs send): `id=` and `session=` attributes, `<send>`/`<recv>` inside
  `<participant>`;
* `siprec`, root `<recording_metadata>` in namespace `urn:ietf:params:xml:ns:siprec`
  (BroadWorks and Webex Calling): the draft form under another root, `dataMode` spelt so.

The document is read element by element: a `<participant>`, `<stream>`, `<session>`,
`<group>` or `<participantstreamassoc>` that cannot be understood (no id, say) is left out
and named in `RecordingMetadata.rejected`, and the rest is kept. Only a document that is not
recording metadata at all raises `MetadataError`.

Extension data (`<extensiondata>` blocks and elements in foreign namespaces) is kept by
local name, at the top level, per session, per group (Ribbon's `callData` with its `gcid`)
and per participant (Acme's `callingParty`).

`apply_update` applies a later metadata document (re-INVITE, UPDATE): a complete snapshot
(`datamode` complete) replaces what was known, a partial one merges into it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import defusedxml
import defusedxml.ElementTree as SafeET

RFC_NAMESPACE = "urn:ietf:params:xml:ns:recording:1"
DRAFT_NAMESPACE = "urn:ietf:params:xml:ns:recording"
SIPREC_NAMESPACE = "urn:ietf:params:xml:ns:siprec"
DIALECTS = {
    (RFC_NAMESPACE, "recording"): "rfc7865",
    (DRAFT_NAMESPACE, "recording"): "pre-rfc",
    (SIPREC_NAMESPACE, "recording_metadata"): "siprec",
    (SIPREC_NAMESPACE, "recording"): "siprec",
}
OWN_NAMESPACES = (RFC_NAMESPACE, DRAFT_NAMESPACE, SIPREC_NAMESPACE)
MAX_METADATA_BYTES = 65_535
MIXED_MODE = "mixed"


class MetadataError(ValueError):
    """Recording metadata that cannot be read; the text says what was wrong."""


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

    def copy(self) -> Participant:
        return Participant(self.id, self.name, list(self.aors), list(self.sends),
                           list(self.receives), dict(self.extensions))  # fmt: skip


@dataclass
class Stream:
    id: str
    label: str | None = None
    session_id: str | None = None
    mode: str | None = None
    """`mixed` or `separate` where the SRC says (draft `<mode>`), else None."""


@dataclass
class RecordingMetadata:
    """The recording metadata of one recording session, as known now."""

    dialect: str
    datamode: str | None = None
    session_ids: list[str] = field(default_factory=list)
    sip_session_ids: list[str] = field(default_factory=list)
    participants: dict[str, Participant] = field(default_factory=dict)
    streams: dict[str, Stream] = field(default_factory=dict)
    groups: dict[str, dict[str, str]] = field(default_factory=dict)
    """Group id → its extension data by local name (e.g. Ribbon's gcid)."""
    extensions: dict[str, str] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    """Elements left out of this document, each with the reason."""

    @property
    def complete(self) -> bool:
        """A complete snapshot (RFC 7865 §6.1.1 `datamode` complete, the default)."""
        return (self.datamode or "complete").lower() != "partial"

    def stream_by_label(self, label: str | None) -> Stream | None:
        if label is None:
            return None
        for stream in self.streams.values():
            if stream.label == label:
                return stream
        return None

    def senders(self, stream_id: str) -> list[Participant]:
        return [p for p in self.participants.values() if stream_id in p.sends]

    def senders_of_label(self, label: str | None) -> list[Participant]:
        """Who sends the stream an SDP label names (several for a mixed stream)."""
        stream = self.stream_by_label(label)
        if stream is None:
            # Some SRCs use the label itself as the stream id in <send>.
            return [p for p in self.participants.values() if label and label in p.sends]
        return self.senders(stream.id)

    def is_mixed(self, label: str | None) -> bool:
        """Whether the stream carries more than one party (RFC 7865 §6.3: several senders)."""
        stream = self.stream_by_label(label)
        if stream is not None and (stream.mode or "").lower() == MIXED_MODE:
            return True
        return len(self.senders_of_label(label)) > 1

    def knows_senders(self) -> bool:
        return any(p.sends for p in self.participants.values())

    def call_identifiers(self) -> dict[str, str]:
        """The identifiers that tie this recording to the SBC's and PBX's own records."""
        ids: dict[str, str] = {}
        for items in self.groups.values():
            for key, value in items.items():
                ids.setdefault(key, value)
        for key, value in self.extensions.items():
            ids.setdefault(key, value)
        if self.sip_session_ids:
            ids["sip_session_id"] = self.sip_session_ids[0]
        if self.session_ids:
            ids["recording_session_id"] = self.session_ids[0]
        return ids

    def summary(self) -> dict[str, Any]:
        """A JSON-ready account of what is known (stored with the call)."""
        return {
            "dialect": self.dialect,
            "datamode": self.datamode,
            "participants": [
                {"id": p.id, "name": p.name, "aors": p.aors, "sends": p.sends,
                 "receives": p.receives, **({"extensions": p.extensions} if p.extensions else {})}
                for p in self.participants.values()
            ],
            "streams": [
                {"id": s.id, "label": s.label, **({"mode": s.mode} if s.mode else {})}
                for s in self.streams.values()
            ],
            "groups": self.groups,
            "identifiers": self.call_identifiers(),
        }  # fmt: skip

    def copy(self) -> RecordingMetadata:
        return RecordingMetadata(
            self.dialect, self.datamode, list(self.session_ids), list(self.sip_session_ids),
            {k: p.copy() for k, p in self.participants.items()},
            {k: Stream(s.id, s.label, s.session_id, s.mode) for k, s in self.streams.items()},
            {k: dict(v) for k, v in self.groups.items()}, dict(self.extensions),
            list(self.rejected),
        )  # fmt: skip

    def merge(self, update: RecordingMetadata) -> RecordingMetadata:
        """This metadata with a partial update merged in (this object is not changed)."""
        merged = self.copy()
        merged.dialect = update.dialect
        merged.datamode = update.datamode or self.datamode
        merged.session_ids = _union(self.session_ids, update.session_ids)
        merged.sip_session_ids = _union(self.sip_session_ids, update.sip_session_ids)
        merged.extensions.update(update.extensions)
        merged.rejected = list(update.rejected)
        for gid, items in update.groups.items():
            merged.groups.setdefault(gid, {}).update(items)
        for pid, new in update.participants.items():
            old = merged.participants.get(pid)
            if old is None:
                merged.participants[pid] = new.copy()
                continue
            old.name = new.name or old.name
            old.aors = _union(new.aors, old.aors)  # the newest address first
            if new.sends or new.receives:
                old.sends, old.receives = list(new.sends), list(new.receives)
            old.extensions.update(new.extensions)
        for sid, stream in update.streams.items():
            old_stream = merged.streams.get(sid)
            if old_stream is None:
                merged.streams[sid] = Stream(stream.id, stream.label, stream.session_id,
                                             stream.mode)  # fmt: skip
            else:
                old_stream.label = stream.label or old_stream.label
                old_stream.session_id = stream.session_id or old_stream.session_id
                old_stream.mode = stream.mode or old_stream.mode
        return merged


def apply_update(old: RecordingMetadata | None, update: RecordingMetadata) -> RecordingMetadata:
    """The metadata after `update`: a complete snapshot replaces `old`, a partial merges.

    A complete snapshot still keeps the identifiers (`session_ids`, `sip_session_ids`,
    group data) the old one had and it lacks: they name the same recording session.
    """
    if old is None:
        return update.copy()
    if not update.complete:
        return old.merge(update)
    new = update.copy()
    new.session_ids = _union(update.session_ids, old.session_ids)
    new.sip_session_ids = _union(update.sip_session_ids, old.sip_session_ids)
    for gid, items in old.groups.items():
        new.groups.setdefault(gid, dict(items))
    return new


def describe_changes(old: RecordingMetadata | None, new: RecordingMetadata) -> list[str]:
    """What a metadata update changed, in words."""
    if old is None:
        return ["first metadata"]
    out: list[str] = []
    for pid in new.participants.keys() - old.participants.keys():
        p = new.participants[pid]
        out.append(f"participant {p.aor or pid} added")
    for pid in old.participants.keys() - new.participants.keys():
        p = old.participants[pid]
        out.append(f"participant {p.aor or pid} removed")
    for pid in new.participants.keys() & old.participants.keys():
        a, b = old.participants[pid], new.participants[pid]
        if a.aor != b.aor:
            out.append(f"participant {pid} is now {b.aor} (was {a.aor})")
        if (a.sends, a.receives) != (b.sends, b.receives):
            out.append(f"participant {b.aor or pid} now sends {b.sends or 'nothing'}")
    for sid in new.streams.keys() - old.streams.keys():
        out.append(f"stream {sid} (label {new.streams[sid].label}) added")
    for sid in old.streams.keys() - new.streams.keys():
        out.append(f"stream {sid} removed")
    added = {k: v for k, v in new.call_identifiers().items()
             if old.call_identifiers().get(k) != v}  # fmt: skip
    if added:
        out.append("identifiers " + ", ".join(f"{k}={v}" for k, v in sorted(added.items())))
    return out


def _union(a: Iterable[str], b: Iterable[str]) -> list[str]:
    out: list[str] = []
    for item in (*a, *b):
        if item not in out:
            out.append(item)
    return out


# ---------------------------------------------------------------- parsing


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
        if value and value.strip():
            return value.strip()
    return None


def _text(element: ET.Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    text = element.text.strip()
    return text or None


def _children(element: ET.Element, *locals_: str) -> list[ET.Element]:
    wanted = {name.lower() for name in locals_}
    return [child for child in element if _local(child).lower() in wanted]


def _first(element: ET.Element, *locals_: str) -> ET.Element | None:
    found = _children(element, *locals_)
    return found[0] if found else None


def _texts(element: ET.Element, local: str) -> list[str]:
    return [t for t in map(_text, _children(element, local)) if t]


def _extension_items(element: ET.Element) -> dict[str, str]:
    """Leaf values of `<extensiondata>` blocks and foreign-namespace children, by local name."""
    items: dict[str, str] = {}
    for child in element:
        ns, local = _split_tag(child.tag)
        if local.lower() == "extensiondata" or (ns and ns not in OWN_NAMESPACES):
            for leaf in child.iter():
                value = _text(leaf)
                if value is not None and len(leaf) == 0 and _local(leaf) != "extensiondata":
                    items.setdefault(_local(leaf), value)
    return items


def normalise_session_id(value: str) -> str:
    """A Session-ID value (RFC 7989) on one line: folding and stray whitespace removed."""
    return re.sub(r"\s*;\s*", ";", re.sub(r"\s+", " ", value)).strip()


def _parse_xml(raw: bytes) -> ET.Element:
    """The document's root element; every XML-level refusal is made here."""
    try:
        # In any encoding (a UTF-16 document hides a DOCTYPE from a byte search): no DTD, so
        # no entity expansion and no external entity is ever read.
        root: ET.Element = SafeET.fromstring(raw, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise MetadataError(
            f"metadata with a DOCTYPE or entity declaration is refused: {exc}"
        ) from exc
    except ET.ParseError as exc:
        raise MetadataError(f"metadata is not well-formed XML: {exc}") from exc
    except (LookupError, ValueError) as exc:  # the XML declaration names an unusable encoding
        raise MetadataError(f"metadata in an encoding that cannot be read: {exc}") from exc
    return root


def parse_metadata(data: bytes | str) -> RecordingMetadata:
    """Parse recording metadata in any of the three dialects (see the module notes)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_METADATA_BYTES:
        raise MetadataError(f"metadata of {len(raw)} bytes exceeds {MAX_METADATA_BYTES}")
    root = _parse_xml(raw)
    ns, local = _split_tag(root.tag)
    dialect = DIALECTS.get((ns, local))
    if dialect is None:
        if local not in ("recording", "recording_metadata"):
            raise MetadataError(f"metadata root is <{local}>, expected <recording>")
        raise MetadataError(f"unknown metadata namespace {ns!r}")
    meta = RecordingMetadata(dialect, datamode=_text(_first(root, "datamode")))
    meta.extensions.update(_extension_items(root))
    for element in root:
        reader = _READERS.get(_local(element).lower())
        if reader is None:
            continue
        try:
            reader(meta, element)
        except MetadataError as exc:
            meta.rejected.append(str(exc))
    return meta


def _read_session(meta: RecordingMetadata, element: ET.Element) -> None:
    sid = _attr(element, "session_id", "id")
    if sid is None:
        raise MetadataError("<session> without session_id or id")
    meta.session_ids = _union(meta.session_ids, [sid])
    for sip_id in _children(element, "sipSessionID"):
        value = _text(sip_id)
        if value:
            meta.sip_session_ids = _union(meta.sip_session_ids, [normalise_session_id(value)])
    for key, value in _extension_items(element).items():
        meta.extensions.setdefault(key, value)


def _read_group(meta: RecordingMetadata, element: ET.Element) -> None:
    gid = _attr(element, "group_id", "id")
    if gid is None:
        raise MetadataError("<group> without group_id or id")
    meta.groups.setdefault(gid, {}).update(_extension_items(element))


def _read_stream(meta: RecordingMetadata, element: ET.Element) -> None:
    stream_id = _attr(element, "stream_id", "id")
    if stream_id is None:
        raise MetadataError("<stream> without stream_id or id")
    meta.streams[stream_id] = Stream(
        stream_id, _text(_first(element, "label")), _attr(element, "session_id", "session"),
        _text(_first(element, "mode")),
    )  # fmt: skip


def _read_association(meta: RecordingMetadata, element: ET.Element) -> None:
    pid = _attr(element, "participant_id", "id")
    if pid is None:
        raise MetadataError("<participantstreamassoc> without participant_id")
    p = meta.participants.setdefault(pid, Participant(pid))
    p.sends = _union(p.sends, _texts(element, "send"))
    p.receives = _union(p.receives, _texts(element, "recv"))


def _read_participant(meta: RecordingMetadata, element: ET.Element) -> None:
    pid = _attr(element, "participant_id", "id")
    if pid is None:
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
    p.sends = _union(p.sends, _texts(element, "send"))
    p.receives = _union(p.receives, _texts(element, "recv"))
    p.extensions.update(_extension_items(element))


_READERS = {
    "session": _read_session,
    "group": _read_group,
    "stream": _read_stream,
    "participant": _read_participant,
    "participantstreamassoc": _read_association,
}
