"""Decoding levers that might lower the character error rate, each measured on the same cuts.

    python benchmarks/transcript_levers.py [CORPUS] [--calls ho001,ho002,...] [--rows ...]

The reference utterances of the chosen calls are cut from the corpus
(asr_window_study.load_utterances: labelled times ± 0.15 s, 16 kHz) and decoded by
core.asr.engine.AsrEngine once per row. Each row prints the CER over both legs (both texts
through core.text_norm.cer_key), the process CPU seconds per audio second spent decoding,
and the engine's retries (second attempts at the fallback temperature).

Rows:

* default: the engine's options (AsrOptions()), batches of 8 in arrival order;
* temp0: no temperature fallback (one attempt per utterance);
* logprob-0.5: the fallback taken below an average log-probability of -0.5 (default -1.0);
* nospeech-0.8: the no-speech threshold at 0.8 (default 0.6);
* beam5: beam 5 (default 3), the width a final re-decoding pass would use;
* context-leg / context-call: each utterance decoded alone (batch 1), in arrival order,
  with the last 24 characters already transcribed on the same leg (context-leg) or on either
  leg of the call (context-call) appended to the Mandarin prompt, as Whisper's
  "condition on previous text" does; prompt-1: the same decoding without the context
  (batch 1, the plain prompt), their baseline.

The context rows set the prompt of each utterance through AsrOptions.initial_prompt on the
one engine (the engine itself has one prompt per language). Nothing here asserts on timings;
the CPU figures are only comparable between rows of one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asr_window_study import Utt, decode_utterances, load_utterances

from core.asr.engine import AsrEngine, AsrOptions, AsrRequest, AsrResult
from core.asr.models import resolve_model
from core.asr.types import ZH_VERBATIM_PROMPT
from core.config import Settings
from core.text_norm import cer_key, edit_distance

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus-b"
DEFAULT_CALLS = "ho001,ho002,ho005,ho007,ho010,ho012,ho015,ho017,ho020,ho022,ho025,ho027"
CONTEXT_CHARS = 24

OPTION_ROWS: dict[str, dict[str, object]] = {
    "default": {},
    "temp0": {"temperatures": (0.0,)},
    "logprob-0.5": {"log_prob_threshold": -0.5},
    "nospeech-0.8": {"no_speech_threshold": 0.8},
    "beam5": {"beam_size": 5},
}
CONTEXT_ROWS = {"prompt-1": None, "context-leg": "leg", "context-call": "call"}
ROWS = [*OPTION_ROWS, *CONTEXT_ROWS]


def cer(utts: list[Utt], texts: dict[tuple[str, int], str]) -> tuple[int, int]:
    edits = chars = 0
    for u in utts:
        ref = cer_key(u.ref)
        edits += edit_distance(ref, cer_key(texts[(u.call, u.index)]))
        chars += len(ref)
    return edits, chars


def decode_with_context(
    engine: AsrEngine, utts: list[Utt], scope: str | None
) -> dict[tuple[str, int], AsrResult]:
    """Each utterance alone, in arrival order, prompted with what came before (scope)."""
    base = engine.options
    out: dict[tuple[str, int], AsrResult] = {}
    for call in dict.fromkeys(u.call for u in utts):
        heard: list[tuple[str, str]] = []
        for u in sorted((u for u in utts if u.call == call), key=lambda u: u.start):
            before = "".join(t for speaker, t in heard if scope == "call" or speaker == u.speaker)
            engine.options = dataclasses.replace(
                base, initial_prompt=ZH_VERBATIM_PROMPT + (before[-CONTEXT_CHARS:] if scope else "")
            )
            engine._prompt_cache.clear()
            result = engine.transcribe_batch([AsrRequest(f"{call}/{u.index}", u.audio, "zh")])[0]
            heard.append((u.speaker, result.text))
            out[(u.call, u.index)] = result
    engine.options = base
    engine._prompt_cache.clear()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--calls", default=DEFAULT_CALLS)
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    names = args.rows.split(",")
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
    utts = load_utterances(args.corpus, args.calls.split(","))
    audio_s = sum(len(u.audio) for u in utts) / 16000
    model = resolve_model("base", (args.data_dir or Settings().data_dir).expanduser())
    print(f"{len(utts)} utterances, {audio_s:.0f} s of audio, {args.corpus.name}: {args.calls}")
    print(f"{'row':<14} {'CER':>6} {'edits':>11} {'CPU s/audio s':>14} {'retries':>8}")
    for name in names:
        options = AsrOptions(cpu_threads=args.threads, device="cpu", max_batch_size=8,
                             **OPTION_ROWS.get(name, {}))  # type: ignore[arg-type]  # fmt: skip
        engine = AsrEngine(model, options)
        started = time.process_time()
        if name in CONTEXT_ROWS:
            results = decode_with_context(engine, utts, CONTEXT_ROWS[name])
        else:
            results, _ = decode_utterances(engine, utts, 8)
        cpu = time.process_time() - started
        edits, chars = cer(utts, {k: r.text for k, r in results.items()})
        print(f"{name:<14} {100 * edits / chars:5.1f}% {edits:>5}/{chars:<5} "
              f"{cpu / audio_s:14.3f} {engine.stats.retries:>8}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
