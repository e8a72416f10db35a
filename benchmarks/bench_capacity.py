"""How many live lines this box holds, end to end, against the baseline in the same run.

    python benchmarks/bench_capacity.py [../shared/corpus] [--lines 1,2,4,8,12,16,20,24]
        [--step-s 60] [--set asr_beam_size=1] [--no-baseline] [--front-end] [--out DIR]

The same as `callqa bench` (core/cli/bench.py, which documents the method): N concurrent
SIPREC calls with real-time RTP from the simulator (its own process, CPU reported apart)
into `callqa serve`, N rising until p95 latency from the end of speech to the transcript
passes the deadline or the ASR backlog grows. Prints a table per step (latency
percentiles, CPU per stage, memory, packets dropped), the lines held by callqa and by the
baseline and their ratio, and writes capacity.svg and capacity.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
