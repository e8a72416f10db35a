"""The gRPC service `callqa.v1.CallQa` (proto/callqa.proto) over the live engine and the store.

Reads open their own read-only-in-practice connection per request (SQLite in WAL mode lets
readers run beside the writer); every write goes through the engine's storage writer.
Streaming RPCs poll their subscription with a short timeout so that a client that went
away is noticed and its subscription closed.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from core import stage_cpu
from core.api import convert, rubric_store
from core.api.audio_frames import AudioChunkReader, AudioFrameError, decoder_for
from core.api.context import ApiContext
from core.api.requests import channel_choice_problem, refuse_if_malformed
from core.live.call import CallSetup, LiveCall
from core.live.events import CallEvent, Subscription, alert_filter
from core.rubric.loading import load_rubric_text
from core.rubric.schema import RubricError
from core.stats import percentile
from core.storage import repository
from core.storage.db import open_db
from proto import callqa_pb2 as pb
from proto import callqa_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

POLL_S = 0.5
MAX_LIST = 1000


class CallQaService(pb_grpc.CallQaServicer):
    def __init__(self, daemon: ApiContext) -> None:
        self.daemon = daemon
        self._bench_lock = threading.Lock()
        self._open_lock = threading.Lock()

    @property
    def engine(self) -> Any:
        return self.daemon.engine

    def _db(self) -> Any:
        return open_db(self.daemon.settings.db_path)

    # ---------------------------------------------------------------- streams in

    def StreamAudio(self, request_iterator: Iterator[pb.AudioFrame], context: Any) -> Iterator[
        pb.CallEvent
    ]:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("frame") != "setup":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "the first AudioFrame must carry the CallSetup")  # fmt: skip
            return
        refuse_if_malformed(first, context)
        s = first.setup
        try:
            decode, rate = decoder_for(s.encoding, s.sample_rate_hz)
        except AudioFrameError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        setup = CallSetup(
            source="grpc", external_id=s.external_call_id or None, agent_id=s.agent_id or None,
            team_id=s.team_id or None, skill=s.skill_group or None,
            rubric=s.rubric_id if s.HasField("rubric_id") and s.rubric_id else None,
            caller=s.caller or None, callee=s.callee or None, sample_rate=rate,
            meta={"stream_metadata": dict(s.metadata), "encoding": pb.AudioEncoding.Name(
                s.encoding), "language_hint": s.language_hint or None},
        )  # fmt: skip
        call = self._open_stream_call(setup, context)
        errors: list[str] = []
        reader = threading.Thread(
            target=self._read_audio, args=(request_iterator, call, decode, errors),
            name=f"callqa-grpc-in-{call.call_id[-6:]}", daemon=True,
        )  # fmt: skip
        reader.start()
        sub = call.subscription
        try:
            while True:
                event = sub.get(POLL_S)
                if event is None:
                    if sub.closed:
                        return
                    continue
                if context.is_active():
                    yield convert.event(event, call)
                if event.kind == "ended":
                    return
        finally:
            sub.close()

    def _open_stream_call(self, setup: CallSetup, context: Any) -> LiveCall:
        """The streamed call, opened; RESOURCE_EXHAUSTED when the box already holds
        `sip_max_sessions` live calls (all sources together)."""
        limit = self.daemon.settings.sip_max_sessions
        with self._open_lock:  # one count and open at a time: streams cannot overshoot it
            live = sum(1 for c in self.engine.live_calls() if not c.ended)
            if live >= limit:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"the box holds {live} live calls, its maximum (sip_max_sessions "
                              f"{limit}); try again when one has ended")  # fmt: skip
            try:
                call: LiveCall = self.engine.open_call(setup, subscribe=True)
            except RubricError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "\n".join(exc.problems))
            except ValueError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            except RuntimeError as exc:
                context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return call

    def _read_audio(
        self, frames: Iterator[pb.AudioFrame], call: LiveCall, decode: Any, errors: list[str]
    ) -> None:
        reason = "half_close"
        reader = AudioChunkReader(decode, call.setup.sample_rate)
        bad = 0
        try:
            for frame in frames:
                try:
                    chunk = reader.read(frame)
                except AudioFrameError as exc:
                    bad += 1
                    logger.debug("call %s: dropped an audio frame: %s", call.call_id, exc)
                    continue
                if chunk is None:
                    reason = "end"
                    break
                self.engine.feed(call, chunk.leg, chunk.pcm, chunk.at_sample)
        except grpc.RpcError:
            reason = "cancelled"
        except Exception as exc:  # a broken stream: keep what arrived, score it
            reason = "error"
            errors.append(str(exc))
            logger.exception("call %s: the audio stream failed", call.call_id)
        meta = {"malformed_frames": bad} if bad else None
        if bad:
            logger.warning("call %s: %d malformed audio frames dropped", call.call_id, bad)
        self.engine.end_call(call, reason, meta=meta)

    # ---------------------------------------------------------------- streams out

    def WatchAlerts(self, request: pb.AlertFilter, context: Any) -> Iterator[pb.Alert]:
        severity = convert.SEVERITY_NAMES.get(request.min_severity)
        sub = self.engine.hub.subscribe(alert_filter(
            set(request.agent_ids) or None, set(request.team_ids) or None, severity,
            request.call_id or None,
        ))  # fmt: skip
        for event in _live_events(sub, context):
            yield convert.alert(event.data)

    def WatchCall(self, request: pb.CallRef, context: Any) -> Iterator[pb.CallEvent]:
        call = self.engine.find(request.call_id)
        if call is None:
            yield from self._stored_events(request.call_id, context)
            return
        sub = self.engine.hub.subscribe(lambda e: e.call_id == call.call_id)
        try:
            seen: set[int] = set()
            for event in list(call.history):
                seen.add(id(event))
                yield convert.event(event, call)
                if event.kind == "ended":
                    return
            while context.is_active():
                live: CallEvent | None = sub.get(POLL_S)
                if live is None:
                    if sub.closed:
                        return
                    continue
                if id(live) in seen:
                    continue
                yield convert.event(live, call)
                if live.kind == "ended":
                    return
        finally:
            sub.close()

    def WatchCalls(self, request: pb.WatchCallsRequest, context: Any) -> Iterator[pb.CallEvent]:
        agents, teams = set(request.agent_ids), set(request.team_ids)
        partials = request.include_partials

        def accept(event: CallEvent) -> bool:
            if event.kind == "transcript" and event.data.partial and not partials:
                return False
            if not agents and not teams:
                return True
            call = self.engine.find(event.call_id)
            if call is None:
                return False
            return (not agents or call.setup.agent_id in agents) and (
                not teams or call.setup.team_id in teams
            )

        for event in _live_events(self.engine.hub.subscribe(accept), context):
            yield convert.event(event, self.engine.find(event.call_id))

    def _stored_events(self, call_id: str, context: Any) -> Iterator[pb.CallEvent]:
        db = self._db()
        try:
            row = repository.get_call(db, call_id)
        finally:
            db.close()
        if row is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no call {call_id!r}")
            return
        stored = convert.stored_call(row)
        at = stored.started_at
        yield pb.CallEvent(call_id=call_id, emitted_at=at, started=pb.CallStarted(
            rubric_id=stored.rubric_id, rubric_version=stored.rubric_version,
            started_at=at, language=stored.language))  # fmt: skip
        for u in stored.transcript:
            yield pb.CallEvent(call_id=call_id, emitted_at=at,
                               transcript=pb.Transcript(utterance=u))  # fmt: skip
        for f in stored.findings:
            yield pb.CallEvent(call_id=call_id, emitted_at=at,
                               finding=pb.FindingEvent(finding=f))  # fmt: skip
        if stored.HasField("score"):
            result = pb.CallScored(
                score=stored.score, passed=stored.passed, fatal=stored.fatal,
                finding_count=len(stored.findings), category_scores=stored.category_scores,
            )  # fmt: skip
            yield pb.CallEvent(call_id=call_id, emitted_at=stored.scored_at, scored=result)
        yield pb.CallEvent(call_id=call_id, emitted_at=stored.scored_at or at, ended=pb.CallEnded(
            status=stored.status, duration_s=stored.duration_s))  # fmt: skip

    # ---------------------------------------------------------------- calls

    def ListLiveCalls(self, request: pb.ListLiveCallsRequest, context: Any) -> Any:
        agents, teams = set(request.agent_ids), set(request.team_ids)
        out = pb.ListLiveCallsResponse()
        for call in self.engine.live_calls():
            if call.ended or not call.setup.store:
                continue
            if agents and call.agent_id not in agents:
                continue
            if teams and call.team_id not in teams:
                continue
            out.calls.append(convert.live_call(call))
        return out

    def GetCall(self, request: pb.CallRef, context: Any) -> pb.Call:
        db = self._db()
        try:
            row = repository.get_call(db, request.call_id)
        finally:
            db.close()
        if row is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no call {request.call_id!r}")
            raise AssertionError("abort raises")
        return convert.stored_call(row)

    def ListCalls(self, request: pb.ListCallsRequest, context: Any) -> pb.ListCallsResponse:
        try:
            offset = int(request.page_token or 0)
        except ValueError:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "page_token is not one this API gave")
        limit = min(MAX_LIST, request.limit or 50)
        db = self._db()
        try:
            rows = repository.list_calls(
                db, agent=request.agent_id or None, team=request.team_id or None,
                passed=request.passed if request.HasField("passed") else None,
                status=convert.STATUS_NAMES.get(request.status),
                since=convert.iso(request.since) if request.HasField("since") else None,
                until=convert.iso(request.until) if request.HasField("until") else None,
                min_score=request.min_score if request.HasField("min_score") else None,
                max_score=request.max_score if request.HasField("max_score") else None,
                rubric_id=request.rubric_id or None, limit=limit + 1, offset=offset,
            )  # fmt: skip
        finally:
            db.close()
        out = pb.ListCallsResponse(calls=[convert.stored_summary(r) for r in rows[:limit]])
        if len(rows) > limit:
            out.next_page_token = str(offset + limit)
        return out

    def SearchTranscripts(self, request: pb.SearchRequest, context: Any) -> pb.SearchResponse:
        from core.storage.search import SearchFilters, search

        if not request.query.strip():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "query is empty")
        filters = SearchFilters(
            speaker=convert.SPEAKER_NAMES.get(request.speaker) or None,
            agent_id=request.agent_id or None, team_id=request.team_id or None,
            item_id=request.item_id or None,
            since=convert.iso(request.since) if request.HasField("since") else None,
            until=convert.iso(request.until) if request.HasField("until") else None,
        )  # fmt: skip
        db = self._db()
        try:
            found = search(db.conn, request.query, filters,
                           limit=min(MAX_LIST, request.limit or 50), offset=request.offset)
        finally:
            db.close()
        out = pb.SearchResponse(total=found.total)
        for r in found.hits:
            out.hits.append(pb.SearchHit(
                call_id=r["call_id"], call_started_at=convert.ts(r.get("started_at")),
                agent_id=r.get("agent_id") or "", speaker=convert.speaker(r["speaker"]),
                start_s=r["start_s"], end_s=r["end_s"], text=r["text"], snippet=r["snippet"],
            ))  # fmt: skip
        return out

    def ScoreRecording(self, request: pb.ScoreRecordingRequest, context: Any) -> Any:
        from core.audio.wav import AudioFileError

        self._check_recording(request, context)
        with tempfile.NamedTemporaryFile(suffix=".wav", delete=False,
                                         dir=self.daemon.settings.data_dir) as f:  # fmt: skip
            f.write(request.wav)
            path = Path(f.name)
        try:
            call_id, unstored = self._score(path, request)
        except (AudioFileError, RubricError, ValueError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise AssertionError("abort raises") from exc
        finally:
            path.unlink(missing_ok=True)
        if call_id is None:
            return pb.ScoreRecordingResponse(call=unstored)
        db = self._db()
        try:
            row = repository.get_call(db, call_id)
        finally:
            db.close()
        return pb.ScoreRecordingResponse(call=convert.stored_call(row or {"id": call_id}))

    def _check_recording(self, request: pb.ScoreRecordingRequest, context: Any) -> None:
        """INVALID_ARGUMENT for bytes that are not a WAV file the box reads or a channel
        choice that does not fit the file, NOT_FOUND for an unknown rubric."""
        from core.audio.wav import AudioFileError, parse_wav

        try:
            channels = len(parse_wav(request.wav, "wav").channels)
        except AudioFileError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise AssertionError("abort raises") from exc
        why = channel_choice_problem(request, channels)
        if why:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, why)
        if request.rubric_id:
            try:
                self.engine.resolve_rubric(request.rubric_id)
            except RubricError as exc:
                context.abort(grpc.StatusCode.NOT_FOUND, "\n".join(exc.problems))

    def _score(
        self, path: Path, request: pb.ScoreRecordingRequest
    ) -> tuple[str | None, pb.Call | None]:
        from core.scoring.recording import ScoreRequest, score_recording, writer_context

        mono = convert.SPEAKER_NAMES.get(request.mono_speaker)
        req = ScoreRequest(
            path=path, rubric_ref=request.rubric_id or self.daemon.settings.rubric,
            agent_id=request.agent_id or None, team_id=request.team_id or None,
            agent_channel="right" if request.agent_channel == pb.AGENT_CHANNEL_RIGHT else "left",
            speaker=mono,  # type: ignore[arg-type]
            started_at=convert.iso(request.started_at) if request.HasField("started_at") else None,
            store=request.store, source="file", move=True,
            meta={"received_by": "ScoreRecording"},
        )  # fmt: skip
        ctx = writer_context(self.daemon.settings, self.engine.writer, self.engine.transcriber())
        outcome = score_recording(ctx, req)
        unstored = None
        if outcome.call_id is None:
            r = outcome.scored.result
            unstored = pb.Call(
                call_id="", status=pb.CALL_STATUS_SCORED, rubric_id=r.rubric_id,
                score=r.score, passed=r.passed, fatal=r.fatal,
                duration_s=outcome.scored.evidence.duration_s,
                language=outcome.scored.evidence.language,
                findings=[convert.finding(f) for f in r.findings],
                transcript=[convert.utterance(u, seq=i) for i, u in enumerate(r.transcript)],
                category_scores={k: float(v) for k, v in r.category_scores.items()},
            )  # fmt: skip
        return outcome.call_id, unstored

    # ---------------------------------------------------------------- rubrics

    def ListRubrics(self, request: pb.ListRubricsRequest, context: Any) -> Any:
        from core.rubric.defaults import builtin_rubrics

        builtins = builtin_rubrics()
        out = pb.ListRubricsResponse()
        db = self._db()
        try:
            rows = repository.list_rubrics(db)
            for r in rows:
                rid = r["rubric_id"]
                stored = repository.get_rubric_version(db, rid, r["version"])
                rubric = load_rubric_text(stored["yaml"]) if stored else None
                versions = repository.rubric_version_numbers(db, rid)
                info = pb.RubricInfo(
                    rubric_id=rid, versions=versions,
                    built_in=rid in builtins, name=(rubric.name if rubric else "") or "",
                    language=rubric.language if rubric else "",
                )  # fmt: skip
                if r["active"]:
                    info.active_version = r["version"]
                out.rubrics.append(info)
        finally:
            db.close()
        seen = {r["rubric_id"] for r in rows}
        for rid, text in sorted(builtins.items()):
            if rid not in seen:
                rubric = load_rubric_text(text)
                out.rubrics.append(pb.RubricInfo(
                    rubric_id=rid, name=rubric.name or "", language=rubric.language,
                    built_in=True,
                ))  # fmt: skip
        return out

    def PutRubric(self, request: pb.PutRubricRequest, context: Any) -> pb.PutRubricResponse:
        try:
            rubric = load_rubric_text(request.yaml)
        except RubricError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "\n".join(exc.problems))
        stored = self.engine.writer.submit(
            rubric_store.store_rubric, rubric.id, request.yaml, request.activate, request.draft
        ).result()
        logger.info("rubric %s version %d stored%s", rubric.id, stored.version,
                    " and activated" if request.activate else "")  # fmt: skip
        return pb.PutRubricResponse(rubric_id=rubric.id, version=stored.version,
                                    unchanged=stored.unchanged, active=stored.active)  # fmt: skip

    def ActivateRubric(self, request: pb.ActivateRubricRequest, context: Any) -> pb.RubricInfo:
        try:
            self.engine.writer.submit(
                repository.set_active, request.rubric_id, request.version
            ).result()
        except ValueError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        logger.info("rubric %s version %d is active", request.rubric_id, request.version)
        listing = self.ListRubrics(pb.ListRubricsRequest(), context)
        for info in listing.rubrics:
            if info.rubric_id == request.rubric_id:
                return info
        return pb.RubricInfo(rubric_id=request.rubric_id, active_version=request.version)

    def ListRubricRoutes(self, request: pb.ListRubricRoutesRequest, context: Any) -> Any:
        from core.storage.routes import list_routes

        db = self._db()
        try:
            stored = list_routes(db)
        finally:
            db.close()
        return rubric_store.routes_response(stored, self.engine.routes, self.daemon.settings.rubric)

    def SetRubricRoutes(self, request: pb.SetRubricRoutesRequest, context: Any) -> Any:
        engine = self.engine
        try:
            stored = engine.writer.submit(rubric_store.set_routes, request).result()
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise AssertionError("abort raises") from exc
        rules: dict[str, dict[str, str]] = {kind: {} for kind in rubric_store.ROUTE_KINDS}
        for route in stored:
            rules[route.kind][route.value] = route.rubric_id
        engine.table_routes = rules  # calls that start from now on are routed by them
        logger.info("rubric routes stored: %s", ", ".join(
            f"{r.kind}:{r.value}={r.rubric_id}" for r in stored) or "(none)")  # fmt: skip
        return rubric_store.routes_response(stored, engine.routes, self.daemon.settings.rubric)

    # ---------------------------------------------------------------- capacity

    def GetCapacity(self, request: pb.GetCapacityRequest, context: Any) -> pb.Capacity:
        engine = self.engine
        sched = engine.scheduler
        model = sched.engine
        out = pb.Capacity(
            live_lines=sum(1 for c in engine.live_calls() if not c.ended),
            max_sessions=self.daemon.settings.sip_max_sessions,
            asr_backlog_utterances=sched.backlog, asr_backlog_audio_s=sched.backlog_audio_s,
            queued_on_disk_utterances=sched.spooled_now,
            asr_device=getattr(model, "device", ""),
            asr_compute_type=getattr(model, "compute_type", ""),
            model_name=getattr(getattr(model, "model_info", None), "name", "")
            or self.daemon.settings.model,
        )  # fmt: skip
        stats = sched.stats
        if stats.audio_s > 0:
            out.asr_real_time_factor = stats.busy_s / stats.audio_s
        for stage, seconds in stage_cpu.snapshot().items():
            out.stage_cpu.add(stage=stage, cpu_s=seconds)
        rss, peak = stage_cpu.memory_bytes()
        out.memory_rss_bytes, out.memory_peak_rss_bytes = rss, peak
        bridge = self.daemon.sip_bridge
        if bridge is not None:
            out.packets.CopyFrom(pb.PacketCounts(**dict(bridge.packets)))
        out.asr_utterances, out.asr_audio_s = stats.utterances, stats.audio_s
        out.asr_busy_s, out.asr_batches = stats.busy_s, stats.batches
        out.asr_partials_skipped = stats.partials_skipped
        early = engine.early.counts
        out.asr_early_decodes, out.asr_early_decodes_used = early["queued"], early["used"]
        latencies = list(engine.transcript_latencies_ms)
        out.transcripts = engine.counters["transcripts"]
        if latencies:
            out.transcript_latency_p50_ms = percentile(latencies, 50) or 0.0
            out.transcript_latency_p95_ms = percentile(latencies, 95) or 0.0
        last = _last_benchmark(self.daemon.settings.db_path)
        if last is not None:
            out.last_benchmark.CopyFrom(last)
        return out

    def RunBenchmark(self, request: pb.RunBenchmarkRequest, context: Any) -> Iterator[
        pb.BenchmarkProgress
    ]:
        from core.api.benchmark import run_benchmark_rpc

        if not self._bench_lock.acquire(blocking=False):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "a benchmark is already running")
        try:
            yield from run_benchmark_rpc(self.daemon, request, context)
        finally:
            self._bench_lock.release()

    # ---------------------------------------------------------------- listening

    def ListenCall(self, request: pb.ListenRequest, context: Any) -> Iterator[pb.ListenAudio]:
        from core.api.listen import listen_call

        yield from listen_call(self.engine, request, context)


def _live_events(sub: Subscription, context: Any) -> Iterator[CallEvent]:
    """A subscription's events until the client goes away or the hub closes it."""
    try:
        while context.is_active():
            event = sub.get(POLL_S)
            if event is None:
                if sub.closed:
                    return
                continue
            yield event
    finally:
        sub.close()


def _last_benchmark(db_path: Path) -> pb.BenchmarkResult | None:
    """The newest benchmark of the box's own configuration (never a baseline)."""
    from core.storage.benchmarks import BOX_KINDS, last_benchmark

    db = open_db(db_path)
    try:
        row = last_benchmark(db, BOX_KINDS)
    finally:
        db.close()
    if not row:
        return None
    held = [s for s in row.get("steps") or [] if s.get("held")]
    p95 = held[-1].get("latency_p95_ms") if held else None
    return pb.BenchmarkResult(
        max_lines=row.get("max_lines_held") or 0, latency_p95_ms=p95 or 0.0,
        finished_at=convert.ts(row.get("finished_at")),
        asr_device=row.get("asr_device") or "", model_name=row.get("model_name") or "",
        summary=row.get("summary") or "",
    )  # fmt: skip
