"""The simulator's constants: audio framing, codecs, roles and stream labels, default AoRs,
SIP header values, sender timing and the call status values."""

from __future__ import annotations

SAMPLE_RATE_HZ = 8000
FRAME_SAMPLES = 160
PACKET_S = FRAME_SAMPLES / SAMPLE_RATE_HZ
CODECS: dict[str, int] = {"PCMU": 0, "PCMA": 8}
AGENT = "agent"
CUSTOMER = "customer"
ROLES = (AGENT, CUSTOMER)
STREAM_LABELS = {AGENT: "1", CUSTOMER: "2"}
DIRECTIONS = ("inbound", "outbound")
DEFAULT_AGENT_AOR = "sip:1001@pbx.example.com"
DEFAULT_CUSTOMER_AOR = "sip:+15550100001@carrier.example.net"
AGENT_DOMAIN = "pbx.example.com"
EXTENSION_NAMESPACE = "urn:x-callqa:simulator"
USER_AGENT = "callqa-simulator"
MULTIPART_BOUNDARY = "callqa-sim-boundary"
MAX_FORWARDS = 70
EARLY_S = 0.0005
LATE_THRESHOLD_S = 0.002
HANGUP_DELAY_S = 0.1
SEND_BUFFER_BYTES = 1 << 18
GIL_SWITCH_INTERVAL_S = 0.001

OK = "ok"
REJECTED = "rejected"
FAILED = "failed"
