"""Names shown for the product's codes (roles, review states, severities, sources), translated."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

REVIEW_STATES = ("scored", "in_review", "reviewed", "appealed", "final")


def role_names() -> dict[str, str]:
    return {
        "admin": str(_l("Administrator")),
        "inspector": str(_l("QA inspector")),
        "supervisor": str(_l("Team supervisor")),
        "viewer": str(_l("Viewer")),
    }


def state_names() -> dict[str, str]:
    return {
        "scored": str(_l("Scored")),
        "in_review": str(_l("In review")),
        "reviewed": str(_l("Reviewed")),
        "appealed": str(_l("Appealed")),
        "final": str(_l("Final")),
    }


def speaker_names() -> dict[str, str]:
    return {
        "agent": str(_l("Agent")),
        "customer": str(_l("Customer")),
        "any": str(_l("Either")),
        "both": str(_l("Both")),
        "mixed": str(_l("Both parties (one mixed stream)")),
    }


def source_names() -> dict[str, str]:
    return {
        "file": str(_l("File")),
        "siprec": str(_l("SIPREC")),
        "sip": str(_l("SIP")),
        "mirror": str(_l("Port mirror")),
        "grpc": str(_l("gRPC stream")),
        "pcap": str(_l("pcap import")),
    }


def template_globals() -> dict[str, object]:
    return {
        "role_names": role_names,
        "state_names": state_names,
        "speaker_names": speaker_names,
        "source_names": source_names,
    }
