"""SIP signalling for the recorder: messages, transports, transactions, dialogs and SDP."""

from telephony.sip.headers import Headers
from telephony.sip.message import (
    SipParseError,
    SipRequest,
    SipResponse,
    StreamFramer,
    make_response,
    parse_message,
)
from telephony.sip.sdp import SdpError, SessionDescription, answer_sdp, parse_sdp

__all__ = [
    "Headers",
    "SdpError",
    "SessionDescription",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "StreamFramer",
    "answer_sdp",
    "make_response",
    "parse_message",
    "parse_sdp",
]
