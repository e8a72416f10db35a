"""Capacity levers of the ASR engine (beam, batch, compute type, threads), each with its accuracy.

    python benchmarks/asr_levers.py [CORPUS] [--calls dev012,dev014,dev017,dev020]
        [--rows baseline,default,...] [--repeat 3] [--threads 2] [--data-dir DIR] [--json OUT]

What is measured: the reference utterances of the chosen calls, cut from the corpus by
asr_window_study.load_utterances (labelled times ± 0.15 s, G.711 decoded and upsampled to
16 kHz), are decoded by core.asr.engine.AsrEngine with one configuration per row, and each row
reports

* CER over both legs (asr_window_study.score_results: both texts through
  core.text_norm.cer_key),
* CPU s per audio s: process CPU time (every thread) spent decoding, divided by the audio
  decoded, and its ratio to the baseline row of the same run,
* audio s per wall s: audio decoded per wall-clock second (throughput; the machine may be
  shared, so this is the noisier figure),
* loops (first attempts that repeated or compressed above 2.4), results dropped by a
  filter, rubric phrases (corpus rubric.yaml, filler words excluded) found where said / said,
  and written where never said, the number of utterances, and how many of them read
  differently from the default row (0: the lever changes the cost, not the text).

How: each configuration is AsrOptions() on the CPU (cpu_threads=``--threads``) with
some options changed (asr_window_study.study_options), and inter_threads always set by the
row (1 unless it says otherwise), since AsrOptions() may choose it from the core count and
a model of several replicas fed by one caller uses one replica's share of the cores at a
time. Utterances are submitted call by
call in arrival order, ``batch`` of them per ``transcribe_batch`` call, with the engine's
max_batch_size set to the same number (asr_window_study.call_batches / decode_utterances).
Every engine first decodes one utterance untimed, its counters are reset and CTranslate2's
random seed is set again, so each timed pass starts warm and samples the same fallback
draws. Timings are taken around the whole pass (time.process_time and time.perf_counter).
``--repeat`` passes are run round-robin over the rows (so slow drift of a shared machine
touches every row alike) and the medians are printed; accuracy is that of the first pass
(the JSON says how many utterances read differently in a later pass).

Rows:

* baseline: what one builds without callqa, a faster-whisper-style transcription per
  utterance: Whisper's fixed 30 s window (window_min_s=30, window_tail_s=0), batch 1,
  beam 5 (prompt and temperature fallback are the engine's);
* default: the engine's decoding defaults (AsrOptions(): window of ceil(length + 1 s), at
  least 10 s, beam 5, int8) at batch 8, one replica of ``--threads`` threads, one caller;
* beam1, beam2, beam3: the defaults with that beam width (1 = greedy), batch 8;
* batch1, batch4, batch8, batch16: the defaults with that many utterances per call;
* int8, int8_float32, int16, float32, int8_float16, float16, bfloat16: the defaults with
  that CTranslate2 compute type. A type that ctranslate2.get_supported_compute_types("cpu")
  does not list (the float16 family on CPUs generally; int16 wherever CTranslate2 does not
  use Intel MKL, i.e. on non-Intel CPUs) is not run: its row says "not supported on this
  CPU" (the engine itself would fall back to "auto", which would measure another type
  under the wrong name);
* 1model-1x2: one model, intra_threads=2, one caller thread submitting batches of 8 one
  after another (the engine as the service runs it);
* 1model-2x1: one model with two replicas of one thread each (AsrOptions(inter_threads=2),
  for which the engine's loader, core.asr.device.load_whisper, builds
  ``ctranslate2.models.Whisper(..., inter_threads=2, intra_threads=cpu_threads // 2)``; the
  benchmark builds no model itself) and two caller threads, each taking the next batch of 8
  from a shared queue and calling ``transcribe_batch`` concurrently, as the live
  scheduler's workers do (CTranslate2 releases the GIL and runs each call on a free
  replica). The second thread calls a shallow copy of the engine (same model, tokenizer and
  prompt cache) so that each thread has counters of its own; CPU and wall time are taken
  around the whole threaded pass, and the model's ``num_workers`` is checked;
* 2x1-1caller: the same model fed by one caller thread, as `callqa score` and
  benchmarks/eval_corpus.py feed it (each batch then runs on one thread);
* beam1-2x1, beam2-2x1, beam3-2x1: the last row with beam 1, 2 or 3 (levers combined).

Rows that are the same configuration as one already measured (batch8, int8 and 1model-1x2
are the default row) are printed with its figures and "= default". After the table, the
cheapest row (CPU s per audio s) whose CER is within 1 point of the default row and that
finds no fewer rubric phrases is named. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ctranslate2
from asr_window_study import (
    SAMPLE_RATE_HZ,
    Row,
    Utt,
    call_batches,
    decode_group,
    decode_utterances,
    load_utterances,
    rubric_phrases,
    score_results,
    study_options,
)

from core.asr.engine import AsrEngine, AsrOptions, AsrResult, AsrStats
from core.asr.models import ModelInfo, resolve_model

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
DEFAULT_CALLS = "dev012,dev014,dev017,dev020"
CER_SLACK = 0.01  # "within about 1 point" of the default row's CER
NOT_SUPPORTED = "not supported on this CPU"
HAS_INTER_THREADS = "inter_threads" in {f.name for f in dataclasses.fields(AsrOptions)}
Results = dict[tuple[str, int], AsrResult]


@dataclasses.dataclass(frozen=True)
class Lever:
    """One row: a configuration of the engine and how it is driven."""

    name: str
    group: str
    what: str
    changes: dict[str, Any] = dataclasses.field(default_factory=dict)
    batch: int = 8
    inter: int = 1  # AsrOptions.inter_threads: replicas of the model, cpu_threads // inter each
    callers: int = 1  # threads calling transcribe_batch at once
    same_as: str | None = None


@dataclasses.dataclass
class Measured:
    lever: Lever
    row: Row | None = None
    records: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    texts: list[str] = dataclasses.field(default_factory=list)
    cpu_per_audio: list[float] = dataclasses.field(default_factory=list)
    audio_per_wall: list[float] = dataclasses.field(default_factory=list)
    texts_changed: list[int] = dataclasses.field(default_factory=list)
    compute_type: str = ""
    replicas: int = 0
    note: str = ""


WINDOW_30 = {"window_min_s": 30.0, "window_tail_s": 0.0}
BEAM1, BEAM2, BEAM3 = ({"beam_size": b} for b in (1, 2, 3))
LEVERS: tuple[Lever, ...] = (
    Lever("baseline", "baseline", "faster-whisper style: 30 s, batch 1, beam 5", WINDOW_30, 1),
    Lever("default", "defaults", "AsrOptions(): window>=10 s, beam 5, batch 8"),
    Lever("beam1", "beam", "greedy (beam 1), batch 8", {"beam_size": 1}),
    Lever("beam2", "beam", "beam 2, batch 8", {"beam_size": 2}),
    Lever("beam3", "beam", "beam 3, batch 8", {"beam_size": 3}),
    Lever("batch1", "batch", "batch 1", batch=1),
    Lever("batch4", "batch", "batch 4", batch=4),
    Lever("batch8", "batch", "batch 8", same_as="default"),
    Lever("batch16", "batch", "batch 16", batch=16),
    Lever("int8", "compute", "compute type int8", same_as="default"),
    Lever("int8_float32", "compute", "compute type int8_float32", {"compute_type": "int8_float32"}),
    Lever("int16", "compute", "compute type int16", {"compute_type": "int16"}),
    Lever("float32", "compute", "compute type float32", {"compute_type": "float32"}),
    Lever("int8_float16", "compute", "compute type int8_float16", {"compute_type": "int8_float16"}),
    Lever("float16", "compute", "compute type float16", {"compute_type": "float16"}),
    Lever("bfloat16", "compute", "compute type bfloat16", {"compute_type": "bfloat16"}),
    Lever("1model-1x2", "threads", "1 model, intra 2, 1 caller", same_as="default"),
    Lever("1model-2x1", "threads", "1 model, inter 2 x intra 1, 2 callers", inter=2, callers=2),
    Lever("2x1-1caller", "threads", "1 model, inter 2 x intra 1, 1 caller", inter=2),
    Lever("beam1-2x1", "combined", "beam 1, inter 2 x intra 1, 2 callers", BEAM1, 8, 2, 2),
    Lever("beam2-2x1", "combined", "beam 2, inter 2 x intra 1, 2 callers", BEAM2, 8, 2, 2),
    Lever("beam3-2x1", "combined", "beam 3, inter 2 x intra 1, 2 callers", BEAM3, 8, 2, 2),
)
BY_NAME = {lever.name: lever for lever in LEVERS}


def cpu_isa() -> str:
    """The SIMD extensions of this CPU that matter to CTranslate2's kernels."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    flags: set[str] = set()
    vendor = "unknown vendor"
    for line in text.splitlines():
        if line.startswith("vendor_id"):
            vendor = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    wanted = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    return vendor + " " + " ".join(f"{f}{'+' if f in flags else '-'}" for f in wanted)


def merge_stats(parts: list[AsrStats]) -> AsrStats:
    out = AsrStats()
    for s in parts:
        out.utterances += s.utterances
        out.audio_s += s.audio_s
        out.encode_s += s.encode_s
        out.decode_s += s.decode_s
        out.generate_calls += s.generate_calls
        out.retries += s.retries
        out.first_attempt_loops += s.first_attempt_loops
        out.trimmed += s.trimmed
        for reason, n in s.filtered.items():
            out.filtered[reason] = out.filtered.get(reason, 0) + n
    return out


def warm_up(engine: AsrEngine, utt: Utt) -> None:
    decode_group(engine, [utt])
    engine.stats = AsrStats()


def reseed(options: AsrOptions) -> None:
    if options.random_seed is not None:
        ctranslate2.set_random_seed(options.random_seed)


def serial_pass(
    info: ModelInfo, options: AsrOptions, utts: list[Utt], batch: int
) -> tuple[Results, AsrStats, float, float, AsrEngine]:
    """One engine, one caller: results, counters, CPU s, wall s, the engine."""
    engine = AsrEngine(info, options)
    warm_up(engine, utts[0])
    reseed(options)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    results, _ = decode_utterances(engine, utts, batch)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return results, engine.stats, cpu, wall, engine


def threaded_pass(
    info: ModelInfo, options: AsrOptions, utts: list[Utt], batch: int, callers: int
) -> tuple[Results, AsrStats, float, float, AsrEngine]:
    """One engine fed by ``callers`` threads at once."""
    engine = AsrEngine(info, options)
    views = [engine]
    for _ in range(callers - 1):
        view = copy.copy(engine)  # same model, tokenizer and prompts; counters of its own
        view.stats = AsrStats()
        views.append(view)
    results: Results = {}
    errors: list[BaseException] = []

    def run_threads(target: Any) -> None:
        threads = [threading.Thread(target=target, args=(v,)) for v in views]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def warm(view: AsrEngine) -> None:
        try:
            warm_up(view, utts[0])
        except BaseException as exc:
            errors.append(exc)

    run_threads(warm)
    reseed(options)
    work: queue.SimpleQueue[list[Utt]] = queue.SimpleQueue()
    for group in call_batches(utts, batch):
        work.put(group)

    def caller(view: AsrEngine) -> None:
        try:
            while True:
                try:
                    group = work.get_nowait()
                except queue.Empty:
                    return
                out = decode_group(view, group)
                for u, r in zip(group, out, strict=True):
                    results[(u.call, u.index)] = r
        except BaseException as exc:
            errors.append(exc)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    run_threads(caller)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return results, merge_stats([v.stats for v in views]), cpu, wall, engine


def measure(
    m: Measured,
    info: ModelInfo,
    utts: list[Utt],
    phrases: list[str],
    threads: int,
) -> None:
    lever = m.lever
    changes = dict(lever.changes)
    if HAS_INTER_THREADS:
        changes["inter_threads"] = lever.inter  # pinned: AsrOptions() may pick it by core count
    options = study_options(changes, phrases, threads, lever.batch)
    if lever.callers > 1:
        results, stats, cpu, wall, engine = threaded_pass(
            info, options, utts, lever.batch, lever.callers
        )
    else:
        results, stats, cpu, wall, engine = serial_pass(info, options, utts, lever.batch)
    audio_s = stats.audio_s
    m.cpu_per_audio.append(cpu / max(audio_s, 1e-9))
    m.audio_per_wall.append(audio_s / max(wall, 1e-9))
    texts = [results[(u.call, u.index)].text for u in utts]
    if m.row is None:
        m.compute_type = engine.compute_type
        m.replicas = getattr(engine.model, "num_workers", 0)
        m.row, m.records = score_results(lever.name, utts, results, phrases, stats, cpu)
        m.texts = texts
    else:
        m.texts_changed.append(sum(a != b for a, b in zip(m.texts, texts, strict=True)))


def median_cpu(m: Measured) -> float:
    return statistics.median(m.cpu_per_audio)


def print_table(order: list[Measured], by_name: dict[str, Measured], base: Measured) -> None:
    header = (
        f"{'row':<13} {'what':<44} {'CER':>6} {'cpu/aud s':>9} {'x base':>6} "
        f"{'aud s/wall s':>12} {'loops':>5} {'drop':>4} {'phrases':>7} {'invent':>6} "
        f"{'utts':>4} {'!=def':>5}"
    )
    print(header)
    print("-" * len(header))
    base_cpu = median_cpu(base)
    default = by_name.get("default")
    ref_texts = default.texts if default is not None else []
    group = ""
    for m in order:
        lever = m.lever
        if lever.group != group and group:
            print()
        group = lever.group
        source = by_name[lever.same_as] if lever.same_as else m
        if source.row is None:
            print(f"{lever.name:<13} {lever.what:<44} {source.note or 'not run'}")
            continue
        r = source.row
        cpu = median_cpu(source)
        tail = f"  = {lever.same_as}" if lever.same_as else ""
        differ = (
            f"{sum(a != b for a, b in zip(ref_texts, source.texts, strict=True)):5d}"
            if ref_texts
            else f"{'-':>5}"
        )
        print(
            f"{lever.name:<13} {lever.what:<44} {100 * r.cer_all:5.1f}% {cpu:9.4f} "
            f"{cpu / base_cpu:6.2f} {statistics.median(source.audio_per_wall):12.1f} "
            f"{r.loops:5d} {r.dropped:4d} {r.phrases_found:3d}/{r.phrases_said:<3d} "
            f"{r.phrases_invented:6d} {r.utterances:4d} {differ}{tail}"
        )


def pick(order: list[Measured], default: Measured) -> Measured | None:
    """The cheapest row within CER_SLACK of the defaults finding no fewer rubric phrases."""
    ref = default.row
    if ref is None:
        return None
    fits = [
        m
        for m in order
        if m.row is not None
        and m.lever.same_as is None
        and m.lever.name != "baseline"
        and m.row.cer_all <= ref.cer_all + CER_SLACK
        and m.row.phrases_found >= ref.phrases_found
    ]
    return min(fits, key=median_cpu, default=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--calls", default=DEFAULT_CALLS, help="comma-separated call ids")
    parser.add_argument("--rows", default=",".join(BY_NAME), help="comma-separated row names")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per row (median)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--data-dir", type=Path, default=None, help="where the model is assembled")
    parser.add_argument("--json", type=Path, default=None, help="write rows and texts here")
    args = parser.parse_args(argv)

    names = [n for n in args.rows.split(",") if n]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {', '.join(BY_NAME)}")
    if "baseline" not in names:
        names.insert(0, "baseline")
    for n in list(names):
        same = BY_NAME[n].same_as
        if same and same not in names:
            names.append(same)
    calls = [c for c in args.calls.split(",") if c]
    data_dir = args.data_dir or Path(tempfile.gettempdir()) / "callqa-bench-data"
    info = resolve_model("base", data_dir)
    utts = load_utterances(args.corpus, calls)
    audio_s = sum(len(u.audio) for u in utts) / SAMPLE_RATE_HZ
    phrases = rubric_phrases(args.corpus)
    supported = ctranslate2.get_supported_compute_types("cpu")
    print(
        f"{len(calls)} calls ({', '.join(calls)}), {len(utts)} utterances, {audio_s:.0f} s of "
        f"audio; {args.threads} threads; {args.repeat} passes per row (medians); ctranslate2 "
        f"{ctranslate2.__version__}, model {info.name}\n"
        f"CPU: {os.cpu_count()} cores, {cpu_isa()}\n"
        f'ctranslate2.get_supported_compute_types("cpu"): {sorted(supported)}'
    )

    measured = {n: Measured(BY_NAME[n]) for n in names}
    runnable = []
    for n in names:
        m = measured[n]
        ctype = m.lever.changes.get("compute_type")
        if m.lever.same_as:
            continue
        if ctype is not None and ctype not in supported:
            m.note = NOT_SUPPORTED
            continue
        if m.lever.inter > 1 and not HAS_INTER_THREADS:
            m.note = "AsrOptions has no inter_threads"
            continue
        runnable.append(m)
    for rep in range(args.repeat):
        print(f"\npass {rep + 1}/{args.repeat}:", flush=True)
        for m in runnable:
            started = time.time()
            measure(m, info, utts, phrases, args.threads)
            print(
                f"  {m.lever.name:<13} cpu/aud s {m.cpu_per_audio[-1]:.4f}, aud s/wall s "
                f"{m.audio_per_wall[-1]:.1f} ({time.time() - started:.0f} s)",
                flush=True,
            )
    for m in runnable:
        wanted = m.lever.changes.get("compute_type")
        if wanted is not None and m.compute_type != wanted:
            m.note = f"engine used {m.compute_type}"
        if m.replicas and m.replicas != m.lever.inter:
            m.note = f"the model had {m.replicas} replicas, not {m.lever.inter}"

    order = [measured[n] for n in BY_NAME if n in measured]
    print()
    print_table(order, measured, measured["baseline"])
    print(
        "\nCER: errors / reference chars after cer_key, both legs; cpu/aud s: process CPU "
        "seconds (all threads) per audio second, median of the passes; x base: ratio to the "
        "baseline row; aud s/wall s: audio seconds decoded per wall second, median; loops: "
        "first attempts that repeated or compressed > 2.4; drop: results dropped by a filter; "
        "phrases: rubric phrases said and recognised / said; invent: written but not said; "
        "!=def: utterances whose text differs from the default row's."
    )
    for m in order:
        if m.note:
            print(f"  {m.lever.name}: {m.note}")
    changed = {m.lever.name: m.texts_changed for m in runnable if any(m.texts_changed)}
    if changed:
        print(f"  utterances that read differently in a later pass: {changed}")

    d = measured.get("default")
    best = pick(order, d) if d is not None else None
    if d is not None and d.row is not None and best is not None and best.row is not None:
        print(
            f"\ncheapest row within {100 * CER_SLACK:.0f} CER point of the defaults "
            f"({100 * d.row.cer_all:.1f}%) and finding no fewer rubric phrases "
            f"({d.row.phrases_found}): {best.lever.name} ({best.lever.what}): CER "
            f"{100 * best.row.cer_all:.1f}%, phrases {best.row.phrases_found}, cpu/aud s "
            f"{median_cpu(best):.4f} ({median_cpu(best) / median_cpu(d):.2f} x default), "
            f"aud s/wall s {statistics.median(best.audio_per_wall):.1f}"
        )

    if args.json:
        dump: dict[str, Any] = {
            "calls": calls,
            "utterances": len(utts),
            "audio_s": audio_s,
            "threads": args.threads,
            "repeat": args.repeat,
            "ctranslate2": ctranslate2.__version__,
            "supported_compute_types_cpu": sorted(supported),
            "cpu_isa": cpu_isa(),
            "rows": {},
        }
        ref_texts = d.texts if d is not None else []
        for m in order:
            differ = None
            if ref_texts and m.texts:
                differ = sum(x != y for x, y in zip(ref_texts, m.texts, strict=True))
            dump["rows"][m.lever.name] = {
                "lever": dataclasses.asdict(m.lever),
                "note": m.note,
                "compute_type": m.compute_type,
                "replicas": m.replicas,
                "row": dataclasses.asdict(m.row) if m.row else None,
                "cpu_per_audio_s": m.cpu_per_audio,
                "audio_s_per_wall_s": m.audio_per_wall,
                "texts_changed_in_later_passes": m.texts_changed,
                "texts_differing_from_default": differ,
                "records": m.records,
            }
        args.json.write_text(json.dumps(dump, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
