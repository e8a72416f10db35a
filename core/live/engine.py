"""The live engine: every line's audio in; transcripts, findings, alerts and scores out.

Threads, and what each owns (ARCHITECTURE.md, "One packet's way"):

* ingest threads (the SIP/RTP event loop, gRPC stream handlers) call :meth:`feed`: the leg's
  VAD and endpointer run there, finished utterances go to the ASR scheduler;
* the ASR scheduler's thread owns the one Whisper model (``core.live.scheduler``);
* the rules thread owns every call's state: it adds transcripts and timelines, runs the
  rubric's live kinds on each change (a call's timeline updates that queue up while the
  thread is behind share one check), publishes findings and alerts, and runs the
  end-of-call pass once a call has ended and its last utterance is transcribed;
* the storage writer thread owns the database's write connection.

A call is stored as ``live`` when it starts, with the path of its recording, so that after
a crash (kill -9, power loss) :meth:`recover` finds it, repairs the recording's header and
scores it from the file; it is then stored as ``interrupted``.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from core.asr.types import AsrResult, Transcriber
from core.calls import CallResult, Finding, Speaker, Utterance
from core.clock import utc_now_iso
from core.config import Settings
from core.live.call import CallSetup, LiveCall
from core.live.disk_guard import DiskGuard
from core.live.early import EarlyDecode, EarlyDecodes
from core.live.events import CallEvent, EventHub, LiveAlert, TranscriptLine
from core.live.leg import LegOutput, LiveLeg, LiveUtterance
from core.live.recovery import BackfillTranscriber, Recovery, recover_call
from core.live.routing import RubricRoutes
from core.live.scheduler import (
    COURTESY,
    PRIORITY_FINAL,
    PRIORITY_PARTIAL,
    AsrJob,
    AsrScheduler,
)
from core.rubric.engine import evaluate
from core.rubric.redaction import redactor_for
from core.stage_cpu import charge, name_thread
from core.stop_points import stop_point
from core.storage import repository
from core.storage.live_calls import (
    interrupted_calls,
    mark_ending,
    record_alert,
    store_live_call,
    team_of,
)
from core.storage.redacted_audio import silence_in_spool
from core.storage.routes import route_rules
from core.storage.rubric_catalog import ResolvedRubric, resolve_rubric
from core.storage.writer import StorageWriter

logger = logging.getLogger(__name__)

LIVE_SPOOL = "live"
QUEUE_SPOOL = "asr-queue"
TIMELINE_EVERY_S = 1.0
LATENCY_WINDOW = 1000
STOP_REASON = "shutdown"
ASR_STOP_WAIT_S = 60.0
"""Longest wait, at a stop, for the batches being decoded (one batch's decoding time)."""
RULES_STOP_WAIT_S = 10.0
WRITER_STOP_WAIT_S = 30.0


class LiveEngine:
    """See the module notes. ``start()``, feed calls, ``shutdown()``."""

    def __init__(
        self,
        settings: Settings,
        engine_factory: Callable[[], Transcriber],
    ) -> None:
        self.settings = settings
        self.routes = RubricRoutes.parse(settings.rubric_routes)
        self.table_routes: dict[str, dict[str, str]] = {}
        """The ``rubric_routes`` table (laid over `routes`), read at start and on change."""
        self.hub = EventHub()
        self.disk = DiskGuard(settings.data_dir, settings.disk_min_free_mb)
        self.spool_dir = settings.data_dir / "spool" / LIVE_SPOOL
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.scheduler = AsrScheduler(
            engine_factory,
            batch_size=settings.asr_batch_size,
            workers=settings.asr_inter_threads,
            memory_s=settings.asr_queue_memory_s,
            spool_dir=settings.data_dir / "spool" / QUEUE_SPOOL,
            part_load_limit=settings.live_part_load_limit,
        )
        self.writer = StorageWriter(settings.db_path)
        self.calls: dict[str, LiveCall] = {}
        self.by_external: dict[str, str] = {}
        self.counters: dict[str, int] = {
            "calls_started": 0, "calls_scored": 0, "calls_failed": 0, "alerts": 0,
            "late_alerts": 0, "findings": 0, "utterances": 0, "recovered": 0, "transcripts": 0,
            "not_speech_utterances": 0,
        }  # fmt: skip
        self.alert_latencies_ms: list[float] = []
        self.transcript_latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        """End of speech to transcript (or to the ASR's empty answer), finished utterances."""
        self._lock = threading.Lock()
        self._rules: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._rules_thread = threading.Thread(
            target=self._rules_loop, name="callqa-rules", daemon=True
        )
        self._alert_ids = itertools.count(1)
        self._rubric_cache: dict[tuple[str, int], ResolvedRubric] = {}
        self._stopped = False
        self.early = EarlyDecodes(
            self.scheduler, self._post, make_job=self._job, deliver=self._transcribed,
            resubmit=self._queue_final,
        )  # fmt: skip

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Load the model, start the threads, and re-score calls a crash interrupted."""
        self.scheduler.start(wait=True)
        self._rules_thread.start()
        self.table_routes = self.writer.submit(route_rules).result()
        interrupted = self.writer.submit(interrupted_calls).result()
        if interrupted:
            logger.info("%d calls were interrupted by a stop; scoring them", len(interrupted))
            threading.Thread(
                target=self._recover_all, args=(interrupted,), name="callqa-recover",
                daemon=True,
            ).start()  # fmt: skip

    def end_all(self, reason: str = STOP_REASON) -> None:
        """Refuse new calls and end every live one (they are then scored and stored).

        The ASR then works for the calls nearest to being done first: those that had ended
        before (in the order they ended), then those ended now, least audio left first; so
        that within a stop's grace period as many calls as possible are completely scored.
        """
        self._stopped = True
        with self._lock:
            live = list(self.calls.values())
        for call in live:
            if not call.ended:
                self.end_call(call, reason)
        self._finish_nearest_first()

    def _finish_nearest_first(self) -> None:
        left_s: dict[str, float] = {}
        for job in self.scheduler.queued_jobs():
            call = _call_of(job)
            if call is not None:
                left_s[call.call_id] = left_s.get(call.call_id, 0.0) + job.audio_s

        def rank(job: AsrJob) -> tuple[float, ...]:
            call = _call_of(job)
            if call is None or not call.ended:
                return (2.0, 0.0)
            if call.end_reason_given != STOP_REASON:
                return (0.0, call.ended_at)
            return (1.0, left_s.get(call.call_id, 0.0))

        self.scheduler.rank_by(rank)

    def wait_calls(self, timeout_s: float) -> bool:
        """Wait until every call has been scored and stored; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self.calls:
                    return True
            time.sleep(0.05)
        return False

    def shutdown(self, grace_s: float = 20.0) -> list[str]:
        """End every live call, finish scoring within ``grace_s``, then stop the threads.

        When the grace period is over the ASR takes no more work: the batches being decoded
        finish (no thread is left inside the model when the process exits), the rules
        thread finishes what they produced, and the calls still not scored are stored as
        ``ending`` with their recording, in one transaction; the next start scores them.
        Returns the ids of those calls.
        """
        deadline = time.monotonic() + grace_s
        self.end_all(STOP_REASON)
        self.wait_calls(grace_s)
        self._stopped = True
        self.scheduler.stop(ASR_STOP_WAIT_S, drain=False)
        self._rules.put(None)
        self._rules_thread.join(RULES_STOP_WAIT_S)
        with self._lock:
            left = [cid for cid, call in self.calls.items()
                    if call.setup.store and not call.finalized]  # fmt: skip
        if left:
            try:
                self.writer.submit(mark_ending, left).result(RULES_STOP_WAIT_S)
            except Exception:
                logger.exception("%d calls could not be marked for scoring at the next start",
                                 len(left))  # fmt: skip
        self.writer.close(timeout=WRITER_STOP_WAIT_S)
        self.hub.close_all()
        if left:
            logger.warning(
                "%d calls not scored in the %.0f s grace period; they are scored at the next "
                "start", len(left), grace_s,
            )  # fmt: skip
        logger.info("live engine stopped %.1f s after the stop began",
                    grace_s - (deadline - time.monotonic()))  # fmt: skip
        return left

    # ---------------------------------------------------------------- calls

    def open_call(self, setup: CallSetup, *, subscribe: bool = False) -> LiveCall:
        """Start tracking a call (any thread). Raises ValueError for an unknown rubric.

        With ``subscribe``, ``call.subscription`` receives every event of the call from
        its start.
        """
        if self._stopped:
            raise RuntimeError("the daemon is stopping")
        if setup.store:
            self.disk.admit()  # DiskLow (a RuntimeError) while the data disk is nearly full
        if setup.sample_rate not in (8000, 16000):
            raise ValueError(f"sample rate must be 8000 or 16000 Hz, got {setup.sample_rate}")
        team = setup.team_id
        if team is None and setup.agent_id:
            team = self.writer.submit(team_of, setup.agent_id).result()
            setup.team_id = team
        ref = setup.rubric or self.routes.overlay(self.table_routes).choose(
            agent_id=setup.agent_id, team_id=team, skill=setup.skill, default=self.settings.rubric
        )
        resolved = self.resolve_rubric(ref)
        call_id = repository.new_call_id()
        started = utc_now_iso("milliseconds")
        legs = {
            sp: LiveLeg(
                sp, setup.sample_rate, min_silence_s=self.settings.min_silence_s,
                max_utterance_s=self.settings.max_utterance_s,
                partial_every_s=self.settings.live_partial_every_s,
                early_after_s=self.settings.live_early_decode_s,
            )
            for sp in setup.legs
        }  # fmt: skip
        recorder = None
        if setup.recording_path is None and setup.store:
            from telephony.recorder import AGENT_CHANNEL, CUSTOMER_CHANNEL, CallRecorder

            path = self.spool_dir / f"{call_id}.wav"
            recorder = CallRecorder(path, 2, setup.sample_rate)
            channels = {"agent": AGENT_CHANNEL, "customer": CUSTOMER_CHANNEL}
            setup.meta.setdefault("channel_roles", channels)
        else:
            path = setup.recording_path or self.spool_dir / f"{call_id}.none"
        call = LiveCall(call_id, setup, resolved.rubric, resolved.version, legs, path, started)
        call.redactor = redactor_for(resolved.rubric, self.settings)
        call.recorder = recorder
        if subscribe:
            call.subscription = self.hub.subscribe(lambda e: e.call_id == call_id)
        if setup.store:
            record = self._record(call, status="live")
            self.writer.submit(repository.create_call, record).result()
        with self._lock:
            self.calls[call_id] = call
            if setup.external_id:
                self.by_external[setup.external_id] = call_id
            self.counters["calls_started"] += 1
        event = self._event(call, "started", {"rubric_id": resolved.rubric.id,
                                              "rubric_version": resolved.version})  # fmt: skip
        self._post(lambda: self._publish(call, event))
        logger.info(
            "call %s (%s %s) started: agent %s, team %s, rubric %s v%s", call_id, setup.source,
            setup.external_id or "-", setup.agent_id, team, resolved.rubric.id, resolved.version,
            extra={"call_id": call_id, "sip_call_id": setup.meta.get("sip_call_id")},
        )  # fmt: skip
        return call

    def find(self, ref: str) -> LiveCall | None:
        """A live call by its id or by the sender's id for it."""
        with self._lock:
            call = self.calls.get(ref)
            if call is None and ref in self.by_external:
                call = self.calls.get(self.by_external[ref])
            return call

    def live_calls(self) -> list[LiveCall]:
        with self._lock:
            return list(self.calls.values())

    def feed(
        self, call: LiveCall, speaker: Speaker, pcm: np.ndarray, at_sample: int | None = None
    ) -> None:
        """Audio of one leg (int16 or float32 at the call's rate), from that leg's ingest."""
        leg = call.legs.get(speaker)
        if leg is None or call.ended:
            return
        with call.ingest_lock:  # end_call may run on another thread
            if call.ended:
                return
            if speaker not in call.leg_start_s:
                call.leg_start_s[speaker] = (at_sample or 0) / call.setup.sample_rate
            if call.recorder is not None or call.taps:
                pcm16 = pcm if pcm.dtype == np.int16 else _to_int16(pcm)
                start = leg.samples if at_sample is None else at_sample
                for tap in call.taps:  # listeners (core.live.listening); they never block
                    tap.offer(speaker, start, pcm16, time.time())
            if call.recorder is not None:
                from telephony.recorder import AGENT_CHANNEL, CUSTOMER_CHANNEL

                channel = AGENT_CHANNEL if speaker == "agent" else CUSTOMER_CHANNEL
                call.recorder.write(channel, pcm16, start)
            # Handled under the lock too, so that an end_call on another thread cannot
            # slip its end-of-call mark in before these utterances are counted.
            with charge("dsp"):
                output = leg.push(pcm, at_sample)
            self._handle(call, leg, output)

    def end_call(
        self, call: LiveCall, reason: str, meta: dict[str, Any] | None = None,
        duration_s: float | None = None, unscored_status: str | None = None,
    ) -> None:  # fmt: skip
        """The call has ended (BYE, end of stream, timeout): flush it and score it.

        ``duration_s`` is the recording's length when the ingest recorded the call.
        ``unscored_status`` (e.g. ``no audio``): store the call with this status and no score.
        """
        with call.ingest_lock:
            if call.ended:
                return
            call.ended = True  # no more audio is taken; the rules thread finishes the rest
            call.ended_at = time.monotonic()
            call.end_reason_given = reason
            for tap in call.taps:
                tap.close()
            for leg in call.legs.values():
                self._handle(call, leg, leg.flush(), final=True)
            # Parts and early decodes of its utterances still queued are moot: the finished
            # ones follow (an early decode a finished one took has been moved up already).
            prefix = f"{call.call_id}/"
            self.scheduler.cancel(
                lambda job: job.priority in COURTESY and job.key.startswith(prefix)
            )
            if call.recorder is not None:
                call.recorder.close()
                call.recorded_s = call.recorder.duration_s
                if call.recorder.full is not None:  # the disk filled up during the call
                    meta = {**(meta or {}), "recording_cut": call.recorder.full}
            elif duration_s is not None:
                call.recorded_s = duration_s
            stop_point("call-ended")

            def mark() -> None:
                call.end_marked = True
                call.end_reason = reason
                call.unscored_status = unscored_status
                if meta:
                    call.extra_meta.update(meta)
                self._maybe_finish(call)

            self._post(mark)

    # ---------------------------------------------------------------- per leg

    def _handle(self, call: LiveCall, leg: LiveLeg, out: LegOutput, final: bool = False) -> None:
        clock = call.clocks[leg.speaker]
        clock.position_s = out.position_s
        clock.wall = time.time()
        clock.mono = time.monotonic()
        for utt in out.finished:
            self._submit(call, utt, PRIORITY_FINAL)
        for utt in out.partials:
            self._submit(call, utt, PRIORITY_PARTIAL)
        if out.early is not None:
            self.early.offer(call, out.early)
        if final or out.voiced or out.position_s - leg.timeline_posted_s >= TIMELINE_EVERY_S:
            leg.timeline_posted_s = out.position_s
            voiced, position = list(out.voiced), out.position_s
            self._post(lambda: self._timeline(call, leg.speaker, voiced, position))

    def _submit(self, call: LiveCall, utt: LiveUtterance, priority: int) -> None:
        if priority == PRIORITY_FINAL:
            self._post(lambda: _count_pending(call, +1))
        end_wall = call.clocks[utt.speaker].wall_of(utt.span.speech_end)
        if priority == PRIORITY_FINAL and self.early.claim(call, utt, end_wall):
            return
        self._queue(call, utt, priority, end_wall)

    def _queue_final(self, call: LiveCall, utt: LiveUtterance, end_wall: float) -> None:
        self._queue(call, utt, PRIORITY_FINAL, end_wall)

    def _queue(self, call: LiveCall, utt: LiveUtterance, priority: int, end_wall: float) -> None:
        context = (call, utt.without_audio(), end_wall)  # the audio is the job's alone
        self.scheduler.submit(self._job(call, utt, priority, self._asr_done, context))

    def _job(
        self, call: LiveCall, utt: LiveUtterance, priority: int,
        done: Callable[[AsrJob, AsrResult | None, str | None], None], context: Any,
    ) -> AsrJob:  # fmt: skip
        tag = f"p{utt.part}" if utt.partial else "e" if priority in COURTESY else ""
        return AsrJob(
            key=f"{call.call_id}/{utt.speaker}/{utt.seq}{tag}",
            audio=utt.audio16, language=call.language,
            ready_at=call.clocks[utt.speaker].mono_of(utt.span.speech_end),
            done=done, priority=priority, context=context,
            candidates=None if utt.partial else call.phrase_candidates(utt.speaker),
        )  # fmt: skip

    def _asr_done(self, job: AsrJob, result: AsrResult | None, error: str | None) -> None:
        call, utt, end_wall = job.context
        self._post(lambda: self._transcribed(call, utt, end_wall, result, error))

    # ---------------------------------------------------------------- rules thread

    def _post(self, task: Callable[[], None]) -> None:
        self._rules.put(task)

    def _rules_loop(self) -> None:
        name_thread("rules")
        while True:
            task = self._rules.get()
            if task is None:
                return
            try:
                task()
            except Exception:
                logger.exception("the rules thread hit an error")

    def _transcribed(
        self, call: LiveCall, lu: LiveUtterance, end_wall: float, result: AsrResult | None,
        error: str | None,
    ) -> None:  # fmt: skip
        if not lu.partial:
            call.pending_asr -= 1
            self.counters["transcripts"] += 1
            self.transcript_latencies_ms.append(max(0.0, time.time() - end_wall) * 1000.0)
        span = lu.span
        text = "" if result is None or result.filtered else result.text.strip()
        if error and not lu.partial:
            call.extra_meta.setdefault("asr_errors", []).append(error)
        if not text:
            if not lu.partial:  # an empty part adds nothing to the parts before it
                call.dropped_utterances += 1
                if result is not None and result.filter_reason == "not_speech":
                    call.not_speech_utterances += 1
                    self.counters["not_speech_utterances"] += 1
                self._maybe_finish(call)
            return
        utt = Utterance(
            speaker=lu.speaker, start=span.start, end=span.end, text=text,
            level_db=span.level_db, voiced_s=span.voiced_s, pitch_hz=span.pitch_hz,
            avg_logprob=result.avg_logprob if result else None,
            no_speech_prob=result.no_speech_prob if result else None,
            checks=list(result.checks) if result else [],
            decoded_text=result.decoded_text if result else None,
        )  # fmt: skip
        if lu.partial:
            if call.ended or call.is_finished(lu.speaker, lu.seq):
                return
            utt = call.set_partial(utt, lu.seq, lu.part, span.speech_end)
        else:
            call.add_utterance(utt, lu.seq, span.speech_end)
            self.counters["utterances"] += 1
        latency = max(0.0, time.time() - end_wall) * 1000.0
        noted = len(call.redactor.spans)
        shown = call.redactor.utterance(utt, live=True, part=lu.partial)  # the text read first
        if call.setup.store and len(call.redactor.spans) > noted:
            starts = {str(leg): at for leg, at in call.leg_start_s.items()}
            silence_in_spool(self.settings, call.recording_path, call.redactor.spans[noted:],
                             starts)  # fmt: skip
        line = TranscriptLine(shown, lu.partial, lu.seq, latency,
                              call.leg_start_s.get(lu.speaker, 0.0))  # fmt: skip
        self._publish(call, self._event(call, "transcript", line))
        if not call.ended:
            self._check_live(call, end_wall)
        self._maybe_finish(call)

    def _timeline(
        self, call: LiveCall, speaker: Speaker, voiced: list[Any], position_s: float
    ) -> None:
        call.add_timeline(speaker, voiced, position_s)
        if call.ended:
            return
        waiting = call.timeline_check is not None
        call.timeline_check = (speaker, position_s)
        if not waiting:
            self._post(lambda: self._check_timeline(call))

    def _check_timeline(self, call: LiveCall) -> None:
        """The live check of a call's timeline, once for all the updates queued before it:
        while the rules thread is behind, each call's timeline is checked as often as the
        thread gets to it, with its latest evidence, and the queue stays short."""
        due, call.timeline_check = call.timeline_check, None
        if due is None or call.ended:
            return
        speaker, position_s = due
        self._check_live(call, call.clocks[speaker].wall_of(position_s), timeline_only=True)

    def _check_live(
        self, call: LiveCall, trigger_wall: float, *, timeline_only: bool = False
    ) -> None:
        for raw in call.new_findings(timeline_only=timeline_only):
            finding = call.redactor.finding(raw)  # the rules read the text, events the mask
            self.counters["findings"] += 1
            self._publish(call, self._event(call, "finding", finding))
            if finding.alert:
                self._raise_alert(call, finding, self._end_wall(call, finding, trigger_wall))

    def _end_wall(self, call: LiveCall, finding: Finding, fallback: float) -> float:
        """Wall time at which the evidence of a finding ended: the end of the speech of the
        utterance (or the part of one) that holds it, else the end of the finding itself (a
        silence, an overtalk)."""
        speakers = [sp for sp in call.clocks if finding.speaker in (sp, "any", "both")]
        end = call.speech_end_holding(finding)
        walls = [call.clocks[sp].wall_of(end) for sp in speakers or list(call.clocks)
                 if call.clocks[sp].wall]  # fmt: skip
        return min(walls) if walls else fallback

    def _raise_alert(
        self, call: LiveCall, finding: Finding, end_wall: float, *, live: bool = True
    ) -> LiveAlert:
        finding = call.redactor.finding(finding)
        now = time.time()
        late = (now - end_wall) > self.settings.alert_deadline_s
        alert = LiveAlert(
            alert_id=f"{call.call_id}-{next(self._alert_ids)}", call_id=call.call_id,
            agent_id=call.agent_id, team_id=call.team_id, finding=finding,
            utterance_end_at=end_wall, raised_at=now, late=late, live=live,
        )  # fmt: skip
        call.alerts.append(alert)
        if call.setup.store:
            self.counters["alerts"] += 1
            self.counters["late_alerts"] += int(late)
            if not call.finalized:  # kept as raised: a crash before the end keeps it
                self.writer.submit(record_alert, call.call_id, alert.to_json())
        if live and call.setup.store:
            self.alert_latencies_ms.append(alert.latency_ms)
            if len(self.alert_latencies_ms) > 10_000:
                del self.alert_latencies_ms[:5_000]
        self._publish(call, self._event(call, "alert", alert))
        logger.log(
            logging.INFO if call.setup.store else logging.DEBUG,
            "ALERT call %s agent %s: %s (%s) %r at %.1f s, %.0f ms after the speech%s",
            call.call_id, call.agent_id, finding.item_id, finding.severity, finding.evidence,
            finding.start, alert.latency_ms, " (late)" if late else "",
            extra=_log_fields(call.call_id, finding.speaker),
        )  # fmt: skip
        return alert

    def _maybe_finish(self, call: LiveCall) -> None:
        # end_marked, not ended: the end is known on this thread only once mark() ran, after
        # the utterances the end flushed were counted in pending_asr.
        if not call.end_marked or call.finalized or call.pending_asr > 0:
            return
        call.finalized = True
        try:
            result = None if call.unscored_status else evaluate(
                call.rubric, call.evidence(ended=True), rubric_version=call.rubric_version)
        except Exception:
            logger.exception("call %s: the end-of-call pass failed", call.call_id,
                             extra={"call_id": call.call_id})  # fmt: skip
            result = None
        if result is not None:
            result = call.redactor.result(result)  # after the rules, before events and rows
            self._alert_missed(call, result)
            self._publish(call, self._event(call, "scored", result))
        if not call.setup.store:
            self._stored(call, None)
            return
        status = call.unscored_status or ("scored" if result is not None else "failed")
        record = self._record(call, status=status)
        future = self.writer.submit(store_live_call, self.settings, record, result,
                                    call.recording_path)  # fmt: skip
        future.add_done_callback(lambda f: self._post(lambda: self._stored(call, f)))

    def _alert_missed(self, call: LiveCall, result: CallResult) -> None:
        """Alerts for findings only the whole call shows (e.g. an end-of-call item)."""
        for finding in result.findings:
            if finding.alert and not call.already_raised(finding):
                call.raised[(finding.item_id, round(finding.start, 2))] = finding
                self.counters["findings"] += 1
                self._publish(call, self._event(call, "finding", finding))
                self._raise_alert(call, finding, self._end_wall(call, finding, time.time()))

    def _stored(self, call: LiveCall, future: Any) -> None:
        status = "stored" if future is not None else "not kept"
        try:
            if future is not None:
                future.result()
            self.counters["calls_scored"] += 1
        except Exception as exc:
            status = f"not stored: {exc}"
            self.counters["calls_failed"] += 1
            logger.exception("call %s could not be stored; recording kept at %s",
                             call.call_id, call.recording_path,
                             extra={"call_id": call.call_id})  # fmt: skip
        self._publish(call, self._event(call, "ended", {"reason": call.end_reason,
                                                        "status": status}))  # fmt: skip
        with self._lock:
            self.calls.pop(call.call_id, None)
            if call.setup.external_id:
                self.by_external.pop(call.setup.external_id, None)
        logger.info("call %s ended (%s), %s", call.call_id, call.end_reason, status,
                    extra={"call_id": call.call_id})  # fmt: skip

    # ---------------------------------------------------------------- helpers

    def _event(self, call: LiveCall, kind: str, data: Any) -> CallEvent:
        return CallEvent(call.call_id, kind, data, agent_id=call.agent_id,  # type: ignore[arg-type]
                         team_id=call.team_id, internal=not call.setup.store)  # fmt: skip

    def _publish(self, call: LiveCall, event: CallEvent) -> None:
        call.remember(event)
        self.hub.publish(event)

    def resolve_rubric(self, ref: str) -> ResolvedRubric:
        resolved: ResolvedRubric = self.writer.submit(resolve_rubric, ref).result()
        return resolved

    def _record(self, call: LiveCall, status: str) -> repository.CallRecord:
        s = call.setup
        meta = {
            **s.meta, **call.extra_meta, "alerts_raised": [a.to_json() for a in call.alerts],
            **(call.redaction_meta() if status != "live" else {}),
            "live": {
                "external_id": s.external_id, "skill": s.skill, "end_reason": call.end_reason,
                "alerts": len(call.alerts), "late_alerts": sum(a.late for a in call.alerts),
                "dropped_utterances": call.dropped_utterances, "sample_rate": s.sample_rate,
                "not_speech_utterances": call.not_speech_utterances,
                "rubric_id": call.rubric.id, "rubric_version": call.rubric_version,
                "recorded_by": "engine" if call.recorder is not None else "ingest",
            },
        }  # fmt: skip
        return repository.CallRecord(
            id=call.call_id, source=s.source, recording_path=str(call.recording_path),
            duration_s=round(call.duration_s, 3), started_at=call.started_at,
            agent_id=s.agent_id, team_id=s.team_id, language=call.language, meta=meta,
            status=status, caller=s.caller, callee=s.callee,
        )  # fmt: skip

    # ---------------------------------------------------------------- recovery

    def transcriber(self) -> Transcriber:
        """A transcriber that queues on the scheduler as backfill work (for re-scoring)."""
        return BackfillTranscriber(self.scheduler)

    def _recover_all(self, rows: list[dict[str, Any]]) -> None:
        recovery = Recovery(
            config=self.settings, writer=self.writer, resolve_rubric=self.resolve_rubric,
            transcriber=self.transcriber(), batch_size=self.scheduler.batch_size,
        )  # fmt: skip
        for row in rows:
            try:
                recover_call(recovery, row)
                self.counters["recovered"] += 1
            except Exception:
                logger.exception("call %s could not be recovered", row["id"],
                                 extra={"call_id": row["id"]})  # fmt: skip


def _log_fields(call_id: str, speaker: str) -> dict[str, str]:
    """A record's ``call_id``, and its ``leg`` when one leg is meant (``core.logs``)."""
    fields = {"call_id": call_id}
    if speaker in ("agent", "customer"):
        fields["leg"] = speaker
    return fields


def _call_of(job: AsrJob) -> LiveCall | None:
    """The live call an ASR job belongs to (None for other work, such as backfill)."""
    context = job.context
    if isinstance(context, tuple) and context and isinstance(context[0], LiveCall):
        return context[0]
    if isinstance(context, EarlyDecode):
        return context.call
    return None


def _count_pending(call: LiveCall, delta: int) -> None:
    call.pending_asr += delta


def _to_int16(pcm: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(pcm, np.float32) * 32768.0, -32768, 32767).astype(np.int16)


