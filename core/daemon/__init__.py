"""The daemon process: `callqa serve`, and running it as a child.

* `core.daemon.serve`: the daemon (live engine, SIP server, mirror follower, gRPC API).
* `core.daemon.child`: `callqa serve` in a child process, for the demo and benchmarks.
"""
