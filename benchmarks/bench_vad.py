"""Streaming VAD cost per 20 ms frame, against webrtcvad measured in the same run, one core.

Usage::

    python benchmarks/bench_vad.py [--quick] [--mode {2,3}] [--legs N]

Every case decides the same synthetic G.711 legs (speech-like bursts and pauses over faint
noise, quantised through mu-law) and reports the median cost of one 20 ms frame of one leg:

* 1 leg, one call per 20 ms chunk (the live path of a single leg);
* 1 leg, one call over a whole recording (the path ``segment_leg`` takes);
* N legs (1,000 by default) advancing together, one tick = one frame of every leg, either
  through :class:`VadBank` (one kernel call per tick) or one :class:`StreamingVad` per leg.

webrtcvad runs in the mode given (3 by default) on the same samples as int16 bytes, one
instance per leg and one call per frame, which is the only way it can be driven.
The process is pinned to one CPU and Numba is limited to one thread.
"""

from __future__ import annotations

import os

os.environ["NUMBA_NUM_THREADS"] = "1"

import argparse
import functools
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numba

from kernels.vad import FRAME_MS, StreamingVad
from kernels.vad_bank import VadBank

RATE_HZ = 8000
FRAME_LEN = RATE_HZ * FRAME_MS // 1000
TARGET_US_PER_FRAME = 1.0
POOL_LEGS = 32
"""Distinct synthetic legs; leg i of a many-leg case plays pool leg i % POOL_LEGS, shifted."""


def _mulaw_levels() -> np.ndarray:
    """The 256 G.711 mu-law output levels as float32 in [-1, 1], ascending."""
    code = np.arange(256, dtype=np.int32) ^ 0xFF
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    value = np.where(code & 0x80, -magnitude, magnitude) / 32768.0
    return np.unique(value.astype(np.float32))


_LEVELS = _mulaw_levels()


def _through_mulaw(x: np.ndarray) -> np.ndarray:
    """Round every sample to the nearest mu-law level, as an encode/decode round trip does."""
    hi = np.clip(np.searchsorted(_LEVELS, x), 1, len(_LEVELS) - 1)
    lo = hi - 1
    nearer_lo = np.abs(x - _LEVELS[lo]) <= np.abs(_LEVELS[hi] - x)
    return _LEVELS[np.where(nearer_lo, lo, hi)]


def synthetic_leg(seconds: float, seed: int) -> np.ndarray:
    """Bursts of voiced, syllable-modulated harmonics with pauses, over faint white noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE_HZ)
    out = rng.standard_normal(n) * 10 ** (rng.uniform(-58.0, -48.0) / 20)
    pos = int(rng.uniform(0.2, 1.0) * RATE_HZ)
    while pos < n:
        length = min(int(rng.uniform(0.8, 4.0) * RATE_HZ), n - pos)
        t = np.arange(length) / RATE_HZ
        f0 = rng.uniform(100.0, 260.0) * (1 + 0.08 * np.sin(2 * np.pi * 0.6 * t))
        phase = 2 * np.pi * np.cumsum(f0) / RATE_HZ
        burst = sum(np.sin(k * phase) / k for k in range(1, 12))
        burst *= 0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(3.0, 5.0) * t)
        level = 10 ** (rng.uniform(-32.0, -24.0) / 20)
        out[pos : pos + length] += burst * level / np.sqrt(np.mean(burst**2) + 1e-20)
        pos += length + int(rng.uniform(0.3, 2.0) * RATE_HZ)
    return _through_mulaw(out.astype(np.float32))


def as_pcm16_frames(x: np.ndarray) -> list[bytes]:
    """Split a float leg into 20 ms frames of little-endian int16 bytes (webrtcvad's input)."""
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")
    n = len(pcm) // FRAME_LEN
    return [pcm[k * FRAME_LEN : (k + 1) * FRAME_LEN].tobytes() for k in range(n)]


def webrtc_leg(mode: int) -> Callable[[bytes, int], Any]:
    """One webrtcvad instance as ``decide(frame_bytes, n_samples)``.

    It calls webrtcvad's C extension directly, the cheapest way to drive it from Python (its
    ``webrtcvad.Vad`` wrapper only adds a Python call and needs ``pkg_resources``, which
    recent setuptools no longer ship).
    """
    import _webrtcvad

    handle = _webrtcvad.create()
    _webrtcvad.init(handle)
    _webrtcvad.set_mode(handle, mode)
    return functools.partial(_webrtcvad.process, handle, RATE_HZ)


def webrtcvad_available() -> str | None:
    """None when webrtcvad can be used, else why not."""
    try:
        webrtc_leg(3)
    except ImportError as exc:
        return f"webrtcvad not importable ({exc}); pip install webrtcvad"
    return None


def pin_to_one_cpu() -> str:
    """Pin the process to the first CPU it may use; return a description."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity here)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def median_us_per_frame(run: Callable[[], int], repeats: int) -> float:
    """Median over ``repeats`` of (wall time of ``run()``) / (frames it decided), in us."""
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        frames = run()
        samples.append((time.perf_counter_ns() - t0) / 1000.0 / frames)
    return float(np.median(samples))


@dataclass
class Row:
    case: str
    ours_us: float
    webrtc_us: float | None

    def cells(self) -> list[str]:
        ratio = "-" if self.webrtc_us is None else f"{self.webrtc_us / self.ours_us:.1f}x"
        webrtc = "-" if self.webrtc_us is None else f"{self.webrtc_us:.3f}"
        met = "yes" if self.ours_us <= TARGET_US_PER_FRAME else "no"
        return [self.case, f"{self.ours_us:.3f}", webrtc, ratio, f"<= {TARGET_US_PER_FRAME:g}", met]


def bench_one_leg(leg: np.ndarray, wrtc: list[bytes] | None, mode: int, repeats: int) -> list[Row]:
    n_frames = len(leg) // FRAME_LEN
    chunks = [leg[k * FRAME_LEN : (k + 1) * FRAME_LEN] for k in range(n_frames)]
    vad = StreamingVad(RATE_HZ, FRAME_MS)

    def ours_chunked() -> int:
        for chunk in chunks:
            vad.process(chunk)
        return n_frames

    def ours_whole() -> int:
        StreamingVad(RATE_HZ, FRAME_MS).process(leg)
        return n_frames

    bank_frames = [np.ascontiguousarray(c.reshape(1, FRAME_LEN)) for c in chunks]
    bank_out = np.empty(1, dtype=np.bool_)
    bank = VadBank(1, RATE_HZ, FRAME_MS)

    def ours_bank() -> int:
        for f in bank_frames:
            bank.process(f, bank_out)
        return n_frames

    webrtc_us = None  # webrtcvad has no whole-buffer call: one call per frame in every row
    if wrtc is not None:
        frames = wrtc
        decide = webrtc_leg(mode)

        def theirs() -> int:
            for f in frames:
                decide(f, FRAME_LEN)
            return len(frames)

        theirs()
        webrtc_us = median_us_per_frame(theirs, repeats)
    for fn in (ours_chunked, ours_whole, ours_bank):
        fn()  # compile / warm up
    return [
        Row(
            "1 leg, StreamingVad, one call per 20 ms",
            median_us_per_frame(ours_chunked, repeats),
            webrtc_us,
        ),
        Row(
            "1 leg, VadBank(1), one call per 20 ms",
            median_us_per_frame(ours_bank, repeats),
            webrtc_us,
        ),
        Row(
            "1 leg, StreamingVad, whole recording",
            median_us_per_frame(ours_whole, repeats),
            webrtc_us,
        ),
    ]


def bench_many_legs(
    pool: list[np.ndarray],
    pool_wrtc: list[list[bytes]] | None,
    n_legs: int,
    ticks: int,
    mode: int,
    repeats: int,
) -> list[Row]:
    n_pool_frames = min(len(p) for p in pool) // FRAME_LEN
    framed = np.stack(
        [p[: n_pool_frames * FRAME_LEN].reshape(n_pool_frames, FRAME_LEN) for p in pool]
    )
    rng = np.random.default_rng(1)
    which = np.arange(n_legs) % len(pool)
    offset = rng.integers(0, n_pool_frames, n_legs)
    # tick_frames[k] is the (n_legs, FRAME_LEN) block of tick k, built outside the timing.
    tick_frames = [
        np.ascontiguousarray(framed[which, (offset + k) % n_pool_frames]) for k in range(ticks)
    ]
    out = np.empty(n_legs, dtype=np.bool_)
    bank = VadBank(n_legs, RATE_HZ, FRAME_MS)

    def ours_bank() -> int:
        for block in tick_frames:
            bank.process(block, out)
        return ticks * n_legs

    legs = [StreamingVad(RATE_HZ, FRAME_MS) for _ in range(n_legs)]

    def ours_streams() -> int:
        for block in tick_frames:
            for i, vad in enumerate(legs):
                vad.process(block[i])
        return ticks * n_legs

    webrtc_us = None
    if pool_wrtc is not None:
        wr = pool_wrtc
        plan = [
            [wr[which[i]][(offset[i] + k) % n_pool_frames] for i in range(n_legs)]
            for k in range(ticks)
        ]
        deciders = [webrtc_leg(mode) for _ in range(n_legs)]

        def theirs() -> int:
            for tick in plan:
                for decide, f in zip(deciders, tick, strict=True):
                    decide(f, FRAME_LEN)
            return ticks * n_legs

        theirs()
        webrtc_us = median_us_per_frame(theirs, repeats)
    ours_bank()
    ours_streams()
    return [
        Row(
            f"{n_legs:,} legs, VadBank, one call per tick",
            median_us_per_frame(ours_bank, repeats),
            webrtc_us,
        ),
        Row(
            f"{n_legs:,} legs, StreamingVad per leg per tick",
            median_us_per_frame(ours_streams, repeats),
            webrtc_us,
        ),
    ]


def print_table(rows: list[Row]) -> None:
    head = ["case", "callqa us/frame", "webrtcvad us/frame", "speed-up", "target us", "met"]
    cells = [head] + [r.cells() for r in rows]
    width = [max(len(c[i]) for c in cells) for i in range(len(head))]
    for j, line in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, width, strict=True))
            )
        )
        if j == 0:
            print("  ".join("-" * w for w in width))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer frames and repeats (~10 s)")
    ap.add_argument("--mode", type=int, choices=(2, 3), default=3, help="webrtcvad mode")
    ap.add_argument("--legs", type=int, default=1000, help="concurrent legs (default 1000)")
    args = ap.parse_args(argv)
    if args.legs < 1:
        ap.error("--legs must be at least 1")

    seconds, ticks, repeats = (20.0, 20, 5) if args.quick else (60.0, 100, 9)
    pinned = pin_to_one_cpu()
    why_not = webrtcvad_available()
    print(
        f"python {platform.python_version()}, numba {numba.__version__}, "
        f"NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS')}, {pinned}"
    )
    print(f"cpu: {platform.processor() or platform.machine()}")
    print(f"baseline: webrtcvad mode {args.mode}" if why_not is None else f"baseline: {why_not}")
    print(
        f"frames of {FRAME_MS} ms at {RATE_HZ} Hz; medians of {repeats} runs; "
        f"{args.legs:,} legs x {ticks} ticks; single leg {seconds:.0f} s"
    )

    pool = [synthetic_leg(seconds if i == 0 else 10.0, seed=i) for i in range(POOL_LEGS)]
    pool_wrtc = None if why_not else [as_pcm16_frames(p) for p in pool]
    rows = bench_one_leg(pool[0], None if pool_wrtc is None else pool_wrtc[0], args.mode, repeats)
    rows += bench_many_legs(pool, pool_wrtc, args.legs, ticks, args.mode, repeats)

    share = float(np.mean(StreamingVad().process(pool[0])))
    sanity = f"sanity: callqa flags {share:.0%} of the single leg's frames as speech"
    if pool_wrtc is not None:
        decide = webrtc_leg(args.mode)
        theirs = float(np.mean([bool(decide(f, FRAME_LEN)) for f in pool_wrtc[0]]))
        sanity += f", webrtcvad {theirs:.0%}"
    print(sanity)
    print()
    print_table(rows)
    print()
    print(
        "speed-up = webrtcvad time / callqa time for the same frames; "
        f"target = at most {TARGET_US_PER_FRAME:g} us of one core per leg per 20 ms frame"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
