"""pcap and pcapng reading: files built here byte by byte, and a real tcpdump capture."""

from __future__ import annotations

import io
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from telephony.packets import PacketDecoder
from telephony.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    CaptureReader,
    PcapError,
    PcapWriter,
    read_capture,
)

FRAMES = [b"\x01" * 60, b"\x02" * 61, b"\x03" * 1514]


def classic_pcap(order: str, nano: bool, frames: list[tuple[int, int, bytes]],
                 linktype: int = LINKTYPE_ETHERNET) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)]
    for sec, frac, data in frames:
        out.append(struct.pack(order + "IIII", sec, frac, len(data), len(data) + 4) + data)
    return b"".join(out)


def block(order: str, btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    total = len(body) + 12
    return struct.pack(order + "II", btype, total) + body + struct.pack(order + "I", total)


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + bytes(-len(value) % 4)


def shb(order: str) -> bytes:
    body = struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1)
    return block(order, 0x0A0D0D0A, body)


def idb(order: str, linktype: int, snaplen: int = 0, options: bytes = b"") -> bytes:
    body = struct.pack(order + "HHI", linktype, 0, snaplen)
    if options:
        body += options + option(order, 0, b"")
    return block(order, 1, body)


def epb(order: str, iface: int, ticks: int, data: bytes) -> bytes:
    body = struct.pack(order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                       len(data))
    return block(order, 6, body + data + bytes(-len(data) % 4))


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_classic_pcap_both_orders_and_resolutions(order: str, nano: bool):
    frac = 123456789 if nano else 123456
    data = classic_pcap(order, nano, [(1_700_000_000 + i, frac, f) for i, f in enumerate(FRAMES)])
    reader = CaptureReader(io.BytesIO(data))
    frames = list(reader)
    assert reader.format == "pcap"
    assert [f.data for f in frames] == FRAMES
    assert [f.original_length for f in frames] == [len(f) + 4 for f in FRAMES]
    assert {f.linktype for f in frames} == {LINKTYPE_ETHERNET}
    expect = 1_700_000_000.123456789 if nano else 1_700_000_000.123456
    assert frames[0].timestamp_s == pytest.approx(expect, abs=1e-9)
    assert frames[2].timestamp_s - frames[0].timestamp_s == pytest.approx(2.0)
    assert reader.stats.frames == 3 and reader.stats.truncated == 0


def test_classic_pcap_cut_in_the_last_record():
    data = classic_pcap("<", False, [(1, 0, f) for f in FRAMES])
    for cut in (5, 20):
        reader = CaptureReader(io.BytesIO(data[:-cut]))
        assert [f.data for f in reader] == FRAMES[:2]
        assert reader.stats.truncated == 1


def test_classic_pcap_damaged_record_and_foreign_files():
    data = classic_pcap("<", False, [(1, 0, FRAMES[0])])
    damaged = data[:24] + struct.pack("<IIII", 1, 0, 10_000_000, 10) + bytes(100)
    with pytest.raises(PcapError, match="record 0 claims 10000000 bytes"):
        list(CaptureReader(io.BytesIO(damaged)))
    with pytest.raises(PcapError, match="not a pcap or pcapng file"):
        CaptureReader(io.BytesIO(b"RIFF\x00\x00\x00\x00WAVE"))
    with pytest.raises(PcapError, match="too short"):
        CaptureReader(io.BytesIO(b"\xd4\xc3"))
    version = bytearray(data)
    version[4] = 3
    with pytest.raises(PcapError, match="pcap version 3"):
        list(CaptureReader(io.BytesIO(bytes(version))))


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_interfaces_resolutions_and_blocks(order: str):
    nano = option(order, 9, b"\x09")
    binary = option(order, 9, bytes([0x80 | 20])) + option(order, 14, struct.pack(order + "q", 100))
    data = b"".join([
        shb(order),
        idb(order, LINKTYPE_ETHERNET),  # default: microseconds
        idb(order, LINKTYPE_RAW, options=nano),
        idb(order, LINKTYPE_LINUX_SLL2, options=binary),
        block(order, 5, bytes(16)),  # interface statistics: skipped
        epb(order, 0, 1_700_000_000_500_000, FRAMES[0]),
        epb(order, 1, 1_700_000_000_250_000_001, FRAMES[1]),
        epb(order, 2, 3 << 20, FRAMES[2]),  # 3 s in units of 2^-20 s, plus 100 s offset
        block(order, 3, struct.pack(order + "I", 5) + b"abcde"),  # simple packet block
        block(order, 0x0BAD, b"custom"),
    ])
    reader = CaptureReader(io.BytesIO(data))
    frames = list(reader)
    assert reader.format == "pcapng"
    assert [f.data for f in frames] == [*FRAMES, b"abcde"]
    assert [f.linktype for f in frames] == [1, 101, 276, 1]
    assert [f.interface for f in frames] == [0, 1, 2, 0]
    assert frames[0].timestamp_s == pytest.approx(1_700_000_000.5)
    assert frames[1].timestamp_s == pytest.approx(1_700_000_000.250000001, abs=1e-6)
    assert frames[2].timestamp_s == pytest.approx(103.0)
    assert frames[3].timestamp_s == frames[2].timestamp_s
    assert reader.stats.skipped_blocks == 2


def test_pcapng_new_section_switches_byte_order_and_interfaces():
    data = b"".join([
        shb("<"), idb("<", LINKTYPE_ETHERNET), epb("<", 0, 1_000_000, b"little"),
        shb(">"), idb(">", LINKTYPE_RAW), epb(">", 0, 2_000_000, b"big!"),
    ])
    frames = list(CaptureReader(io.BytesIO(data)))
    assert [(f.data, f.linktype, f.timestamp_s) for f in frames] == [
        (b"little", 1, 1.0), (b"big!", 101, 2.0)]


def test_pcapng_errors_and_truncation():
    good = shb("<") + idb("<", 1) + epb("<", 0, 0, b"x" * 10)
    reader = CaptureReader(io.BytesIO(good[:-6]))
    assert list(reader) == [] and reader.stats.truncated == 1
    with pytest.raises(PcapError, match="names interface 3, but only 1 are described"):
        list(CaptureReader(io.BytesIO(shb("<") + idb("<", 1) + epb("<", 3, 0, b"x"))))
    bad_len = shb("<") + struct.pack("<II", 6, 13) + bytes(8)
    with pytest.raises(PcapError, match="impossible length 13"):
        list(CaptureReader(io.BytesIO(bad_len)))
    no_bom = struct.pack("<II", 0x0A0D0D0A, 28) + b"\x00\x00\x00\x00" + bytes(16)
    with pytest.raises(PcapError, match="no byte-order magic"):
        list(CaptureReader(io.BytesIO(no_bom)))


def test_writer_round_trip(tmp_path: Path):
    path = tmp_path / "w.pcap"
    with PcapWriter(path, LINKTYPE_RAW, nanosecond=True) as w:
        w.write_all([(1.000000001, b"a"), (2.5, b"bb")])
    frames = list(read_capture(path))
    assert [(f.data, f.linktype) for f in frames] == [(b"a", 101), (b"bb", 101)]
    assert frames[0].timestamp_s == pytest.approx(1.000000001, abs=1e-9)


def _capture_loopback(tmp_path: Path, extra: list[str]) -> tuple[Path, list[bytes], int]:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    path = tmp_path / "lo.pcap"
    proc = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "-n", "-Z", "root", *extra, "-w", str(path),
         "udp", "port", str(port)],
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        if "listening" not in line:
            pytest.fail(f"tcpdump did not start: {line}")
        sent = [bytes([i]) * (20 + i) for i in range(10)] + [b"\xaa" * 3000]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for payload in sent:
                tx.sendto(payload, ("127.0.0.1", port))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if path.exists() and path.stat().st_size > 24 + 11 * 36:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        probe.close()
    return path, sent, port


@pytest.mark.tcpdump
@pytest.mark.raw_sockets
@pytest.mark.parametrize("extra", [[], ["--time-stamp-precision=nano"]])
def test_real_tcpdump_capture_on_loopback(tmp_path: Path, extra: list[str]):
    started = time.time()
    path, sent, port = _capture_loopback(tmp_path, extra)
    decoder = PacketDecoder()
    got = []
    for frame in read_capture(path):
        dgram = decoder.decode_frame(frame)
        assert started - 1 <= frame.timestamp_s <= time.time() + 1
        if dgram is not None:
            got.append(dgram)
    assert [d.payload for d in got] == sent
    assert {(d.dst, d.dport) for d in got} == {("127.0.0.1", port)}
    assert decoder.stats.malformed == 0
