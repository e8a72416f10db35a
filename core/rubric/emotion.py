"""The emotion rule: is the speaker angry or upset, from the words and from the voice.

Per utterance, a confidence in 0..1 combines independent cues as 1 - prod(1 - cue):

* words: a strong anger word (气死/太过分/骗子; ridiculous/unacceptable) weighs
  `STRONG_WORD`, a milder complaint word (太慢了/不满意; frustrated/upset) `MILD_WORD`, each
  distinct word once; a word preceded by a negation (不生气, not upset) does not count;
  an exclamation mark adds `EXCLAMATION`;
* voice: the utterance's level over the speaker's median utterance level, 0 at
  `LEVEL_RISE_FROM_DB` growing to `LEVEL_WEIGHT` at `LEVEL_RISE_FULL_DB`; its median pitch
  over the speaker's median pitch, 0 at `PITCH_RISE_FROM_ST` semitones growing to
  `PITCH_WEIGHT` at `PITCH_RISE_FULL_ST`. No voice cue without a median (fewer than 3
  utterances with a level or pitch).

So one strong word alone reaches 0.6 (the default `min_confidence`), a mild word needs a
raised voice to get there, and a voice alone (loud and high) reaches at most about 0.64.
"""

from __future__ import annotations

from core.calls import CallEvidence, Finding
from core.rubric.base import make_finding
from core.rubric.confidence import line_confidence
from core.rubric.matching import get_matcher, is_cjk_language
from core.rubric.metrics import CallMetrics
from core.rubric.schema import DEFAULT_MIN_CONFIDENCE, Item

STRONG_WORD = 0.6
MILD_WORD = 0.35
EXCLAMATION = 0.15
LEVEL_WEIGHT = 0.45
LEVEL_RISE_FROM_DB = 3.0
LEVEL_RISE_FULL_DB = 12.0
PITCH_WEIGHT = 0.35
PITCH_RISE_FROM_ST = 1.0
PITCH_RISE_FULL_ST = 5.0

STRONG_ZH = (
    "气死",
    "太过分",
    "忍无可忍",
    "受够了",
    "岂有此理",
    "骗子",
    "垃圾",
    "坑人",
    "欺负人",
    "什么破",
    "混蛋",
    "滚",
    "有病",
    "太离谱",
    "恶心",
    "耍我",
)
MILD_ZH = (
    "太慢了",
    "太差了",
    "怎么回事",
    "不满意",
    "失望",
    "生气",
    "烦死",
    "着急",
    "凭什么",
    "到底",
    "投诉",
    "窝火",
    "无语",
    "一直拖",
    "说了多少遍",
)
STRONG_EN = (
    "ridiculous",
    "unacceptable",
    "outrageous",
    "furious",
    "fed up",
    "sick and tired",
    "scam",
    "rip-off",
    "useless",
    "pathetic",
    "disgusting",
    "worst",
    "what the hell",
    "damn",
)
MILD_EN = (
    "frustrated",
    "frustrating",
    "annoyed",
    "upset",
    "disappointed",
    "angry",
    "complaint",
    "terrible",
    "awful",
    "unhappy",
    "not happy",
    "fix it now",
    "how many times",
)
NEGATIONS_ZH = ("不", "没", "别", "不太", "没有")
NEGATIONS_EN = ("not", "no", "never", "n't", "not too")


def _ramp(x: float | None, lo: float, hi: float) -> float:
    if x is None or x <= lo:
        return 0.0
    return min(1.0, (x - lo) / (hi - lo))


def _negated(text: str, start: int, cjk: bool) -> bool:
    before = text[max(0, start - 6) : start].lower().rstrip()
    if cjk:
        return any(before.endswith(n) for n in NEGATIONS_ZH)
    words = before.replace("n't", " n't").split()
    return bool(words) and words[-1] in NEGATIONS_EN


def word_cues(text: str, language: str) -> list[tuple[str, float]]:
    """(word, weight) of each distinct anger/complaint word said without a negation."""
    cjk = is_cjk_language(language)
    strong, mild = (STRONG_ZH, MILD_ZH) if cjk else (STRONG_EN, MILD_EN)
    cues: dict[str, float] = {}
    for words, weight in ((strong, STRONG_WORD), (mild, MILD_WORD)):
        for m in get_matcher(words, "exact", language).find(text):
            if not _negated(text, m.start, cjk) and m.phrase not in cues:
                cues[m.phrase] = weight
    return list(cues.items())


def confidence(
    text: str, language: str, level_rel_db: float | None, pitch_rel_st: float | None
) -> tuple[float, dict[str, object]]:
    """The utterance's anger confidence and the cues behind it."""
    cues = word_cues(text, language)
    parts = [w for _, w in cues]
    if "!" in text or "！" in text:
        parts.append(EXCLAMATION)
    level = LEVEL_WEIGHT * _ramp(level_rel_db, LEVEL_RISE_FROM_DB, LEVEL_RISE_FULL_DB)
    pitch = PITCH_WEIGHT * _ramp(pitch_rel_st, PITCH_RISE_FROM_ST, PITCH_RISE_FULL_ST)
    parts += [level, pitch]
    calm = 1.0
    for p in parts:
        calm *= 1.0 - p
    detail: dict[str, object] = {"words": [w for w, _ in cues]}
    if level_rel_db is not None:
        detail["level_rise_db"] = round(level_rel_db, 2)
    if pitch_rel_st is not None:
        detail["pitch_rise_st"] = round(pitch_rel_st, 2)
    return 1.0 - calm, detail


def emotion(item: Item, evidence: CallEvidence, metrics: CallMetrics) -> list[Finding]:
    """A finding for each utterance of the speaker whose confidence >= `min_confidence`."""
    speaker = item.speaker or "customer"
    threshold = item.min_confidence if item.min_confidence is not None else DEFAULT_MIN_CONFIDENCE
    out = []
    for um in metrics.of(speaker):
        u = evidence.utterances[um.index]
        conf, detail = confidence(u.text, evidence.language, um.level_rel_db, um.pitch_rel_st)
        if conf < threshold or conf <= 0:
            continue
        detail = {"confidence": round(conf, 3), "utterance": um.index, **detail}
        out.append(
            make_finding(
                item,
                speaker=u.speaker,
                start=u.start,
                end=u.end,
                evidence=f"{conf:.2f}: {u.text}",
                detail=detail,
                confidence=round(conf * line_confidence(u), 3),
            )
        )
    return out
