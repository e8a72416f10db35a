"""Finding rubric phrases in utterance text: exact, fuzzy (ASR homophones) and regex.

Text and phrases go through the same tokenizer, which keeps each token's character span in
the original text so that a finding can place the phrase inside its utterance:

* NFKC, case-folded, traditional Chinese turned into simplified; punctuation, symbols and
  spaces separate tokens and are otherwise ignored.
* Chinese mode (rubric language zh, yue, ...): one token per CJK character; digits are one
  token each, written as Chinese digits (1 -> 一, 〇 -> 零, 幺 -> 一), so that the phrase
  '12315' matches ASR output written 12315 or 一二三一五; a run of Latin letters is one token.
* Word mode (en and every other language): one token per word; contractions are expanded
  (don't -> do not), number words zero..nine become digits and digit runs are split into
  single digits ('12315' matches "one two three one five").

Modes:

* ``exact``: the phrase's token sequence appears unchanged in the text's token sequence.
* ``fuzzy``: tokens compare by sound in Chinese (toneless pinyin, every reading of a
  heteronym counts: 不知倒 and 部知道 match 不知道; the retroflex and flat initials zh/z,
  ch/c, sh/s count as one sound: 不好意识 matches 不好意思) and by a crude stem in word mode
  (refunds ~ refund, calling ~ call). A few token edits are allowed for long phrases only
  (`allowed_edits`): none for phrases of up to 3 Chinese syllables or 2 words, so that
  您好 never matches 你好 and 不明白 never matches 我明白; one up to 7 syllables / 5 words;
  two beyond. Edits never touch the phrase's first or last token, and never a negation
  (不/没/别 ..., not/no/never ...): 我知道 stays far from 不知道. A phrase made of digits
  only (a hotline such as 12315) allows no edit: 12385 is another number.
* ``regex``: Python regular expression, case-insensitive, over the NFKC/simplified text
  with its punctuation (nothing removed).

The live daemon runs the rubric again each time a call's evidence grows (every second of
each leg, and on every voiced stretch), over every utterance so far: the same texts come back
many times. So a text's tokens (`text_tokens`) and each matcher's matches in a text are kept
(least recently used first out); tokens and matches are immutable.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import zhconv
from pypinyin import Style, pinyin

CJK_LANGUAGES = frozenset({"zh", "yue", "cmn", "wuu", "nan", "hak"})
ZH_DIGITS = "零一二三四五六七八九"
ZH_DIGIT_ALIASES = {"〇": "零", "幺": "一"}
ZH_NEGATIONS = frozenset("不没别未非无莫勿")
EN_NEGATIONS = frozenset({"not", "no", "never", "nothing", "none", "nobody", "nor", "without"})
EN_NUMBER_WORDS = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
EN_CONTRACTIONS = {
    "n't": ["not"],
    "'re": ["are"],
    "'ve": ["have"],
    "'ll": ["will"],
    "'m": ["am"],
    "'d": ["would"],
}
EN_IRREGULAR_NEGATIONS = {
    "can't": ["can", "not"],
    "won't": ["will", "not"],
    "cannot": ["can", "not"],
}
APOSTROPHES = "'’"
TEXTS_KEPT = 8192
"""Texts whose tokens are kept (`text_tokens`)."""
MATCHES_KEPT = 65536
"""(matcher, text) pairs whose matches are kept, over all matchers (`_kept_matches`)."""

_INF = 1 << 30


@dataclass(frozen=True)
class Token:
    """One unit of text: `text` compares in exact mode, `keys` (any shared key) in fuzzy."""

    text: str
    keys: frozenset[str]
    start: int
    end: int
    negation: bool = False


@dataclass(frozen=True)
class Match:
    """A phrase found in a text: `start`/`end` are character offsets in the original text."""

    phrase: str
    start: int
    end: int
    text: str
    edits: int = 0


def is_cjk_language(language: str) -> bool:
    return language.lower().replace("_", "-").split("-")[0] in CJK_LANGUAGES


def is_cjk_char(ch: str) -> bool:
    """A CJK ideograph (or 〇)."""
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0xF900 <= cp <= 0xFAFF
        or 0x20000 <= cp <= 0x3134F
        or ch in "〇"
    )


# The sound pairs that Mandarin speakers and recognisers confuse most, folded together as
# input methods' "fuzzy pinyin" does: the retroflex and flat initials (不好意思 heard as
# 不好意识). Finals stay apart: 宁 (ning) is not 您 (nin).
_FUZZY_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"))


def fold_syllable(syllable: str) -> str:
    """A toneless pinyin syllable with the retroflex initials folded into the flat ones."""
    for long, short in _FUZZY_INITIALS:
        if syllable.startswith(long):
            return short + syllable[len(long) :]
    return syllable


_INITIALS = ("b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r",
             "z", "c", "s", "y", "w")  # fmt: skip
"""Pinyin initials once folded (`fold_syllable`): every one is a single letter."""


def _initial_and_final(syllable: str) -> tuple[str, str]:
    if syllable[:1] in _INITIALS:
        return syllable[0], syllable[1:]
    return "", syllable


def sounds_close(a: Token, b: Token) -> bool:
    """Whether two Chinese characters share an initial or a final in some reading (道 dao
    and 等 deng, 协 xie and 息 xi): the confusions a recogniser makes. Tokens without pinyin
    readings (other scripts) count as close."""
    if len(a.text) != 1 or len(b.text) != 1 or not (is_cjk_char(a.text) and is_cjk_char(b.text)):
        return True
    parts_b = [_initial_and_final(k) for k in b.keys]
    for ka in a.keys:
        ia, fa = _initial_and_final(ka)
        if any((ia and ia == ib) or fa == fb for ib, fb in parts_b):
            return True
    return False


@functools.lru_cache(maxsize=65536)
def readings(ch: str) -> frozenset[str]:
    """Toneless pinyin readings of one CJK character (all of a heteronym's readings), with
    the fuzzy-pinyin pairs folded (`fold_syllable`)."""
    found = pinyin(ch, style=Style.NORMAL, heteronym=True, errors="default")
    keys = {fold_syllable(r) for group in found for r in group if r}
    return frozenset(keys or {ch})


def en_stem(word: str) -> str:
    """A crude English stem for fuzzy matching: plural, past and -ing forms fold together."""
    w = word
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    for suffix in ("ing", "ed"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            if len(w) >= 4 and w[-1] == w[-2] and w[-1] not in "ls":
                w = w[:-1]
            return w.rstrip("e") or w
    if w.endswith("es") and len(w) > 4 and w[-3] in "sxz":
        return w[:-2]
    if w.endswith("s") and not w.endswith("ss") and len(w) > 3:
        w = w[:-1]
    return w.rstrip("e") or w


def simplified_view(text: str) -> tuple[str, list[int]]:
    """NFKC + simplified text, case-folded, and for each of its characters the original offset."""
    converted = zhconv.convert(text, "zh-cn") if any(is_cjk_char(c) for c in text) else text
    if len(converted) != len(text):
        converted = "".join(zhconv.convert(c, "zh-cn") if is_cjk_char(c) else c for c in text)
        if len(converted) != len(text):
            converted = text
    chars: list[str] = []
    offsets: list[int] = []
    for i, ch in enumerate(converted):
        for c in unicodedata.normalize("NFKC", ch).casefold():
            chars.append(c)
            offsets.append(i)
    return "".join(chars), offsets


def tokenize(text: str, language: str) -> list[Token]:
    """The tokens of `text` (see the module docstring), each with its original span."""
    cjk_mode = is_cjk_language(language)
    view, offsets = simplified_view(text)
    tokens: list[Token] = []
    word: list[str] = []
    word_start = 0
    word_end = 0

    def flush() -> None:
        if word:
            tokens.extend(_word_tokens("".join(word), word_start, word_end, cjk_mode))
            word.clear()

    for j, c in enumerate(view):
        pos = offsets[j]
        cat = unicodedata.category(c)
        digit = unicodedata.decimal(c, None) if cat == "Nd" else None
        if digit is not None:
            flush()
            tokens.append(_digit_token(digit, pos, cjk_mode))
        elif is_cjk_char(c):
            flush()
            c = ZH_DIGIT_ALIASES.get(c, c)
            if not cjk_mode and c in ZH_DIGITS:
                tokens.append(_digit_token(ZH_DIGITS.index(c), pos, cjk_mode))
            else:
                tokens.append(Token(c, readings(c), pos, pos + 1, c in ZH_NEGATIONS))
        elif cat[0] in "LM" or (c in APOSTROPHES and word and not cjk_mode):
            if not word:
                word_start = pos
            word.append("'" if c in APOSTROPHES else c)
            word_end = pos + 1
        else:
            flush()
    flush()
    return tokens


@functools.lru_cache(maxsize=TEXTS_KEPT)
def text_tokens(text: str, language: str) -> tuple[Token, ...]:
    """`tokenize`, kept for texts seen again."""
    return tuple(tokenize(text, language))


def _digit_token(digit: int, pos: int, cjk_mode: bool) -> Token:
    if cjk_mode:
        ch = ZH_DIGITS[digit]
        return Token(ch, readings(ch), pos, pos + 1)
    return Token(str(digit), frozenset({str(digit)}), pos, pos + 1)


def _word_tokens(word: str, start: int, end: int, cjk_mode: bool) -> list[Token]:
    word = word.strip("'")
    if not word:
        return []
    if cjk_mode:
        return [Token(word, frozenset({word}), start, end)]
    parts = _expand_word(word)
    out = []
    for part in parts:
        part = EN_NUMBER_WORDS.get(part, part)
        out.append(Token(part, frozenset({en_stem(part)}), start, end, part in EN_NEGATIONS))
    return out


def _expand_word(word: str) -> list[str]:
    if word in EN_IRREGULAR_NEGATIONS:
        return EN_IRREGULAR_NEGATIONS[word]
    for suffix, expansion in EN_CONTRACTIONS.items():
        if word.endswith(suffix) and len(word) > len(suffix):
            return [word[: -len(suffix)], *expansion]
    if word.endswith("'s") and len(word) > 2:
        return [word[:-2]]
    return [word.replace("'", "")]


def allowed_edits(n_tokens: int, cjk_mode: bool) -> int:
    """How many token edits fuzzy matching allows for a phrase of `n_tokens` tokens."""
    if cjk_mode:
        return 0 if n_tokens <= 3 else 1 if n_tokens <= 7 else 2
    return 0 if n_tokens <= 2 else 1 if n_tokens <= 5 else 2


class PhraseMatcher:
    """Finds any of `phrases` in texts, in one of the modes exact, fuzzy or regex."""

    def __init__(self, phrases: Iterable[str], mode: str = "fuzzy", language: str = "zh") -> None:
        if mode not in ("exact", "fuzzy", "regex"):
            raise ValueError(f"unknown match mode {mode!r}: use exact, fuzzy or regex")
        self.phrases = tuple(phrases)
        self.mode = mode
        self.language = language
        self.cjk_mode = is_cjk_language(language)
        self._regexes: list[re.Pattern[str]] = []
        self._phrase_tokens: list[list[Token]] = []
        if mode == "regex":
            self._regexes = [re.compile(p, re.IGNORECASE) for p in self.phrases]
        else:
            self._phrase_tokens = [tokenize(p, language) for p in self.phrases]

    def find(self, text: str) -> list[Match]:
        """Every non-overlapping match in `text`, in text order."""
        if not text:
            return []
        return list(_kept_matches(self, text))

    def _find(self, text: str) -> tuple[Match, ...]:
        regex = self.mode == "regex"
        candidates = self._find_regex(text) if regex else self._find_tokens(text)
        candidates.sort(key=lambda m: (m.start, m.edits, -(m.end - m.start)))
        picked: list[Match] = []
        for m in candidates:
            if picked and m.start < picked[-1].end:
                continue
            picked.append(m)
        return tuple(picked)

    def search(self, text: str) -> Match | None:
        found = self.find(text)
        return found[0] if found else None

    def _find_regex(self, text: str) -> list[Match]:
        view, offsets = simplified_view(text)
        out = []
        for phrase, rx in zip(self.phrases, self._regexes, strict=True):
            for m in rx.finditer(view):
                if m.end() == m.start():
                    continue
                start = offsets[m.start()]
                end = offsets[m.end() - 1] + 1
                out.append(Match(phrase, start, end, text[start:end]))
        return out

    def _find_tokens(self, text: str) -> list[Match]:
        tokens = text_tokens(text, self.language)
        out = []
        for phrase, ptoks in zip(self.phrases, self._phrase_tokens, strict=True):
            if not ptoks:
                continue
            fuzzy = self.mode == "fuzzy"
            budget = allowed_edits(len(ptoks), self.cjk_mode) if fuzzy else 0
            if all(_is_digit(t) for t in ptoks):
                budget = 0  # a number is an identifier: 12385 is not the hotline 12315
            for first, last, edits in _align_all(ptoks, tokens, fuzzy=fuzzy, budget=budget):
                start, end = tokens[first].start, tokens[last].end
                out.append(Match(phrase, start, end, text[start:end], edits))
        return out


@functools.lru_cache(maxsize=MATCHES_KEPT)
def _kept_matches(matcher: PhraseMatcher, text: str) -> tuple[Match, ...]:
    """`PhraseMatcher._find`, kept for the texts each matcher sees again (one bound over all
    matchers, however many rubrics and phrase lists there are)."""
    return matcher._find(text)


def _is_digit(token: Token) -> bool:
    return token.text in ZH_DIGITS or token.text.isdigit()


def _same(a: Token, b: Token, fuzzy: bool) -> bool:
    return not a.keys.isdisjoint(b.keys) if fuzzy else a.text == b.text


def _align_all(
    phrase: Sequence[Token], text: Sequence[Token], *, fuzzy: bool, budget: int
) -> list[tuple[int, int, int]]:
    """(first text token, last text token, edits) of each place the phrase aligns."""
    n = len(phrase)
    out = []
    for i in range(len(text)):
        if not _same(phrase[0], text[i], fuzzy):
            continue
        if budget == 0:
            if i + n <= len(text) and all(
                _same(phrase[a], text[i + a], fuzzy) for a in range(1, n)
            ):
                out.append((i, i + n - 1, 0))
            continue
        found = _align_at(phrase, text, i, fuzzy, budget)
        if found is not None:
            out.append((i, found[0], found[1]))
    return out


def _align_at(
    phrase: Sequence[Token], text: Sequence[Token], i: int, fuzzy: bool, budget: int
) -> tuple[int, int] | None:
    """Best alignment of `phrase` starting at text[i] within `budget` edits: (last, edits).

    A Levenshtein table over phrase and text tokens where the first and last phrase tokens
    must match and negations can be neither substituted, dropped nor inserted.
    """
    n = len(phrase)
    width = min(len(text) - i, n + budget)
    if n == 1:
        return (i, 0)
    window = text[i : i + width]
    inner = range(1, n - 1)
    table = [[_INF] * (width + 1) for _ in range(n + 1)]
    table[0][0] = 0
    for a in range(1, n + 1):
        p = phrase[a - 1]
        editable = (a - 1) in inner and not p.negation
        for b in range(1, width + 1):
            t = window[b - 1]
            best = _INF
            diag = table[a - 1][b - 1]
            if diag < _INF:
                if _same(p, t, fuzzy):
                    best = diag
                elif editable and not t.negation:
                    best = diag + 1
            if editable and table[a - 1][b] < _INF:
                best = min(best, table[a - 1][b] + 1)
            if 1 <= a <= n - 1 and not t.negation and table[a][b - 1] < _INF:
                best = min(best, table[a][b - 1] + 1)
            table[a][b] = best
    best_b, best_cost = -1, _INF
    for b in range(1, width + 1):
        cost = table[n][b]
        if cost < best_cost:
            best_b, best_cost = b, cost
    if best_cost > budget:
        return None
    return (i + best_b - 1, best_cost)


@dataclass(frozen=True)
class NearMiss:
    """A stretch of text that is one token edit short of matching `phrase` (see `near_misses`).

    `start`/`end` are character offsets in the text; `substituted` counts the phrase tokens
    heard as another token.
    """

    phrase: str
    start: int
    end: int
    text: str
    substituted: int


def near_misses(text: str, phrases: Sequence[str], language: str = "zh") -> list[NearMiss]:
    """Where `text` holds something that sounds almost like one of `phrases`.

    A near miss is a run of as many tokens as the phrase, that fuzzy matching does not
    accept, whose tokens all compare by sound (fuzzy mode) but for at most one more than
    fuzzy matching allows (`allowed_edits` + 1), anywhere in the phrase (its first and last
    tokens too: 不好意思 heard as 不好衣服), with at least one token the same. Where the
    tokens that differ are half the phrase or more (one of a two-character phrase), each
    must still sound close to the phrase's (`sounds_close`: 消协 heard as 消息 is a near
    miss, 您的 is none of 您好). A negation is never the token that differs (我知道 is no
    near miss of 不知道), and a phrase made of digits has none (a number is an identifier).
    Stretches that match a phrase are left out.
    These are only candidates: whether the phrase was said is for the audio to settle
    (`core.asr.engine.AsrEngine`).
    """
    if not text:
        return []
    cjk_mode = is_cjk_language(language)
    tokens = text_tokens(text, language)
    matched = get_matcher(tuple(phrases), "fuzzy", language).find(text)
    out: list[NearMiss] = []
    for phrase in phrases:
        ptoks = _phrase_tokens(phrase, language)
        n = len(ptoks)
        if n < 2 or all(_is_digit(t) for t in ptoks):
            continue
        wanted = allowed_edits(n, cjk_mode) + 1
        for i in range(len(tokens) - n + 1):
            window = tokens[i : i + n]
            differ = [a for a in range(n) if not _same(ptoks[a], window[a], True)]
            if not differ or len(differ) > wanted or len(differ) >= n:
                continue
            if any(ptoks[a].negation or window[a].negation for a in differ):
                continue
            if 2 * len(differ) >= n and not all(sounds_close(ptoks[a], window[a]) for a in differ):
                continue
            start, end = window[0].start, window[-1].end
            if any(m.start < end and start < m.end for m in matched):
                continue
            out.append(NearMiss(phrase, start, end, text[start:end], len(differ)))
    out.sort(key=lambda m: (m.start, -(m.end - m.start)))
    return out


@functools.lru_cache(maxsize=4096)
def _phrase_tokens(phrase: str, language: str) -> tuple[Token, ...]:
    """A rubric phrase's tokens: phrases are few and asked for on every utterance."""
    return tuple(tokenize(phrase, language))


@functools.lru_cache(maxsize=512)
def get_matcher(phrases: tuple[str, ...], mode: str, language: str) -> PhraseMatcher:
    """A cached matcher: rules ask for the same phrase lists on every utterance."""
    return PhraseMatcher(phrases, mode, language)


def find_phrases(
    text: str, phrases: Sequence[str], match: str = "fuzzy", language: str = "zh"
) -> list[Match]:
    """Every non-overlapping occurrence of any of `phrases` in `text`."""
    return get_matcher(tuple(phrases), match, language).find(text)
