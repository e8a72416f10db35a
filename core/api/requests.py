"""What makes a request to the API malformed, checked before its method runs.

`problems` walks any request message: every enum field must hold a value the proto defines,
every Timestamp a real time, every floating-point number a finite one; then the rules of
that message (`RULES`: required fields, ids of the right form, fields that go together).
`RequestCheck` refuses a unary request with problems with INVALID_ARGUMENT, one problem per
line of the status message, so that no malformed field reaches a method and turns into an
internal error. A streamed request (StreamAudio) is read, and checked, by its method.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from core.rubric.schema import ID_PATTERN
from proto import callqa_pb2 as pb

# google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
MIN_SECONDS, MAX_SECONDS = -62_135_596_800, 253_402_300_799
MAX_NANOS = 999_999_999
MAX_ID_CHARS = 200
MAX_OFFSET = 2**63  # SQLite's integers


def _timestamp_problem(stamp: Any) -> str | None:
    if not MIN_SECONDS <= stamp.seconds <= MAX_SECONDS:
        return f"seconds {stamp.seconds} is outside years 1 to 9999"
    if not 0 <= stamp.nanos <= MAX_NANOS:
        return f"nanos {stamp.nanos} is outside 0 to {MAX_NANOS}"
    return None


def _value_problem(field: FieldDescriptor, value: Any) -> str | None:
    if field.type == FieldDescriptor.TYPE_ENUM and value not in field.enum_type.values_by_number:
        return f"{value} is not one of the {field.enum_type.name} values"
    floating = field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)
    if floating and not math.isfinite(value):
        return f"{value} is not a finite number"
    return None


def _walk(message: Message, prefix: str, out: list[str]) -> None:
    rule = RULES.get(message.DESCRIPTOR.name)
    if rule is not None:
        out.extend(prefix + problem for problem in rule(message))
    for field, value in message.ListFields():
        name = f"{prefix}{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            continue  # map<string, string>: any text
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            items = value if _repeated(field) else [value]
            for i, item in enumerate(items):
                where = f"{name}[{i}]" if _repeated(field) else name
                if item.DESCRIPTOR.full_name == "google.protobuf.Timestamp":
                    why = _timestamp_problem(item)
                    if why:
                        out.append(f"{where}: {why}")
                else:
                    _walk(item, f"{where}.", out)
            continue
        for i, item in enumerate(value if _repeated(field) else [value]):
            why = _value_problem(field, item)
            if why:
                out.append(f"{name}{f'[{i}]' if _repeated(field) else ''}: {why}")


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _required(value: Any, name: str) -> list[str]:
    return [] if value else [f"{name}: required"]


def _rubric_id(value: str, name: str, *, required: bool = False) -> list[str]:
    if not value:
        return [f"{name}: required"] if required else []
    if len(value) > MAX_ID_CHARS or not ID_PATTERN.match(value):
        return [f"{name}: a rubric id is made of a-z, 0-9, _ and - (got {value[:40]!r})"]
    return []


def _call_ref(m: pb.CallRef) -> list[str]:
    return _required(m.call_id, "call_id")


def _list_calls(m: pb.ListCallsRequest) -> list[str]:
    out = _rubric_id(m.rubric_id, "rubric_id")
    token = m.page_token
    if token and not (token.isascii() and token.isdigit() and int(token) < MAX_OFFSET):
        out.append("page_token: not a token this API gave (use next_page_token)")
    if m.HasField("min_score") and m.HasField("max_score") and m.min_score > m.max_score:
        out.append("min_score: more than max_score")
    return out


def _search(m: pb.SearchRequest) -> list[str]:
    return [] if m.query.strip() else ["query: empty (give the words to find)"]


def _score_recording(m: pb.ScoreRecordingRequest) -> list[str]:
    out = _required(m.wav, "wav") + _rubric_id(m.rubric_id, "rubric_id")
    if m.mono_speaker == pb.SPEAKER_ANY:
        out.append("mono_speaker: SPEAKER_AGENT or SPEAKER_CUSTOMER (a mono file is one voice)")
    if m.agent_channel == pb.AGENT_CHANNEL_MONO and not m.mono_speaker:
        out.append("mono_speaker: required with AGENT_CHANNEL_MONO (whose voice the file holds)")
    return out


def _put_rubric(m: pb.PutRubricRequest) -> list[str]:
    out = [] if m.yaml.strip() else ["yaml: empty (give the rubric's text)"]
    if m.draft and m.activate:
        out.append("draft: a draft is not activated; set draft or activate, not both")
    return out


def _activate_rubric(m: pb.ActivateRubricRequest) -> list[str]:
    out = _rubric_id(m.rubric_id, "rubric_id", required=True)
    return out + ([] if m.version else ["version: required (versions start at 1)"])


def _route(m: pb.RubricRoute) -> list[str]:
    out = _rubric_id(m.rubric_id, "rubric_id")
    if not m.kind:
        out.append("kind: required (agent, skill or team)")
    if not m.value:
        out.append("value: required (the agent, skill or team it matches)")
    return out


def _call_setup(m: pb.CallSetup) -> list[str]:
    out = _rubric_id(m.rubric_id, "rubric_id")
    if not m.encoding:
        out.append("encoding: required (PCM16_LE, PCMU or PCMA)")
    return out


RULES: dict[str, Callable[[Any], list[str]]] = {
    "CallRef": _call_ref,
    "ListCallsRequest": _list_calls,
    "SearchRequest": _search,
    "ScoreRecordingRequest": _score_recording,
    "PutRubricRequest": _put_rubric,
    "ActivateRubricRequest": _activate_rubric,
    "RubricRoute": _route,
    "CallSetup": _call_setup,
    "ListenRequest": lambda m: _required(m.call_id, "call_id"),
}
"""The rules of a message beyond its fields' types, by message name (nested ones too: the
problem then names the field it sits in, e.g. ``routes[2].kind``)."""


def problems(message: Message) -> list[str]:
    """What is wrong with a request, one line per problem (empty: nothing)."""
    out: list[str] = []
    _walk(message, "", out)
    return out


def channel_choice_problem(request: pb.ScoreRecordingRequest, channels: int) -> str:
    """Why a ScoreRecording's channel choice does not fit a file of `channels` channels
    ("" when it fits)."""
    choice = request.agent_channel
    if channels == 1:
        if choice in (pb.AGENT_CHANNEL_LEFT, pb.AGENT_CHANNEL_RIGHT):
            return ("agent_channel: the file is mono; use AGENT_CHANNEL_MONO and say whose voice "
                    "it is with mono_speaker")  # fmt: skip
        if not request.mono_speaker:
            return "mono_speaker: the file is mono; say whose voice it is (agent or customer)"
    elif choice == pb.AGENT_CHANNEL_MONO:
        return f"agent_channel: AGENT_CHANNEL_MONO, but the file has {channels} channels"
    return ""


def refuse_if_malformed(message: Message, context: grpc.ServicerContext) -> None:
    """Abort the call with INVALID_ARGUMENT listing the message's problems, if any."""
    found = problems(message)
    if found:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "\n".join(found))


class Undecodable:
    """What a request's bytes decode to when they are no message of its type."""

    def __init__(self, type_name: str, error: str) -> None:
        self.why = f"the request is not a valid {type_name} message: {error or 'bad bytes'}"


def _decoding(decode: Callable[[bytes], Any], type_name: str) -> Callable[[bytes], Any]:
    def run(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as exc:  # protobuf's DecodeError, whatever its module
            return Undecodable(type_name, str(exc))

    return run


class RequestCheck(grpc.ServerInterceptor):
    """Checks each request of the CallQa service: bytes that are no message of the method's
    type, and (unary requests) `problems`, get INVALID_ARGUMENT before the method runs; in a
    request stream an undecodable message fails the call with INVALID_ARGUMENT where the
    method reads it."""

    def __init__(self, service: Any) -> None:
        self.prefix = f"/{service.full_name}/"
        self.input_types = {m.name: m.input_type.name for m in service.methods}

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        method = details.method
        if handler is None or not method.startswith(self.prefix):
            return handler
        type_name = self.input_types.get(method[len(self.prefix):], "request")
        decode = handler.request_deserializer
        if decode is not None:
            handler = handler._replace(request_deserializer=_decoding(decode, type_name))
        kinds = {(False, False): "unary_unary", (False, True): "unary_stream",
                 (True, False): "stream_unary", (True, True): "stream_stream"}  # fmt: skip
        kind = kinds[(bool(handler.request_streaming), bool(handler.response_streaming))]
        wrap = _checked_stream if handler.request_streaming else _checked
        return handler._replace(**{kind: wrap(getattr(handler, kind))})


def _checked(behaviour: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def run(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, Undecodable):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.why)
        refuse_if_malformed(request, context)
        return behaviour(request, context)

    return run


def _checked_stream(behaviour: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def run(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        def decoded() -> Iterator[Any]:
            for request in requests:
                if isinstance(request, Undecodable):
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.why)
                yield request

        return behaviour(decoded(), context)

    return run
