"""Each vendor's SIPREC session through a real `callqa serve`, over UDP and over TCP.

One daemon for the module (agent patterns 1000-1999, the agent on the callee's side by
default, an RTP idle timeout of 1.5 s). Every vendor behaviour of `siprec_vendors` is placed
once over UDP and once over TCP at the same time: the response and its answer SDP (the
streams taken, the others refused), the RTP recorded on the right channels (a quiet tone per
party, told apart by its frequency), the roles, the parties and the identifiers stored with
the call, its decision record, and pause and resume with no call lost.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlite_utils import Database

from core.audio.wav import read_wav
from core.ports import free_port, free_port_tcp_udp
from core.storage import repository
from proto import callqa_pb2 as pb
from telephony.sip.message import SipResponse
from telephony.sip.sdp import SessionDescription, parse_sdp
from tests.core.serve_harness import Daemon
from tests.telephony import siprec_vendors as v
from tests.telephony.sip_uac import HOST, Uac, multipart, send_rtp, tone
from tests.telephony.test_sipp_siprec import sipp_path

pytestmark = pytest.mark.model

SCENARIOS = Path(__file__).parent / "scenarios"
IDLE_TIMEOUT_S = 1.5
AUDIO_S = 1.2
TONE_HZ = {"agent": 500.0, "customer": 1500.0, "mixed": 1000.0}
TRANSPORTS = ("udp", "tcp")
FINAL = ("scored", "failed", "no audio")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path) -> Iterator[Daemon]:
    data = tmp_path_factory.mktemp("siprec-serve")
    d = Daemon(data, base_model_dir, env={
        "agent_patterns": v.AGENT_PATTERNS, "default_agent_side": "callee",
        "rtp_idle_timeout_s": str(IDLE_TIMEOUT_S),
    }).start()  # fmt: skip
    try:
        yield d
    finally:
        d.stop()


def stored(daemon: Daemon, sip_call_id: str, timeout_s: float = 40.0) -> dict[str, Any]:
    """The stored call of a SIP Call-ID, once it is final."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        db = Database(str(daemon.data_dir / "callqa.db"))
        try:
            row = db.execute(
                "SELECT id FROM calls WHERE json_extract(meta, '$.sip_call_id') = ? "
                "AND status IN ('scored', 'failed', 'no audio')", [sip_call_id],
            ).fetchone()  # fmt: skip
            if row:
                call = repository.get_call(db, row[0])
                assert call is not None
                return call
        finally:
            db.conn.close()
        time.sleep(0.2)
    raise AssertionError(f"call {sip_call_id} not stored; log:\n{daemon.log()}")


def answered(response: SipResponse) -> SessionDescription:
    assert response.status == 200, response.reason
    assert response.content_type.startswith("application/sdp")
    return parse_sdp(response.body.decode())


def taken_ports(answer: SessionDescription, offer_labels: list[str]) -> dict[str, int]:
    return {label: m.port for label, m in zip(offer_labels, answer.media, strict=True)
            if m.port}  # fmt: skip


def tones_for(vendor: v.Vendor, labels: list[str]) -> list[bytes]:
    return [tone(TONE_HZ[vendor.roles[label]], AUDIO_S) for label in labels]


def peak_hz(channel: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(channel[: 8000 // 2 * 2]))
    return float(np.argmax(spectrum) * 8000 / (len(channel[: 8000 // 2 * 2])))


def check_recording(call: dict[str, Any], vendor: v.Vendor) -> None:
    rec = read_wav(Path(call["recording_path"]))
    roles = [vendor.roles[label] for label in vendor.taken_labels]
    if len(roles) == 1:
        assert len(rec.channels) == 1
        assert abs(peak_hz(rec.channels[0]) - TONE_HZ[roles[0]]) < 20
        return
    assert len(rec.channels) == 2
    assert abs(peak_hz(rec.channels[0]) - TONE_HZ["agent"]) < 20  # left: the agent
    assert abs(peak_hz(rec.channels[1]) - TONE_HZ["customer"]) < 20


def check_stored(call: dict[str, Any], vendor: v.Vendor) -> None:
    meta = call["meta"]
    assert call["source"] == "siprec"
    assert call["agent_id"] == vendor.agent_id
    assert (call["caller"], call["callee"]) == (vendor.caller, vendor.callee)
    assert meta["metadata_dialect"] == vendor.dialect
    assert meta["metadata"]["dialect"] == vendor.dialect
    for key, value in vendor.identifiers.items():
        assert meta["call_identifiers"][key] == value
    labels = {role: label for role, label in meta["labels"].items()}
    assert {labels[r]: r for r in labels} == {lb: r for lb, r in vendor.roles.items()}
    decisions = call["decisions"]
    if vendor.rejected:  # the bad elements are named, and the call was taken all the same
        assert len(decisions[0]["detail"]["rejected"]) == vendor.rejected
        decisions = decisions[1:]
    assert [d["kind"] for d in decisions][:2] == ["streams", "agent"]
    streams = decisions[0]["detail"]["streams"]
    assert [s["label"] for s in streams if s["taken"]] == vendor.taken_labels
    assert all(s["why"] for s in streams)


def place_simple(daemon: Daemon, vendor: v.Vendor, transport: str) -> str:
    """INVITE, the tones on every taken stream, BYE."""
    uac = Uac(transport, daemon.sip_port)
    try:
        ctype, body = multipart(v.sdp(vendor.mlines), vendor.metadata)
        answer = answered(uac.request("INVITE", body, ctype, "Require: siprec\r\n"))
        offer_labels = [m.label for m in vendor.mlines]
        ports = taken_ports(answer, offer_labels)
        assert list(ports) == vendor.taken_labels
        for m, offered in zip(answer.media, vendor.mlines, strict=True):
            if m.port:
                want = "inactive" if offered.direction == "inactive" else "recvonly"
                assert m.direction == want
                assert m.label == offered.label
        if any(m.direction != "inactive" for m in vendor.mlines):
            send_rtp(list(ports.values()), tones_for(vendor, list(ports)))
        else:
            uac.listen(0.5)
        assert uac.request("BYE").status == 200
        return uac.call_id
    finally:
        uac.close()


def both_transports(fn: Any, *args: Any) -> list[Any]:
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda t: fn(*args, t), TRANSPORTS))


SIMPLE = [v.ORACLE_GENESYS, v.AVAYA_SINGLE, v.METASWITCH_MIXED, v.RIBBON_GCID, v.OPENSIPS_NO_SEND]


@pytest.mark.parametrize("vendor", SIMPLE, ids=lambda x: x.name)
def test_vendor_session_over_udp_and_tcp(daemon: Daemon, vendor: v.Vendor) -> None:
    for call_id in both_transports(place_simple, daemon, vendor):
        call = stored(daemon, call_id)
        assert call["status"] in ("scored", "failed"), call["status"]
        check_stored(call, vendor)
        check_recording(call, vendor)
        if vendor is v.METASWITCH_MIXED:
            assert call["meta"]["mono_speaker"] == "mixed"
            assert not [f for f in call["findings"] if f["kind"] in ("silence", "overtalk")]


def place_moving(daemon: Daemon, transport: str) -> str:
    """Oracle: a re-INVITE pauses the two live m-lines and makes the two others live (each
    party's audio moves to its second stream)."""
    vendor = v.ORACLE_GENESYS
    uac = Uac(transport, daemon.sip_port)
    try:
        ctype, body = multipart(v.sdp(vendor.mlines), vendor.metadata)
        answer = answered(uac.request("INVITE", body, ctype, "Require: siprec\r\n"))
        first = taken_ports(answer, ["11", "12", "13", "14"])
        payloads = [tone(TONE_HZ["customer"], AUDIO_S), tone(TONE_HZ["agent"], AUDIO_S)]
        sent = send_rtp([first["11"], first["13"]], [p[: len(p) // 2] for p in payloads])
        moved = [v.MLine("11", "inactive"), v.MLine("12"), v.MLine("13", "inactive"),
                 v.MLine("14")]  # fmt: skip
        again = answered(uac.request("INVITE", v.sdp(moved, 2).encode(), "application/sdp"))
        now = taken_ports(again, ["11", "12", "13", "14"])
        assert now == {"12": first["11"], "14": first["13"]}  # same ports, same channels
        send_rtp([now["12"], now["14"]], [p[len(p) // 2 :] for p in payloads], seq0=sent,
                 ts0=sent * 160)  # fmt: skip
        assert uac.request("BYE").status == 200
        return uac.call_id
    finally:
        uac.close()


def test_live_streams_moving_to_other_m_lines_are_followed(daemon: Daemon) -> None:
    for call_id in both_transports(place_moving, daemon):
        call = stored(daemon, call_id)
        assert call["agent_id"] == "1401"
        check_recording(call, v.ORACLE_GENESYS)  # agent left, customer right, throughout
        rec = read_wav(Path(call["recording_path"]))
        half = len(rec.channels[0]) // 2
        assert abs(peak_hz(rec.channels[0][half:]) - TONE_HZ["agent"]) < 20
        moves = [d["summary"] for d in call["decisions"] if d["kind"] == "streams"][1:]
        assert moves == [
            "label 11 is paused and label 12 live: recording m-line 1 (label 12) on its port",
            "label 13 is paused and label 14 live: recording m-line 3 (label 14) on its port",
        ]
        assert call["meta"]["labels"] == {"customer": "12", "agent": "14"}


PAUSE_FORMS = {  # how the pause re-INVITE writes each m-line: (direction, connection, port)
    "c=0.0.0.0": ("sendonly", "0.0.0.0", 30000),
    "a=inactive": ("inactive", "127.0.0.1", 30000),
    "a=recvonly": ("recvonly", "127.0.0.1", 30000),
    "port 0": ("sendonly", "127.0.0.1", 0),
}
PAUSED_CALLS = [("udp", "c=0.0.0.0"), ("tcp", "c=0.0.0.0"), ("udp", "port 0"),
                ("tcp", "a=inactive"), ("udp", "a=recvonly")]  # fmt: skip


def place_paused(daemon: Daemon, transport: str, form: str) -> str:
    """BroadWorks: audio, a pause (BroadWorks's own form is c=0.0.0.0) longer than the idle
    timeout, the resume (a re-INVITE of the same session), audio again, BYE."""
    vendor = v.BROADWORKS_PAUSE
    uac = Uac(transport, daemon.sip_port)
    try:
        ctype, body = multipart(v.sdp(vendor.mlines), vendor.metadata)
        answer = answered(uac.request("INVITE", body, ctype, "Require: siprec\r\n"))
        ports = list(taken_ports(answer, [m.label for m in vendor.mlines]).values())
        payloads = tones_for(vendor, vendor.taken_labels)
        sent = send_rtp(ports, payloads)
        direction, connection, port = PAUSE_FORMS[form]
        held = [v.MLine(m.label, direction, connection, port) for m in vendor.mlines]
        pause = answered(uac.request("INVITE", v.sdp(held, 2).encode(), "application/sdp"))
        assert [m.port for m in pause.media] == ([0, 0] if form == "port 0" else ports)
        uac.listen(IDLE_TIMEOUT_S + 2.0)  # longer than the idle timeout (checked each second)
        assert uac.server_requests == []  # no BYE: the call is paused, not dead
        resume = answered(uac.request("INVITE", v.sdp(vendor.mlines, 3).encode(),
                                      "application/sdp"))  # fmt: skip
        assert [m.direction for m in resume.media] == ["recvonly", "recvonly"]
        assert [m.port for m in resume.media] == ports
        send_rtp(ports, payloads, seq0=sent, ts0=sent * 160 + 8000 * 4)
        assert uac.request("BYE").status == 200
        return uac.call_id
    finally:
        uac.close()


def test_pause_longer_than_the_idle_timeout_in_every_form(daemon: Daemon) -> None:
    with ThreadPoolExecutor(len(PAUSED_CALLS)) as pool:
        call_ids = list(pool.map(lambda c: place_paused(daemon, *c), PAUSED_CALLS))
    for call_id, (_, form) in zip(call_ids, PAUSED_CALLS, strict=True):
        call = stored(daemon, call_id)
        check_stored(call, v.BROADWORKS_PAUSE)
        check_recording(call, v.BROADWORKS_PAUSE)
        assert call["meta"]["end_reason"] == "bye"
        pauses = [d for d in call["decisions"] if d["kind"] in ("pause", "resume")]
        assert [d["kind"] for d in pauses] == ["pause", "pause", "resume", "resume"]
        assert pauses[0]["detail"]["form"] == form


def place_transfer(daemon: Daemon, transport: str) -> str:
    """Cisco: the agent changes by a metadata-only UPDATE (partial), then a complete one."""
    vendor = v.CISCO_FOLDED
    uac = Uac(transport, daemon.sip_port)
    try:
        ctype, body = multipart(v.sdp(vendor.mlines), vendor.metadata)
        answer = answered(uac.request("INVITE", body, ctype, "Require: siprec\r\n"))
        ports = list(taken_ports(answer, ["1", "2"]).values())
        payloads = tones_for(vendor, ["1", "2"])
        sent = send_rtp(ports, [p[: len(p) // 2] for p in payloads])
        assert live_agents(daemon, "1818")
        for doc, agent in ((v.CISCO_TRANSFER_PARTIAL, "1819"), (v.CISCO_TRANSFER_COMPLETE, "1820")):
            ok = uac.request("UPDATE", doc.encode(), "application/rs-metadata+xml")
            assert ok.status == 200 and ok.body == b""
            assert live_agents(daemon, agent)  # the live call follows the transfer
            contact = ok.headers.get("Contact") or ""
            assert f":{daemon.sip_port}" in contact
            assert (";transport=tcp" in contact) == (transport == "tcp")
        send_rtp(ports, [p[len(p) // 2 :] for p in payloads], seq0=sent, ts0=sent * 160)
        assert uac.request("BYE").status == 200
        return uac.call_id
    finally:
        uac.close()


def live_agents(daemon: Daemon, agent: str) -> int:
    """How many live calls the daemon has with this agent now."""
    reply = daemon.stub().ListLiveCalls(pb.ListLiveCallsRequest(agent_ids=[agent]), timeout=5)
    return len(reply.calls)


def test_metadata_updates_move_the_agent(daemon: Daemon) -> None:
    for call_id in both_transports(place_transfer, daemon):
        call = stored(daemon, call_id)
        meta = call["meta"]
        assert call["agent_id"] == "1820"
        assert meta["agent_ids_seen"] == ["1818", "1819", "1820"]
        assert "\n" not in meta["call_identifiers"]["sip_session_id"]
        updates = [d for d in call["decisions"] if d["kind"] == "metadata"]
        assert updates[0]["summary"].startswith("partial update merged")
        assert updates[1]["summary"].startswith("complete snapshot replaced")
        assert "participant sip:1818@cucm.example.com removed" not in updates[1]["summary"]
        assert any("removed" in c for c in updates[1]["detail"]["changes"])
        assert {p["id"] for p in meta["metadata"]["participants"]} == {"Y3ViZS1h", "Y3ViZS1j"}
        check_recording(call, v.CISCO_FOLDED)
    shown = subprocess.run(
        [sys.executable, "-m", "core.cli", "--data-dir", str(daemon.data_dir), "calls", "show",
         call["id"]], capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "Decisions:" in shown
    assert "partial update merged" in shown and "complete snapshot replaced" in shown
    assert "m-line 1 label 2: taken, live (a=sendonly), sent by sip:1818@cucm.example.com" in shown


def test_a_call_with_no_audio_is_stored_unscored(daemon: Daemon) -> None:
    vendor = v.STARTS_PAUSED
    for call_id in both_transports(place_simple, daemon, vendor):
        call = stored(daemon, call_id)
        assert call["status"] == "no audio"
        assert call["score"] is None and call["findings"] == []
        assert call["decisions"][-1]["kind"] == "audio"
        check_stored(call, vendor)


def test_options_accepts_both_metadata_types(daemon: Daemon) -> None:
    uac = Uac("udp", daemon.sip_port)
    try:
        ok = uac.request("OPTIONS")
        accept = [t.strip() for t in (ok.headers.get("Accept") or "").split(",")]
        assert {"application/rs-metadata+xml", "application/rs-metadata"} <= set(accept)
    finally:
        uac.close()


# ---------------------------------------------------------------- SIPp as the SBC

SIPP_SCENARIOS = {  # scenario: (the agent it stores, the labels it records)
    "siprec_four_mlines": ("1402", ["21", "23"]),
    "siprec_pause_resume": ("1203", ["1", "2"]),
    "siprec_metadata_update": ("1831", ["1", "2"]),
}


async def _sipp(daemon: Daemon, scenario: str, transport: str) -> tuple[str, int, str]:
    call_id = f"sipp-{scenario}-{transport}-1@{HOST}"
    command = [
        sipp_path(), f"{HOST}:{daemon.sip_port}", "-sf", str(SCENARIOS / f"{scenario}.xml"),
        "-i", HOST, "-p", str(free_port_tcp_udp()), "-mp", str(free_port(socket.SOCK_DGRAM)),
        "-t", "u1" if transport == "udp" else "t1", "-m", "1",
        "-cid_str", f"sipp-{scenario}-{transport}-%u@%s",
        "-nostdin", "-timeout", "30s", "-timeout_error", "-trace_err",
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=daemon.data_dir, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return call_id, proc.returncode or 0, out.decode(errors="replace")[-2000:]


@pytest.mark.sipp
def test_sipp_scenarios_over_udp_and_tcp(daemon: Daemon) -> None:
    async def every() -> list[tuple[str, int, str]]:
        return list(await asyncio.gather(*(
            _sipp(daemon, scenario, transport)
            for scenario in SIPP_SCENARIOS for transport in TRANSPORTS
        )))  # fmt: skip

    runs = asyncio.run(every())
    errors = "".join(p.read_text(errors="replace") for p in daemon.data_dir.glob("*_errors.log"))
    for call_id, rc, out in runs:
        assert rc == 0, f"{call_id}: SIPp exit {rc}\n{out}\n{errors}"
    for (call_id, _, _), (scenario, _) in zip(
        runs, [(s, t) for s in SIPP_SCENARIOS for t in TRANSPORTS], strict=True
    ):
        agent, labels = SIPP_SCENARIOS[scenario]
        call = stored(daemon, call_id)
        assert call["agent_id"] == agent
        assert call["meta"]["end_reason"] == "bye"
        streams = call["decisions"][0]["detail"]["streams"]
        assert [s["label"] for s in streams if s["taken"]] == labels
        assert call["status"] == "no audio"  # the scenarios send signalling only
