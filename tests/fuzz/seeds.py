"""Seed inputs for every fuzz target, taken from the fixtures the other tests use.

SIP messages come from the SIPp scenarios in tests/telephony/scenarios (their `[keywords]`
filled in as SIPp would), SDP and recording metadata from those scenarios, the metadata
fixtures and the SDP test; packets, captures, WAV files and AudioFrame streams are built with
the same helpers the tests build theirs with; rubrics are the shipped ones and the test's
minimal one.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
SCENARIOS = TESTS / "telephony" / "scenarios"

_SIPP_VALUES = {
    "local_ip": "10.0.0.1",
    "remote_ip": "10.0.0.5",
    "media_ip": "10.0.0.1",
    "local_port": "5070",
    "remote_port": "5060",
    "media_port": "40000",
    "media_port+2": "40002",
    "local_ip_type": "4",
    "media_ip_type": "4",
    "transport": "UDP",
    "call_number": "1",
    "pid": "4242",
    "call_id": "1-4242@10.0.0.1",
    "branch": "z9hG4bK-4242-1-0",
    "routes": "",
    "peer_tag_param": ";tag=srs-1",
    "next_url": "sip:srs@10.0.0.5:5060",
    "service": "srs",
}
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.S)
_KEYWORD = re.compile(r"\[([A-Za-z_+0-9:-]+)\]")


def _render_sipp(block: str) -> bytes | None:
    """One `<send>` block of a SIPp scenario as the message SIPp puts on the wire."""
    lines = [line.strip() for line in block.strip("\n").splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    if not lines or " " not in lines[0]:
        return None
    filled = [_KEYWORD.sub(lambda m: _SIPP_VALUES.get(m.group(1), "\0"), x) for x in lines]
    # A line that only held a keyword with nothing to put there (`[routes]`), or one with a
    # keyword not filled in here (`[last_Via:]` copies a received header), is left out.
    text = "\r\n".join(
        f for f, line in zip(filled, lines, strict=True) if (f or not line) and "\0" not in f
    )
    head, sep, body = text.partition("\r\n\r\n")
    if sep:
        body += "\r\n"
    head = head.replace("[len]", str(len(body.encode("utf-8"))))
    return (head + "\r\n\r\n" + body).encode("utf-8")


def _scenario_messages(path: Path) -> list[bytes]:
    rendered = (_render_sipp(b) for b in _CDATA.findall(path.read_text(encoding="latin-1")))
    return [m for m in rendered if m is not None]


def sip_messages() -> list[bytes]:
    from tests.telephony.test_sip_message import INVITE

    out = [INVITE]
    for path in sorted(SCENARIOS.glob("*.xml")):
        out.extend(_scenario_messages(path))
    return out


def _multipart_parts(message: bytes, content_type: bytes) -> list[bytes]:
    from telephony.sip.message import SipParseError, parse_message
    from telephony.siprec import parse_multipart

    try:
        msg = parse_message(message)
    except SipParseError:
        return []
    ctype = msg.content_type
    if ctype.lower().startswith(content_type.decode()):
        return [msg.body]
    if not ctype.lower().startswith("multipart/"):
        return []
    return [
        p.body for p in parse_multipart(ctype, msg.body) if p.content_type.encode() == content_type
    ]


def sdp_bodies() -> list[bytes]:
    from tests.telephony.siprec_vendors import VENDORS, sdp
    from tests.telephony.test_sdp import SIPREC_OFFER
    from tests.telephony.test_siprec_metadata import SDP

    out = [SIPREC_OFFER.encode(), SDP]
    out += [sdp(v.mlines).encode() for v in VENDORS]
    for message in sip_messages():
        out.extend(_multipart_parts(message, b"application/sdp"))
    return out


def metadata_documents() -> list[bytes]:
    """Every recording-metadata fixture (all dialects) and the metadata parts of SIPREC INVITEs."""
    from tests.telephony import siprec_vendors as vendors

    out = [v.metadata.encode() for v in vendors.VENDORS]
    out += [vendors.CISCO_TRANSFER_PARTIAL.encode(), vendors.CISCO_TRANSFER_COMPLETE.encode()]
    for path in sorted(TESTS.rglob("*.xml")):
        data = path.read_bytes()
        if b"<recording" in data and b"<scenario" not in data:
            out.append(data)
    for message in sip_messages():
        out.extend(_multipart_parts(message, b"application/rs-metadata+xml"))
    return out


def rtp_packets() -> list[bytes]:
    from telephony.rtp_packet import RtpPacket

    g711 = bytes(range(0, 256, 2))[:160].ljust(160, b"\xff")
    return [
        RtpPacket(0, 1000, 160_000, 0xCAFE0001, True, g711).serialize(),
        RtpPacket(8, 65535, 2**32 - 160, 0xCAFE0002, False, g711).serialize(),
        RtpPacket(101, 7, 800, 1, False, bytes([5, 0x8A, 0x03, 0x20])).serialize(),
        RtpPacket(13, 9, 960, 1, False, bytes([40])).serialize(),
        RtpPacket(
            0,
            2,
            320,
            1,
            payload=g711[:80],
            csrc=[1, 2],
            extension_profile=0xBEDE,
            extension=b"\x10\xaa\x00\x00",
            padding_size=4,
        ).serialize(),
    ]


def rtp_streams() -> list[bytes]:
    """Datagram sequences for a leg: each datagram prefixed by its length (2 bytes)."""
    packets = rtp_packets()
    in_order = b"".join(struct.pack("!H", len(p)) + p for p in packets)
    reordered = b"".join(struct.pack("!H", len(p)) + p for p in reversed(packets))
    return [in_order, reordered]


def rtcp_packets() -> list[bytes]:
    sr = struct.pack("!BBHIIIIII", 0x81, 200, 12, 1, 3_900_000_000, 0, 160, 10, 1600)
    block = struct.pack("!IIIIII", 2, (12 << 24) | 3, 1000, 40, 0, 0)
    rr = struct.pack("!BBHI", 0x81, 201, 7, 2) + block
    bye = struct.pack("!BBHI", 0x81, 203, 1, 1)
    return [sr + block, rr, sr + block + bye, rr + bye]


def _udp_frame(payload: bytes, sport: int, dport: int, src: int = 1, dst: int = 5) -> bytes:
    """An Ethernet/IPv4/UDP frame from 10.0.0.`src` to 10.0.0.`dst`."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, bytes([10, 0, 0, src]),
        bytes([10, 0, 0, dst]),
    )  # fmt: skip
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + udp


def captures() -> list[bytes]:
    from telephony.rtp_packet import RtpPacket
    from tests.telephony.test_pcap import classic_pcap, epb, idb, option, shb

    # The plain call of plain_uac_pcap.xml: its INVITE offers 10.0.0.1:40000, so RTP sent
    # there is the callee's voice; then the call's BYE.
    invite, _ack, bye = _scenario_messages(SCENARIOS / "plain_uac_pcap.xml")
    voice = [
        RtpPacket(0, 10 + i, 160 * i, 0xCA11EE, i == 0, bytes([0x55 + i]) * 160).serialize()
        for i in range(6)
    ]
    frames = [_udp_frame(invite, 5070, 5060), _udp_frame(sip_messages()[0], 5060, 5070, 5, 1)]
    frames += [_udp_frame(p, 20000, 40000, 5, 1) for p in voice]
    frames.append(_udp_frame(bye, 5070, 5060))
    timed = [(1_700_000_000 + i, 1000 * i, f) for i, f in enumerate(frames)]
    ng = (
        shb("<")
        + idb("<", 1, 0, option("<", 9, b"\x06"))
        + b"".join(epb("<", 0, 1_700_000_000_000_000 + 20_000 * i, f) for i, f in enumerate(frames))
    )
    return [classic_pcap("<", False, timed), classic_pcap(">", True, timed[:3]), ng]


def wav_files() -> list[bytes]:
    import tempfile

    from core.audio.wav import write_wav_g711, write_wav_pcm16

    t = np.arange(400) / 8000.0
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    codes = (np.arange(400) % 256).astype(np.uint8)
    out: list[bytes] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seed.wav"
        for write in (
            lambda: write_wav_pcm16(path, [tone, -tone], 8000),
            lambda: write_wav_pcm16(path, [tone], 16000),
            lambda: write_wav_g711(path, [codes, codes[::-1].copy()], 8000, "mulaw"),
            lambda: write_wav_g711(path, [codes], 8000, "alaw"),
        ):
            write()
            out.append(path.read_bytes())
    return out


def rubric_texts() -> list[bytes]:
    from tests.core.rubric.test_rubric_schema import MINIMAL

    out = [MINIMAL.encode()]
    out += [p.read_bytes() for p in sorted((ROOT / "core" / "rubrics").glob("*.yaml"))]
    return out


def audio_frame_streams() -> list[bytes]:
    """StreamAudio request streams, each frame length-delimited as protobuf writes them."""
    from google.protobuf.internal.encoder import _VarintBytes

    from proto import callqa_pb2 as pb
    from tests.core.serve_harness import audio_frames

    t = np.arange(480)
    agent = (3000 * np.sin(t / 5)).astype(np.int16)
    customer = (2000 * np.cos(t / 7)).astype(np.int16)
    streams = [
        list(audio_frames(agent, customer, speed=1e9)),
        list(audio_frames(agent, customer, speed=1e9, encoding=pb.AUDIO_ENCODING_PCMU)),
    ]
    positioned = list(streams[0][:3])
    positioned.append(
        pb.AudioFrame(
            audio=pb.AudioChunk(leg=pb.LEG_AGENT, payload=b"\x00\x01" * 80, position_ms=2000)
        )
    )
    streams.append(positioned)
    return [
        b"".join(_VarintBytes(f.ByteSize()) + f.SerializeToString() for f in stream)
        for stream in streams
    ]
