"""The live pipeline of the daemon, per call: legs, ASR scheduling, live rules, alerts.

* `core.live.leg`: one leg's streaming DSP (VAD, levels, endpointer) and its recording.
* `core.live.call`: one call's legs, transcript and rule state.
* `core.live.scheduler`: the one ASR scheduler, batching utterances of all lines.
* `core.live.events`: the events and alerts published to subscribers.
* `core.live.engine`: `LiveEngine`, which owns calls, the scheduler and the rules thread.
* `core.live.routing`: which rubric a call gets (by agent, skill group or team).
* `core.live.recovery`: calls interrupted by a crash, scored at the next start.
* `core.live.features_only`: the front end alone (no ASR), for capacity measurement.
"""
