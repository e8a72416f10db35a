"""Accuracy on a labelled corpus: finding precision/recall per item, CER per leg, pass/fail.

    python benchmarks/eval_corpus.py ../shared/corpus [--calls dev001,dev002] [--json OUT]
        [--set asr_beam_size=1 --set asr_compute_type=int8 ...]

Every call of the corpus (devNNN.wav + devNNN.json, with the corpus's rubric.yaml) is scored
through the same code as `callqa score` (nothing is stored). A finding matches a label with
the same item_id whose time span overlaps it within 2 s; call-level items (required phrases
and filler totals) match on item_id alone. CER compares each leg's recognised text with the
reference transcript after normalisation (NFKC, simplified characters, digits as Chinese
numerals, punctuation and spaces removed). Settings come from core.config.load_settings as for
`callqa score` (defaults, config file, CALLQA_<SETTING> variables), then ``--set`` overrides.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import unicodedata
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zhconv

from core.audio.wav import read_wav
from core.config import load_settings
from core.rubric.loading import load_rubric_file
from core.rubric.schema import Rubric
from core.scoring.pipeline import legs_from_recording, score_legs
from core.scoring.recording import get_engine

TIME_TOLERANCE_S = 2.0
CALL_LEVEL_KINDS = {"required_phrase", "filler_words"}
DIGITS = str.maketrans("0123456789", "零一二三四五六七八九")
PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = zhconv.convert(text, "zh-cn").translate(DIGITS).lower()
    return PUNCT.sub("", text)


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        prev = cur
    return prev[-1]


def expected_outcome(rubric: Rubric, events: list[dict[str, Any]]) -> tuple[float, bool]:
    """The score the labels imply, by the rubric's deductions, caps and fatal items."""
    by_item = {it.id: it for it in rubric.items}
    per_item: dict[str, float] = defaultdict(float)
    fatal = False
    for ev in events:
        item = by_item[ev["item_id"]]
        per_item[item.id] += item.deduct
        fatal = fatal or item.fatal
    total = 0.0
    for item_id, value in per_item.items():
        cap = by_item[item_id].max_deduct
        total += min(value, cap) if cap is not None else value
    score = 0.0 if fatal else max(0.0, rubric.total - total)
    return score, (not fatal and score >= rubric.pass_score)


def overlaps(a0: float, a1: float, b0: float, b1: float, tol: float) -> bool:
    return a0 <= b1 + tol and b0 <= a1 + tol


def match_call(
    findings: list[dict[str, Any]], events: list[dict[str, Any]]
) -> tuple[dict[str, list[int]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Per item [tp, fp, fn], plus the unmatched findings and labels."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    used: set[int] = set()
    missed = []
    for ev in events:
        hit = None
        for i, f in enumerate(findings):
            if i in used or f["item_id"] != ev["item_id"]:
                continue
            if ev["kind"] in CALL_LEVEL_KINDS or overlaps(
                f["start"], f["end"], ev["start"], ev["end"], TIME_TOLERANCE_S
            ):
                hit = i
                break
        if hit is None:
            counts[ev["item_id"]][2] += 1
            missed.append(ev)
        else:
            used.add(hit)
            counts[ev["item_id"]][0] += 1
    extra = [f for i, f in enumerate(findings) if i not in used]
    for f in extra:
        counts[f["item_id"]][1] += 1
    return counts, extra, missed


def phrase_items(rubric: Rubric) -> dict[str, list[str]]:
    """Each phrase the rubric listens for, with the items that list it."""
    out: dict[str, list[str]] = defaultdict(list)
    for item in rubric.items:
        lists = [item.phrases]
        if item.trigger is not None and item.response is not None:
            lists += [item.trigger.phrases, item.response.phrases]
        for phrase in {p for group in lists for p in group}:
            out[phrase].append(item.id)
    return out


def phrase_checks(utterances: list[Any], reference: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every near-missed phrase checked against the audio, with whether it was said: the
    reference lines of the same speaker that overlap the utterance hold the phrase."""
    out = []
    for u in utterances:
        if not u.checks:
            continue
        ref = normalise(
            "".join(
                r["text"] for r in reference
                if r["speaker"] == u.speaker and r["start"] < u.end + 0.5
                and r["end"] > u.start - 0.5
            )
        )  # fmt: skip
        for c in u.checks:
            out.append({**c.to_json(), "said": normalise(c.phrase) in ref,
                        "speaker": u.speaker, "start": u.start, "text": u.text})  # fmt: skip
    return out


def describe_check(check: dict[str, Any], items_of: dict[str, list[str]]) -> str:
    verdict = "verified" if check["accepted"] else "rejected"
    truth = "said" if check["said"] else "NOT said"
    items = ",".join(items_of.get(check["phrase"], []))
    return (
        f"{verdict} {items} {check['phrase']} (heard {check['heard']}, gain {check['gain']:+.2f},"
        f" {truth}) at {check['start']:.1f} s {check['speaker']}"
    )


def print_check_summary(checks: list[dict[str, Any]], items_of: dict[str, list[str]]) -> None:
    """Per item: near misses verified and rejected, split by whether the phrase was said."""
    rows: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for c in checks:
        for item in items_of.get(c["phrase"], ["?"]):
            rows[item][(0 if c["accepted"] else 2) + (0 if c["said"] else 1)] += 1
    print()
    print("near misses checked against the audio (said = the reference holds the phrase there)")
    print(f"{'item':<18} {'verified said':>14} {'verified NOT':>13} {'rejected said':>14}"
          f" {'rejected not':>13}")  # fmt: skip
    for item, (vs, vn, rs, rn) in sorted(rows.items()):
        print(f"{item:<18} {vs:>14} {vn:>13} {rs:>14} {rn:>13}")


def phantom_utterances(hyp: list[Any], ref: list[dict[str, Any]]) -> list[Any]:
    """Transcribed utterances that overlap no labelled utterance of the same speaker: text
    written where nothing was said (noise, music, tones)."""
    return [
        u for u in hyp
        if not any(r["speaker"] == u.speaker and overlaps(u.start, u.end, r["start"], r["end"], 0)
                   for r in ref)
    ]  # fmt: skip


def print_asr_share(engine: Any, leg_audio_s: float, phantoms: int) -> None:
    """The share of the legs' audio that reached Whisper, what the speech check dropped and
    what it cost, and the phantom transcripts."""
    check = engine.speech_check
    dropped_s = check.stats.dropped_audio_s if check is not None else 0.0
    decoded_s = engine.stats.audio_s - dropped_s
    line = (
        f"audio reaching Whisper: {decoded_s:.0f} s of {leg_audio_s:.0f} s of leg audio "
        f"({100 * decoded_s / max(leg_audio_s, 1e-9):.1f} %); phantom transcripts: {phantoms}"
    )
    if check is not None:
        st = check.stats
        line += (
            f"; speech check ({check.provider}): {st.dropped} of {st.utterances} utterances "
            f"dropped ({st.dropped_audio_s:.1f} s), {st.cpu_s:.2f} CPU-s "
            f"({st.cpu_s / max(st.audio_s, 1e-9):.5f} CPU-s per utterance second, "
            f"{st.read_s / max(st.audio_s, 1e-9):.2f} of it read)"
        )
    print(line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--calls", help="comma-separated call ids (default: all)")
    ap.add_argument("--rubric", type=Path, help="rubric (default: CORPUS/rubric.yaml)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--json", type=Path, help="write per-call details here")
    ap.add_argument("-v", "--verbose", action="store_true", help="print misses per call")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a setting (core.config), e.g. asr_beam_size=1; repeatable",
    )
    args = ap.parse_args()
    overrides: dict[str, Any] = {"model": args.model}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set wants NAME=VALUE, got {item!r}")
        overrides[name.strip()] = value.strip()

    rubric = load_rubric_file(args.rubric or args.corpus / "rubric.yaml")
    config = load_settings(overrides=overrides)
    engine = get_engine(config)
    print(
        f"ASR: beam {config.asr_beam_size}, batch {engine.max_batch_size}, compute type "
        f"{engine.compute_type}, {config.asr_cpu_threads or 'all'} threads, inter threads "
        f"{config.asr_inter_threads}, window at least {config.asr_window_min_s:g} s, speech "
        f"check {'at ' + str(config.asr_speech_threshold) if config.asr_speech_check else 'off'}; "
        f"cuts: silence {config.min_silence_s:g} s, at most {config.max_utterance_s:g} s",
        flush=True,
    )
    label_files = sorted(args.corpus.glob("dev*.json")) or sorted(
        p for p in args.corpus.glob("*.json") if p.with_suffix(".wav").exists()
    )
    if args.calls:
        wanted = set(args.calls.split(","))
        label_files = [p for p in label_files if p.stem in wanted]

    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    cer_num: dict[str, int] = defaultdict(int)
    cer_den: dict[str, int] = defaultdict(int)
    agree = 0
    details = []
    checks: list[dict[str, Any]] = []
    items_of = phrase_items(rubric)
    audio_s = 0.0
    leg_audio_s = 0.0
    phantoms = 0
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    for lf in label_files:
        labels = json.loads(lf.read_text(encoding="utf-8"))
        rec = read_wav(lf.with_suffix(".wav"))
        audio_s += rec.duration_s
        legs = legs_from_recording(rec, agent_channel="left")
        leg_audio_s += sum(len(leg.audio) / leg.sample_rate for leg in legs)
        scored = score_legs(
            engine, rubric, legs, batch_size=engine.max_batch_size,
            min_silence_s=config.min_silence_s, max_utterance_s=config.max_utterance_s,
        )  # fmt: skip
        invented = phantom_utterances(scored.evidence.utterances, labels["transcript"])
        phantoms += len(invented)
        result = scored.result.to_json()
        counts, extra, missed = match_call(result["findings"], labels["events"])
        for item, c in counts.items():
            for k in range(3):
                totals[item][k] += c[k]
        for speaker in ("agent", "customer"):
            ref = normalise(
                "".join(u["text"] for u in labels["transcript"] if u["speaker"] == speaker)
            )
            hyp = normalise(
                "".join(u.text for u in scored.evidence.utterances if u.speaker == speaker)
            )
            cer_num[speaker] += edit_distance(ref, hyp)
            cer_den[speaker] += len(ref)
        _, exp_pass = expected_outcome(rubric, labels["events"])
        agree += int(exp_pass == result["passed"])
        details.append(
            {
                "call": lf.stem,
                "score": result["score"],
                "passed": result["passed"],
                "expected_pass": exp_pass,
                "extra": extra,
                "missed": missed,
                "transcript": [u.to_json() for u in scored.evidence.utterances],
            }
        )
        for check in phrase_checks(scored.evidence.utterances, labels["transcript"]):
            checks.append(check)
            if check["accepted"] or check["said"]:
                print("    " + describe_check(check, items_of), flush=True)
        status = "ok" if not extra and not missed else f"+{len(extra)} -{len(missed)}"
        print(
            f"{lf.stem}: score {result['score']:g} {'pass' if result['passed'] else 'fail'} "
            f"(expected {'pass' if exp_pass else 'fail'})  {status}",
            flush=True,
        )
        if args.verbose:
            for u in invented:
                print(f"    phantom {u.speaker} {u.start:.1f}-{u.end:.1f} {u.text}")
            for f in extra:
                print(f"    extra  {f['item_id']} {f['start']:.1f}-{f['end']:.1f} {f['evidence']}")
            for ev in missed:
                print(
                    f"    missed {ev['item_id']} {ev['start']:.1f}-{ev['end']:.1f} {ev.get('text')}"
                )
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0

    print()
    print(f"{'item':<18} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>10} {'recall':>8}")
    for item in [it.id for it in rubric.items]:
        tp, fp, fn = totals.get(item, [0, 0, 0])
        prec = tp / (tp + fp) if tp + fp else float("nan")
        rec_ = tp / (tp + fn) if tp + fn else float("nan")
        print(f"{item:<18} {tp:>4} {fp:>4} {fn:>4} {prec:>10.2f} {rec_:>8.2f}")
    print()
    for speaker in ("agent", "customer"):
        print(
            f"CER {speaker:<9} {100 * cer_num[speaker] / max(1, cer_den[speaker]):5.1f} %"
            f"  ({cer_num[speaker]} edits / {cer_den[speaker]} chars)"
        )
    all_num = sum(cer_num.values())
    all_den = sum(cer_den.values())
    print(f"CER overall   {100 * all_num / max(1, all_den):5.1f} %")
    print(f"pass/fail agreement: {agree}/{len(label_files)}")
    print_check_summary(checks, items_of)
    print_asr_share(engine, leg_audio_s, phantoms)
    print(
        f"audio {audio_s:.0f} s scored in {elapsed:.0f} s wall ({audio_s / elapsed:.1f}x real"
        " time),"
        f" {cpu:.0f} CPU-s ({cpu / max(audio_s, 1e-9):.4f} CPU-s per audio second), phrase checks"
        f" {engine.stats.check_s:.1f} s wall ({engine.stats.phrase_checks} checked)"
    )
    if args.json:
        args.json.write_text(json.dumps(details, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
