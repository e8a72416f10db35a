"""Encoder window, beam and prompt of the ASR engine, measured on the labelled corpus.

    python benchmarks/asr_window_study.py [CORPUS] [--calls dev001,dev004] [--configs a,b]
        [--threads 2] [--batch 8] [--data-dir DIR] [--json OUT]

Each reference utterance is cut from its leg at its labelled times ±0.15 s (G.711 decoded by
kernels.g711 through core.audio.wav, upsampled to 16 kHz by kernels.resample) and decoded by
core.asr.engine.AsrEngine in arrival order, ``--batch`` utterances of both legs per
``transcribe_batch`` call, as the scheduler would. Each configuration changes some options
of the engine's defaults (``AsrOptions()``), and the first row, the standard 30 s window
(Whisper's fixed input), is the baseline of the ratios.

Reported per configuration: CER per leg and overall (both texts normalised by
core.text_norm.cer_key: NFKC, traditional to simplified, Chinese numerals to digits,
punctuation and spaces dropped), CPU seconds (all threads of this process) per second of
audio and the ratio to the baseline, the wall-clock split between encoder and decoder, the
number of first attempts that looped (repetition or compression ratio), retries, results
dropped by a filter, hallucinations (hypothesis more than 1.5 × + 4 characters longer than
the reference), and rubric phrases: found where said / written where never said.
Before the table, the encoder's CPU time per window length shows what short windows save.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ctranslate2
import yaml

from core.asr.engine import AsrEngine, AsrOptions, AsrRequest, AsrResult, AsrStats
from core.asr.models import ModelInfo, resolve_model
from core.audio.wav import read_wav
from core.text_norm import cer_key, edit_distance, match_key
from kernels.logmel import log_mel_spectrogram
from kernels.resample import upsample_8k_to_16k

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
MARGIN_S = 0.15
SAMPLE_RATE_HZ = 16000
ENCODE_WINDOWS_S = (30, 20, 15, 10, 8, 6, 4, 2)
ENCODE_REPEATS = 3
ZH_PROMPT = "以下是普通话的句子。"
HALLUCINATION_FACTOR = 1.5
HALLUCINATION_SLACK_CHARS = 4

# name -> (what it is, changes to AsrOptions()). "default" is the engine's own defaults.
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "30s": ("fixed 30 s window (Whisper's standard)", {"window_min_s": 30.0, "window_tail_s": 0.0}),
    "min20": ("ceil(len) s, at least 20 s", {"window_min_s": 20.0, "window_tail_s": 0.0}),
    "min15": ("ceil(len) s, at least 15 s", {"window_min_s": 15.0, "window_tail_s": 0.0}),
    "min12": ("ceil(len) s, at least 12 s", {"window_min_s": 12.0, "window_tail_s": 0.0}),
    "min10": ("ceil(len) s, at least 10 s", {"window_min_s": 10.0, "window_tail_s": 0.0}),
    "min8": ("ceil(len) s, at least 8 s", {"window_min_s": 8.0, "window_tail_s": 0.0}),
    "min6": ("ceil(len) s, at least 6 s", {"window_min_s": 6.0, "window_tail_s": 0.0}),
    "len+1": ("ceil(len + 1 s), no minimum", {"window_min_s": 1.0, "window_tail_s": 1.0}),
    "len+3": ("ceil(len + 3 s), no minimum", {"window_min_s": 1.0, "window_tail_s": 3.0}),
    "min10+1": ("ceil(len + 1 s), at least 10 s", {"window_min_s": 10.0, "window_tail_s": 1.0}),
    "min15+1": ("ceil(len + 1 s), at least 15 s", {"window_min_s": 15.0, "window_tail_s": 1.0}),
    "batchmax": (
        "batch padded to its longest ceil(len + 1 s)",
        {"window_min_s": 1.0, "window_tail_s": 1.0, "batch_padding": "max"},
    ),
    "default": ("the engine's defaults (AsrOptions())", {}),
    "beam1": ("defaults, greedy (beam 1)", {"beam_size": 1}),
    "noprompt": ("defaults without a Mandarin prompt", {"zh_prompt": None}),
    "zhprompt": (
        "defaults, with the Mandarin prompt 以下是普通话的句子。",
        {"zh_prompt": "以下是普通话的句子。"},
    ),
    "nofallback": ("defaults, temperature 0 only (no retry)", {"temperatures": (0.0,)}),
    "rubric": ("defaults, prompt listing the rubric phrases", {"initial_prompt": "RUBRIC"}),
}


@dataclasses.dataclass
class Utt:
    call: str
    index: int
    speaker: str
    start: float
    ref: str
    audio: np.ndarray


@dataclasses.dataclass
class Row:
    name: str
    cer_agent: float
    cer_customer: float
    cer_all: float
    cpu_per_audio_s: float
    encode_wall_s: float
    decode_wall_s: float
    loops: int
    retries: int
    dropped: int
    hallucinations: int
    phrases_found: int
    phrases_said: int
    phrases_invented: int
    exact: int
    utterances: int


def load_utterances(corpus: Path, calls: Iterable[str]) -> list[Utt]:
    out = []
    for call in calls:
        labels = json.loads((corpus / f"{call}.json").read_text(encoding="utf-8"))
        rec = read_wav(corpus / labels["audio"])
        channel_of = {v: int(k) for k, v in labels["format"]["channel_map"].items()}
        legs = {name: rec.channels[ch] for name, ch in channel_of.items()}
        rate = rec.sample_rate
        for i, u in enumerate(labels["transcript"]):
            leg = legs[u["speaker"]]
            a = max(0, int((u["start"] - MARGIN_S) * rate))
            b = min(len(leg), int((u["end"] + MARGIN_S) * rate))
            piece = np.ascontiguousarray(leg[a:b], dtype=np.float32)
            audio = upsample_8k_to_16k(piece) if rate == 8000 else piece
            out.append(Utt(call, i, u["speaker"], u["start"], u["text"], audio.astype(np.float32)))
    return out


def rubric_phrases(corpus: Path) -> list[str]:
    """Every phrase of the corpus rubric except filler words."""
    rubric = yaml.safe_load((corpus / "rubric.yaml").read_text(encoding="utf-8"))
    found: list[str] = []

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, list):
            for v in node:
                if isinstance(v, str | int) and "phrase" in key:
                    found.append(str(v))
                else:
                    walk(v, key)

    for item in rubric.get("items", []):
        if item.get("kind") != "filler_words":
            walk(item)
    return list(dict.fromkeys(found))


def encode_costs(info: ModelInfo, threads: int) -> list[tuple[int, float]]:
    """Median CPU seconds of one encoder pass per window length."""
    model = ctranslate2.models.Whisper(
        str(info.path), device="cpu", compute_type="int8", intra_threads=threads
    )
    rng = np.random.default_rng(0)
    audio = (0.05 * rng.standard_normal(SAMPLE_RATE_HZ * 30)).astype(np.float32)
    out = []
    for window in ENCODE_WINDOWS_S:
        mel = log_mel_spectrogram(audio[: window * SAMPLE_RATE_HZ], info.n_mels, 0)
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None]))
        model.encode(features)
        times = []
        for _ in range(ENCODE_REPEATS):
            started = time.process_time()
            encoded = model.encode(features)
            times.append(time.process_time() - started)
        assert np.asarray(encoded).shape[1] == window * 50
        out.append((window, statistics.median(times)))
    return out


def study_options(
    changes: dict[str, Any], phrases: list[str], threads: int, batch: int
) -> AsrOptions:
    """AsrOptions() on the CPU with ``threads`` and ``batch``, changed by ``changes``."""
    changes = dict(changes)
    if changes.get("initial_prompt") == "RUBRIC":
        changes["initial_prompt"] = ZH_PROMPT + "，".join(phrases) + "。"
    return dataclasses.replace(
        AsrOptions(cpu_threads=threads, max_batch_size=batch, device="cpu"), **changes
    )


def call_batches(utts: list[Utt], batch: int) -> list[list[Utt]]:
    """Each call's utterances in arrival order, cut into groups of ``batch``."""
    out = []
    for call in dict.fromkeys(u.call for u in utts):
        ordered = sorted((u for u in utts if u.call == call), key=lambda u: u.start)
        out += [ordered[b : b + batch] for b in range(0, len(ordered), batch)]
    return out


def decode_group(engine: AsrEngine, group: list[Utt]) -> list[AsrResult]:
    """One ``transcribe_batch`` call for ``group``."""
    requests = [AsrRequest(f"{u.call}/{u.index}", u.audio, "zh") for u in group]
    return engine.transcribe_batch(requests)


def decode_utterances(
    engine: AsrEngine, utts: list[Utt], batch: int
) -> tuple[dict[tuple[str, int], AsrResult], float]:
    """Results by (call, index) and the process CPU seconds spent inside the engine."""
    results: dict[tuple[str, int], AsrResult] = {}
    cpu = 0.0
    for group in call_batches(utts, batch):
        started = time.process_time()
        out = decode_group(engine, group)
        cpu += time.process_time() - started
        for u, r in zip(group, out, strict=True):
            results[(u.call, u.index)] = r
    return results, cpu


def score_results(
    name: str,
    utts: list[Utt],
    results: dict[tuple[str, int], AsrResult],
    phrases: list[str],
    stats: AsrStats,
    cpu: float,
) -> tuple[Row, list[dict[str, Any]]]:
    """The row of a configuration (accuracy of ``results``, cost from ``stats`` and ``cpu``)."""
    errors = {"agent": 0, "customer": 0}
    chars = {"agent": 0, "customer": 0}
    hallucinations = exact = found = said = invented = 0
    records = []
    for u in utts:
        r = results[(u.call, u.index)]
        ref, hyp = cer_key(u.ref), cer_key(r.text)
        dist = edit_distance(ref, hyp)
        errors[u.speaker] += dist
        chars[u.speaker] += len(ref)
        exact += int(dist == 0)
        hallucinations += int(
            len(hyp) > HALLUCINATION_FACTOR * len(ref) + HALLUCINATION_SLACK_CHARS
        )
        ref_m, hyp_m = match_key(u.ref), match_key(r.text)
        for phrase in phrases:
            p = match_key(phrase)
            in_ref, in_hyp = p in ref_m, p in hyp_m
            said += int(in_ref)
            found += int(in_ref and in_hyp)
            invented += int(in_hyp and not in_ref)
        records.append(
            {
                "call": u.call,
                "index": u.index,
                "speaker": u.speaker,
                "ref": u.ref,
                "hyp": r.text,
                "raw": r.raw_text,
                "errors": dist,
                "ref_chars": len(ref),
                "filter_reason": r.filter_reason,
                "trimmed": r.repetition_trimmed,
                "attempts": r.attempts,
                "window_s": r.window_s,
                "avg_logprob": round(r.avg_logprob, 3),
                "no_speech_prob": round(r.no_speech_prob, 3),
            }
        )
    row = Row(
        name=name,
        cer_agent=errors["agent"] / max(chars["agent"], 1),
        cer_customer=errors["customer"] / max(chars["customer"], 1),
        cer_all=sum(errors.values()) / max(sum(chars.values()), 1),
        cpu_per_audio_s=cpu / max(stats.audio_s, 1e-9),
        encode_wall_s=stats.encode_s,
        decode_wall_s=stats.decode_s,
        loops=stats.first_attempt_loops,
        retries=stats.retries,
        dropped=sum(stats.filtered.values()),
        hallucinations=hallucinations,
        phrases_found=found,
        phrases_said=said,
        phrases_invented=invented,
        exact=exact,
        utterances=len(utts),
    )
    return row, records


def run_config(
    name: str,
    changes: dict[str, Any],
    info: ModelInfo,
    utts: list[Utt],
    phrases: list[str],
    threads: int,
    batch: int,
) -> tuple[Row, list[dict[str, Any]]]:
    engine = AsrEngine(info, study_options(changes, phrases, threads, batch))
    results, cpu = decode_utterances(engine, utts, batch)
    return score_results(name, utts, results, phrases, engine.stats, cpu)


def print_table(rows: list[Row], baseline: Row) -> None:
    header = (
        f"{'config':<11} {'CER agt':>7} {'CER cus':>7} {'CER all':>7} {'exact':>5} "
        f"{'cpu/aud s':>9} {'x base':>6} {'enc s':>6} {'dec s':>6} {'loops':>5} "
        f"{'retry':>5} {'drop':>4} {'halluc':>6} {'phr found':>9} {'invented':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.name:<11} {100 * r.cer_agent:6.1f}% {100 * r.cer_customer:6.1f}% "
            f"{100 * r.cer_all:6.1f}% {r.exact:5d} {r.cpu_per_audio_s:9.4f} "
            f"{r.cpu_per_audio_s / baseline.cpu_per_audio_s:6.2f} {r.encode_wall_s:6.1f} "
            f"{r.decode_wall_s:6.1f} {r.loops:5d} {r.retries:5d} {r.dropped:4d} "
            f"{r.hallucinations:6d} {r.phrases_found:4d}/{r.phrases_said:<4d} "
            f"{r.phrases_invented:8d}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--calls", default="", help="comma-separated call ids (default: all)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=8, help="utterances per transcribe_batch")
    parser.add_argument("--data-dir", type=Path, default=None, help="where the model is assembled")
    parser.add_argument("--json", type=Path, default=None, help="write rows and texts here")
    parser.add_argument("--skip-encode", action="store_true", help="skip the encoder timing")
    args = parser.parse_args(argv)

    calls = [c for c in args.calls.split(",") if c] or sorted(
        p.stem for p in args.corpus.glob("dev*.json")
    )
    names = [n for n in args.configs.split(",") if n]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs {unknown}; known: {', '.join(CONFIGS)}")
    data_dir = args.data_dir or Path(tempfile.gettempdir()) / "callqa-bench-data"
    info = resolve_model("base", data_dir)
    utts = load_utterances(args.corpus, calls)
    audio_s = sum(len(u.audio) for u in utts) / SAMPLE_RATE_HZ
    phrases = rubric_phrases(args.corpus)
    print(
        f"{len(calls)} calls ({', '.join(calls)}), {len(utts)} utterances, {audio_s:.0f} s of "
        f"audio; {args.threads} threads, batches of {args.batch}; ctranslate2 "
        f"{ctranslate2.__version__}, int8 on CPU; defaults: {AsrOptions()}"
    )
    if not args.skip_encode:
        print("\nencoder CPU s per pass (one utterance) by window length:")
        costs = encode_costs(info, args.threads)
        print("  " + "  ".join(f"{w:>2d} s: {c:.3f}" for w, c in costs))

    rows: list[Row] = []
    dump: dict[str, Any] = {}
    print()
    for name in names:
        what, changes = CONFIGS[name]
        started = time.time()
        row, records = run_config(name, changes, info, utts, phrases, args.threads, args.batch)
        rows.append(row)
        dump[name] = {"what": what, "row": dataclasses.asdict(row), "records": records}
        print(
            f"  {name:<11} {what}: CER {100 * row.cer_all:.1f}% "
            f"({time.time() - started:.0f} s wall)",
            flush=True,
        )
    print()
    print_table(rows, rows[0])
    print(
        "\nCER: errors / reference chars after cer_key; cpu/aud s: process CPU seconds per audio "
        "second; x base: ratio to the first row; enc s / dec s: wall seconds inside encode() / "
        "generate(); loops: first attempts that repeated or compressed > 2.4; phr found: rubric "
        "phrases said and recognised / said; invented: rubric phrases written but not said."
    )
    if args.json:
        args.json.write_text(json.dumps(dump, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
