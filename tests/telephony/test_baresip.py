"""baresip, a real SIP phone, places a plain one-stream call to the recording server."""

from __future__ import annotations

import asyncio
import shutil
import socket
import wave
from pathlib import Path

import numpy as np
import pytest

from core.ports import free_port, free_port_range
from kernels.g711 import ulaw_decode, ulaw_encode
from telephony.server import RecordingServer, ServerSettings
from telephony.siprec import AgentPatterns
from tests.telephony.test_server_udp_tcp import (
    HOST,
    Ended,
    find_exact,
    read_wav,
)

CALL_S = 4
AUDIO_S = 3.0


def _phone_audio(path: Path) -> np.ndarray:
    """A warbling tone made only of G.711-exact samples, so PCMU carries it unchanged."""
    t = np.arange(int(AUDIO_S * 8000)) / 8000.0
    pcm = 6000 * np.sin(2 * np.pi * 440 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t))
    exact = ulaw_decode(ulaw_encode(pcm.astype(np.int16)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(exact.astype("<i2").tobytes())
    return exact


def _baresip_config(folder: Path, sip_port: int, rtp: tuple[int, int], source: Path) -> None:
    folder.mkdir()
    (folder / "config").write_text(
        "poll_method epoll\n"
        f"sip_listen {HOST}:{sip_port}\n"
        f"audio_source aufile,{source}\n"
        f"audio_player aufile,{folder / 'unused.wav'}\n"
        "audio_srate 8000\naudio_channels 1\n"
        f"rtp_ports {rtp[0]}-{rtp[1]}\n"
        "module_path /usr/lib/baresip/modules\n"
        "module g711.so\nmodule aufile.so\nmodule_app account.so\nmodule_app menu.so\n"
    )
    (folder / "accounts").write_text(f"<sip:1001@{HOST}>;regint=0;audio_codecs=PCMU\n")


@pytest.mark.baresip
def test_baresip_call_is_recorded_as_one_stream(tmp_path: Path) -> None:
    baresip = shutil.which("baresip") or "baresip"
    sent = _phone_audio(tmp_path / "phone.wav")
    first, last = free_port_range(40)
    middle = first + 20
    ended = Ended()

    async def main() -> str:
        settings = ServerSettings(
            recordings_dir=tmp_path / "spool",
            host=HOST,
            port=0,
            rtp_port_first=first,
            rtp_port_last=middle - 1,
            agent_patterns=AgentPatterns.parse("1000-1999"),
            idle_check_interval_s=0.2,
        )
        server = RecordingServer(settings, on_call_ended=ended)
        await server.start()
        phone_port = free_port(socket.SOCK_DGRAM)
        _baresip_config(tmp_path / "baresip", phone_port, (middle, last), tmp_path / "phone.wav")
        try:
            proc = await asyncio.create_subprocess_exec(
                baresip, "-f", str(tmp_path / "baresip"),
                "-e", f"/dial sip:srs@{HOST}:{server.udp_port}", "-t", str(CALL_S),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            output, _ = await asyncio.wait_for(proc.communicate(), 20)
            await ended.wait(1, timeout=5)
        finally:
            await server.stop()
        return output.decode(errors="replace")

    log = asyncio.run(main())
    assert ended.calls, log[-2000:]
    info = ended.calls[0]
    assert info.source == "sip"
    assert info.end_reason == "bye", log[-2000:]
    assert info.channels == 1
    assert info.mono_speaker == "agent"
    assert info.agent_id == "1001"
    assert info.caller == f"sip:1001@{HOST}"
    stats = info.leg_stats["agent"]
    assert stats.received >= AUDIO_S * 50
    assert stats.lost == 0
    rec = read_wav(info.recording_path)
    assert rec.shape[1] == 1
    assert find_exact(rec[:, 0], sent) >= 0, "the recording differs from what the phone sent"
