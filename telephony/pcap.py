"""Reading packet capture files: classic pcap and pcapng.

Classic pcap comes in either byte order with microsecond (magic ``a1b2c3d4``) or nanosecond
(``a1b23c4d``) timestamps. pcapng is read block by block: section headers (each may switch
the byte order), interface descriptions (each interface has its own link type, snap length,
timestamp resolution and offset), enhanced, simple and obsolete packet blocks; every other
block is skipped. A file cut short in its last record (a capture that was killed) ends the
iteration quietly and is counted in ``stats.truncated``; damage anywhere else raises
:class:`PcapError` saying where.

Files are read as a stream, so a capture larger than memory is fine.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 0x00000001
PCAPNG_PB = 0x00000002
PCAPNG_SPB = 0x00000003
PCAPNG_EPB = 0x00000006
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_ENDOFOPT = 0
OPT_IF_TSRESOL = 9
OPT_IF_TSOFFSET = 14

MAX_RECORD_BYTES = 256 * 1024
MAX_BLOCK_BYTES = 16 * 1024 * 1024
DEFAULT_TSRESOL = 6


class PcapError(ValueError):
    """The capture file cannot be read; the message says what and where."""


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One captured link-layer frame."""

    timestamp_s: float  # seconds since the Unix epoch
    linktype: int
    data: bytes
    original_length: int
    interface: int = 0


@dataclass
class CaptureStats:
    frames: int = 0
    truncated: int = 0  # records cut short at the end of the file
    skipped_blocks: int = 0  # pcapng blocks that carry no packet


@dataclass
class _Interface:
    linktype: int
    snaplen: int
    divisor: int = 10**DEFAULT_TSRESOL  # timestamp units per second
    offset_s: int = 0


class CaptureReader:
    """Iterates over the frames of a pcap or pcapng stream (detected from its first bytes)."""

    def __init__(self, stream: BinaryIO, name: str = "capture") -> None:
        self.name = name
        self.stats = CaptureStats()
        self._f = stream
        head = stream.read(4)
        if len(head) < 4:
            raise PcapError(f"{name}: too short to be a capture file ({len(head)} bytes)")
        self._head = head
        self._last_ts = 0.0  # simple packet blocks carry no time: they get the last one seen
        magic_le = struct.unpack("<I", head)[0]
        magic_be = struct.unpack(">I", head)[0]
        if magic_le == PCAPNG_SHB:
            self.format = "pcapng"
        elif PCAP_MAGIC_US in (magic_le, magic_be) or PCAP_MAGIC_NS in (magic_le, magic_be):
            self.format = "pcap"
        else:
            raise PcapError(
                f"{name}: not a pcap or pcapng file (starts with {head.hex()}); "
                "save the capture as pcap or pcapng (tcpdump -w, Wireshark 'Save As')"
            )

    def __iter__(self) -> Iterator[CapturedFrame]:
        return self._pcap() if self.format == "pcap" else self._pcapng()

    # ------------------------------------------------------------------ classic pcap

    def _pcap(self) -> Iterator[CapturedFrame]:
        rest = self._f.read(20)
        if len(rest) < 20:
            raise PcapError(f"{self.name}: the pcap file header is cut short")
        head = self._head + rest
        little = struct.unpack("<I", self._head)[0] in (PCAP_MAGIC_US, PCAP_MAGIC_NS)
        order = "<" if little else ">"
        magic, major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack(
            order + "IHHiIII", head
        )
        if major != 2:
            raise PcapError(f"{self.name}: pcap version {major} is not supported (expected 2)")
        divisor = 1_000_000_000 if magic == PCAP_MAGIC_NS else 1_000_000
        linktype = network & 0x0FFFFFFF
        record = struct.Struct(order + "IIII")
        read = self._f.read
        index = 0
        while True:
            rh = read(16)
            if not rh:
                return
            if len(rh) < 16:
                self.stats.truncated += 1
                return
            sec, frac, incl, orig = record.unpack(rh)
            if incl > MAX_RECORD_BYTES:
                raise PcapError(
                    f"{self.name}: record {index} claims {incl} bytes; the file is damaged"
                )
            data = read(incl)
            if len(data) < incl:
                self.stats.truncated += 1
                return
            index += 1
            self.stats.frames += 1
            yield CapturedFrame(sec + frac / divisor, linktype, data, orig)

    # ------------------------------------------------------------------ pcapng

    def _pcapng(self) -> Iterator[CapturedFrame]:
        read = self._f.read
        pending = self._head
        interfaces: list[_Interface] = []
        order = "<"
        offset = 0
        while True:
            head = pending + read(8 - len(pending))
            pending = b""
            if not head:
                return
            if len(head) < 8:
                self.stats.truncated += 1
                return
            if head[:4] == b"\x0a\x0d\x0d\x0a":
                bom = read(4)
                if len(bom) < 4:
                    self.stats.truncated += 1
                    return
                if bom == b"\x1a\x2b\x3c\x4d":
                    order = ">"
                elif bom == b"\x4d\x3c\x2b\x1a":
                    order = "<"
                else:
                    raise PcapError(
                        f"{self.name}: section header at byte {offset} has no byte-order magic"
                    )
                interfaces = []
                prefix = bom
            else:
                prefix = b""
            btype, total = struct.unpack(order + "II", head)
            if total < 12 or total % 4 or total > MAX_BLOCK_BYTES:
                raise PcapError(
                    f"{self.name}: block at byte {offset} has an impossible length {total}"
                )
            body = prefix + read(total - 8 - len(prefix))
            if len(body) < total - 8:
                self.stats.truncated += 1
                return
            body = body[:-4]
            frame = self._block(btype, body, order, interfaces, offset)
            offset += total
            if frame is not None:
                self.stats.frames += 1
                yield frame

    def _block(
        self, btype: int, body: bytes, order: str, interfaces: list[_Interface], offset: int
    ) -> CapturedFrame | None:
        try:
            if btype == PCAPNG_EPB:
                iface_id, hi, lo, cap, orig = struct.unpack_from(order + "IIIII", body)
                iface = self._interface(interfaces, iface_id, offset)
                if 20 + cap > len(body):
                    raise PcapError(
                        f"{self.name}: packet block at byte {offset} is shorter than its data"
                    )
                ts = (hi << 32 | lo) / iface.divisor + iface.offset_s
                self._last_ts = ts
                return CapturedFrame(ts, iface.linktype, body[20 : 20 + cap], orig, iface_id)
            if btype == PCAPNG_SPB:
                (orig,) = struct.unpack_from(order + "I", body)
                iface = self._interface(interfaces, 0, offset)
                cap = len(body) - 4
                if iface.snaplen:
                    cap = min(cap, iface.snaplen)
                cap = min(cap, orig)
                return CapturedFrame(self._last_ts, iface.linktype, body[4 : 4 + cap], orig, 0)
            if btype == PCAPNG_PB:
                iface_id, _drops, hi, lo, cap, orig = struct.unpack_from(order + "HHIIII", body)
                iface = self._interface(interfaces, iface_id, offset)
                if 20 + cap > len(body):
                    raise PcapError(
                        f"{self.name}: packet block at byte {offset} is shorter than its data"
                    )
                ts = (hi << 32 | lo) / iface.divisor + iface.offset_s
                self._last_ts = ts
                return CapturedFrame(ts, iface.linktype, body[20 : 20 + cap], orig, iface_id)
            if btype == PCAPNG_IDB:
                linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body)
                iface = _Interface(linktype, snaplen)
                self._interface_options(iface, body, 8, order)
                interfaces.append(iface)
                return None
            if btype == PCAPNG_SHB:
                major = struct.unpack_from(order + "H", body, 4)[0]
                if major != 1:
                    raise PcapError(
                        f"{self.name}: pcapng version {major} at byte {offset} is not supported"
                    )
                return None
        except struct.error as exc:
            raise PcapError(
                f"{self.name}: block type {btype} at byte {offset} is too short"
            ) from exc
        self.stats.skipped_blocks += 1
        return None

    def _interface(self, interfaces: list[_Interface], index: int, offset: int) -> _Interface:
        if index >= len(interfaces):
            raise PcapError(
                f"{self.name}: packet block at byte {offset} names interface {index}, "
                f"but only {len(interfaces)} are described"
            )
        return interfaces[index]

    @staticmethod
    def _interface_options(iface: _Interface, body: bytes, pos: int, order: str) -> None:
        while pos + 4 <= len(body):
            code, length = struct.unpack_from(order + "HH", body, pos)
            pos += 4
            if code == OPT_ENDOFOPT:
                return
            value = body[pos : pos + length]
            if code == OPT_IF_TSRESOL and len(value) >= 1:  # `length` may run past the block
                res = value[0]
                iface.divisor = 2 ** (res & 0x7F) if res & 0x80 else 10**res
            elif code == OPT_IF_TSOFFSET and len(value) >= 8:
                iface.offset_s = struct.unpack(order + "q", value[:8])[0]
            pos += length + (-length % 4)


def read_capture(path: Path | str) -> Iterator[CapturedFrame]:
    """Every frame of a pcap or pcapng file, in file order."""
    path = Path(path)
    with open(path, "rb") as f:
        yield from CaptureReader(f, str(path))


class PcapWriter:
    """Writes a classic little-endian pcap file (microsecond or nanosecond timestamps)."""

    def __init__(
        self,
        path: Path | str,
        linktype: int = LINKTYPE_ETHERNET,
        *,
        nanosecond: bool = False,
        snaplen: int = 65535,
    ) -> None:
        self.path = Path(path)
        self._divisor = 1_000_000_000 if nanosecond else 1_000_000
        self._f = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        magic = PCAP_MAGIC_NS if nanosecond else PCAP_MAGIC_US
        self._f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))

    def write(self, timestamp_s: float, data: bytes) -> None:
        ticks = round(timestamp_s * self._divisor)
        sec, frac = divmod(ticks, self._divisor)
        self._f.write(struct.pack("<IIII", sec, frac, len(data), len(data)))
        self._f.write(data)

    def write_all(self, frames: Iterable[tuple[float, bytes]]) -> None:
        for ts, data in frames:
            self.write(ts, data)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
