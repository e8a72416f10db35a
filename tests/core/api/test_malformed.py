"""Every RPC driven with bad fields through a real gRPC channel against the real server: each
gets INVALID_ARGUMENT (or the code its proto comment promises) with the reasons, never an
internal error, and nothing is stored or changed by a refused request."""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from proto import callqa_pb2 as pb
from tests.core.api.api_server import ApiHost, api_settings, serving

SERVICE = pb.DESCRIPTOR.services_by_name["CallQa"]
BAD = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHost]:
    with serving(api_settings(tmp_path_factory.mktemp("malformed"))) as h:
        yield h


def _wav(channels: int, seconds: float = 0.5) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(int(8000 * seconds) * channels, dtype="<i2").tobytes())
    return out.getvalue()


def _stamp(seconds: int, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


def _with(message: Any, **fields: Any) -> Any:
    """`message` with `fields` set, Timestamps and optional fields included."""
    for name, value in fields.items():
        if isinstance(value, Timestamp):
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


def _frames(*frames: pb.AudioFrame) -> list[pb.AudioFrame]:
    return list(frames)


SETUP_OK = pb.CallSetup(encoding=pb.AUDIO_ENCODING_PCM16_LE, sample_rate_hz=8000)
ROUTE = pb.RubricRoute

# method -> [(request, expected code, words the status message must hold)]
CASES: dict[str, list[tuple[Any, grpc.StatusCode, str]]] = {
    "StreamAudio": [
        (_frames(), BAD, "CallSetup"),
        (_frames(pb.AudioFrame(audio=pb.AudioChunk(leg=pb.LEG_AGENT, payload=b"\0\0"))), BAD,
         "CallSetup"),
        (_frames(pb.AudioFrame(setup=pb.CallSetup(sample_rate_hz=8000))), BAD, "encoding"),
        (_frames(pb.AudioFrame(setup=pb.CallSetup(encoding=9, sample_rate_hz=8000))), BAD,
         "setup.encoding: 9"),
        (_frames(pb.AudioFrame(setup=pb.CallSetup(encoding=pb.AUDIO_ENCODING_PCMU,
                                                  sample_rate_hz=16000))), BAD, "8000"),
        (_frames(pb.AudioFrame(setup=pb.CallSetup(encoding=pb.AUDIO_ENCODING_PCM16_LE,
                                                  sample_rate_hz=44100))), BAD, "44100"),
        (_frames(pb.AudioFrame(setup=_with(pb.CallSetup(), encoding=1, sample_rate_hz=8000,
                                           rubric_id="../../etc/passwd"))), BAD, "rubric id"),
        (_frames(pb.AudioFrame(setup=_with(pb.CallSetup(), encoding=1, sample_rate_hz=8000,
                                           rubric_id="no-such-rubric"))), BAD, "no rubric"),
    ],
    "WatchAlerts": [(pb.AlertFilter(min_severity=7), BAD, "min_severity: 7")],
    "WatchCall": [(pb.CallRef(), BAD, "call_id: required"),
                  (pb.CallRef(call_id="no-such-call"), NOT_FOUND, "no-such-call")],
    "WatchCalls": [],  # no field can be malformed: any ids filter, see test_odd_values
    "ListLiveCalls": [],  # the same
    "GetCall": [(pb.CallRef(), BAD, "call_id: required"),
                (pb.CallRef(call_id="x'; DROP TABLE calls; --"), NOT_FOUND, "DROP")],
    "ListCalls": [
        (pb.ListCallsRequest(page_token="-5"), BAD, "page_token"),
        (pb.ListCallsRequest(page_token="abc"), BAD, "page_token"),
        (pb.ListCallsRequest(page_token="9" * 30), BAD, "page_token"),
        (pb.ListCallsRequest(page_token="²"), BAD, "page_token"),
        (pb.ListCallsRequest(status=42), BAD, "status: 42"),
        (_with(pb.ListCallsRequest(), since=_stamp(10**13)), BAD, "since: seconds"),
        (_with(pb.ListCallsRequest(), until=_stamp(0, -1)), BAD, "until: nanos"),
        (_with(pb.ListCallsRequest(), min_score=float("nan")), BAD, "min_score: nan"),
        (_with(pb.ListCallsRequest(), min_score=90.0, max_score=10.0), BAD, "max_score"),
        (pb.ListCallsRequest(rubric_id="Bad Id"), BAD, "rubric_id"),
    ],
    "SearchTranscripts": [
        (pb.SearchRequest(), BAD, "query"),
        (pb.SearchRequest(query="   "), BAD, "query"),
        (pb.SearchRequest(query="x", speaker=9), BAD, "speaker: 9"),
        (_with(pb.SearchRequest(query="x"), since=_stamp(-10**12)), BAD, "since"),
    ],
    "ScoreRecording": [
        (pb.ScoreRecordingRequest(), BAD, "wav: required"),
        (pb.ScoreRecordingRequest(wav=b"not a wav file at all"), BAD, "RIFF"),
        (pb.ScoreRecordingRequest(wav=_wav(2)[:30]), BAD, "wav"),
        (pb.ScoreRecordingRequest(wav=_wav(2), agent_channel=7), BAD, "agent_channel: 7"),
        (pb.ScoreRecordingRequest(wav=_wav(1), mono_speaker=pb.SPEAKER_ANY), BAD,
         "mono_speaker"),
        (pb.ScoreRecordingRequest(wav=_wav(2), agent_channel=pb.AGENT_CHANNEL_MONO,
                                  mono_speaker=pb.SPEAKER_AGENT), BAD, "2 channels"),
        (pb.ScoreRecordingRequest(wav=_wav(1), agent_channel=pb.AGENT_CHANNEL_LEFT), BAD,
         "mono"),
        (pb.ScoreRecordingRequest(wav=_wav(1)), BAD, "mono_speaker"),
        (pb.ScoreRecordingRequest(wav=_wav(2), rubric_id="/etc/passwd"), BAD, "rubric id"),
        (pb.ScoreRecordingRequest(wav=_wav(2), rubric_id="no-such-rubric"), NOT_FOUND,
         "no-such-rubric"),
        (_with(pb.ScoreRecordingRequest(wav=_wav(2)), started_at=_stamp(0, 10**9)), BAD,
         "started_at: nanos"),
    ],
    "ListRubrics": [],  # no fields
    "PutRubric": [
        (pb.PutRubricRequest(), BAD, "yaml"),
        (pb.PutRubricRequest(yaml="{{{ not yaml"), BAD, ""),
        (pb.PutRubricRequest(yaml="format: 1\nid: x\n", draft=True, activate=True), BAD,
         "draft"),
        (pb.PutRubricRequest(yaml="format: 1\nid: Not Valid\nlanguage: zh\nitems: []\n"), BAD,
         "id"),
    ],
    "ActivateRubric": [
        (pb.ActivateRubricRequest(version=1), BAD, "rubric_id: required"),
        (pb.ActivateRubricRequest(rubric_id="default-zh"), BAD, "version: required"),
        (pb.ActivateRubricRequest(rubric_id="UPPER", version=1), BAD, "rubric_id"),
        (pb.ActivateRubricRequest(rubric_id="no-such-rubric", version=1), NOT_FOUND, ""),
    ],
    "ListRubricRoutes": [],  # no fields
    "SetRubricRoutes": [
        (pb.SetRubricRoutesRequest(routes=[ROUTE(value="A1", rubric_id="default-zh")]), BAD,
         "routes[0].kind: required"),
        (pb.SetRubricRoutesRequest(routes=[ROUTE(kind=9, value="A1")]), BAD, "routes[0].kind: 9"),
        (pb.SetRubricRoutesRequest(routes=[ROUTE(kind=pb.ROUTE_KIND_AGENT)]), BAD,
         "routes[0].value: required"),
        (pb.SetRubricRoutesRequest(routes=[ROUTE(kind=1, value="A1", rubric_id="No Way")]), BAD,
         "routes[0].rubric_id"),
        (pb.SetRubricRoutesRequest(routes=[ROUTE(kind=1, value="A1", rubric_id="no-such")]),
         BAD, "no-such"),
        (pb.SetRubricRoutesRequest(routes=[ROUTE(kind=1, value="A1", rubric_id="default-zh"),
                                           ROUTE(kind=1, value="A1", rubric_id="default-en")]),
         BAD, "twice"),
    ],
    "GetCapacity": [],  # no fields
    "RunBenchmark": [
        (pb.RunBenchmarkRequest(max_lines=2, step_lines=9), BAD, "step_lines"),
        (pb.RunBenchmarkRequest(max_lines=5000), BAD, "max_lines"),
        (pb.RunBenchmarkRequest(max_lines=2, step_s=float("nan")), BAD, "step_s: nan"),
        (pb.RunBenchmarkRequest(max_lines=2, step_s=-1.0), BAD, "step_s"),
        (pb.RunBenchmarkRequest(max_lines=2, audio=9), BAD, "audio: 9"),
        (pb.RunBenchmarkRequest(max_lines=2, audio=pb.BENCHMARK_AUDIO_DIRECTORY,
                                audio_dir="/no/such/folder"), BAD, "/no/such/folder"),
    ],
    "ListenCall": [],  # filled below when the proto has it
}  # fmt: skip
if "ListenRequest" in pb.DESCRIPTOR.message_types_by_name:
    CASES["ListenCall"] = [
        (pb.ListenRequest(), BAD, "call_id: required"),
        (pb.ListenRequest(call_id="no-such-call", leg=9), BAD, "leg: 9"),
        (pb.ListenRequest(call_id="no-such-call"), NOT_FOUND, "no-such-call"),
    ]


def _call(host: ApiHost, method: str, request: Any) -> Any:
    """Run one RPC to its end; its responses."""
    descriptor = SERVICE.methods_by_name[method]
    reply = getattr(host.stub(), method)(request, timeout=30)
    return list(reply) if descriptor.server_streaming else reply


def test_every_rpc_is_covered() -> None:
    assert set(CASES) >= {m.name for m in SERVICE.methods}


@pytest.mark.parametrize("method", sorted(m.name for m in SERVICE.methods))
def test_bad_fields_are_refused_with_reasons(host: ApiHost, method: str) -> None:
    before = host.stub().ListCalls(pb.ListCallsRequest(limit=1000)).calls
    routes = host.stub().ListRubricRoutes(pb.ListRubricRoutesRequest())
    for request, code, words in CASES[method]:
        with pytest.raises(grpc.RpcError) as err:
            _call(host, method, iter(request) if isinstance(request, list) else request)
        assert err.value.code() == code, (method, request, err.value.details())
        assert words in (err.value.details() or ""), (method, err.value.details())
    # Refused requests change nothing.
    assert host.stub().ListCalls(pb.ListCallsRequest(limit=1000)).calls == before
    assert host.stub().ListRubricRoutes(pb.ListRubricRoutesRequest()) == routes


def test_odd_values_that_are_not_malformed_are_served(host: ApiHost) -> None:
    stub = host.stub()
    odd = ["\0", "'; DROP TABLE calls; --", "坐席" * 500, "%", "*"]
    assert stub.ListLiveCalls(pb.ListLiveCallsRequest(agent_ids=odd, team_ids=odd)).calls == []
    for query in ('"', '"unbalanced', "AND", "OR NOT", "*", "NEAR(a b)", "^x", "a:b", "(",
                  "\0", "投诉 OR", "'"):  # fmt: skip
        assert stub.SearchTranscripts(pb.SearchRequest(query=query)).total == 0, query
    assert stub.ListCalls(pb.ListCallsRequest(limit=4_000_000_000, page_token="9" * 18)).calls \
        == []  # fmt: skip
    for method in ("WatchCalls", "WatchAlerts"):
        request = (pb.WatchCallsRequest(agent_ids=odd) if method == "WatchCalls"
                   else pb.AlertFilter(agent_ids=odd, call_id="\0"))  # fmt: skip
        with pytest.raises(grpc.RpcError) as err:  # an open stream until the deadline
            list(getattr(stub, method)(request, timeout=0.5))
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, method


def test_bad_audio_chunks_are_dropped_counted_and_the_call_kept(host: ApiHost) -> None:
    tone = (np.sin(np.arange(8000) * 0.3) * 8000).astype("<i2").tobytes()
    frames = [
        pb.AudioFrame(setup=SETUP_OK),
        pb.AudioFrame(audio=pb.AudioChunk(leg=pb.LEG_AGENT, payload=tone)),
        pb.AudioFrame(audio=pb.AudioChunk(leg=pb.LEG_UNSPECIFIED, payload=tone)),
        pb.AudioFrame(audio=pb.AudioChunk(leg=pb.LEG_CUSTOMER, payload=b"\1\2\3")),
        pb.AudioFrame(setup=SETUP_OK),
        pb.AudioFrame(),
        pb.AudioFrame(audio=pb.AudioChunk(leg=pb.LEG_CUSTOMER, payload=tone)),
        pb.AudioFrame(end=pb.CallEnd()),
    ]
    events = list(host.stub().StreamAudio(iter(frames), timeout=60))
    assert events[-1].WhichOneof("event") == "ended", events[-1]
    stored = host.stub().GetCall(pb.CallRef(call_id=events[0].call_id))
    assert '"malformed_frames": 4' in stored.metadata_json
    assert stored.duration_s == pytest.approx(1.0, abs=0.05)
    Path(stored.recording_path).unlink(missing_ok=True)


def test_bytes_that_are_no_message_are_invalid_argument(host: ApiHost) -> None:
    channel = grpc.insecure_channel(host.address)
    garbage = b"\xff\xff\xff\x07"
    for method in SERVICE.methods:
        path = f"/{SERVICE.full_name}/{method.name}"
        with pytest.raises(grpc.RpcError) as err:
            if method.client_streaming:
                list(channel.stream_stream(path)(iter([garbage]), timeout=10))
            elif method.server_streaming:
                list(channel.unary_stream(path)(garbage, timeout=10))
            else:
                channel.unary_unary(path)(garbage, timeout=10)
        assert err.value.code() == BAD, (method.name, err.value.details())
        assert f"not a valid {method.input_type.name} message" in err.value.details()
    # A stream whose later message is no AudioFrame: the call is kept and scored, then the
    # stream fails with INVALID_ARGUMENT.
    frames = [pb.AudioFrame(setup=SETUP_OK).SerializeToString(),
              pb.AudioFrame(audio=pb.AudioChunk(leg=pb.LEG_AGENT, payload=b"\1\0" * 4000))
              .SerializeToString(), garbage]  # fmt: skip
    stream = channel.stream_stream(f"/{SERVICE.full_name}/StreamAudio",
                                   response_deserializer=pb.CallEvent.FromString)  # fmt: skip
    events: list[pb.CallEvent] = []
    with pytest.raises(grpc.RpcError) as err:
        for event in stream(iter(frames), timeout=30):
            events.append(event)
    assert err.value.code() == BAD
    assert [e.WhichOneof("event") for e in events][-1] == "ended"
    stored = host.stub().GetCall(pb.CallRef(call_id=events[0].call_id))
    assert stored.duration_s == pytest.approx(0.5, abs=0.05)
