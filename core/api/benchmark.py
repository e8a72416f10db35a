"""RunBenchmark: the in-process capacity benchmark (core.live.bench), streamed as progress."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import grpc

from proto import callqa_pb2 as pb

if TYPE_CHECKING:
    from core.serve import Daemon


def run_benchmark_rpc(
    daemon: Daemon, request: pb.RunBenchmarkRequest, context: Any
) -> Iterator[pb.BenchmarkProgress]:
    context.abort(grpc.StatusCode.UNIMPLEMENTED, "the benchmark is not available yet")
    yield pb.BenchmarkProgress()
