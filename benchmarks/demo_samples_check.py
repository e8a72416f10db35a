"""How well the demo's sample calls read: per line, what was meant, what Whisper wrote, CER.

Makes every sample call of `core.audio.samples` (espeak-ng + sox, G.711 mu-law WAV), reads the
files back as `callqa demo` does, scores each with its built-in rubric through the real
pipeline (VAD segmentation, the configured Whisper model, the rubric engine) and prints:

* per script line: the voice, the intended text, the text of the utterances that overlap
  the line on its speaker's leg, and the character error rate (CER: edit distance over
  the reference length, after `core.text_norm.cer_key`; for English lines over characters
  too, spaces removed, which is only a rough guide);
* per call: the findings expected by the script against those found.

    .venv/bin/python benchmarks/demo_samples_check.py [--call NAME] [--model base]

Exit status 1 when any call's findings differ from the expected ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from core.audio.samples import SAMPLE_CALLS, make_samples
from core.audio.wav import read_wav
from core.calls import Utterance
from core.config import load_settings
from core.rubric.defaults import builtin_rubrics
from core.rubric.loading import load_rubric_text
from core.scoring.pipeline import legs_from_recording, score_legs
from core.scoring.recording import get_engine
from core.text_norm import cer_key, edit_distance


def line_text(utterances: list[Utterance], speaker: object, start: float, end: float) -> str:
    """The text of `speaker`'s utterances that lie mostly inside the line's [start, end]."""
    parts = []
    for u in utterances:
        if u.speaker != speaker:
            continue
        overlap = min(u.end, end) - max(u.start, start)
        if overlap > 0.5 * min(u.end - u.start, end - start):
            parts.append(u.text)
    return " ".join(parts)


def cer(ref: str, hyp: str) -> float:
    r, h = cer_key(ref), cer_key(hyp)
    return edit_distance(r, h) / max(1, len(r))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--call", action="append", help="only this sample (repeatable)")
    ap.add_argument("--model", help="Whisper model (default: the configured one)")
    args = ap.parse_args(argv)

    overrides = {"model": args.model} if args.model else None
    config = load_settings(overrides=overrides)
    engine = get_engine(config)
    calls = [c for c in SAMPLE_CALLS if not args.call or c.name in args.call]
    all_ok = True
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        make_samples(Path(tmp))
        print(f"made {len(SAMPLE_CALLS)} samples in {time.perf_counter() - t0:.1f} s")
        for call in calls:
            t0 = time.perf_counter()
            recording = read_wav(Path(tmp) / f"{call.name}.wav")
            rubric = load_rubric_text(builtin_rubrics()[call.rubric])
            scored = score_legs(
                engine,
                rubric,
                legs_from_recording(recording),
                min_silence_s=config.min_silence_s,
                max_utterance_s=config.max_utterance_s,
                batch_size=config.asr_batch_size,
            )
            took = time.perf_counter() - t0
            utts = scored.evidence.utterances
            print()
            print("=" * 78)
            print(
                f"{call.name} ({call.rubric}, {recording.duration_s:.1f} s, scored in {took:.1f} s)"
            )
            total_err = total_ref = 0
            meta = json.loads((Path(tmp) / f"{call.name}.json").read_text(encoding="utf-8"))
            for row in meta["script"]:
                hyp = line_text(utts, row["speaker"], row["start"], row["end"])
                c = cer(row["text"], hyp)
                n = len(cer_key(row["text"]))
                total_err += round(c * n)
                total_ref += n
                print(f"  {row['speaker']:<8} {row['voice']} -s {row['speed']} -p {row['pitch']}")
                print(f"    said:  {row['text']}")
                print(f"    heard: {hyp}")
                print(f"    CER {c:.2f}")
            print(f"  call CER {total_err / max(1, total_ref):.3f}")
            found = {f.item_id for f in scored.result.findings}
            expected = set(call.expected_items)
            ok = found == expected
            all_ok &= ok
            print(f"  expected: {sorted(expected) or 'none'}")
            print(f"  found:    {sorted(found) or 'none'}")
            for f in scored.result.findings:
                print(f"    {f.item_id:<18} {f.evidence}")
            if not ok:
                print(
                    f"  DIFFERENT: missing {sorted(expected - found) or 'none'}, "
                    f"extra {sorted(found - expected) or 'none'}"
                )
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
