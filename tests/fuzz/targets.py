"""The fuzz targets: one per parser of outside input.

Each target takes any bytes. A parser may refuse them only with its own error type carrying a
message (`SipParseError`, `SdpError`, `MetadataError`, `RtpParseError`, `RtcpParseError`,
`PcapError`, `AudioFileError`, `RubricError`, `AudioFrameError`); whatever it accepts must
survive the round trip through its serialiser where one exists. Anything else (an
IndexError, a KeyError, a UnicodeError, a struct.error, a failed round trip) escapes the
target and is a crash. `Target.load` imports the parsers, so that the fuzzer can instrument
them as they are imported.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass

RunInput = Callable[[bytes], None]


def said(exc: BaseException) -> None:
    """A parser's own error must say what was wrong."""
    if not str(exc).strip():
        raise AssertionError(f"{type(exc).__name__} raised without a message") from exc


def _sip() -> RunInput:
    from telephony.sip.message import SipLimitError, SipParseError, SipRequest, StreamFramer
    from telephony.sip.message import parse_message as parse
    from telephony.siprec import is_recording_invite, split_bodies

    def run(data: bytes) -> None:
        try:
            msg = parse(data)
        except SipParseError as exc:
            said(exc)
        else:
            for field in ("cseq", "vias", "from_addr", "to_addr", "call_id", "content_type"):
                try:
                    getattr(msg, field)
                except SipParseError as exc:
                    said(exc)
            try:
                again = parse(msg.serialize())
            except SipLimitError:
                pass
            else:
                kept = [h for h in msg.headers if h[0] != "Content-Length"]
                assert [h for h in again.headers if h[0] != "Content-Length"] == kept, (
                    "headers changed on a round trip"
                )
                assert again.body == msg.body, "the body changed on a round trip"
                assert again.serialize() == msg.serialize()
            if isinstance(msg, SipRequest):
                is_recording_invite(msg)
                try:
                    split_bodies(msg)
                except SipParseError as exc:
                    said(exc)
        cut = data[0] % (len(data) + 1) if data else 0
        framer = StreamFramer()
        try:
            framer.feed(data[:cut])
            framer.feed(data[cut:])
        except SipParseError as exc:
            said(exc)

    return run


def _sdp() -> RunInput:
    from telephony.sip.sdp import (
        MediaAnswer,
        SdpError,
        answer_sdp,
        choose_codec,
        parse_sdp,
        telephone_event_type,
    )

    def run(data: bytes) -> None:
        try:
            offer = parse_sdp(data.decode("utf-8", errors="replace"))
        except SdpError as exc:
            said(exc)
            return
        answers: list[MediaAnswer | None] = []
        for i, media in enumerate(offer.media):
            media.payload_map()
            pt = choose_codec(media)
            events = telephone_event_type(media)
            pts = [p for p in (pt, events) if p is not None]
            answers.append(MediaAnswer(40000 + 2 * i, pts) if i % 3 else None)
        answer = parse_sdp(answer_sdp(offer, answers, "10.0.0.5", "1", 1))
        assert [m.kind for m in answer.media] == [m.kind for m in offer.media]
        for offered, answered, plan in zip(offer.media, answer.media, answers, strict=True):
            accepted = plan is not None and bool(plan.payload_types)
            assert answered.port == (plan.port if plan is not None and accepted else 0)
            if accepted:
                assert answered.label == offered.label

    return run


def _rs_metadata() -> RunInput:
    from telephony.siprec import AgentPatterns, MetadataError, assign_roles, parse_metadata

    patterns = AgentPatterns.parse("1000-1999,@agents.example.com,re:^sip:agent")

    def run(data: bytes) -> None:
        try:
            meta = parse_metadata(data)
        except MetadataError as exc:
            said(exc)
            return
        meta.call_identifiers()
        merged = meta.merge(meta)
        assert set(merged.participants) == set(meta.participants)
        labels: list[str | None] = [s.label for s in meta.streams.values()][:2] or ["1", "2"]
        for side in ("caller", "callee", "first", "second"):
            roles = assign_roles(labels, meta, patterns, side).roles
            assert len(roles) == len(labels) and roles.count("agent") <= 1
            assert set(roles) <= {"agent", "customer", "mixed"}

    return run


def _rtp() -> RunInput:
    from telephony.rtp_packet import RtpParseError, parse_rtp

    def run(data: bytes) -> None:
        try:
            packet = parse_rtp(data)
        except RtpParseError as exc:
            said(exc)
            return
        assert parse_rtp(packet.serialize()) == packet, "an RTP packet changed on a round trip"

    return run


def _rtp_leg() -> RunInput:
    from telephony.rtp import RtpLeg

    payloads = {0: "PCMU", 8: "PCMA", 13: "CN", 101: "telephone-event", 96: "PCMU"}

    def run(data: bytes) -> None:
        leg = RtpLeg(0, payloads, None, feed_batch=4, decode_batch_frames=3)
        pos, now = 0, 0.0
        while pos + 2 <= len(data):
            (size,) = struct.unpack_from("!H", data, pos)
            datagram = data[pos + 2 : pos + 2 + (size & 0x3FF)]
            pos += 2 + len(datagram)
            now += (size >> 10) * 0.005
            leg.feed(datagram, now)
            if size & 0x8000:
                leg.tick(now)
        leg.flush()
        stats = leg.stats
        assert stats.received + stats.malformed + stats.unknown_payload <= len(data)

    return run


def _rtcp() -> RunInput:
    from telephony.rtcp import RtcpParseError, RtcpStats, parse_rtcp

    def run(data: bytes) -> None:
        stats = RtcpStats()
        try:
            parse_rtcp(data, stats)
        except RtcpParseError as exc:
            said(exc)

    return run


def _pcap() -> RunInput:
    from telephony.packets import PacketDecoder
    from telephony.pcap import CaptureReader, PcapError

    def run(data: bytes) -> None:
        decoder = PacketDecoder()
        try:
            for frame in CaptureReader(io.BytesIO(data)):
                decoder.decode_frame(frame)
        except PcapError as exc:
            said(exc)

    return run


def _pcap_import() -> RunInput:
    import tempfile
    from pathlib import Path

    from telephony.pcap import PcapError
    from telephony.pcap_import import import_capture

    def run(data: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="callqa-fuzz-import-") as tmp:
            path = Path(tmp) / "capture.pcap"
            path.write_bytes(data)
            try:
                report = import_capture(path, Path(tmp) / "calls")
            except PcapError as exc:
                said(exc)
                return
            for call in report.calls:
                assert call.recording.is_file(), "an imported call without its recording"

    return run


def _wav() -> RunInput:
    import numpy as np

    from core.audio.wav import AudioFileError, parse_wav

    def run(data: bytes) -> None:
        try:
            rec = parse_wav(data)
        except AudioFileError as exc:
            said(exc)
            return
        assert rec.channels and len({len(c) for c in rec.channels}) == 1
        for channel in rec.channels:
            assert channel.dtype == np.float32 and float(np.abs(channel).max()) <= 1.0

    return run


def _rubric_yaml() -> RunInput:
    from core.rubric.loading import load_rubric_text
    from core.rubric.schema import RubricError, dump_rubric

    def run(data: bytes) -> None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return  # rubric files are read as UTF-8 text (test_rubric_properties covers files)
        try:
            rubric = load_rubric_text(text)
        except RubricError as exc:
            assert exc.problems and all(p.strip() for p in exc.problems), "a silent RubricError"
            return
        assert load_rubric_text(dump_rubric(rubric)) == rubric, "a rubric changed on a round trip"

    return run


def _grpc_audio() -> RunInput:
    import numpy as np
    from google.protobuf.internal.decoder import _DecodeVarint
    from google.protobuf.message import DecodeError

    from core.api.audio_frames import (
        MAX_POSITION_GAP_S,
        AudioChunkReader,
        AudioFrameError,
        decoder_for,
    )
    from proto import callqa_pb2 as pb

    def frames(data: bytes) -> list[pb.AudioFrame]:
        out: list[pb.AudioFrame] = []
        pos = 0
        while pos < len(data):
            try:
                size, pos = _DecodeVarint(data, pos)
                out.append(pb.AudioFrame.FromString(data[pos : pos + size]))
            except (DecodeError, IndexError):
                break  # the protobuf library's framing, not the service's reading
            pos += size
        return out

    def run(data: bytes) -> None:
        stream = frames(data)
        if not stream or stream[0].WhichOneof("frame") != "setup":
            return
        setup = stream[0].setup
        try:
            decode, rate = decoder_for(setup.encoding, setup.sample_rate_hz)
        except AudioFrameError as exc:
            said(exc)
            return
        reader = AudioChunkReader(decode, rate)
        ends = {"agent": 0, "customer": 0}
        for frame in stream[1:]:
            try:
                chunk = reader.read(frame)
            except AudioFrameError as exc:
                said(exc)
                continue
            if chunk is None:
                return
            assert chunk.leg in ends and chunk.pcm.dtype == np.int16 and chunk.pcm.size
            start = ends[chunk.leg] if chunk.at_sample is None else chunk.at_sample
            assert start - ends[chunk.leg] <= MAX_POSITION_GAP_S * rate, "an unbounded gap"
            ends[chunk.leg] = max(ends[chunk.leg], start + chunk.pcm.size)

    return run


@dataclass(frozen=True)
class Target:
    name: str
    what: str
    load: Callable[[], RunInput]
    seeds: Callable[[], list[bytes]]


def _seeds(name: str) -> Callable[[], list[bytes]]:
    def get() -> list[bytes]:
        from tests.fuzz import seeds

        result: list[bytes] = getattr(seeds, name)()
        return result

    return get


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "sip",
            "SIP messages, datagram and stream framing, SIPREC bodies",
            _sip,
            _seeds("sip_messages"),
        ),
        Target("sdp", "SDP offers and the answers made to them", _sdp, _seeds("sdp_bodies")),
        Target(
            "rs_metadata",
            "recording metadata XML, every dialect, and roles",
            _rs_metadata,
            _seeds("metadata_documents"),
        ),
        Target("rtp", "RTP packets", _rtp, _seeds("rtp_packets")),
        Target(
            "rtp_leg",
            "RTP datagram sequences through a leg's receive path",
            _rtp_leg,
            _seeds("rtp_streams"),
        ),
        Target("rtcp", "compound RTCP packets", _rtcp, _seeds("rtcp_packets")),
        Target("pcap", "pcap and pcapng files down to UDP datagrams", _pcap, _seeds("captures")),
        Target(
            "pcap_import",
            "captures imported: SIP calls followed and their RTP recorded",
            _pcap_import,
            _seeds("captures"),
        ),
        Target("wav", "WAV call recordings", _wav, _seeds("wav_files")),
        Target("rubric_yaml", "rubric YAML", _rubric_yaml, _seeds("rubric_texts")),
        Target(
            "grpc_audio",
            "StreamAudio AudioFrame sequences",
            _grpc_audio,
            _seeds("audio_frame_streams"),
        ),
    )
}
