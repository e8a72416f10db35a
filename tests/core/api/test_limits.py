"""The limits the proto promises, enforced by the real server over a real channel: StreamAudio
at the box's maximum of live calls gets RESOURCE_EXHAUSTED (and a call is taken again once one
has ended), and a request over 64 MiB gets RESOURCE_EXHAUSTED."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import grpc
import pytest

from core.api.server import MAX_MESSAGE_BYTES
from proto import callqa_pb2 as pb
from tests.core.api.api_server import ApiHost, api_settings, serving

SETUP = pb.CallSetup(encoding=pb.AUDIO_ENCODING_PCM16_LE, sample_rate_hz=8000, agent_id="L1")


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHost]:
    with serving(api_settings(tmp_path_factory.mktemp("limits"), sip_max_sessions=2)) as h:
        yield h


class OpenStream:
    """A StreamAudio call kept open until `end()`; its events are collected on a thread."""

    def __init__(self, host: ApiHost) -> None:
        self.frames: queue.Queue[pb.AudioFrame | None] = queue.Queue()
        self.frames.put(pb.AudioFrame(setup=SETUP))
        self.frames.put(pb.AudioFrame(audio=pb.AudioChunk(leg=pb.LEG_AGENT, payload=b"\0" * 320)))
        self.events: list[pb.CallEvent] = []
        self.error: grpc.RpcError | None = None
        self.started = threading.Event()
        self._call = host.stub().StreamAudio(iter(self.frames.get, None), timeout=60)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._call:
                self.events.append(event)
                self.started.set()
        except grpc.RpcError as exc:
            self.error = exc
            self.started.set()

    def end(self) -> None:
        self.frames.put(pb.AudioFrame(end=pb.CallEnd()))
        self.frames.put(None)
        self._thread.join(30)


def test_stream_audio_at_the_session_limit_is_resource_exhausted(host: ApiHost) -> None:
    first, second = OpenStream(host), OpenStream(host)
    assert first.started.wait(10) and second.started.wait(10)
    assert first.error is None and second.error is None
    third = OpenStream(host)
    third.started.wait(10)
    third.end()
    assert third.error is not None and third.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "sip_max_sessions 2" in third.error.details()
    live = host.stub().ListLiveCalls(pb.ListLiveCallsRequest())
    assert len(live.calls) == 2  # the refused stream opened no call
    first.end()
    assert first.events[-1].WhichOneof("event") == "ended"
    again = OpenStream(host)  # a call has ended: there is room again
    assert again.started.wait(10) and again.error is None
    for stream in (second, again):
        stream.end()
        assert stream.events[-1].WhichOneof("event") == "ended"


def test_a_request_over_64_mib_is_resource_exhausted(host: ApiHost) -> None:
    assert MAX_MESSAGE_BYTES == 64 * 1024 * 1024  # what proto/callqa.proto states
    before = host.stub().ListCalls(pb.ListCallsRequest()).calls
    huge = pb.ScoreRecordingRequest(wav=b"\0" * (MAX_MESSAGE_BYTES + 1))
    with pytest.raises(grpc.RpcError) as err:
        host.stub().ScoreRecording(huge, timeout=60)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert host.stub().ListCalls(pb.ListCallsRequest()).calls == before
