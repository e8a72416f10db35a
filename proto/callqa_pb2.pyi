import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Leg(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEG_UNSPECIFIED: _ClassVar[Leg]
    LEG_AGENT: _ClassVar[Leg]
    LEG_CUSTOMER: _ClassVar[Leg]

class Speaker(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPEAKER_UNSPECIFIED: _ClassVar[Speaker]
    SPEAKER_AGENT: _ClassVar[Speaker]
    SPEAKER_CUSTOMER: _ClassVar[Speaker]
    SPEAKER_ANY: _ClassVar[Speaker]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_C: _ClassVar[Severity]
    SEVERITY_B: _ClassVar[Severity]
    SEVERITY_A: _ClassVar[Severity]

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_PCM16_LE: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_PCMU: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_PCMA: _ClassVar[AudioEncoding]

class CallSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_SOURCE_UNSPECIFIED: _ClassVar[CallSource]
    CALL_SOURCE_SIPREC: _ClassVar[CallSource]
    CALL_SOURCE_SIP: _ClassVar[CallSource]
    CALL_SOURCE_GRPC: _ClassVar[CallSource]
    CALL_SOURCE_MIRROR: _ClassVar[CallSource]
    CALL_SOURCE_FILE: _ClassVar[CallSource]
    CALL_SOURCE_PCAP: _ClassVar[CallSource]

class CallStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_STATUS_UNSPECIFIED: _ClassVar[CallStatus]
    CALL_STATUS_LIVE: _ClassVar[CallStatus]
    CALL_STATUS_RECORDED: _ClassVar[CallStatus]
    CALL_STATUS_SCORING: _ClassVar[CallStatus]
    CALL_STATUS_SCORED: _ClassVar[CallStatus]
    CALL_STATUS_FAILED: _ClassVar[CallStatus]
    CALL_STATUS_ENDING: _ClassVar[CallStatus]
    CALL_STATUS_INTERRUPTED: _ClassVar[CallStatus]

class EndReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    END_REASON_UNSPECIFIED: _ClassVar[EndReason]
    END_REASON_END_MESSAGE: _ClassVar[EndReason]
    END_REASON_HALF_CLOSE: _ClassVar[EndReason]
    END_REASON_CANCELLED: _ClassVar[EndReason]
    END_REASON_IDLE_TIMEOUT: _ClassVar[EndReason]
    END_REASON_MAX_DURATION: _ClassVar[EndReason]
    END_REASON_SHUTDOWN: _ClassVar[EndReason]
    END_REASON_ERROR: _ClassVar[EndReason]

class AgentChannel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_CHANNEL_UNSPECIFIED: _ClassVar[AgentChannel]
    AGENT_CHANNEL_LEFT: _ClassVar[AgentChannel]
    AGENT_CHANNEL_RIGHT: _ClassVar[AgentChannel]
    AGENT_CHANNEL_MONO: _ClassVar[AgentChannel]

class BenchmarkAudio(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BENCHMARK_AUDIO_UNSPECIFIED: _ClassVar[BenchmarkAudio]
    BENCHMARK_AUDIO_SAMPLES: _ClassVar[BenchmarkAudio]
    BENCHMARK_AUDIO_RECORDINGS: _ClassVar[BenchmarkAudio]
    BENCHMARK_AUDIO_DIRECTORY: _ClassVar[BenchmarkAudio]

class RouteKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUTE_KIND_UNSPECIFIED: _ClassVar[RouteKind]
    ROUTE_KIND_AGENT: _ClassVar[RouteKind]
    ROUTE_KIND_SKILL: _ClassVar[RouteKind]
    ROUTE_KIND_TEAM: _ClassVar[RouteKind]

class RouteSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUTE_SOURCE_UNSPECIFIED: _ClassVar[RouteSource]
    ROUTE_SOURCE_STORED: _ClassVar[RouteSource]
    ROUTE_SOURCE_SETTING: _ClassVar[RouteSource]
LEG_UNSPECIFIED: Leg
LEG_AGENT: Leg
LEG_CUSTOMER: Leg
SPEAKER_UNSPECIFIED: Speaker
SPEAKER_AGENT: Speaker
SPEAKER_CUSTOMER: Speaker
SPEAKER_ANY: Speaker
SEVERITY_UNSPECIFIED: Severity
SEVERITY_C: Severity
SEVERITY_B: Severity
SEVERITY_A: Severity
AUDIO_ENCODING_UNSPECIFIED: AudioEncoding
AUDIO_ENCODING_PCM16_LE: AudioEncoding
AUDIO_ENCODING_PCMU: AudioEncoding
AUDIO_ENCODING_PCMA: AudioEncoding
CALL_SOURCE_UNSPECIFIED: CallSource
CALL_SOURCE_SIPREC: CallSource
CALL_SOURCE_SIP: CallSource
CALL_SOURCE_GRPC: CallSource
CALL_SOURCE_MIRROR: CallSource
CALL_SOURCE_FILE: CallSource
CALL_SOURCE_PCAP: CallSource
CALL_STATUS_UNSPECIFIED: CallStatus
CALL_STATUS_LIVE: CallStatus
CALL_STATUS_RECORDED: CallStatus
CALL_STATUS_SCORING: CallStatus
CALL_STATUS_SCORED: CallStatus
CALL_STATUS_FAILED: CallStatus
CALL_STATUS_ENDING: CallStatus
CALL_STATUS_INTERRUPTED: CallStatus
END_REASON_UNSPECIFIED: EndReason
END_REASON_END_MESSAGE: EndReason
END_REASON_HALF_CLOSE: EndReason
END_REASON_CANCELLED: EndReason
END_REASON_IDLE_TIMEOUT: EndReason
END_REASON_MAX_DURATION: EndReason
END_REASON_SHUTDOWN: EndReason
END_REASON_ERROR: EndReason
AGENT_CHANNEL_UNSPECIFIED: AgentChannel
AGENT_CHANNEL_LEFT: AgentChannel
AGENT_CHANNEL_RIGHT: AgentChannel
AGENT_CHANNEL_MONO: AgentChannel
BENCHMARK_AUDIO_UNSPECIFIED: BenchmarkAudio
BENCHMARK_AUDIO_SAMPLES: BenchmarkAudio
BENCHMARK_AUDIO_RECORDINGS: BenchmarkAudio
BENCHMARK_AUDIO_DIRECTORY: BenchmarkAudio
ROUTE_KIND_UNSPECIFIED: RouteKind
ROUTE_KIND_AGENT: RouteKind
ROUTE_KIND_SKILL: RouteKind
ROUTE_KIND_TEAM: RouteKind
ROUTE_SOURCE_UNSPECIFIED: RouteSource
ROUTE_SOURCE_STORED: RouteSource
ROUTE_SOURCE_SETTING: RouteSource

class Utterance(_message.Message):
    __slots__ = ("speaker", "start_s", "end_s", "text", "partial", "level_db", "seq", "confidence", "phrase_checks_json")
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    LEVEL_DB_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PHRASE_CHECKS_JSON_FIELD_NUMBER: _ClassVar[int]
    speaker: Speaker
    start_s: float
    end_s: float
    text: str
    partial: bool
    level_db: float
    seq: int
    confidence: float
    phrase_checks_json: str
    def __init__(self, speaker: _Optional[_Union[Speaker, str]] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., text: _Optional[str] = ..., partial: _Optional[bool] = ..., level_db: _Optional[float] = ..., seq: _Optional[int] = ..., confidence: _Optional[float] = ..., phrase_checks_json: _Optional[str] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("item_id", "item_name", "kind", "category", "severity", "speaker", "start_s", "end_s", "evidence", "deduct_points", "alert", "detail_json", "confidence")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    DEDUCT_POINTS_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_JSON_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    item_name: str
    kind: str
    category: str
    severity: Severity
    speaker: Speaker
    start_s: float
    end_s: float
    evidence: str
    deduct_points: float
    alert: bool
    detail_json: str
    confidence: float
    def __init__(self, item_id: _Optional[str] = ..., item_name: _Optional[str] = ..., kind: _Optional[str] = ..., category: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ..., speaker: _Optional[_Union[Speaker, str]] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., evidence: _Optional[str] = ..., deduct_points: _Optional[float] = ..., alert: _Optional[bool] = ..., detail_json: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("alert_id", "call_id", "agent_id", "team_id", "item_id", "item_name", "kind", "category", "severity", "speaker", "start_s", "end_s", "evidence", "deduct_points", "utterance_end_at", "raised_at", "latency_ms", "late", "live", "confidence")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    DEDUCT_POINTS_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_END_AT_FIELD_NUMBER: _ClassVar[int]
    RAISED_AT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    call_id: str
    agent_id: str
    team_id: str
    item_id: str
    item_name: str
    kind: str
    category: str
    severity: Severity
    speaker: Speaker
    start_s: float
    end_s: float
    evidence: str
    deduct_points: float
    utterance_end_at: _timestamp_pb2.Timestamp
    raised_at: _timestamp_pb2.Timestamp
    latency_ms: float
    late: bool
    live: bool
    confidence: float
    def __init__(self, alert_id: _Optional[str] = ..., call_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., team_id: _Optional[str] = ..., item_id: _Optional[str] = ..., item_name: _Optional[str] = ..., kind: _Optional[str] = ..., category: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ..., speaker: _Optional[_Union[Speaker, str]] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., evidence: _Optional[str] = ..., deduct_points: _Optional[float] = ..., utterance_end_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., raised_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., latency_ms: _Optional[float] = ..., late: _Optional[bool] = ..., live: _Optional[bool] = ..., confidence: _Optional[float] = ...) -> None: ...

class CallRef(_message.Message):
    __slots__ = ("call_id",)
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    def __init__(self, call_id: _Optional[str] = ...) -> None: ...

class AudioFrame(_message.Message):
    __slots__ = ("setup", "audio", "end")
    SETUP_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    setup: CallSetup
    audio: AudioChunk
    end: CallEnd
    def __init__(self, setup: _Optional[_Union[CallSetup, _Mapping]] = ..., audio: _Optional[_Union[AudioChunk, _Mapping]] = ..., end: _Optional[_Union[CallEnd, _Mapping]] = ...) -> None: ...

class CallSetup(_message.Message):
    __slots__ = ("external_call_id", "agent_id", "team_id", "skill_group", "rubric_id", "language_hint", "encoding", "sample_rate_hz", "caller", "callee", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EXTERNAL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    SKILL_GROUP_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_HINT_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    CALLEE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    external_call_id: str
    agent_id: str
    team_id: str
    skill_group: str
    rubric_id: str
    language_hint: str
    encoding: AudioEncoding
    sample_rate_hz: int
    caller: str
    callee: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, external_call_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., team_id: _Optional[str] = ..., skill_group: _Optional[str] = ..., rubric_id: _Optional[str] = ..., language_hint: _Optional[str] = ..., encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hz: _Optional[int] = ..., caller: _Optional[str] = ..., callee: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("leg", "payload", "position_ms")
    LEG_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    POSITION_MS_FIELD_NUMBER: _ClassVar[int]
    leg: Leg
    payload: bytes
    position_ms: int
    def __init__(self, leg: _Optional[_Union[Leg, str]] = ..., payload: _Optional[bytes] = ..., position_ms: _Optional[int] = ...) -> None: ...

class CallEnd(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CallEvent(_message.Message):
    __slots__ = ("call_id", "emitted_at", "started", "transcript", "finding", "alert", "scored", "ended")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    EMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    FINDING_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    SCORED_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    emitted_at: _timestamp_pb2.Timestamp
    started: CallStarted
    transcript: Transcript
    finding: FindingEvent
    alert: Alert
    scored: CallScored
    ended: CallEnded
    def __init__(self, call_id: _Optional[str] = ..., emitted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started: _Optional[_Union[CallStarted, _Mapping]] = ..., transcript: _Optional[_Union[Transcript, _Mapping]] = ..., finding: _Optional[_Union[FindingEvent, _Mapping]] = ..., alert: _Optional[_Union[Alert, _Mapping]] = ..., scored: _Optional[_Union[CallScored, _Mapping]] = ..., ended: _Optional[_Union[CallEnded, _Mapping]] = ...) -> None: ...

class CallStarted(_message.Message):
    __slots__ = ("rubric_id", "rubric_version", "external_call_id", "started_at", "language")
    RUBRIC_ID_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    rubric_id: str
    rubric_version: int
    external_call_id: str
    started_at: _timestamp_pb2.Timestamp
    language: str
    def __init__(self, rubric_id: _Optional[str] = ..., rubric_version: _Optional[int] = ..., external_call_id: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., language: _Optional[str] = ...) -> None: ...

class Transcript(_message.Message):
    __slots__ = ("utterance", "latency_ms", "leg_start_s")
    UTTERANCE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    LEG_START_S_FIELD_NUMBER: _ClassVar[int]
    utterance: Utterance
    latency_ms: float
    leg_start_s: float
    def __init__(self, utterance: _Optional[_Union[Utterance, _Mapping]] = ..., latency_ms: _Optional[float] = ..., leg_start_s: _Optional[float] = ...) -> None: ...

class WatchCallsRequest(_message.Message):
    __slots__ = ("agent_ids", "team_ids", "include_partials")
    AGENT_IDS_FIELD_NUMBER: _ClassVar[int]
    TEAM_IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PARTIALS_FIELD_NUMBER: _ClassVar[int]
    agent_ids: _containers.RepeatedScalarFieldContainer[str]
    team_ids: _containers.RepeatedScalarFieldContainer[str]
    include_partials: bool
    def __init__(self, agent_ids: _Optional[_Iterable[str]] = ..., team_ids: _Optional[_Iterable[str]] = ..., include_partials: _Optional[bool] = ...) -> None: ...

class FindingEvent(_message.Message):
    __slots__ = ("finding",)
    FINDING_FIELD_NUMBER: _ClassVar[int]
    finding: Finding
    def __init__(self, finding: _Optional[_Union[Finding, _Mapping]] = ...) -> None: ...

class CallScored(_message.Message):
    __slots__ = ("score", "passed", "fatal", "finding_count", "category_scores")
    class CategoryScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    FATAL_FIELD_NUMBER: _ClassVar[int]
    FINDING_COUNT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_SCORES_FIELD_NUMBER: _ClassVar[int]
    score: float
    passed: bool
    fatal: bool
    finding_count: int
    category_scores: _containers.ScalarMap[str, float]
    def __init__(self, score: _Optional[float] = ..., passed: _Optional[bool] = ..., fatal: _Optional[bool] = ..., finding_count: _Optional[int] = ..., category_scores: _Optional[_Mapping[str, float]] = ...) -> None: ...

class CallEnded(_message.Message):
    __slots__ = ("status", "reason", "detail", "duration_s")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    status: CallStatus
    reason: EndReason
    detail: str
    duration_s: float
    def __init__(self, status: _Optional[_Union[CallStatus, str]] = ..., reason: _Optional[_Union[EndReason, str]] = ..., detail: _Optional[str] = ..., duration_s: _Optional[float] = ...) -> None: ...

class AlertFilter(_message.Message):
    __slots__ = ("agent_ids", "team_ids", "min_severity", "call_id")
    AGENT_IDS_FIELD_NUMBER: _ClassVar[int]
    TEAM_IDS_FIELD_NUMBER: _ClassVar[int]
    MIN_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    agent_ids: _containers.RepeatedScalarFieldContainer[str]
    team_ids: _containers.RepeatedScalarFieldContainer[str]
    min_severity: Severity
    call_id: str
    def __init__(self, agent_ids: _Optional[_Iterable[str]] = ..., team_ids: _Optional[_Iterable[str]] = ..., min_severity: _Optional[_Union[Severity, str]] = ..., call_id: _Optional[str] = ...) -> None: ...

class ListLiveCallsRequest(_message.Message):
    __slots__ = ("agent_ids", "team_ids")
    AGENT_IDS_FIELD_NUMBER: _ClassVar[int]
    TEAM_IDS_FIELD_NUMBER: _ClassVar[int]
    agent_ids: _containers.RepeatedScalarFieldContainer[str]
    team_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, agent_ids: _Optional[_Iterable[str]] = ..., team_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListLiveCallsResponse(_message.Message):
    __slots__ = ("calls",)
    CALLS_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[LiveCall]
    def __init__(self, calls: _Optional[_Iterable[_Union[LiveCall, _Mapping]]] = ...) -> None: ...

class LiveCall(_message.Message):
    __slots__ = ("call_id", "source", "agent_id", "team_id", "started_at", "duration_s", "rubric_id", "rubric_version", "utterance_count", "finding_count", "alert_count", "asr_backlog_utterances", "legs")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_ID_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_VERSION_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    FINDING_COUNT_FIELD_NUMBER: _ClassVar[int]
    ALERT_COUNT_FIELD_NUMBER: _ClassVar[int]
    ASR_BACKLOG_UTTERANCES_FIELD_NUMBER: _ClassVar[int]
    LEGS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    source: CallSource
    agent_id: str
    team_id: str
    started_at: _timestamp_pb2.Timestamp
    duration_s: float
    rubric_id: str
    rubric_version: int
    utterance_count: int
    finding_count: int
    alert_count: int
    asr_backlog_utterances: int
    legs: _containers.RepeatedCompositeFieldContainer[LegStats]
    def __init__(self, call_id: _Optional[str] = ..., source: _Optional[_Union[CallSource, str]] = ..., agent_id: _Optional[str] = ..., team_id: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_s: _Optional[float] = ..., rubric_id: _Optional[str] = ..., rubric_version: _Optional[int] = ..., utterance_count: _Optional[int] = ..., finding_count: _Optional[int] = ..., alert_count: _Optional[int] = ..., asr_backlog_utterances: _Optional[int] = ..., legs: _Optional[_Iterable[_Union[LegStats, _Mapping]]] = ...) -> None: ...

class LegStats(_message.Message):
    __slots__ = ("leg", "packets_received", "packets_lost")
    LEG_FIELD_NUMBER: _ClassVar[int]
    PACKETS_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    PACKETS_LOST_FIELD_NUMBER: _ClassVar[int]
    leg: Leg
    packets_received: int
    packets_lost: int
    def __init__(self, leg: _Optional[_Union[Leg, str]] = ..., packets_received: _Optional[int] = ..., packets_lost: _Optional[int] = ...) -> None: ...

class Call(_message.Message):
    __slots__ = ("call_id", "source", "status", "started_at", "duration_s", "agent_id", "team_id", "language", "caller", "callee", "recording_path", "rubric_id", "rubric_version", "score", "passed", "fatal", "category_scores", "findings", "transcript", "metrics_json", "scored_at", "metadata_json")
    class CategoryScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    CALLEE_FIELD_NUMBER: _ClassVar[int]
    RECORDING_PATH_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_ID_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_VERSION_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    FATAL_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_SCORES_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    METRICS_JSON_FIELD_NUMBER: _ClassVar[int]
    SCORED_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    source: CallSource
    status: CallStatus
    started_at: _timestamp_pb2.Timestamp
    duration_s: float
    agent_id: str
    team_id: str
    language: str
    caller: str
    callee: str
    recording_path: str
    rubric_id: str
    rubric_version: int
    score: float
    passed: bool
    fatal: bool
    category_scores: _containers.ScalarMap[str, float]
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    transcript: _containers.RepeatedCompositeFieldContainer[Utterance]
    metrics_json: str
    scored_at: _timestamp_pb2.Timestamp
    metadata_json: str
    def __init__(self, call_id: _Optional[str] = ..., source: _Optional[_Union[CallSource, str]] = ..., status: _Optional[_Union[CallStatus, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_s: _Optional[float] = ..., agent_id: _Optional[str] = ..., team_id: _Optional[str] = ..., language: _Optional[str] = ..., caller: _Optional[str] = ..., callee: _Optional[str] = ..., recording_path: _Optional[str] = ..., rubric_id: _Optional[str] = ..., rubric_version: _Optional[int] = ..., score: _Optional[float] = ..., passed: _Optional[bool] = ..., fatal: _Optional[bool] = ..., category_scores: _Optional[_Mapping[str, float]] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., transcript: _Optional[_Iterable[_Union[Utterance, _Mapping]]] = ..., metrics_json: _Optional[str] = ..., scored_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class CallSummary(_message.Message):
    __slots__ = ("call_id", "source", "status", "started_at", "duration_s", "agent_id", "team_id", "language", "rubric_id", "rubric_version", "score", "passed", "fatal")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_ID_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_VERSION_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    FATAL_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    source: CallSource
    status: CallStatus
    started_at: _timestamp_pb2.Timestamp
    duration_s: float
    agent_id: str
    team_id: str
    language: str
    rubric_id: str
    rubric_version: int
    score: float
    passed: bool
    fatal: bool
    def __init__(self, call_id: _Optional[str] = ..., source: _Optional[_Union[CallSource, str]] = ..., status: _Optional[_Union[CallStatus, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_s: _Optional[float] = ..., agent_id: _Optional[str] = ..., team_id: _Optional[str] = ..., language: _Optional[str] = ..., rubric_id: _Optional[str] = ..., rubric_version: _Optional[int] = ..., score: _Optional[float] = ..., passed: _Optional[bool] = ..., fatal: _Optional[bool] = ...) -> None: ...

class ListCallsRequest(_message.Message):
    __slots__ = ("agent_id", "team_id", "status", "passed", "since", "until", "min_score", "max_score", "rubric_id", "limit", "page_token")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    MAX_SCORE_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    team_id: str
    status: CallStatus
    passed: bool
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    min_score: float
    max_score: float
    rubric_id: str
    limit: int
    page_token: str
    def __init__(self, agent_id: _Optional[str] = ..., team_id: _Optional[str] = ..., status: _Optional[_Union[CallStatus, str]] = ..., passed: _Optional[bool] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., min_score: _Optional[float] = ..., max_score: _Optional[float] = ..., rubric_id: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCallsResponse(_message.Message):
    __slots__ = ("calls", "next_page_token")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[CallSummary]
    next_page_token: str
    def __init__(self, calls: _Optional[_Iterable[_Union[CallSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("query", "speaker", "agent_id", "limit", "offset", "team_id", "item_id", "since", "until")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    query: str
    speaker: Speaker
    agent_id: str
    limit: int
    offset: int
    team_id: str
    item_id: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    def __init__(self, query: _Optional[str] = ..., speaker: _Optional[_Union[Speaker, str]] = ..., agent_id: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., team_id: _Optional[str] = ..., item_id: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "total")
    HITS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    total: int
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("call_id", "call_started_at", "agent_id", "speaker", "start_s", "end_s", "text", "snippet")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    call_started_at: _timestamp_pb2.Timestamp
    agent_id: str
    speaker: Speaker
    start_s: float
    end_s: float
    text: str
    snippet: str
    def __init__(self, call_id: _Optional[str] = ..., call_started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., agent_id: _Optional[str] = ..., speaker: _Optional[_Union[Speaker, str]] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., text: _Optional[str] = ..., snippet: _Optional[str] = ...) -> None: ...

class ScoreRecordingRequest(_message.Message):
    __slots__ = ("wav", "agent_channel", "mono_speaker", "rubric_id", "agent_id", "team_id", "started_at", "store")
    WAV_FIELD_NUMBER: _ClassVar[int]
    AGENT_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MONO_SPEAKER_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    wav: bytes
    agent_channel: AgentChannel
    mono_speaker: Speaker
    rubric_id: str
    agent_id: str
    team_id: str
    started_at: _timestamp_pb2.Timestamp
    store: bool
    def __init__(self, wav: _Optional[bytes] = ..., agent_channel: _Optional[_Union[AgentChannel, str]] = ..., mono_speaker: _Optional[_Union[Speaker, str]] = ..., rubric_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., team_id: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., store: _Optional[bool] = ...) -> None: ...

class ScoreRecordingResponse(_message.Message):
    __slots__ = ("call",)
    CALL_FIELD_NUMBER: _ClassVar[int]
    call: Call
    def __init__(self, call: _Optional[_Union[Call, _Mapping]] = ...) -> None: ...

class ListRubricsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRubricsResponse(_message.Message):
    __slots__ = ("rubrics",)
    RUBRICS_FIELD_NUMBER: _ClassVar[int]
    rubrics: _containers.RepeatedCompositeFieldContainer[RubricInfo]
    def __init__(self, rubrics: _Optional[_Iterable[_Union[RubricInfo, _Mapping]]] = ...) -> None: ...

class RubricInfo(_message.Message):
    __slots__ = ("rubric_id", "name", "language", "versions", "active_version", "built_in")
    RUBRIC_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    BUILT_IN_FIELD_NUMBER: _ClassVar[int]
    rubric_id: str
    name: str
    language: str
    versions: _containers.RepeatedScalarFieldContainer[int]
    active_version: int
    built_in: bool
    def __init__(self, rubric_id: _Optional[str] = ..., name: _Optional[str] = ..., language: _Optional[str] = ..., versions: _Optional[_Iterable[int]] = ..., active_version: _Optional[int] = ..., built_in: _Optional[bool] = ...) -> None: ...

class PutRubricRequest(_message.Message):
    __slots__ = ("yaml", "activate", "draft")
    YAML_FIELD_NUMBER: _ClassVar[int]
    ACTIVATE_FIELD_NUMBER: _ClassVar[int]
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    yaml: str
    activate: bool
    draft: bool
    def __init__(self, yaml: _Optional[str] = ..., activate: _Optional[bool] = ..., draft: _Optional[bool] = ...) -> None: ...

class PutRubricResponse(_message.Message):
    __slots__ = ("rubric_id", "version", "unchanged", "active")
    RUBRIC_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    rubric_id: str
    version: int
    unchanged: bool
    active: bool
    def __init__(self, rubric_id: _Optional[str] = ..., version: _Optional[int] = ..., unchanged: _Optional[bool] = ..., active: _Optional[bool] = ...) -> None: ...

class ActivateRubricRequest(_message.Message):
    __slots__ = ("rubric_id", "version")
    RUBRIC_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    rubric_id: str
    version: int
    def __init__(self, rubric_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RubricRoute(_message.Message):
    __slots__ = ("kind", "value", "rubric_id", "source", "updated_at", "overridden")
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    OVERRIDDEN_FIELD_NUMBER: _ClassVar[int]
    kind: RouteKind
    value: str
    rubric_id: str
    source: RouteSource
    updated_at: _timestamp_pb2.Timestamp
    overridden: bool
    def __init__(self, kind: _Optional[_Union[RouteKind, str]] = ..., value: _Optional[str] = ..., rubric_id: _Optional[str] = ..., source: _Optional[_Union[RouteSource, str]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., overridden: _Optional[bool] = ...) -> None: ...

class ListRubricRoutesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRubricRoutesResponse(_message.Message):
    __slots__ = ("routes", "default_rubric_id")
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_RUBRIC_ID_FIELD_NUMBER: _ClassVar[int]
    routes: _containers.RepeatedCompositeFieldContainer[RubricRoute]
    default_rubric_id: str
    def __init__(self, routes: _Optional[_Iterable[_Union[RubricRoute, _Mapping]]] = ..., default_rubric_id: _Optional[str] = ...) -> None: ...

class SetRubricRoutesRequest(_message.Message):
    __slots__ = ("routes", "replace")
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    routes: _containers.RepeatedCompositeFieldContainer[RubricRoute]
    replace: bool
    def __init__(self, routes: _Optional[_Iterable[_Union[RubricRoute, _Mapping]]] = ..., replace: _Optional[bool] = ...) -> None: ...

class GetCapacityRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Capacity(_message.Message):
    __slots__ = ("live_lines", "max_sessions", "asr_backlog_utterances", "asr_backlog_audio_s", "queued_on_disk_utterances", "asr_device", "asr_compute_type", "model_name", "asr_real_time_factor", "last_benchmark", "stage_cpu", "memory_rss_bytes", "memory_peak_rss_bytes", "packets", "asr_utterances", "asr_audio_s", "asr_busy_s", "asr_batches", "asr_partials_skipped", "transcripts", "transcript_latency_p50_ms", "transcript_latency_p95_ms", "asr_early_decodes", "asr_early_decodes_used")
    LIVE_LINES_FIELD_NUMBER: _ClassVar[int]
    MAX_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    ASR_BACKLOG_UTTERANCES_FIELD_NUMBER: _ClassVar[int]
    ASR_BACKLOG_AUDIO_S_FIELD_NUMBER: _ClassVar[int]
    QUEUED_ON_DISK_UTTERANCES_FIELD_NUMBER: _ClassVar[int]
    ASR_DEVICE_FIELD_NUMBER: _ClassVar[int]
    ASR_COMPUTE_TYPE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ASR_REAL_TIME_FACTOR_FIELD_NUMBER: _ClassVar[int]
    LAST_BENCHMARK_FIELD_NUMBER: _ClassVar[int]
    STAGE_CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_PEAK_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    ASR_UTTERANCES_FIELD_NUMBER: _ClassVar[int]
    ASR_AUDIO_S_FIELD_NUMBER: _ClassVar[int]
    ASR_BUSY_S_FIELD_NUMBER: _ClassVar[int]
    ASR_BATCHES_FIELD_NUMBER: _ClassVar[int]
    ASR_PARTIALS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPTS_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    ASR_EARLY_DECODES_FIELD_NUMBER: _ClassVar[int]
    ASR_EARLY_DECODES_USED_FIELD_NUMBER: _ClassVar[int]
    live_lines: int
    max_sessions: int
    asr_backlog_utterances: int
    asr_backlog_audio_s: float
    queued_on_disk_utterances: int
    asr_device: str
    asr_compute_type: str
    model_name: str
    asr_real_time_factor: float
    last_benchmark: BenchmarkResult
    stage_cpu: _containers.RepeatedCompositeFieldContainer[StageCpu]
    memory_rss_bytes: int
    memory_peak_rss_bytes: int
    packets: PacketCounts
    asr_utterances: int
    asr_audio_s: float
    asr_busy_s: float
    asr_batches: int
    asr_partials_skipped: int
    transcripts: int
    transcript_latency_p50_ms: float
    transcript_latency_p95_ms: float
    asr_early_decodes: int
    asr_early_decodes_used: int
    def __init__(self, live_lines: _Optional[int] = ..., max_sessions: _Optional[int] = ..., asr_backlog_utterances: _Optional[int] = ..., asr_backlog_audio_s: _Optional[float] = ..., queued_on_disk_utterances: _Optional[int] = ..., asr_device: _Optional[str] = ..., asr_compute_type: _Optional[str] = ..., model_name: _Optional[str] = ..., asr_real_time_factor: _Optional[float] = ..., last_benchmark: _Optional[_Union[BenchmarkResult, _Mapping]] = ..., stage_cpu: _Optional[_Iterable[_Union[StageCpu, _Mapping]]] = ..., memory_rss_bytes: _Optional[int] = ..., memory_peak_rss_bytes: _Optional[int] = ..., packets: _Optional[_Union[PacketCounts, _Mapping]] = ..., asr_utterances: _Optional[int] = ..., asr_audio_s: _Optional[float] = ..., asr_busy_s: _Optional[float] = ..., asr_batches: _Optional[int] = ..., asr_partials_skipped: _Optional[int] = ..., transcripts: _Optional[int] = ..., transcript_latency_p50_ms: _Optional[float] = ..., transcript_latency_p95_ms: _Optional[float] = ..., asr_early_decodes: _Optional[int] = ..., asr_early_decodes_used: _Optional[int] = ...) -> None: ...

class StageCpu(_message.Message):
    __slots__ = ("stage", "cpu_s")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    CPU_S_FIELD_NUMBER: _ClassVar[int]
    stage: str
    cpu_s: float
    def __init__(self, stage: _Optional[str] = ..., cpu_s: _Optional[float] = ...) -> None: ...

class PacketCounts(_message.Message):
    __slots__ = ("received", "lost", "late", "duplicates", "malformed", "unknown_payload")
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    MALFORMED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    received: int
    lost: int
    late: int
    duplicates: int
    malformed: int
    unknown_payload: int
    def __init__(self, received: _Optional[int] = ..., lost: _Optional[int] = ..., late: _Optional[int] = ..., duplicates: _Optional[int] = ..., malformed: _Optional[int] = ..., unknown_payload: _Optional[int] = ...) -> None: ...

class RunBenchmarkRequest(_message.Message):
    __slots__ = ("max_lines", "step_lines", "step_s", "audio", "audio_dir")
    MAX_LINES_FIELD_NUMBER: _ClassVar[int]
    STEP_LINES_FIELD_NUMBER: _ClassVar[int]
    STEP_S_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    AUDIO_DIR_FIELD_NUMBER: _ClassVar[int]
    max_lines: int
    step_lines: int
    step_s: float
    audio: BenchmarkAudio
    audio_dir: str
    def __init__(self, max_lines: _Optional[int] = ..., step_lines: _Optional[int] = ..., step_s: _Optional[float] = ..., audio: _Optional[_Union[BenchmarkAudio, str]] = ..., audio_dir: _Optional[str] = ...) -> None: ...

class BenchmarkProgress(_message.Message):
    __slots__ = ("step", "lines", "latency_p50_ms", "latency_p95_ms", "asr_backlog_utterances", "cpu_percent", "held", "done", "result")
    STEP_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    ASR_BACKLOG_UTTERANCES_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    step: int
    lines: int
    latency_p50_ms: float
    latency_p95_ms: float
    asr_backlog_utterances: int
    cpu_percent: float
    held: bool
    done: bool
    result: BenchmarkResult
    def __init__(self, step: _Optional[int] = ..., lines: _Optional[int] = ..., latency_p50_ms: _Optional[float] = ..., latency_p95_ms: _Optional[float] = ..., asr_backlog_utterances: _Optional[int] = ..., cpu_percent: _Optional[float] = ..., held: _Optional[bool] = ..., done: _Optional[bool] = ..., result: _Optional[_Union[BenchmarkResult, _Mapping]] = ...) -> None: ...

class BenchmarkResult(_message.Message):
    __slots__ = ("max_lines", "latency_p95_ms", "finished_at", "asr_device", "model_name", "summary")
    MAX_LINES_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ASR_DEVICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    max_lines: int
    latency_p95_ms: float
    finished_at: _timestamp_pb2.Timestamp
    asr_device: str
    model_name: str
    summary: str
    def __init__(self, max_lines: _Optional[int] = ..., latency_p95_ms: _Optional[float] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., asr_device: _Optional[str] = ..., model_name: _Optional[str] = ..., summary: _Optional[str] = ...) -> None: ...

class ListenRequest(_message.Message):
    __slots__ = ("call_id", "leg", "listener")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    LEG_FIELD_NUMBER: _ClassVar[int]
    LISTENER_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    leg: Leg
    listener: str
    def __init__(self, call_id: _Optional[str] = ..., leg: _Optional[_Union[Leg, str]] = ..., listener: _Optional[str] = ...) -> None: ...

class ListenAudio(_message.Message):
    __slots__ = ("call_id", "leg", "sample_rate_hz", "position_samples", "pcm16", "arrived_at", "dropped_samples")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    LEG_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    POSITION_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    PCM16_FIELD_NUMBER: _ClassVar[int]
    ARRIVED_AT_FIELD_NUMBER: _ClassVar[int]
    DROPPED_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    leg: Leg
    sample_rate_hz: int
    position_samples: int
    pcm16: bytes
    arrived_at: _timestamp_pb2.Timestamp
    dropped_samples: int
    def __init__(self, call_id: _Optional[str] = ..., leg: _Optional[_Union[Leg, str]] = ..., sample_rate_hz: _Optional[int] = ..., position_samples: _Optional[int] = ..., pcm16: _Optional[bytes] = ..., arrived_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dropped_samples: _Optional[int] = ...) -> None: ...
