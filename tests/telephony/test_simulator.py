"""The call simulator against the real recording server on loopback, and its inputs."""

from __future__ import annotations

import argparse
import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from core.audio.wav import write_wav_g711, write_wav_pcm16
from kernels.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from telephony import cli_simulate
from telephony.server import RecordingServer
from telephony.simulator import (
    AGENT,
    CUSTOMER,
    CallPlan,
    Simulator,
    load_plan_from_wav,
    multipart_body,
    offer_sdp,
    recording_metadata,
)
from telephony.sip.message import SipRequest, make_response, parse_message
from telephony.sip.sdp import parse_sdp
from telephony.sip.transaction import TimerSettings
from telephony.siprec import AgentPatterns, assign_roles, parse_metadata, split_bodies
from tests.telephony.test_server_udp_tcp import (
    HOST,
    Ended,
    find_exact,
    on_loop,
    read_wav,
    settings,
)

RATE = 8000


def leg_audio(seed: int, seconds: float, freq: float) -> np.ndarray:
    """A tone with noise, different for every seed: int16 at 8 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    pcm = 6000 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 1500, t.size)
    return np.clip(pcm, -32768, 32767).astype(np.int16)


def g711_roundtrip(pcm: np.ndarray, codec: str) -> np.ndarray:
    """What the recorder must write for `pcm` sent with `codec`."""
    if codec == "PCMA":
        return alaw_decode(alaw_encode(pcm))
    return ulaw_decode(ulaw_encode(pcm))


def assert_placed(channel: np.ndarray, sent: np.ndarray) -> None:
    """`sent` lies in `channel` sample for sample, with nothing but silence around it."""
    start = find_exact(channel, sent)
    assert start >= 0
    assert not channel[:start].any()
    assert not channel[start + len(sent) :].any()


# ---------------------------------------------------------------- against the server


@on_loop
async def test_concurrent_calls_are_recorded_sample_for_sample(tmp_path: Path) -> None:
    ended = Ended()
    server = RecordingServer(settings(tmp_path), on_call_ended=ended)
    await server.start()
    plans = [
        CallPlan(
            agent_audio=leg_audio(10 + i, 3.0, 400 + 100 * i),
            # not a whole number of packets: the last packet is short
            customer_audio=leg_audio(20 + i, 2.99, 900 + 150 * i).astype(np.float32) / 32768,
            agent_aor=f"sip:{1001 + i}@pbx.example.com",
            customer_aor=f"sip:+155501000{i}@carrier.example.net",
            codec="PCMA" if i == 1 else "PCMU",
            start_offset_s=0.05 * i,
        )
        for i in range(3)
    ]
    try:
        result = await Simulator(HOST, server.udp_port or 0).run(plans)
        await ended.wait(3)
    finally:
        await server.stop()

    assert [c.status for c in result.calls] == ["ok"] * 3, [c.summary() for c in result.calls]
    infos = {info.call_id: info for info in ended.calls}
    for plan, outcome in zip(plans, result.calls, strict=True):
        assert outcome.sip_status == 200 and outcome.bye_status == 200
        assert 100 in outcome.provisional
        assert outcome.first_packet_wall is not None and outcome.first_packet_monotonic is not None
        assert outcome.packets_sent == {AGENT: 150, CUSTOMER: 150}  # 2.99 s: 149 + a short one
        assert outcome.duration_s == pytest.approx(3.0)
        info = infos[outcome.call_id]
        assert info.source == "siprec"
        assert info.end_reason == "bye"
        assert info.agent_id == plan.agent_id
        assert (info.agent_aor, info.customer_aor) == (plan.agent_aor, plan.customer_aor)
        assert info.role_reason == "agent pattern"
        assert info.labels == {AGENT: "1", CUSTOMER: "2"}
        for role in (AGENT, CUSTOMER):
            stats = info.leg_stats[role]
            assert stats.received == outcome.packets_sent[role]
            assert (stats.lost, stats.late, stats.duplicates, stats.malformed) == (0, 0, 0, 0)
        rec = read_wav(info.recording_path)
        assert rec.shape[1] == 2
        assert_placed(rec[:, 0], g711_roundtrip(plan.agent_audio, plan.codec))
        assert_placed(rec[:, 1], g711_roundtrip(plan.customer_audio, plan.codec))
    assert result.sender.packets == 900
    assert result.sender.stream_seconds == pytest.approx(3 * (3.0 + 2.99))
    assert result.sender.cpu_s > 0


@on_loop
async def test_a_call_over_the_session_limit_is_rejected_with_503(tmp_path: Path) -> None:
    ended = Ended()
    server = RecordingServer(settings(tmp_path, max_sessions=1), on_call_ended=ended)
    await server.start()
    audio = leg_audio(1, 0.6, 500)
    plans = [
        CallPlan(audio, audio, start_offset_s=0.0),
        CallPlan(audio, audio, agent_aor="sip:1002@pbx.example.com", start_offset_s=0.2),
    ]
    try:
        result = await Simulator(HOST, server.udp_port or 0).run(plans)
        await ended.wait(1)
    finally:
        await server.stop()
    ok, refused = result.calls
    assert ok.status == "ok"
    assert (refused.status, refused.sip_status, refused.retry_after_s) == ("rejected", 503, 5)
    assert refused.reason == "Service Unavailable"
    assert refused.first_packet_wall is None
    assert refused.packets_sent == {AGENT: 0, CUSTOMER: 0}
    assert server.counters["limit_sessions"] == 1
    assert [info.call_id for info in ended.calls] == [ok.call_id]
    assert result.ok == 1


# ---------------------------------------------------------------- against a scripted peer


class ScriptedServer(asyncio.DatagramProtocol):
    """A UDP SIP peer that ignores the first `ignore` INVITEs, then answers `status`."""

    def __init__(self, ignore: int, status: int | None) -> None:
        self.ignore = ignore
        self.status = status
        self.invites: list[SipRequest] = []
        self.acks: list[SipRequest] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse_message(data)
        assert isinstance(message, SipRequest)
        if message.method == "ACK":
            self.acks.append(message)
            return
        self.invites.append(message)
        if len(self.invites) <= self.ignore or self.status is None:
            return
        assert self.transport is not None
        for status in (100, self.status):
            response = make_response(message, status, to_tag="busy")
            if status == 503:
                response.headers.add("Retry-After", "7")
            self.transport.sendto(response.serialize(), addr)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])


async def scripted(ignore: int, status: int | None) -> ScriptedServer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(
        lambda: ScriptedServer(ignore, status), local_addr=(HOST, 0)
    )
    return peer


@on_loop
async def test_invite_is_retransmitted_and_a_rejection_is_acknowledged() -> None:
    peer = await scripted(ignore=2, status=486)
    audio = leg_audio(2, 0.2, 300)
    simulator = Simulator(HOST, peer.port, timers=TimerSettings(t1_s=0.02, t2_s=0.1))
    result = await simulator.run([CallPlan(audio, audio)])
    call = result.calls[0]
    assert (call.status, call.sip_status, call.reason) == ("rejected", 486, "Busy Here")
    assert call.invite_retransmissions == 2
    assert call.provisional == [100]
    assert len({invite.serialize() for invite in peer.invites}) == 1  # the same INVITE
    invite = peer.invites[0]
    assert invite.headers.get("Require") == "siprec"
    assert "+sip.src" in (invite.headers.get("Contact") or "")
    assert invite.content_type.startswith("multipart/mixed")
    # The ACK of a non-2xx response belongs to the INVITE transaction: same branch and CSeq.
    ack = peer.acks[0]
    assert ack.vias[0].branch == invite.vias[0].branch
    assert ack.cseq == (invite.cseq[0], "ACK")
    assert ack.to_addr.tag == "busy"
    assert result.sender.packets == 0
    assert peer.transport is not None
    peer.transport.close()


@on_loop
async def test_no_answer_fails_the_call_after_timer_b() -> None:
    peer = await scripted(ignore=0, status=None)
    audio = leg_audio(3, 0.2, 300)
    simulator = Simulator(HOST, peer.port, timers=TimerSettings(t1_s=0.01, t2_s=0.04))
    result = await simulator.run([CallPlan(audio, audio)])
    call = result.calls[0]
    assert call.status == "failed" and call.sip_status is None
    assert "timer B" in call.reason
    assert call.invite_retransmissions >= 3
    assert len(peer.invites) == call.invite_retransmissions + 1
    assert peer.transport is not None
    peer.transport.close()


# ---------------------------------------------------------------- plans and metadata


def test_plans_are_checked() -> None:
    mono = leg_audio(4, 0.1, 300)
    with pytest.raises(ValueError, match="8000 Hz"):
        CallPlan(mono, mono, sample_rate=16000)
    with pytest.raises(ValueError, match="mono"):
        CallPlan(np.stack([mono, mono]), mono)
    with pytest.raises(ValueError, match="empty"):
        CallPlan(mono, np.zeros(0, np.int16))
    with pytest.raises(ValueError, match="int16 or float32"):
        CallPlan(mono.astype(np.int32), mono)
    with pytest.raises(ValueError, match="codec"):
        CallPlan(mono, mono, codec="G729")
    with pytest.raises(ValueError, match="start_offset_s"):
        CallPlan(mono, mono, start_offset_s=-1)
    with pytest.raises(ValueError, match="agent_aor"):
        CallPlan(mono, mono, agent_aor="1001")
    assert CallPlan(mono, mono, codec="pcma").codec == "PCMA"
    floats = CallPlan(mono.astype(np.float32) / 32768, mono)
    assert np.array_equal(floats.agent_audio, mono)


def test_plans_from_wav_files(tmp_path: Path) -> None:
    agent, customer = leg_audio(5, 0.5, 300), leg_audio(6, 0.5, 700)
    stereo = tmp_path / "call.wav"
    write_wav_g711(stereo, [ulaw_encode(agent), ulaw_encode(customer)], RATE, "mulaw")
    plan = load_plan_from_wav(stereo, agent_id=1042)
    assert plan.agent_aor == "sip:1042@pbx.example.com" and plan.agent_id == "1042"
    assert np.array_equal(plan.agent_audio, ulaw_decode(ulaw_encode(agent)))
    assert np.array_equal(plan.customer_audio, ulaw_decode(ulaw_encode(customer)))
    assert plan.name == "call.wav"

    pcm = tmp_path / "pcm.wav"
    write_wav_pcm16(pcm, [agent.astype(np.float32) / 32768, customer / 32768], RATE)
    plan = load_plan_from_wav(pcm, agent_aor="sip:agent7@agents.example.com", codec="pcma")
    assert (plan.agent_id, plan.codec) == ("agent7", "PCMA")
    assert np.array_equal(plan.agent_audio, agent)
    assert np.array_equal(plan.customer_audio, customer)
    alaw = tmp_path / "alaw.wav"
    write_wav_g711(alaw, [alaw_encode(agent), alaw_encode(customer)], RATE, "alaw")
    assert np.array_equal(load_plan_from_wav(alaw).agent_audio, alaw_decode(alaw_encode(agent)))

    mono = tmp_path / "mono.wav"
    write_wav_pcm16(mono, [agent.astype(np.float32) / 32768], RATE)
    with pytest.raises(ValueError, match="stereo"):
        load_plan_from_wav(mono)
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    with pytest.raises(ValueError, match="not a WAV file"):
        load_plan_from_wav(text)
    with pytest.raises(ValueError, match="no such file"):
        load_plan_from_wav(tmp_path / "missing.wav")
    wide = tmp_path / "wide.wav"
    write_wav_pcm16(wide, [np.zeros(1600, np.float32)] * 2, 16000)
    with pytest.raises(ValueError, match="16000 Hz"):
        load_plan_from_wav(wide)

    plans = cli_simulate.build_plans([stereo, stereo], 3, stagger_s=0.5, codec="PCMA")
    assert [p.agent_id for p in plans] == ["1001", "1002", "1003"]
    assert [p.start_offset_s for p in plans] == [0.0, 0.5, 1.0]
    assert {p.codec for p in plans} == {"PCMA"}
    assert len({p.customer_aor for p in plans}) == 3
    # Rounds: each line places its next call gap_s after the end of the last one's audio.
    plans = cli_simulate.build_plans([stereo], 2, stagger_s=0.5, rounds=3, gap_s=2.0)
    length = plans[0].duration_s
    assert [p.agent_id for p in plans] == ["1001", "1002"] * 3
    assert [p.start_offset_s for p in plans] == pytest.approx(
        [0.0, 0.5, length + 2, length + 2.5, 2 * (length + 2), 2 * (length + 2) + 0.5]
    )
    assert len({p.customer_aor for p in plans}) == 6


def test_metadata_names_the_agent_first_and_the_caller() -> None:
    mono = leg_audio(7, 0.1, 300)
    plan = CallPlan(mono, mono, agent_aor="sip:1042@pbx.example.com")
    meta = parse_metadata(recording_metadata(plan, "abc@host"))
    assert meta.dialect == "rfc7865"
    agent, customer = meta.participants.values()
    assert (agent.aor, customer.aor) == (plan.agent_aor, plan.customer_aor)
    assert customer.extensions == {"callingParty": "true"}  # an inbound call
    assert meta.sip_session_ids == ["abc@host"]
    # Without agent patterns the recorder still finds the agent: the callee of the call.
    decision = assign_roles(["1", "2"], meta, AgentPatterns(), "callee")
    assert decision.roles == ["agent", "customer"]
    decision = assign_roles(["1", "2"], meta, AgentPatterns.parse("1000-1999"), "caller")
    assert decision.roles == ["agent", "customer"] and decision.reason == "agent pattern"

    sdp = offer_sdp(HOST, {AGENT: 30000, CUSTOMER: 30002}, "PCMA")
    ctype, body = multipart_body(sdp, recording_metadata(plan, "abc@host"))
    invite = SipRequest("INVITE", "sip:srs@127.0.0.1", body=body)
    invite.headers.add("Content-Type", ctype)
    sdp_text, xml = split_bodies(invite)
    assert sdp_text is not None and xml is not None
    offer = parse_sdp(sdp_text)
    assert [(m.label, m.port, m.direction, m.payload_types) for m in offer.media] == [
        ("1", 30000, "sendonly", [8]),
        ("2", 30002, "sendonly", [8]),
    ]
    people = parse_metadata(xml).participants.values()
    assert [p.aor for p in people] == [plan.agent_aor, plan.customer_aor]


# ---------------------------------------------------------------- the command


def test_simulate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli_simulate.add_simulate_command(sub)
    wav = tmp_path / "call.wav"
    audio = leg_audio(8, 0.3, 440)
    write_wav_g711(wav, [ulaw_encode(audio), ulaw_encode(audio[::-1].copy())], RATE, "mulaw")

    ended = Ended()
    ready = threading.Event()
    stop = threading.Event()
    ports: list[int] = []

    def serve() -> None:
        async def main() -> None:
            server = RecordingServer(settings(tmp_path), on_call_ended=ended)
            await server.start()
            ports.append(server.udp_port or 0)
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.02)
            await server.stop()

        asyncio.run(main())

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        assert ready.wait(10)
        args = parser.parse_args(
            ["simulate", "--to", f"{HOST}:{ports[0]}", "--calls", "2", "--codec", "pcma",
             "--agent-base", "1500", str(wav)]
        )  # fmt: skip
        assert args.func(args, None) == 0
    finally:
        stop.set()
        thread.join(10)
    out = capsys.readouterr().out
    assert "agent 1500: ok 200" in out and "agent 1501: ok 200" in out
    assert "2/2 calls ok" in out
    assert sorted(info.agent_id or "" for info in ended.calls) == ["1500", "1501"]

    assert cli_simulate.parse_target("[::1]:5070") == ("::1", 5070)
    assert cli_simulate.parse_target("recorder") == ("recorder", 5060)
    with pytest.raises(argparse.ArgumentTypeError):
        cli_simulate.parse_target("host:99999")
