"""`callqa bench`: how many live lines this box holds, measured end to end.

A ramp starts `callqa serve` as a child process and, step by step, places N concurrent
SIPREC calls on it with real-time RTP over loopback from the call simulator, itself a
separate process whose CPU is measured apart. Each step reports latency percentiles from
the end of each utterance to its transcript, the ASR backlog, CPU per stage, memory and
packets dropped; the ramp stops at the first step the box does not hold. The same ramp runs
against a baseline configuration of the same daemon, so the ratio of lines held is measured
in one run.

Modules: ``results`` (what a step and a run report, and when a step holds: shared with the
daemon's own benchmark), ``load`` (the audio the calls play, and the simulator process),
``observe`` (what the daemon reports while a step runs), ``ramp`` (the steps), ``report``
(table, chart, stored result), ``inprocess`` (the daemon's own `RunBenchmark`, which places
its load in process instead); the command is `core.cli.bench`.
"""
