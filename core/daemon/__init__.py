"""The daemon process: `callqa serve`, running it as a child, and CPU accounting per stage.

* `core.daemon.serve`: the daemon (live engine, SIP server, mirror follower, gRPC API).
* `core.daemon.child`: `callqa serve` in a child process, for the demo and benchmarks.
* `core.daemon.stage_cpu`: CPU time per pipeline stage, by named threads.
"""
