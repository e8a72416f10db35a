"""The state of one live call: its legs, transcript so far, timelines, findings and alerts.

Audio reaches the legs on the ingest thread; everything else here (utterances, timelines,
findings) is changed only on the engine's rules thread, so the rule engine sees a
consistent call. :meth:`LiveCall.evidence` is the growing evidence the rubric engine runs on
while the call goes on (``ended`` false), and once more at its end.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.asr.types import CandidateFinder
from core.calls import CallEvidence, Finding, LegActivity, Segment, Speaker, Utterance
from core.live.events import CallEvent, LiveAlert
from core.live.leg import LiveLeg
from core.rubric.engine import live_findings
from core.rubric.phrase_checks import candidate_finder
from core.rubric.redaction import CallRedactor, merge_spans
from core.rubric.schema import Rubric
from core.storage.redacted_audio import redaction_meta
from core.text_norm import join_texts

HISTORY_LIMIT = 5_000
SAME_FINDING_S = 0.5


@dataclass
class CallSetup:
    """What is known about a call when it starts."""

    source: str
    """How it reached the box: siprec, sip, grpc, mirror."""
    external_id: str | None = None
    """The sender's id for it (SIP Call-ID, the integration's call id)."""
    agent_id: str | None = None
    team_id: str | None = None
    skill: str | None = None
    rubric: str | None = None
    """A rubric chosen by the sender; else the routing rules choose."""
    caller: str | None = None
    callee: str | None = None
    sample_rate: int = 8000
    recording_path: Path | None = None
    """Where the ingest records the call; None: the engine records it itself."""
    legs: tuple[Speaker, ...] = ("agent", "customer")
    meta: dict[str, Any] = field(default_factory=dict)
    store: bool = True
    """False for calls that are not kept (capacity benchmarks): no rows, no recording."""
    leg_stats: Callable[[], dict[str, tuple[int, int]]] | None = None
    """Packets (received, lost) per leg so far, when the ingest counts them."""


@dataclass
class LegClock:
    """Maps a leg's audio time to wall time, from the latest audio that arrived."""

    position_s: float = 0.0
    wall: float = 0.0
    mono: float = 0.0

    def wall_of(self, leg_time_s: float) -> float:
        return self.wall - max(0.0, self.position_s - leg_time_s)

    def mono_of(self, leg_time_s: float) -> float:
        return self.mono - max(0.0, self.position_s - leg_time_s)


class LiveCall:
    """One call in progress (see the module notes for which thread touches what)."""

    def __init__(
        self,
        call_id: str,
        setup: CallSetup,
        rubric: Rubric,
        rubric_version: int | None,
        legs: dict[Speaker, LiveLeg],
        recording_path: Path,
        started_at: str,
    ) -> None:
        self.call_id = call_id
        self.setup = setup
        self.rubric = rubric
        self.rubric_version = rubric_version
        self.language = rubric.language
        self._phrase_candidates: dict[Speaker, CandidateFinder | None] = {
            sp: candidate_finder(rubric, sp) for sp in legs
        }
        self.legs = legs
        self.recording_path = recording_path
        self.started_at = started_at
        self.started_wall = time.time()
        self.clocks: dict[Speaker, LegClock] = {sp: LegClock() for sp in legs}
        # rules-thread state
        self.utterances: list[Utterance] = []
        self.partials: dict[tuple[Speaker, int], Utterance] = {}
        """The parts of each utterance still going on, joined into one (see set_partial)."""
        self._parts: dict[tuple[Speaker, int], dict[int, Utterance]] = {}
        self.speech_ends: dict[int, float] = {}  # id(utterance) -> end of its speech (s)
        self.finished_seqs: set[tuple[Speaker, int]] = set()
        self.leg_start_s: dict[Speaker, float] = {}
        """Call time of each leg's first audio (set by the ingest thread, once)."""
        self.activity: dict[str, LegActivity] = {
            sp: LegActivity(speaker=sp, voiced=[], duration_s=0.0) for sp in legs
        }
        self.raised: dict[tuple[str, float], Finding] = {}
        self.timeline_check: tuple[Speaker, float] | None = None
        """The leg and position of the latest timeline update whose live check waits on the
        rules thread (None: no check waits); updates that come before it runs share it."""
        self.alerts: list[LiveAlert] = []
        self.history: list[CallEvent] = []
        self.pending_asr = 0
        self.ended = False
        self.end_reason: str | None = None
        self.end_reason_given: str | None = None
        """Why the call ended, set at once by the thread that ended it (end_reason is set
        on the rules thread)."""
        self.ended_at = 0.0  # time.monotonic() when the call ended
        self.end_marked = False
        """The rules thread has taken the end in (``ended`` is set at once on the ingest's)."""
        self.unscored_status: str | None = None
        """Set at the end for a call stored without a score (``no audio``)."""
        self.finalized = False
        self.dropped_utterances = 0
        self.not_speech_utterances = 0
        """Of those, the ones the speech check found no speech in (filter reason not_speech)."""
        self.recorded_s = 0.0  # length of the recording, once the call has ended
        self.extra_meta: dict[str, Any] = {}
        self.recorder: Any = None  # a CallRecorder when the engine records the call
        self.subscription: Any = None  # the opener's Subscription, when it asked for one
        self.taps: tuple[Any, ...] = ()
        """Listeners' AudioTaps (core.live.listening), changed under ``ingest_lock``."""
        self.early: dict[Speaker, Any] = {}
        """Each leg's early decode waiting for its utterance to end (core.live.early), changed
        under ``ingest_lock``."""
        self.ingest_lock = threading.Lock()
        self.redactor = CallRedactor(frozenset(), rubric.language)
        """Masks numbers in what leaves the call (events, alerts, rows); the engine sets
        the call's own (core.rubric.redaction.redactor_for)."""

    # ---------------------------------------------------------------- identity

    def phrase_candidates(self, speaker: Speaker) -> CandidateFinder | None:
        """What to check against the audio of `speaker`'s utterances (the rubric's phrases)."""
        return self._phrase_candidates.get(speaker)

    @property
    def agent_id(self) -> str | None:
        return self.setup.agent_id

    @property
    def team_id(self) -> str | None:
        return self.setup.team_id

    @property
    def duration_s(self) -> float:
        heard = max((a.duration_s for a in self.activity.values()), default=0.0)
        return max(heard, self.recorded_s)

    # ---------------------------------------------------------------- evidence

    def add_utterance(self, utt: Utterance, seq: int, speech_end: float) -> None:
        self.finished_seqs.add((utt.speaker, seq))
        self.drop_partial(utt.speaker, seq)
        self.utterances.append(utt)
        self.utterances.sort(key=lambda u: (u.start, u.speaker))
        self.speech_ends[id(utt)] = speech_end

    def is_finished(self, speaker: Speaker, seq: int) -> bool:
        """Whether the utterance ``seq`` of ``speaker`` has its final transcript already (a
        part of it decoded later, by another ASR worker, is then out of date)."""
        return (speaker, seq) in self.finished_seqs

    def set_partial(self, utt: Utterance, seq: int, part: int, speech_end: float) -> Utterance:
        """Take in the transcript of part ``part`` of utterance ``seq`` (its own audio only)
        and return the utterance so far: the parts decoded, in order, joined. A part that
        was skipped under load leaves a gap; the finished utterance replaces them all."""
        key = (utt.speaker, seq)
        parts = self._parts.setdefault(key, {})
        parts[part] = utt
        ordered = [parts[k] for k in sorted(parts)]
        probs = [u.avg_logprob for u in ordered if u.avg_logprob is not None]
        text = join_texts([u.text for u in ordered], self.language)
        joined = dataclasses.replace(
            ordered[0], end=ordered[-1].end, text=text,
            voiced_s=sum(u.voiced_s or 0.0 for u in ordered),
            avg_logprob=sum(probs) / len(probs) if probs else None,
            no_speech_prob=None, checks=[], decoded_text=None,
        )  # fmt: skip
        old = self.partials.get(key)
        before = 0.0 if old is None else self.speech_ends.pop(id(old), 0.0)
        self.partials[key] = joined
        self.speech_ends[id(joined)] = max(speech_end, before)  # parts may come out of order
        return joined

    def speech_end_holding(self, finding: Finding) -> float:
        """End of the speech of the utterance (or part) holding ``finding``; else its end."""
        best: float | None = None
        for u in [*self.utterances, *self.partials.values()]:
            if finding.speaker in (u.speaker, "any") and u.start <= finding.start < u.end:
                end = self.speech_ends.get(id(u), u.end)
                best = end if best is None else min(best, end)
        return finding.end if best is None else max(best, finding.end)

    def drop_partial(self, speaker: Speaker, seq: int) -> None:
        self._parts.pop((speaker, seq), None)
        old = self.partials.pop((speaker, seq), None)
        if old is not None:
            self.speech_ends.pop(id(old), None)

    def add_timeline(self, speaker: Speaker, voiced: list[Segment], position_s: float) -> None:
        act = self.activity[speaker]
        act.voiced.extend(voiced)
        act.duration_s = max(act.duration_s, position_s)

    def evidence(self, *, ended: bool) -> CallEvidence:
        utterances = list(self.utterances)
        if not ended:
            utterances += list(self.partials.values())
            utterances.sort(key=lambda u: (u.start, u.speaker))
        return CallEvidence(
            duration_s=self.duration_s,
            language=self.language,
            utterances=utterances,
            activity=dict(self.activity),
            ended=ended,
        )

    def new_findings(self, *, timeline_only: bool = False) -> list[Finding]:
        """Findings of the live kinds not raised before (`timeline_only`: nothing but a leg's
        timeline grew since the last time; see `core.rubric.engine.live_findings`).

        A finding counts as raised when one of the same item overlaps it (within
        ``SAME_FINDING_S``): the part of an utterance and the finished utterance report the
        same words with slightly different times, and a silence in progress grows.
        """
        fresh: list[Finding] = []
        evidence = self.evidence(ended=False)
        for finding in live_findings(self.rubric, evidence, timeline_only=timeline_only):
            if self.already_raised(finding):
                continue
            self.raised[(finding.item_id, round(finding.start, 2))] = finding
            fresh.append(finding)
        return fresh

    def already_raised(self, finding: Finding) -> bool:
        for (item_id, _), seen in self.raised.items():
            if (
                item_id == finding.item_id
                and seen.speaker == finding.speaker
                and finding.start <= seen.end + SAME_FINDING_S
                and seen.start <= finding.end + SAME_FINDING_S
            ):
                return True
        return False

    def redaction_meta(self) -> dict[str, Any]:
        """The row's ``redaction`` once the call is done: the kinds and, in recording time,
        where its masked numbers were said (a final pass over the finished utterances)."""
        if not self.redactor.enabled:
            return {}
        final = self.redactor.fresh()
        final.transcript(sorted(self.utterances, key=lambda u: u.start))
        spans = []
        for s in merge_spans(final.spans):
            shift = self.leg_start_s.get(s.speaker, 0.0)  # type: ignore[call-overload]
            spans.append(dataclasses.replace(s, start=s.start + shift, end=s.end + shift).to_json())
        if not spans:
            return {}
        return {"redaction": redaction_meta(sorted({s["kind"] for s in spans}), spans)}

    def remember(self, event: CallEvent) -> None:
        self.history.append(event)
        if len(self.history) > HISTORY_LIMIT:
            # Keep the start and the most recent events of very long calls.
            del self.history[1 : len(self.history) - HISTORY_LIMIT + 1]

    def summary(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "source": self.setup.source,
            "external_id": self.setup.external_id,
            "agent_id": self.agent_id,
            "team_id": self.team_id,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 2),
            "rubric_id": self.rubric.id,
            "rubric_version": self.rubric_version,
            "utterances": len(self.utterances),
            "findings": len(self.raised),
            "alerts": len(self.alerts),
            "pending_asr": self.pending_asr,
            "ended": self.ended,
        }
