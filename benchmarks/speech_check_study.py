"""The speech check on line sounds that are not speech: what reaches Whisper, with and without it.

    python benchmarks/speech_check_study.py [--seconds 30] [--set NAME=VALUE ...]

For each kind of generated sound (``core.audio.line_sounds``: noise bursts, steady noise, hold
music, tones, a busy tone, DTMF) a leg of ``--seconds`` is made of pieces of 1 to 5 s with
quiet line noise between them. Each leg goes through the offline pipeline's first stage (the
Numba VAD and endpointer, as `callqa score`) and its cuts through the ASR engine twice: with
``asr_speech_check`` off (the baseline, in the same run) and on. Nothing in these legs is
speech, so every transcript kept is a phantom.

Printed per kind and configuration: the cuts, the share of the leg's audio that reached
Whisper, the phantom transcripts, the process CPU seconds of the ASR step, and for the check
its own CPU per second of audio it was given.

With ``--corpus DIR --calls a,b``, labelled calls are also scored (as `callqa score`) with
line sounds of 1.5 to 4 s laid into each leg's pauses of 3 s and more (hold music on the
customer leg while the agent looks something up, DTMF, a noise burst, a tone, in turn),
with the check off and on: the phantom transcripts (text overlapping no labelled
utterance), the labelled utterances left without text, and the findings against the labels.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # eval_corpus, beside this file

from core.audio import line_sounds as ls
from core.config import load_settings
from core.scoring.pipeline import LegInput, segment_legs, transcribe_utterances
from core.scoring.recording import get_engine

RATE = ls.SAMPLE_RATE_HZ
GAP_DBFS = -60.0


def make_leg(kind: str, seconds: float, seed: int) -> np.ndarray:
    """Pieces of ``kind`` of 1 to 5 s, with 1 to 2.5 s of faint noise between them."""
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    total = 0.0
    while total < seconds:
        gap = float(rng.uniform(1.0, 2.5))
        piece = float(rng.uniform(1.0, 5.0))
        parts.append(ls.steady_noise(gap, GAP_DBFS, seed=int(rng.integers(1 << 30))))
        parts.append(sound(kind, piece, int(rng.integers(1 << 30))))
        total += gap + piece
    return np.concatenate(parts).astype(np.float32)


def sound(kind: str, seconds: float, seed: int) -> np.ndarray:
    if kind == "noise_burst":
        return ls.noise_burst(seconds, seed=seed)
    if kind == "steady_noise":
        return ls.steady_noise(seconds, seed=seed)
    if kind == "hold_music":
        return ls.hold_music(seconds, tempo_bpm=80.0 + seed % 60)
    if kind == "tone_440":
        return ls.tone(seconds, 440.0)
    if kind == "tone_1000":
        return ls.tone(seconds, 1000.0)
    if kind == "busy_tone":
        return ls.tone(seconds, 450.0, on_s=0.35, off_s=0.35)
    if kind == "dtmf":
        keys = "".join(ls.DTMF_KEYS[(seed + i) % 16] for i in range(max(1, int(seconds / 0.2))))
        return ls.dtmf(keys)
    raise ValueError(f"unknown kind {kind!r}")


def run(engine: Any, leg: np.ndarray, config: Any) -> dict[str, float]:
    legs = [LegInput("customer", leg, RATE)]
    cuts, _ = segment_legs(legs, min_silence_s=config.min_silence_s,
                           max_utterance_s=config.max_utterance_s)  # fmt: skip
    cut_s = sum(u.end - u.start for u in cuts)
    check = engine.speech_check
    dropped0 = check.stats.dropped_audio_s if check else 0.0
    check_cpu0 = check.stats.cpu_s if check else 0.0
    check_audio0 = check.stats.audio_s if check else 0.0
    cpu0 = time.process_time()
    kept, _ = transcribe_utterances(engine, legs, cuts, language="zh",
                                    batch_size=engine.max_batch_size)  # fmt: skip
    cpu = time.process_time() - cpu0
    dropped = (check.stats.dropped_audio_s - dropped0) if check else 0.0
    return {
        "cuts": len(cuts),
        "cut_s": cut_s,
        "whisper_s": cut_s - dropped,
        "phantoms": len(kept),
        "cpu_s": cpu,
        "check_cpu_s": (check.stats.cpu_s - check_cpu0) if check else 0.0,
        "check_audio_s": (check.stats.audio_s - check_audio0) if check else 0.0,
        "examples": "; ".join(u.text for u in kept[:2]),
    }


def with_line_sounds(audio: np.ndarray, spans: list[tuple[float, float]], seed: int) -> np.ndarray:
    """``audio`` (8 kHz) with a line sound laid into the middle of each pause of 3 s or more
    between ``spans`` (the leg's labelled utterances), 0.75 s clear of both sides."""
    kinds = ("hold_music", "dtmf", "noise_burst", "busy_tone", "tone_1000", "steady_noise")
    out = audio.copy()
    rng = np.random.default_rng(seed)
    ends = [0.0] + [e for _, e in spans]
    starts = [s for s, _ in spans] + [len(audio) / RATE]
    for n, (gap_start, gap_end) in enumerate(zip(ends, starts, strict=True)):
        room = gap_end - gap_start - 1.5
        if room < 1.5:
            continue
        length = float(min(room, rng.uniform(1.5, 4.0)))
        at = int((gap_start + 0.75 + (room - length) / 2) * RATE)
        piece = sound(kinds[(seed + n) % len(kinds)], length, seed + n)
        out[at : at + len(piece)] += piece[: len(out) - at]
    return np.clip(out, -1.0, 1.0)


def mixed_calls(corpus: Path, calls: list[str], engines: dict[bool, Any], configs: Any) -> None:
    import eval_corpus as ev

    from core.audio.wav import read_wav
    from core.rubric.loading import load_rubric_file
    from core.scoring.pipeline import score_legs

    rubric = load_rubric_file(corpus / "rubric.yaml")
    print(f"\n{'calls with line sounds':<24} {'check':<5} {'to Whisper':>10} {'phantoms':>8} "
          f"{'utts lost':>9} {'tp':>4} {'fp':>4} {'fn':>4} {'ASR CPU-s':>9}")  # fmt: skip
    for on in (False, True):
        engine = engines[on]
        keys = ("leg_s", "whisper_s", "phantoms", "lost", "tp", "fp", "fn", "cpu")
        sums = dict.fromkeys(keys, 0.0)
        for k, call in enumerate(calls):
            labels = json.loads((corpus / f"{call}.json").read_text(encoding="utf-8"))
            rec = read_wav(corpus / f"{call}.wav")
            legs = ev.legs_from_recording(rec, agent_channel="left")
            for i, leg in enumerate(legs):
                spans = [(u["start"], u["end"]) for u in labels["transcript"]
                         if u["speaker"] == leg.speaker]  # fmt: skip
                legs[i] = LegInput(leg.speaker, with_line_sounds(leg.audio, spans, 7 * k + i),
                                   leg.sample_rate)  # fmt: skip
            audio0 = engine.stats.audio_s
            dropped0 = engine.speech_check.stats.dropped_audio_s if engine.speech_check else 0.0
            cpu0 = time.process_time()
            scored = score_legs(engine, rubric, legs, batch_size=engine.max_batch_size)
            sums["cpu"] += time.process_time() - cpu0
            dropped = (engine.speech_check.stats.dropped_audio_s - dropped0
                       if engine.speech_check else 0.0)  # fmt: skip
            sums["whisper_s"] += engine.stats.audio_s - audio0 - dropped
            sums["leg_s"] += sum(len(leg.audio) / leg.sample_rate for leg in legs)
            hyp = scored.evidence.utterances
            sums["phantoms"] += len(ev.phantom_utterances(hyp, labels["transcript"]))
            sums["lost"] += sum(
                not any(h.speaker == u["speaker"] and ev.overlaps(h.start, h.end, u["start"],
                                                                 u["end"], 0) for h in hyp)
                for u in labels["transcript"]
            )  # fmt: skip
            counts, _, _ = ev.match_call(scored.result.to_json()["findings"], labels["events"])
            for c in counts.values():
                sums["tp"] += c[0]
                sums["fp"] += c[1]
                sums["fn"] += c[2]
        print(f"{len(calls)} calls, {sums['leg_s']:.0f} s of legs".ljust(24)
              + f" {'on' if on else 'off':<5} {100 * sums['whisper_s'] / sums['leg_s']:>9.1f}% "
              f"{sums['phantoms']:>8.0f} {sums['lost']:>9.0f} {sums['tp']:>4.0f} "
              f"{sums['fp']:>4.0f} {sums['fn']:>4.0f} {sums['cpu']:>9.1f}", flush=True)  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each kind's leg")
    ap.add_argument("--kinds", default=",".join(ls.line_sounds(0.2)), help="comma-separated")
    ap.add_argument("--corpus", type=Path, help="a labelled corpus (also score its --calls)")
    ap.add_argument("--calls", default="", help="comma-separated call ids of --corpus")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a setting (core.config); repeatable")  # fmt: skip
    args = ap.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    configs = {
        on: load_settings(overrides={**overrides, "asr_speech_check": on}) for on in (False, True)
    }
    engines = {on: get_engine(c) for on, c in configs.items()}
    print(f"{'kind':<13} {'check':<5} {'cuts':>4} {'cut s':>6} {'to Whisper':>11} "
          f"{'phantoms':>8} {'ASR CPU-s':>9} {'check CPU-s/s':>13}  examples")  # fmt: skip
    totals = {on: dict.fromkeys(("leg_s", "whisper_s", "phantoms", "cpu_s"), 0.0)
              for on in configs}  # fmt: skip
    for seed, kind in enumerate(k for k in args.kinds.split(",") if k):
        leg = make_leg(kind, args.seconds, seed)
        leg_s = len(leg) / RATE
        for on in (False, True):
            r = run(engines[on], leg, configs[on])
            per_s = r["check_cpu_s"] / r["check_audio_s"] if r["check_audio_s"] else 0.0
            share = max(0.0, 100 * r["whisper_s"] / leg_s)
            print(f"{kind:<13} {'on' if on else 'off':<5} {r['cuts']:>4} {r['cut_s']:>6.1f} "
                  f"{share:>10.1f}% {r['phantoms']:>8} {r['cpu_s']:>9.2f} {per_s:>13.5f}  "
                  f"{r['examples'][:40]}", flush=True)  # fmt: skip
            t = totals[on]
            t["leg_s"] += leg_s
            t["whisper_s"] += r["whisper_s"]
            t["phantoms"] += r["phantoms"]
            t["cpu_s"] += r["cpu_s"]
    for on, t in totals.items():
        if t["leg_s"]:
            print(f"all, check {'on' if on else 'off'}: {100 * t['whisper_s'] / t['leg_s']:.1f} % "
                  f"of {t['leg_s']:.0f} s reached Whisper, {t['phantoms']:.0f} phantom "
                  f"transcripts, ASR step {t['cpu_s']:.1f} CPU-s")  # fmt: skip
    if args.corpus is not None:
        mixed_calls(args.corpus, [c for c in args.calls.split(",") if c], engines, configs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
