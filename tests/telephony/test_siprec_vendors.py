"""Each vendor's offer through the metadata parser, stream choice and role decision."""

from __future__ import annotations

import pytest

from telephony.rs_metadata import apply_update, normalise_session_id, parse_metadata
from telephony.sip.sdp import parse_sdp
from telephony.siprec import AgentPatterns, assign_roles
from telephony.stream_choice import choose_streams, media_state
from tests.telephony import siprec_vendors as v

PATTERNS = AgentPatterns.parse(v.AGENT_PATTERNS)


@pytest.mark.parametrize("vendor", v.VENDORS, ids=lambda x: x.name)
def test_vendor_offer_is_read_as_documented(vendor: v.Vendor) -> None:
    meta = parse_metadata(vendor.metadata)
    assert meta.dialect == vendor.dialect
    assert len(meta.rejected) == vendor.rejected
    offer = parse_sdp(v.sdp(vendor.mlines))
    choice = choose_streams(offer, meta)
    assert [offer.media[i].label for i in choice.taken] == vendor.taken_labels
    assert set(choice.reasons) == set(range(len(offer.media)))
    decision = assign_roles(vendor.taken_labels, meta, PATTERNS, "callee")  # type: ignore[arg-type]
    assert dict(zip(vendor.taken_labels, decision.roles, strict=True)) == vendor.roles
    assert decision.agent_id == vendor.agent_id
    assert decision.caller is not None and decision.caller.aor == vendor.caller
    assert decision.callee is not None and decision.callee.aor == vendor.callee
    ids = meta.call_identifiers()
    for key, value in vendor.identifiers.items():
        assert ids[key] == value


def test_never_an_inactive_stream_over_a_live_one() -> None:
    meta = parse_metadata(v.ORACLE_GENESYS.metadata)
    # The live streams move to the other m-lines: the choice follows them.
    moved = [v.MLine("11", "inactive"), v.MLine("12"), v.MLine("13", "inactive"), v.MLine("14")]
    offer = parse_sdp(v.sdp(moved))
    assert [offer.media[i].label for i in choose_streams(offer, meta).taken] == ["12", "14"]
    # One live stream: the other party's paused stream is taken beside it, not the same
    # party's second one.
    one_live = [v.MLine("11"), v.MLine("12", "inactive"), v.MLine("13", "inactive"),
                v.MLine("14", "inactive")]  # fmt: skip
    offer = parse_sdp(v.sdp(one_live))
    choice = choose_streams(offer, meta)
    assert [offer.media[i].label for i in choice.taken] == ["11", "13"]
    assert choice.reasons[2].startswith("paused (a=inactive)")
    # Without metadata: live streams first, then m-line order.
    assert choose_streams(parse_sdp(v.sdp(moved)), None).taken == [1, 3]


@pytest.mark.parametrize(
    ("mline", "live", "form"),
    [
        (v.MLine("1"), True, "a=sendonly"),
        (v.MLine("1", "sendrecv"), True, "a=sendrecv"),
        (v.MLine("1", "inactive"), False, "a=inactive"),
        (v.MLine("1", "recvonly"), False, "a=recvonly"),
        (v.MLine("1", connection="0.0.0.0"), False, "c=0.0.0.0"),
        (v.MLine("1", port=0), False, "port 0"),
    ],
)
def test_every_pause_form(mline: v.MLine, live: bool, form: str) -> None:
    state = media_state(parse_sdp(v.sdp([mline])).media[0])
    assert (state.live, state.form) == (live, form)


def test_session_id_is_normalised() -> None:
    assert normalise_session_id("ab12;\r\n   remote=cd34 ") == "ab12;remote=cd34"
    meta = parse_metadata(v.CISCO_FOLDED.metadata)
    assert "\n" not in meta.sip_session_ids[0]


def test_partial_update_merges_and_complete_snapshot_replaces() -> None:
    first = parse_metadata(v.CISCO_FOLDED.metadata)
    partial = parse_metadata(v.CISCO_TRANSFER_PARTIAL)
    assert not partial.complete
    merged = apply_update(first, partial)
    assert merged.participants["Y3ViZS1i"].aor == "sip:1819@cucm.example.com"
    assert merged.participants["Y3ViZS1i"].sends == ["Y3MtMg=="]  # kept from before
    decision = assign_roles(["1", "2"], merged, PATTERNS)
    assert decision.roles == ["customer", "agent"] and decision.agent_id == "1819"
    snapshot = apply_update(merged, parse_metadata(v.CISCO_TRANSFER_COMPLETE))
    assert set(snapshot.participants) == {"Y3ViZS1h", "Y3ViZS1j"}
    assert snapshot.sip_session_ids == first.sip_session_ids  # the same recording session
    decision = assign_roles(["1", "2"], snapshot, PATTERNS)
    assert decision.roles == ["customer", "agent"] and decision.agent_id == "1820"


def test_no_metadata_single_stream_follows_the_plain_call_rule() -> None:
    # The one stream stands for the caller's: with the agent on the callee's side it is
    # the customer's, and the agent is unknown (the To header is the recorder).
    decision = assign_roles(["1"], None, PATTERNS, "callee")
    assert decision.roles == ["customer"] and decision.agent is None
    assert assign_roles(["1"], None, PATTERNS, "caller").roles == ["agent"]
