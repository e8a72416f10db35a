"""Filler words in utterance text: interjections anywhere, ordinary words only where they
stand alone, repeat, or open a clause (`count_fillers`)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from core.rubric.matching import Match, is_cjk_char, is_cjk_language, simplified_view

ZH_INTERJECTIONS = frozenset(
    {
        "啊",
        "呀",
        "嗯",
        "呃",
        "额",
        "哦",
        "噢",
        "喔",
        "哎",
        "唉",
        "诶",
        "欸",
        "呐",
        "嘛",
        "欧吼",
        "哎呀",
    }
)
EN_INTERJECTIONS = frozenset({"um", "umm", "uh", "uhh", "er", "erm", "uhm", "hmm", "mm", "ah"})


# What may follow a clause-opening 这个/那个 for it to be a filler: personal pronouns and
# particles (a demonstrative is followed by a noun or a classifier instead).
_ZH_FILLER_FOLLOWERS = ("我", "您", "你", "他", "她", "咱", "大家", "呢", "啊", "嘛", "吧")


def is_interjection(phrase: str, language: str) -> bool:
    """True when a filler phrase counts wherever it occurs (see `count_fillers`)."""
    key = "".join(simplified_view(phrase.strip())[0].split())
    if is_cjk_language(language):
        return key in ZH_INTERJECTIONS or (len(key) == 1 and is_cjk_char(key))
    return key in EN_INTERJECTIONS


def count_fillers(text: str, phrases: Sequence[str], language: str) -> list[Match]:
    """The filler occurrences in `text` (exact matching: fillers are too short for fuzzy).

    Interjections (a single Chinese character such as 啊/呀/嗯, also as a sentence-final
    particle; 欧吼; um/uh/er/hmm) count wherever they occur. Fillers that are also ordinary
    words (这个, 那个, 就是; like, you know, basically) count only where they stand alone,
    between punctuation, spaces or the text's edges ("这个，我帮您看一下"), where they are
    repeated ("这个这个"), or, in Chinese, where they open a clause and a personal pronoun or
    a particle follows ("这个我帮您看一下": ASR often drops the comma, and a demonstrative
    never takes a pronoun as its noun): "这个月" and "这个问题" are not fillers.
    """
    view, offsets = simplified_view(text)
    cjk_mode = is_cjk_language(language)
    found: list[Match] = []
    for phrase in phrases:
        key = simplified_view(phrase.strip())[0]
        if not key:
            continue
        anywhere = is_interjection(phrase, language)
        pattern = re.escape(key)
        if not cjk_mode:
            pattern = r"(?<![\w'])" + pattern + r"(?![\w'])"
        spans = [(m.start(), m.end()) for m in re.finditer(pattern, view)]
        starts = {s for s, _ in spans}
        ends = {e for _, e in spans}
        for s, e in spans:
            if not anywhere:
                alone = _edge(view, s - 1, -1, cjk_mode) and _edge(view, e, 1, cjk_mode)
                repeated = e in starts or s in ends
                opener = (
                    cjk_mode
                    and _edge(view, s - 1, -1, cjk_mode)
                    and view.startswith(_ZH_FILLER_FOLLOWERS, e)
                )
                if not (alone or repeated or opener):
                    continue
            start, end = offsets[s], offsets[e - 1] + 1
            found.append(Match(phrase, start, end, text[start:end]))
    found.sort(key=lambda m: (m.start, -(m.end - m.start)))
    out: list[Match] = []
    for m in found:
        if out and m.start < out[-1].end:
            continue
        out.append(m)
    return out


def _edge(view: str, j: int, step: int, cjk_mode: bool) -> bool:
    """Whether the text seen from position `j` in direction `step` starts a clause boundary.

    Spaces are a boundary in Chinese text (ASR often separates clauses with them); in word
    mode they are skipped and the next character decides.
    """
    while 0 <= j < len(view):
        cat = unicodedata.category(view[j])
        if cat[0] == "Z" or view[j].isspace():
            if cjk_mode:
                return True
            j += step
            continue
        return cat[0] == "P"
    return True
