"""Speed of the DSP kernels against the NumPy/SciPy/faster-whisper code they replace.

Run: ``python benchmarks/bench_kernels_dsp.py [--quick]``

Everything runs single-threaded (Numba, BLAS and OpenMP pools pinned to one thread) in one
process, so every ratio compares two timings taken in the same run on the same machine.
Each timing is the median over several repeats of a loop of calls, after a warm-up call
that also compiles the Numba kernels. "1 leg" is one call for one 20 ms packet/frame;
"1000 legs" is the work of one 20 ms tick for 1000 concurrent legs (the banked kernel in
one call where one exists, otherwise one call per leg, for both sides alike).
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels.g711 import (  # noqa: E402
    ALAW_DECODE_TABLE,
    ULAW_DECODE_TABLE,
    alaw_decode,
    ulaw_decode,
)
from kernels.levels import (  # noqa: E402  # noqa: E402
    frame_level_dbfs,
    frame_level_dbfs_reference,
    frame_pitch_hz,
    frame_pitch_hz_reference,
)
from kernels.logmel import log_mel_spectrogram  # noqa: E402
from kernels.resample import Upsampler8kTo16k, UpsamplerBank  # noqa: E402

FRAME = 160  # 20 ms at 8 kHz
LEGS = 1000


@dataclass
class Row:
    kernel: str
    legs: str
    ours_us: float
    baseline: str
    base_us: float
    target: float | None

    @property
    def ratio(self) -> float:
        return self.base_us / self.ours_us

    @property
    def met(self) -> str:
        if self.target is None:
            return "-"
        return "yes" if self.ratio >= self.target else "NO"


def median_call_s(fn: Callable[[], object], number: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean time of ``number`` back-to-back calls."""
    fn()  # warm-up (and JIT compile on first use)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def feature_extractor() -> type | None:
    """faster-whisper's FeatureExtractor, loaded on its own if the package cannot import."""
    try:
        from faster_whisper.feature_extractor import FeatureExtractor

        return FeatureExtractor  # type: ignore[no-any-return]
    except ImportError:
        spec = importlib.util.find_spec("faster_whisper")
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / "feature_extractor.py"
        mod_spec = importlib.util.spec_from_file_location("_fw_feature_extractor", path)
        if mod_spec is None or mod_spec.loader is None or not path.is_file():
            return None
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        return module.FeatureExtractor  # type: ignore[no-any-return]


def speech_like(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 8000
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    ph = 2 * np.pi * np.cumsum(f0) / 8000
    x = sum(np.sin(k * ph) / k for k in range(1, 20)) + 0.05 * rng.standard_normal(n)
    return (0.1 * x).astype(np.float32)


def bench(quick: bool) -> list[Row]:
    rep = 5 if quick else 9
    scale = 0.2 if quick else 1.0

    def n(count: int) -> int:
        return max(1, int(count * scale))

    rng = np.random.default_rng(0)
    rows: list[Row] = []

    # G.711 decode: one 20 ms packet, and one packet for each of 1000 legs as one block.
    for law, decode, table in (("mu-law", ulaw_decode, ULAW_DECODE_TABLE),
                               ("A-law", alaw_decode, ALAW_DECODE_TABLE)):
        tab = np.array(table)
        one = rng.integers(0, 256, FRAME, dtype=np.uint8)
        many = rng.integers(0, 256, (LEGS, FRAME), dtype=np.uint8)
        assert np.array_equal(decode(many), tab[many])
        rows.append(Row(f"G.711 {law} decode", "1",
                        1e6 * median_call_s(lambda d=decode, c=one: d(c), n(20000), rep),
                        "numpy table[codes]",
                        1e6 * median_call_s(lambda t=tab, c=one: t[c], n(20000), rep), 4.0))
        rows.append(Row(f"G.711 {law} decode", str(LEGS),
                        1e6 * median_call_s(lambda d=decode, c=many: d(c), n(300), rep),
                        "numpy table[codes]",
                        1e6 * median_call_s(lambda t=tab, c=many: t[c], n(100), rep), 4.0))

    # Streaming 8 -> 16 kHz, per 20 ms chunk.
    from scipy.signal import resample_poly

    chunk = speech_like(FRAME)
    up = Upsampler8kTo16k()
    rows.append(Row("resample 8->16k stream", "1",
                    1e6 * median_call_s(lambda: up.process(chunk), n(20000), rep),
                    "scipy resample_poly/chunk",
                    1e6 * median_call_s(lambda: resample_poly(chunk, 2, 1), n(500), rep), 50.0))
    frames = np.ascontiguousarray(
        speech_like(FRAME * LEGS, seed=1).reshape(LEGS, FRAME))
    bank = UpsamplerBank(LEGS)

    def scipy_all() -> None:
        for leg in range(LEGS):
            resample_poly(frames[leg], 2, 1)

    rows.append(Row("resample 8->16k stream", str(LEGS),
                    1e6 * median_call_s(lambda: bank.process(frames), n(300), rep),
                    "scipy resample_poly/chunk",
                    1e6 * median_call_s(scipy_all, 1, max(3, rep // 2)), 50.0))

    # Log-mel of a 30 s window at 16 kHz (one ASR window).
    fe_cls = feature_extractor()
    audio30 = (0.3 * rng.standard_normal(30 * 16000)).astype(np.float32)
    for n_mels in (80, 128):
        if fe_cls is None:
            print("faster-whisper not installed: log-mel rows skipped")
            break
        fe = fe_cls(feature_size=n_mels)
        diff = np.abs(log_mel_spectrogram(audio30, n_mels) - fe(audio30, padding=0)).max()
        assert diff < 1e-4, diff
        rows.append(Row(f"log-mel {n_mels} x 30 s", "1",
                        1e6 * median_call_s(lambda m=n_mels: log_mel_spectrogram(audio30, m),
                                            n(20), rep),
                        "faster-whisper FeatureExtr.",
                        1e6 * median_call_s(lambda f=fe: f(audio30, padding=0), n(10), rep),
                        1.5))

    # Frame level and pitch: one 20 ms frame per leg per tick.
    leg_frames = [speech_like(FRAME, seed=i) for i in range(LEGS)]
    one_frame = leg_frames[0]
    wanted = np.ones(1, dtype=bool)
    rows.append(Row("frame level dBFS", "1",
                    1e6 * median_call_s(lambda: frame_level_dbfs(one_frame, 8000, 20),
                                        n(20000), rep),
                    "numpy reference",
                    1e6 * median_call_s(lambda: frame_level_dbfs_reference(one_frame, 8000, 20),
                                        n(20000), rep), None))
    rows.append(Row("frame level dBFS", str(LEGS),
                    1e6 * median_call_s(
                        lambda: [frame_level_dbfs(f, 8000, 20) for f in leg_frames], n(20), rep),
                    "numpy reference",
                    1e6 * median_call_s(
                        lambda: [frame_level_dbfs_reference(f, 8000, 20) for f in leg_frames],
                        n(20), rep), None))
    rows.append(Row("frame pitch Hz", "1",
                    1e6 * median_call_s(lambda: frame_pitch_hz(one_frame, 8000, 20),
                                        n(20000), rep),
                    "numpy reference",
                    1e6 * median_call_s(
                        lambda: frame_pitch_hz_reference(one_frame, 8000, 20, wanted),
                                        n(5000), rep), None))
    rows.append(Row("frame pitch Hz", str(LEGS),
                    1e6 * median_call_s(
                        lambda: [frame_pitch_hz(f, 8000, 20) for f in leg_frames], n(20), rep),
                    "numpy reference",
                    1e6 * median_call_s(
                        lambda: [frame_pitch_hz_reference(f, 8000, 20, wanted) for f in leg_frames],
                        n(5), rep), None))
    return rows


def fmt_us(us: float) -> str:
    return f"{us:,.2f}" if us < 100 else f"{us:,.0f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer calls per repeat")
    args = ap.parse_args(argv)
    import numba

    print(f"python {platform.python_version()}, numpy {np.__version__}, numba "
          f"{numba.__version__}, threads: numba {numba.config.NUMBA_NUM_THREADS}, "
          f"cpu: {platform.processor() or platform.machine()}")
    rows = bench(args.quick)
    head = ("kernel", "legs", "ours us", "baseline", "baseline us", "ratio", "target", "met")
    table = [head] + [
        (r.kernel, r.legs, fmt_us(r.ours_us), r.baseline, fmt_us(r.base_us),
         f"{r.ratio:,.1f}x", "-" if r.target is None else f">={r.target:g}x", r.met)
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    right = {2, 4, 5, 6}
    for k, row in enumerate(table):
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print(" | ".join(cells))
        if k == 0:
            print("-+-".join("-" * w for w in widths))
    print("times are per call: one 20 ms tick for the given number of legs "
          "(log-mel: one 30 s window)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
