"""Early decodes: an utterance transcribed in a pause, before its end is certain.

An utterance ends once its speaker has been silent for ``min_silence_s`` after the VAD's
hangover; until then the endpointer cannot know whether the pause ends the turn. With
``live_early_decode_s`` set, a leg hands out the utterance as it will be if the pause does
end it (:attr:`core.live.leg.LegOutput.early`: the same span, the very same audio) once the
pause has lasted that long, and it is queued for the ASR in a class of its own, below the
finished utterances and only on spare capacity, as parts are (`core.live.scheduler`).

When the utterance then ends with that span, its transcript is taken from the early decode:
ready already, or on its way (the queued job is moved up to the finished utterances' class).
The ASR got the same samples, the same language and the same phrase checks, so the
transcript is the one a decode after the end would give, only sooner. When the speaker goes
on instead, or the early decode was skipped under load or failed, the finished utterance is
queued as usual. On a loaded box no early decodes are queued, so they never take capacity
that finished utterances need.

Which thread does what: :meth:`EarlyDecodes.offer` and :meth:`EarlyDecodes.claim` run on
the ingest thread under the call's ``ingest_lock`` (``LiveCall.early`` is theirs); answers
and deliveries run on the engine's rules thread, where each :class:`EarlyDecode`'s state
changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.asr.types import AsrResult
from core.live.leg import LiveUtterance
from core.live.scheduler import PRIORITY_EARLY, PRIORITY_FINAL, AsrJob, AsrScheduler

if TYPE_CHECKING:
    from core.live.call import LiveCall

MakeJob = Callable[["LiveCall", LiveUtterance, int, Callable[..., None], object], AsrJob]
"""Builds the ASR job of an utterance: (call, utterance, class, done, context)."""
Deliver = Callable[["LiveCall", LiveUtterance, float, AsrResult | None, str | None], None]
"""Takes a finished utterance's transcript in: (call, utterance, end wall time, result, error)."""
Resubmit = Callable[["LiveCall", LiveUtterance, float], None]
"""Queues a finished utterance for the ASR as usual: (call, utterance, end wall time)."""


@dataclass(eq=False)
class EarlyDecode:
    """One early decode and what became of it (changed on the rules thread only)."""

    call: LiveCall
    utterance: LiveUtterance
    """The utterance as the leg handed it out, without its audio."""
    job: AsrJob | None = None
    answered: bool = False
    result: AsrResult | None = None
    error: str | None = None
    waiting: tuple[LiveUtterance, float] | None = None
    """The finished utterance (with its audio) and its end's wall time, once it came."""

    def same_utterance(self, finished: LiveUtterance) -> bool:
        """Whether ``finished`` is the utterance this decoded: same leg, number and span."""
        a, b = self.utterance, finished
        return (
            a.speaker == b.speaker and a.seq == b.seq
            and a.span.start == b.span.start and a.span.end == b.span.end
        )  # fmt: skip


@dataclass
class EarlyDecodes:
    """The engine's early decodes (see the module notes)."""

    scheduler: AsrScheduler
    post: Callable[[Callable[[], None]], None]
    """Runs a function on the rules thread."""
    make_job: MakeJob
    deliver: Deliver
    resubmit: Resubmit
    counts: dict[str, int] = field(default_factory=lambda: {"queued": 0, "used": 0})
    """Early decodes queued, and those whose transcript a finished utterance took (counted
    on the rules thread)."""

    # ---------------------------------------------------------------- ingest thread

    def offer(self, call: LiveCall, utt: LiveUtterance) -> None:
        """Queue ``utt`` (a leg's ``early``) when the ASR has room; it replaces an earlier
        early decode of the leg, which the speaker went on from."""
        self._drop(call.early.pop(utt.speaker, None))
        if not self.scheduler.has_room():
            return
        early = EarlyDecode(call, utt.without_audio())
        early.job = self.make_job(call, utt, PRIORITY_EARLY, self._answer, early)
        call.early[utt.speaker] = early
        self.post(lambda: self._count("queued"))
        self.scheduler.submit(early.job)

    def claim(self, call: LiveCall, finished: LiveUtterance, end_wall: float) -> bool:
        """Take the transcript of ``finished`` from its leg's early decode, if that decoded
        this very utterance: True, and the transcript is delivered when it is there. False:
        queue ``finished`` as usual (an early decode of something else is dropped)."""
        early = call.early.pop(finished.speaker, None)
        if early is None:
            return False
        if not early.same_utterance(finished):
            self._drop(early)
            return False
        assert early.job is not None
        self.scheduler.promote(early.job, PRIORITY_FINAL)  # False: a worker has it already
        self.post(lambda: self._finished(early, finished, end_wall))
        return True

    def _drop(self, early: EarlyDecode | None) -> None:
        if early is None or early.job is None:
            return
        job = early.job
        self.scheduler.cancel(lambda queued: queued is job)  # its answer says "cancelled"

    # ---------------------------------------------------------------- rules thread

    def _answer(self, job: AsrJob, result: AsrResult | None, error: str | None) -> None:
        """The scheduler's ``done`` for an early job (on a worker, or the canceller)."""
        early: EarlyDecode = job.context
        self.post(lambda: self._answered(early, result, error))

    def _answered(self, early: EarlyDecode, result: AsrResult | None, error: str | None) -> None:
        early.answered, early.result, early.error = True, result, error
        if early.waiting is not None:
            self._hand_over(early)

    def _finished(self, early: EarlyDecode, finished: LiveUtterance, end_wall: float) -> None:
        early.waiting = (finished, end_wall)
        if early.answered:
            self._hand_over(early)

    def _hand_over(self, early: EarlyDecode) -> None:
        assert early.waiting is not None
        finished, end_wall = early.waiting
        early.waiting = None
        if early.result is None:  # skipped under load, cancelled at the call's end, failed
            self.resubmit(early.call, finished, end_wall)
            return
        self._count("used")
        self.deliver(early.call, finished.without_audio(), end_wall, early.result, early.error)

    def _count(self, what: str) -> None:
        self.counts[what] += 1
