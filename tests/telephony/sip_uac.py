"""A small blocking SIP user agent (an SRC's side of a recording session) over UDP or TCP,
and an RTP sender of tones, for tests that drive a real `callqa serve`."""

from __future__ import annotations

import math
import secrets
import socket
import struct
import time

import numpy as np

from kernels.g711 import ulaw_encode
from telephony.sip.message import SipMessage, SipRequest, SipResponse, StreamFramer, parse_message

HOST = "127.0.0.1"
RETRANSMIT_S = 0.5
FRAME = 160
FRAME_S = 0.02
BOUNDARY = "rs-boundary-77"


def multipart(sdp: str, metadata: str) -> tuple[str, bytes]:
    """The SIPREC body: the SDP offer and the recording metadata (RFC 7866 §9)."""
    body = (
        f"--{BOUNDARY}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n"
        f"--{BOUNDARY}\r\nContent-Type: application/rs-metadata+xml\r\n"
        f"Content-Disposition: recording-session\r\n\r\n{metadata}\r\n--{BOUNDARY}--\r\n"
    )
    return f"multipart/mixed;boundary={BOUNDARY}", body.encode()


class Uac:
    """One recording session's dialog, seen from the SRC."""

    def __init__(self, transport: str, port: int) -> None:
        self.transport = transport
        self.server = (HOST, port)
        if transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind((HOST, 0))
        else:
            self.sock = socket.create_connection(self.server, timeout=5)
            self.framer = StreamFramer()
        self.local_port = int(self.sock.getsockname()[1])
        self.call_id = f"src-{secrets.token_hex(6)}"
        self.from_tag = secrets.token_hex(4)
        self.to_tag = ""
        self.cseq = 0
        self.invite_cseq = 0
        self.pending: list[SipMessage] = []
        self.server_requests: list[SipRequest] = []

    def close(self) -> None:
        self.sock.close()

    def _message(self, method: str, cseq: int, body: bytes, content_type: str,
                 headers: str) -> bytes:  # fmt: skip
        tag = f";tag={self.to_tag}" if self.to_tag else ""
        via = "TCP" if self.transport == "tcp" else "UDP"
        ctype = f"Content-Type: {content_type}\r\n" if content_type else ""
        contact = f"sip:src@{HOST}:{self.local_port}"
        if self.transport == "tcp":
            contact += ";transport=tcp"
        cseq_method = "INVITE" if method == "ACK" else method
        return (
            f"{method} sip:srs@{HOST}:{self.server[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/{via} {HOST}:{self.local_port};branch=z9hG4bK{secrets.token_hex(6)}"
            f";rport\r\nMax-Forwards: 70\r\n"
            f"From: <sip:sbc@{HOST}>;tag={self.from_tag}\r\nTo: <sip:recorder@{HOST}>{tag}\r\n"
            f"Call-ID: {self.call_id}\r\nCSeq: {cseq} {cseq_method}\r\n"
            f"Contact: <{contact}>;+sip.src\r\n{headers}{ctype}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    def _send(self, data: bytes) -> None:
        if self.transport == "udp":
            self.sock.sendto(data, self.server)
        else:
            self.sock.sendall(data)

    def _receive(self, timeout_s: float) -> SipMessage | None:
        if self.pending:
            return self.pending.pop(0)
        self.sock.settimeout(timeout_s)
        try:
            if self.transport == "udp":
                data, _ = self.sock.recvfrom(65535)
                return parse_message(data)
            while not self.pending:
                data = self.sock.recv(65535)
                if not data:
                    return None
                self.pending.extend(self.framer.feed(data))
            return self.pending.pop(0)
        except TimeoutError:
            return None

    def _answer(self, request: SipRequest) -> None:
        """Requests the server sends (its BYE after an RTP timeout) get a 200."""
        self.server_requests.append(request)
        head = "".join(f"{name}: {value}\r\n" for name, value in request.headers
                       if name.lower() in ("via", "from", "to", "call-id", "cseq"))  # fmt: skip
        self._send(f"SIP/2.0 200 OK\r\n{head}Content-Length: 0\r\n\r\n".encode())

    def request(self, method: str, body: bytes = b"", content_type: str = "",
                headers: str = "", timeout_s: float = 8.0) -> SipResponse:  # fmt: skip
        """Send a request in the dialog; its final response (UDP requests are resent)."""
        self.cseq += 1
        if method == "INVITE":
            self.invite_cseq = self.cseq
        data = self._message(method, self.cseq, body, content_type, headers)
        deadline = time.monotonic() + timeout_s
        self._send(data)
        resend = time.monotonic() + RETRANSMIT_S
        while time.monotonic() < deadline:
            msg = self._receive(0.1)
            if msg is None:
                if self.transport == "udp" and time.monotonic() > resend:
                    self._send(data)
                    resend = time.monotonic() + RETRANSMIT_S
                continue
            if isinstance(msg, SipRequest):
                self._answer(msg)
            elif msg.cseq == (self.cseq, method) and msg.status >= 200:
                if method == "INVITE" and msg.status < 300 and not self.to_tag:
                    self.to_tag = msg.to_addr.tag or ""
                if method == "INVITE":
                    self._send(self._message("ACK", self.invite_cseq, b"", "", ""))
                return msg
        raise AssertionError(f"no final response to {method} {self.call_id}")

    def listen(self, wait_s: float) -> None:
        """Answer what the server sends for a while (as an SRC idling in a pause does)."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            msg = self._receive(0.1)
            if isinstance(msg, SipRequest):
                self._answer(msg)


def tone(freq_hz: float, seconds: float, amplitude: float = 0.01) -> bytes:
    """A quiet sine as G.711 mu-law: quiet enough that the VAD hears no speech."""
    t = np.arange(int(seconds * 8000)) / 8000.0
    pcm = (amplitude * 32767 * np.sin(2 * math.pi * freq_hz * t)).astype(np.int16)
    return bytes(ulaw_encode(pcm))


def send_rtp(ports: list[int], payloads: list[bytes], seq0: int = 0, ts0: int = 0) -> int:
    """Send one PCMU stream to each port at real pace (20 ms packets); returns the packets
    sent per stream. `seq0`/`ts0` continue a stream after a pause."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    count = min(len(p) for p in payloads) // FRAME
    start = time.monotonic()
    try:
        for i in range(count):
            for k, (port, payload) in enumerate(zip(ports, payloads, strict=True)):
                head = struct.pack("!BBHII", 0x80, 0, (seq0 + i) & 0xFFFF,
                                   (ts0 + FRAME * i) & 0xFFFFFFFF, 0x5EC0000 + k)  # fmt: skip
                sock.sendto(head + payload[i * FRAME : (i + 1) * FRAME], (HOST, port))
            delay = start + (i + 1) * FRAME_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    finally:
        sock.close()
    return count
