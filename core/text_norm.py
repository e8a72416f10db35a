"""Text normalisation for ASR output: simplified Chinese, matching keys, CER keys.

* ``to_simplified``: Whisper writes many Mandarin sentences in traditional characters;
  every Chinese result goes through zhconv's ``zh-cn`` table.
* ``match_key``: the form in which phantom phrases and repetitions are compared (NFKC,
  simplified, lower case, no punctuation and no spaces).
* ``cer_key``: the form in which character error rates are measured: ``match_key`` plus
  Chinese numerals turned into Arabic digits, applied to both reference and hypothesis,
  so that "三十秒" and "30秒", or "零零九三" and "0093", or "幺二三幺五" (幺, the
  spoken one of phone and card numbers) and "12315", compare equal.
"""

from __future__ import annotations

import functools
import unicodedata
import zlib

import zhconv

SPOKEN_DIGITS = {  # Chinese digits as read one by one (幺 and 两 included)
    "零": 0,
    "〇": 0,
    "一": 1,
    "幺": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_NUMERAL_CHARS = frozenset(SPOKEN_DIGITS) | frozenset(_UNITS) | {"万"}


def to_simplified(text: str) -> str:
    """Text with traditional Chinese characters replaced by simplified ones."""
    converted: str = zhconv.convert(text, "zh-cn")
    return converted


@functools.lru_cache(maxsize=4096)
def match_key(text: str) -> str:
    """NFKC, simplified, lower-cased text without punctuation, symbols or whitespace."""
    text = to_simplified(unicodedata.normalize("NFKC", text)).lower()
    return "".join(c for c in text if is_word_char(c))


def join_texts(texts: list[str], language: str | None) -> str:
    """Transcripts of consecutive pieces of speech as one: run together in Chinese and
    Japanese (written without spaces), a space between them otherwise; empty ones skipped."""
    joiner = "" if language in ("zh", "ja") else " "
    return joiner.join(t.strip() for t in texts if t.strip())


def is_word_char(char: str) -> bool:
    """True for letters and digits of any script (not punctuation, symbols or spaces)."""
    return unicodedata.category(char)[0] in "LN"


def cer_key(text: str) -> str:
    """``match_key`` with runs of Chinese numerals rewritten as Arabic digits."""
    key = match_key(text)
    out: list[str] = []
    run: list[str] = []
    for char in key + "\0":
        if char in _NUMERAL_CHARS:
            run.append(char)
            continue
        if run:
            out.append(chinese_numeral_to_digits("".join(run)))
            run = []
        if char != "\0":
            out.append(char)
    return "".join(out)


def chinese_numeral_to_digits(numeral: str) -> str:
    """ "一九七二" -> "1972" (read digit by digit), "一百二十九" -> "129" (a quantity)."""
    if not any(c in _UNITS or c == "万" for c in numeral):
        return "".join(str(SPOKEN_DIGITS[c]) for c in numeral)
    total = 0
    section = 0
    digit: int | None = None
    for char in numeral:
        if char in SPOKEN_DIGITS:
            digit = SPOKEN_DIGITS[char]
        elif char in _UNITS:
            section += (1 if digit is None else digit) * _UNITS[char]
            digit = None
        else:  # 万
            total += (section + (digit or 0)) * 10000
            section = 0
            digit = None
    return str(total + section + (digit or 0))


def compression_ratio(text: str) -> float:
    """UTF-8 size over zlib-compressed size; repetitive text scores high (loops > 2.4)."""
    data = text.encode("utf-8")
    if not data:
        return 0.0
    return len(data) / len(zlib.compress(data))


def edit_distance(ref: str, hyp: str) -> int:
    """Levenshtein distance between two strings (unit costs)."""
    if len(ref) < len(hyp):
        ref, hyp = hyp, ref
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]
