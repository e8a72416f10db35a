"""Early decodes replayed over recorded calls: how often one is used, how much is wasted.

    python benchmarks/bench_early_decode.py ../shared/corpus ../shared/corpus-b
    python benchmarks/bench_early_decode.py FOLDER --after 0.02,0.1,0.2,0.3

Each leg of each call is pushed through a live leg (`core.live.leg.LiveLeg`) 20 ms at a
time, as RTP delivers it, once for each ``live_early_decode_s`` value (``--after``). For each
value it prints the turns that ended in a pause; the early decodes a finished turn would
take (same span) and those thrown away (the speaker went on); the audio the thrown-away ones
would have decoded, against the audio of the finished turns; and how much sooner, in leg
time, a used early decode was handed out than its turn ended (median). No model runs: this
is what the endpointer offers, before the scheduler's gate (only an idle worker takes one).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

from core.audio.wav import read_wav
from core.calls import Speaker
from core.live.leg import LiveLeg, LiveUtterance
from core.scoring.pipeline import legs_from_recording

CHUNK = 160  # 20 ms at 8 kHz


def _replay(
    audio: np.ndarray, speaker: Speaker, after_s: float
) -> tuple[list[LiveUtterance], list[LiveUtterance]]:
    """The early utterances and the finished ones of one leg (float32, 8 kHz)."""
    leg = LiveLeg(speaker, partial_every_s=0, early_after_s=after_s)
    early: list[LiveUtterance] = []
    finished: list[LiveUtterance] = []
    for i in range(0, len(audio), CHUNK):
        out = leg.push(audio[i : i + CHUNK])
        finished += out.finished
        if out.early is not None:
            early.append(out.early)
    finished += leg.flush().finished
    return early, finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--after", default="0.02,0.1,0.2,0.3",
                        help="comma-separated live_early_decode_s values")  # fmt: skip
    args = parser.parse_args()
    afters = [float(v) for v in args.after.split(",")]
    files = sorted(f for folder in args.folders for f in folder.glob("*.wav"))
    legs = []
    for path in files:
        recording = read_wav(path)
        if recording.sample_rate != 8000:
            sys.exit(f"{path}: {recording.sample_rate} Hz; the replay takes 8 kHz calls")
        legs += [(leg.speaker, leg.audio) for leg in legs_from_recording(recording)]
    print(f"{len(files)} calls, {len(legs)} legs")
    print(f"{'after s':>7} {'turns':>6} {'used':>6} {'wasted':>6} {'wasted audio':>13} "
          f"{'sooner p50':>10}")  # fmt: skip
    for after in afters:
        turns = used = wasted = 0
        wasted_s = turns_s = 0.0
        sooner: list[float] = []
        for speaker, audio in legs:
            early, finished = _replay(audio, speaker, after)
            by_span = {(u.seq, u.span.start, u.span.end): u for u in finished}
            turns += sum(not u.span.forced_cut for u in finished)
            turns_s += sum(u.span.end - u.span.start for u in finished)
            for e in early:
                match = by_span.get((e.seq, e.span.start, e.span.end))
                if match is None:
                    wasted += 1
                    wasted_s += e.span.end - e.span.start
                else:
                    used += 1
                    sooner.append(match.ended_at_s - e.ended_at_s)
        p50 = statistics.median(sooner) if sooner else 0.0
        print(f"{after:7.2f} {turns:6d} {used:6d} {wasted:6d} "
              f"{100 * wasted_s / turns_s:12.0f}% {1000 * p50:8.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
