"""SIP dialogs on the answering side (RFC 3261 §12): identity, sequence numbers, requests.

The recorder only answers INVITEs, so a dialog here is always created by a received INVITE:
the local tag is ours (To), the remote tag is the caller's (From), the remote target is the
caller's Contact and the route set is its Record-Route in order. In-dialog requests must carry
increasing CSeq numbers; the recorder builds its own BYE from the dialog state.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from telephony.sip.headers import Headers
from telephony.sip.message import (
    BRANCH_COOKIE,
    SipParseError,
    SipRequest,
    parse_name_addr,
)

MAX_FORWARDS = 70

DialogId = tuple[str, str, str]


def new_tag() -> str:
    """A fresh To/From tag (RFC 3261 §19.3: at least 32 bits of randomness)."""
    return secrets.token_hex(8)


def new_branch() -> str:
    """A fresh Via branch with the RFC 3261 magic cookie."""
    return BRANCH_COOKIE + secrets.token_hex(10)


def dialog_id_of(request: SipRequest) -> DialogId:
    """(Call-ID, local tag, remote tag) of a request received inside a dialog."""
    return (request.call_id, request.to_addr.tag or "", request.from_addr.tag or "")


@dataclass
class Dialog:
    """The state of one dialog created by an INVITE the recorder answered."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    remote_seq: int
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 0
    state: str = "early"

    @classmethod
    def from_invite(cls, request: SipRequest, local_tag: str | None = None) -> Dialog:
        """The UAS dialog of an initial INVITE (§12.1.1); raises `SipParseError` if the
        INVITE lacks what a dialog needs (a From tag or a Contact)."""
        remote = request.from_addr
        if not remote.tag:
            raise SipParseError("INVITE without a From tag")
        contacts = request.headers.get_all("Contact")
        if not contacts:
            raise SipParseError("INVITE without a Contact")
        target = parse_name_addr(contacts[0]).uri
        return cls(
            call_id=request.call_id,
            local_tag=local_tag or new_tag(),
            remote_tag=remote.tag,
            local_uri=request.to_addr.uri,
            remote_uri=remote.uri,
            remote_target=target,
            remote_seq=request.cseq[0],
            route_set=request.headers.get_all("Record-Route"),
            local_seq=secrets.randbelow(2**16) + 1,
        )

    @property
    def id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    def accept_cseq(self, request: SipRequest) -> bool:
        """§12.2.2: a request with a CSeq lower than the last one is out of order (reply 500).

        ACK and CANCEL reuse the CSeq of their INVITE and are always accepted.
        """
        number, method = request.cseq
        if method in ("ACK", "CANCEL"):
            return True
        if number < self.remote_seq:
            return False
        self.remote_seq = number
        return True

    def update_target(self, request: SipRequest) -> None:
        """A re-INVITE or UPDATE may move the remote target (§12.2.2)."""
        contacts = request.headers.get_all("Contact")
        if contacts:
            self.remote_target = parse_name_addr(contacts[0]).uri

    def create_request(
        self, method: str, via_host: str, via_port: int, transport: str = "UDP"
    ) -> SipRequest:
        """A request inside this dialog (§12.2.1.1), e.g. the BYE sent when a call times out."""
        self.local_seq += 1
        headers = Headers()
        headers.add(
            "Via", f"SIP/2.0/{transport.upper()} {via_host}:{via_port};branch={new_branch()};rport"
        )
        headers.add("Max-Forwards", str(MAX_FORWARDS))
        for route in self.route_set:
            headers.add("Route", route)
        headers.add("From", f"<{self.local_uri}>;tag={self.local_tag}")
        headers.add("To", f"<{self.remote_uri}>;tag={self.remote_tag}")
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.local_seq} {method}")
        return SipRequest(method, self.remote_target, headers)
