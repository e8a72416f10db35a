"""Following SIP calls in captures: synthetic calls written to pcap files, imported back."""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core.audio.wav import read_wav
from core.cli import import_pcap as cli_import_pcap
from core.config import Settings, load_settings
from kernels.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from telephony.follow import CallFollower, EndedCall, FollowOptions
from telephony.packets import UdpDatagram
from telephony.pcap import LINKTYPE_ETHERNET, PcapWriter
from telephony.pcap_import import import_capture, import_pcap
from telephony.rtp_packet import RtpPacket

CALLER_IP, CALLEE_IP = "10.1.1.10", "10.1.1.20"
CALLER_RTP, CALLEE_RTP = 40000, 30000
T0 = 1_760_000_000.0
FRAME = 160


# ------------------------------------------------------------------ building captures


def frame(src: str, sport: int, dst: str, dport: int, payload: bytes, ident: int = 1) -> bytes:
    segment = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), ident, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return bytes(6) + bytes(6) + b"\x08\x00" + ip + segment


def fragments(src: str, sport: int, dst: str, dport: int, payload: bytes, ident: int,
              size: int = 600) -> list[bytes]:
    segment = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    out = []
    for off in range(0, len(segment), size):
        part = segment[off:off + size]
        flags = (0x2000 if off + size < len(segment) else 0) | off // 8
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(part), ident, flags, 64, 17, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
        out.append(bytes(12) + b"\x08\x00" + ip + part)
    return out


def sdp(ip: str, port: int, pts: str = "0 8 101", extra: str = "") -> str:
    return (
        f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {pts}\r\na=rtpmap:101 telephone-event/8000\r\n{extra}"
    )


@dataclass
class Dialog:
    call_id: str = "a84b4c76e66710@pc33"
    caller: str = "sip:13800001111@pbx.example.com"
    callee: str = "sip:8001@pbx.example.com"
    from_tag: str = "1928301774"
    to_tag: str = "314159"

    def request(self, method: str, cseq: int, body: str = "", *, from_callee: bool = False,
                to_tag: bool = True, cseq_method: str | None = None) -> bytes:
        frm = f"<{self.caller}>;tag={self.from_tag}"
        to = f"<{self.callee}>" + (f";tag={self.to_tag}" if to_tag else "")
        if from_callee:
            frm, to = f"<{self.callee}>;tag={self.to_tag}", f"<{self.caller}>;tag={self.from_tag}"
        lines = [
            f"{method} {self.callee} SIP/2.0",
            "Via: SIP/2.0/UDP 10.1.1.10:5060;branch=z9hG4bK776asdhds",
            "Max-Forwards: 70",
            f"From: {frm}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {cseq_method or method}",
            "Contact: <sip:13800001111@10.1.1.10>",
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    def response(self, status: int, reason: str, cseq: int, method: str, body: str = "",
                 *, from_callee: bool = False) -> bytes:
        frm, to = f"<{self.caller}>;tag={self.from_tag}", f"<{self.callee}>;tag={self.to_tag}"
        if from_callee:
            frm, to = f"<{self.callee}>;tag={self.to_tag}", f"<{self.caller}>;tag={self.from_tag}"
        lines = [
            f"SIP/2.0 {status} {reason}",
            "Via: SIP/2.0/UDP 10.1.1.10:5060;branch=z9hG4bK776asdhds",
            f"From: {frm}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def tone(seconds: float, freq: float, amp: float = 9000.0) -> np.ndarray:
    n = int(seconds * 8000)
    return (np.sin(2 * np.pi * freq * np.arange(n) / 8000) * amp).astype(np.int16)


def rtp_stream(codes: np.ndarray, pt: int, ssrc: int, t0: float, *, seq0: int = 1000,
               ts0: int = 0) -> list[tuple[float, bytes]]:
    return [
        (t0 + i * 0.02,
         RtpPacket(pt, (seq0 + i) & 0xFFFF, ts0 + i * FRAME, ssrc,
                   payload=codes[i * FRAME:(i + 1) * FRAME].tobytes()).serialize())
        for i in range(len(codes) // FRAME)
    ]


def sip_pkt(t: float, data: bytes, *, from_caller: bool = True) -> tuple[float, bytes]:
    if from_caller:
        return t, frame(CALLER_IP, 5060, CALLEE_IP, 5060, data)
    return t, frame(CALLEE_IP, 5060, CALLER_IP, 5060, data)


def write_pcap(path: Path, packets: list[tuple[float, bytes]]) -> Path:
    with PcapWriter(path, LINKTYPE_ETHERNET) as w:
        w.write_all(sorted(packets, key=lambda p: p[0]))
    return path


def as_int(channel: np.ndarray) -> np.ndarray:
    return np.round(channel * 32768).astype(np.int32)


def basic_call(d: Dialog, caller_codes: np.ndarray, callee_codes: np.ndarray, *,
               t_bye: float, callee_pt: int = 0, callee_delay: float = 0.1,
               ) -> list[tuple[float, bytes]]:
    pk = [
        sip_pkt(T0, d.request("INVITE", 1, sdp(CALLER_IP, CALLER_RTP), to_tag=False)),
        sip_pkt(T0 + 0.01, d.response(100, "Trying", 1, "INVITE"), from_caller=False),
        sip_pkt(T0 + 0.5, d.response(180, "Ringing", 1, "INVITE"), from_caller=False),
        sip_pkt(T0 + 1.0, d.response(200, "OK", 1, "INVITE", sdp(CALLEE_IP, CALLEE_RTP, "0 8")),
                from_caller=False),
        sip_pkt(T0 + 1.01, d.request("ACK", 1)),
    ]
    start = T0 + 1.02
    for t, rtp in rtp_stream(caller_codes, 0, 0x1111, start):
        pk.append((t, frame(CALLER_IP, CALLER_RTP, CALLEE_IP, CALLEE_RTP, rtp)))
    for t, rtp in rtp_stream(callee_codes, callee_pt, 0x2222, start + callee_delay, ts0=7777):
        pk.append((t, frame(CALLEE_IP, CALLEE_RTP, CALLER_IP, CALLER_RTP, rtp)))
    pk.append(sip_pkt(t_bye, d.request("BYE", 2, from_callee=True), from_caller=False))
    pk.append(sip_pkt(t_bye + 0.01, d.response(200, "OK", 2, "BYE", from_callee=True)))
    return pk


# ------------------------------------------------------------------ tests


def test_imported_call_recording_equals_what_was_sent(tmp_path: Path):
    caller_codes = ulaw_encode(tone(2.0, 350))
    callee_codes = alaw_encode(tone(1.8, 620))
    pk = basic_call(Dialog(), caller_codes, callee_codes, t_bye=T0 + 3.2, callee_pt=8)
    # Noise around the call: ARP, DNS, RTP to a port no call uses.
    pk.append((T0 + 1.5, bytes(12) + b"\x08\x06" + bytes(28)))
    pk.append((T0 + 1.6, frame("10.9.9.9", 53, CALLER_IP, 5353, b"\x12\x34" + bytes(10))))
    path = write_pcap(tmp_path / "call.pcap", pk)

    calls = import_pcap(path, tmp_path / "out")
    assert len(calls) == 1
    call = calls[0]
    assert call.call_id == "a84b4c76e66710@pc33"
    assert (call.caller, call.callee) == ("sip:13800001111@pbx.example.com",
                                          "sip:8001@pbx.example.com")
    assert call.end_reason == "bye" and call.agent_side == "callee"
    assert call.started_at.startswith("2025-10-09T08:53:21.020")
    assert call.agent is not None and call.customer is not None
    assert call.agent.received == 90 and call.customer.received == 100
    assert call.agent.lost == call.customer.lost == 0

    rec = read_wav(call.recording)
    assert rec.sample_rate == 8000 and len(rec.channels) == 2
    agent, customer = as_int(rec.channels[0]), as_int(rec.channels[1])
    # The customer (caller) spoke first: sample 0. The agent 0.1 s later: sample 800.
    assert np.array_equal(customer[:16000], ulaw_decode(caller_codes))
    assert np.all(agent[:800] == 0)
    assert np.array_equal(agent[800:800 + 14400], alaw_decode(callee_codes))
    assert call.duration_s == pytest.approx(2.0)


def test_agent_side_caller_swaps_channels_and_reordered_packets(tmp_path: Path):
    caller_codes = ulaw_encode(tone(1.0, 300))
    callee_codes = ulaw_encode(tone(1.0, 700))
    pk = basic_call(Dialog(), caller_codes, callee_codes, t_bye=T0 + 2.5, callee_delay=0.0)
    # Swap the capture order of two caller RTP packets (same timestamps shuffled).
    rtp_idx = [i for i, (_, f) in enumerate(pk) if f[-172:-160][:1] == b"\x80"]
    a, b = rtp_idx[10], rtp_idx[12]
    pk[a], pk[b] = (pk[b][0], pk[a][1]), (pk[a][0], pk[b][1])
    path = write_pcap(tmp_path / "out.pcap", pk)
    (call,) = import_pcap(path, tmp_path / "rec", agent_side="caller")
    rec = read_wav(call.recording)
    assert np.array_equal(as_int(rec.channels[0])[:8000], ulaw_decode(caller_codes))
    assert np.array_equal(as_int(rec.channels[1])[:8000], ulaw_decode(callee_codes))
    assert call.agent is not None and call.agent.lost == 0


def test_late_offer_fragmented_invite_and_reinvite(tmp_path: Path):
    """SDP offer in the 200 OK, answer in the ACK; a large INVITE split in IP fragments;
    then a re-INVITE from the callee moves its media port."""
    d = Dialog(call_id="late-offer-1")
    big_header = "X-Padding: " + "p" * 1500 + "\r\n"
    invite = d.request("INVITE", 1, to_tag=False).replace(
        b"Content-Length", big_header.encode() + b"Content-Length")
    pk = [(T0 + i * 0.0001, f) for i, f in
          enumerate(fragments(CALLER_IP, 5060, CALLEE_IP, 5060, invite, ident=77))]
    pk.append(sip_pkt(T0 + 1.0, d.response(200, "OK", 1, "INVITE", sdp(CALLEE_IP, CALLEE_RTP)),
                      from_caller=False))
    pk.append(sip_pkt(T0 + 1.01, d.request("ACK", 1, sdp(CALLER_IP, CALLER_RTP))))
    first = ulaw_encode(tone(0.5, 400))
    second = ulaw_encode(tone(0.5, 800))
    caller_voice = ulaw_encode(tone(1.5, 250))
    for t, rtp in rtp_stream(caller_voice, 0, 0x1, T0 + 1.02):
        pk.append((t, frame(CALLER_IP, CALLER_RTP, CALLEE_IP, CALLEE_RTP, rtp)))
    for t, rtp in rtp_stream(first, 0, 0x2, T0 + 1.02):
        pk.append((t, frame(CALLEE_IP, CALLEE_RTP, CALLER_IP, CALLER_RTP, rtp)))
    # The callee re-INVITEs with a new port; the caller's RTP goes there from then on.
    pk.append(sip_pkt(T0 + 1.53, d.request("INVITE", 1, sdp(CALLEE_IP, CALLEE_RTP + 2),
                                          from_callee=True), from_caller=False))
    pk.append(sip_pkt(T0 + 1.54, d.response(200, "OK", 1, "INVITE", sdp(CALLER_IP, CALLER_RTP),
                                            from_callee=True)))
    for t, rtp in rtp_stream(second, 0, 0x2, T0 + 1.52, seq0=1025, ts0=25 * FRAME):
        pk.append((t, frame(CALLEE_IP, CALLEE_RTP + 2, CALLER_IP, CALLER_RTP, rtp)))
    pk.append(sip_pkt(T0 + 3.0, d.request("BYE", 2)))
    path = write_pcap(tmp_path / "late.pcap", pk)

    report = import_capture(path, tmp_path / "rec")
    assert report.decode.reassembled == 1
    (call,) = report.calls
    rec = read_wav(call.recording)
    agent = as_int(rec.channels[0])
    assert np.array_equal(agent[:4000], ulaw_decode(first))
    assert np.array_equal(agent[4000:8000], ulaw_decode(second))
    assert np.array_equal(as_int(rec.channels[1])[:12000], ulaw_decode(caller_voice))


def test_rejected_cancelled_and_rtp_without_sip_leave_no_recording(tmp_path: Path):
    rejected = Dialog(call_id="busy-1")
    cancelled = Dialog(call_id="cancel-1")
    pk = [
        sip_pkt(T0, rejected.request("INVITE", 1, sdp(CALLER_IP, 41000), to_tag=False)),
        sip_pkt(T0 + 0.2, rejected.response(486, "Busy Here", 1, "INVITE"), from_caller=False),
        sip_pkt(T0 + 0.3, rejected.request("ACK", 1)),
        sip_pkt(T0 + 1, cancelled.request("INVITE", 1, sdp(CALLER_IP, 42000), to_tag=False)),
        sip_pkt(T0 + 2, cancelled.request("CANCEL", 1, to_tag=False)),
    ]
    stray = rtp_stream(ulaw_encode(tone(0.2, 500)), 0, 9, T0 + 3)
    pk += [(t, frame("10.7.7.7", 9000, "10.7.7.8", 9002, r)) for t, r in stray]
    path = write_pcap(tmp_path / "none.pcap", pk)
    report = import_capture(path, tmp_path / "rec")
    assert report.calls == [] and report.calls_without_audio == 2
    assert report.follow.unmatched == len(stray)
    assert list(tmp_path.rglob("*.wav")) == []


def test_follower_idle_timeout_ends_a_call_without_bye(tmp_path: Path):
    ended: list[EndedCall] = []
    follower = CallFollower(tmp_path, ended.append, FollowOptions(idle_timeout_s=5.0))
    d = Dialog(call_id="idle-1")

    def dg(t: float, src: str, sport: int, dst: str, dport: int, data: bytes) -> UdpDatagram:
        return UdpDatagram(t, src, sport, dst, dport, data)

    follower.feed(dg(T0, CALLER_IP, 5060, CALLEE_IP, 5060,
                     d.request("INVITE", 1, sdp(CALLER_IP, CALLER_RTP), to_tag=False)))
    follower.feed(dg(T0 + 0.5, CALLEE_IP, 5060, CALLER_IP, 5060,
                     d.response(200, "OK", 1, "INVITE", sdp(CALLEE_IP, CALLEE_RTP))))
    for t, rtp in rtp_stream(ulaw_encode(tone(1.0, 440)), 0, 5, T0 + 1):
        follower.feed(dg(t, CALLER_IP, CALLER_RTP, CALLEE_IP, CALLEE_RTP, rtp))
    assert ended == [] and follower.active_calls == 1
    follower.feed(dg(T0 + 6.5, "10.0.0.99", 1, "10.0.0.98", 2, b"unrelated"))
    assert ended == []
    follower.feed(dg(T0 + 7.6, "10.0.0.99", 1, "10.0.0.98", 2, b"unrelated"))  # checks: 1 s
    assert [e.reason for e in ended] == ["idle"] and follower.active_calls == 0
    assert ended[0].customer is not None and ended[0].customer.received == 50
    assert ended[0].agent is None
    assert ended[0].recording is not None and read_wav(ended[0].recording).duration_s == 1.0


def test_malformed_sip_is_counted(tmp_path: Path):
    follower = CallFollower(tmp_path, lambda call: None)
    follower.feed(UdpDatagram(T0, "1.1.1.1", 5060, "2.2.2.2", 5060,
                              b"INVITE sip:x SIP/2.0\r\nCSeq: nonsense\r\n\r\n"))
    assert follower.stats.sip_malformed == 1 and follower.active_calls == 0


def test_bad_agent_side():
    with pytest.raises(ValueError, match="agent_side"):
        FollowOptions(agent_side="left")


# ------------------------------------------------------------------ the command


def _args(**kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli_import_pcap.add_parser(sub)
    argv = ["import-pcap", str(kw.pop("file"))]
    for key, value in kw.items():
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    return parser.parse_args(argv)


def _settings(data_dir: Path) -> Settings:
    return load_settings(overrides={"data_dir": data_dir, "rubric": "default-en"}, environ={})


def test_cli_no_score_writes_recordings_and_json(tmp_path: Path, capsys):
    pk = basic_call(Dialog(), ulaw_encode(tone(1.0, 300)), ulaw_encode(tone(1.0, 500)),
                    t_bye=T0 + 2.5, callee_delay=0.0)
    path = write_pcap(tmp_path / "cli.pcap", pk)
    args = _args(file=path, no_score=True, json=True)
    assert args.func is cli_import_pcap.run
    assert cli_import_pcap.run(args, _settings(tmp_path / "data")) == 0
    out = json.loads(capsys.readouterr().out)
    (item,) = out["calls"]
    assert item["sip_call_id"] == "a84b4c76e66710@pc33" and item["duration_s"] == 1.0
    assert Path(item["recording"]).parent == tmp_path / "data" / "imports" / "cli"
    assert read_wav(item["recording"]).duration_s == 1.0


def test_cli_scores_every_call_with_the_offline_scorer(tmp_path: Path, monkeypatch, capsys):
    import core.scoring.recording
    import core.storage.db

    seen = []

    class Result:
        score, passed = 92.0, True

    class Outcome:
        call_id = "c-1"
        recording_path = None
        scored = type("S", (), {"result": Result()})()

    def fake_score(config, db, req):
        seen.append(req)
        assert read_wav(req.path).duration_s == 1.0
        return Outcome()

    monkeypatch.setattr(core.scoring.recording, "score_file", fake_score)
    monkeypatch.setattr(core.storage.db, "open_db", lambda path: object())
    pk = basic_call(Dialog(), ulaw_encode(tone(1.0, 300)), ulaw_encode(tone(1.0, 500)),
                    t_bye=T0 + 2.5, callee_delay=0.0)
    path = write_pcap(tmp_path / "s.pcap", pk)
    args = _args(file=path, rubric="default-en", team="t1", agent_side="caller")
    assert cli_import_pcap.run(args, _settings(tmp_path)) == 0
    (req,) = seen
    assert req.rubric_ref == "default-en" and req.team_id == "t1" and req.agent_channel == "left"
    assert req.started_at.startswith("2025-10-09T08:53:21.020")
    assert "score 92 pass" in capsys.readouterr().out


def _agent_side_run(tmp_path: Path, capsys, config: str, *flags: str) -> str:
    from core.cli import main

    pk = basic_call(Dialog(), ulaw_encode(tone(1.0, 300)), ulaw_encode(tone(1.0, 500)),
                    t_bye=T0 + 2.5, callee_delay=0.0)
    path = write_pcap(tmp_path / "side.pcap", pk)
    code = main(["--config", config, "--data-dir", str(tmp_path / "data"), "import-pcap",
                 str(path), "--no-score", "--json", *flags])
    out, err = capsys.readouterr()
    if code != 0:
        return err
    (item,) = json.loads(out)["calls"]
    return str(item["agent_side"])


def test_cli_agent_side_comes_from_the_settings_file_and_environment(
    tmp_path: Path, capsys, monkeypatch
):
    monkeypatch.delenv("CALLQA_DEFAULT_AGENT_SIDE", raising=False)
    toml = tmp_path / "box.toml"
    toml.write_text('default_agent_side = "caller"\n', encoding="utf-8")
    assert _agent_side_run(tmp_path, capsys, str(toml)) == "caller"
    assert _agent_side_run(tmp_path, capsys, str(toml), "--agent-side", "callee") == "callee"
    empty = tmp_path / "empty.toml"
    empty.write_text("", encoding="utf-8")
    assert _agent_side_run(tmp_path, capsys, str(empty)) == "callee"  # the default
    monkeypatch.setenv("CALLQA_DEFAULT_AGENT_SIDE", "caller")
    assert _agent_side_run(tmp_path, capsys, str(empty)) == "caller"
    # SIPREC's stream order means nothing in a capture: said, not silently replaced.
    monkeypatch.setenv("CALLQA_DEFAULT_AGENT_SIDE", "first")
    said = _agent_side_run(tmp_path, capsys, str(empty))
    assert "default_agent_side" in said and "--agent-side" in said


def test_cli_capture_without_calls_is_bad_input(tmp_path: Path):
    path = write_pcap(tmp_path / "empty.pcap", [(T0, frame("1.1.1.1", 1, "2.2.2.2", 2, b"x"))])
    with pytest.raises(cli_import_pcap.NoCallsFound, match="no SIP call with audio"):
        cli_import_pcap.run(_args(file=path, no_score=True), _settings(tmp_path))


# ------------------------------------------------------------------ live, on loopback


@pytest.mark.raw_sockets
def test_live_call_on_loopback_is_followed_and_recorded(tmp_path: Path):
    import time

    from telephony.capture import follow_interface

    def udp_socket() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        return s

    sip_a, sip_b, rtp_a, rtp_b = udp_socket(), udp_socket(), udp_socket(), udp_socket()
    addr = {name: s.getsockname() for name, s in
            [("sip_a", sip_a), ("sip_b", sip_b), ("rtp_a", rtp_a), ("rtp_b", rtp_b)]}
    d = Dialog(call_id=f"live-lo-{secrets.token_hex(4)}")
    ended: list[EndedCall] = []

    def ours(calls: list[EndedCall]) -> list[EndedCall]:
        return [c for c in calls if c.call_id == d.call_id]

    capture, follower = follow_interface("lo", tmp_path, ended.append, promiscuous=False)
    caller_pcm = (np.cos(2 * np.pi * 300 * np.arange(4000) / 8000) * 9000).astype(np.int16)
    callee_pcm = (np.cos(2 * np.pi * 700 * np.arange(4000) / 8000) * 9000).astype(np.int16)
    with capture:
        time.sleep(0.1)
        sip_a.sendto(d.request("INVITE", 1, sdp("127.0.0.1", addr["rtp_a"][1]), to_tag=False),
                     addr["sip_b"])
        sip_b.sendto(d.response(200, "OK", 1, "INVITE", sdp("127.0.0.1", addr["rtp_b"][1])),
                     addr["sip_a"])
        sip_a.sendto(d.request("ACK", 1), addr["sip_b"])
        time.sleep(0.05)
        a = rtp_stream(ulaw_encode(caller_pcm), 0, 0xA, 0.0)
        b = rtp_stream(ulaw_encode(callee_pcm), 0, 0xB, 0.0, ts0=12345)
        for (_, pa), (_, pb) in zip(a, b, strict=True):
            rtp_a.sendto(pa, addr["rtp_b"])
            rtp_b.sendto(pb, addr["rtp_a"])
            time.sleep(0.002)
        sip_b.sendto(d.request("BYE", 2, from_callee=True), addr["sip_a"])
        # Loopback carries other tests' calls too (they run beside this one): wait for this one.
        deadline = time.monotonic() + 5
        while not ours(ended) and time.monotonic() < deadline:
            time.sleep(0.05)
    follower.close()
    for s in (sip_a, sip_b, rtp_a, rtp_b):
        s.close()
    (call,) = ours(ended)
    assert call.reason == "bye"
    assert call.agent is not None and call.agent.received == 25 and call.agent.lost == 0
    assert call.customer is not None and call.customer.received == 25
    assert call.recording is not None
    rec = read_wav(call.recording)
    for channel, pcm in ((rec.channels[0], callee_pcm), (rec.channels[1], caller_pcm)):
        got = as_int(channel)
        start = int(np.flatnonzero(got)[0])
        assert start < 800  # the two legs started within 0.1 s of each other
        assert np.array_equal(got[start:start + 4000], ulaw_decode(ulaw_encode(pcm)))
