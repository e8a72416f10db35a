"""Filters for Whisper output: phantom phrases and repetition loops.

Whisper was trained on subtitles, and on silence, noise or unclear audio it writes the
credits and sign-offs of videos ("字幕由Amara.org社群提供", "谢谢观看", "Thank you for
watching"). ``is_phantom`` recognises an output that is essentially one of these phrases
(after normalisation, with at most a couple of characters besides), never a sentence that
merely contains one. ``find_repetition`` finds a decoding loop (the same span of characters
written again and again) and ``trim_repetition`` keeps its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.text_norm import is_word_char, match_key

# Sign-offs and credits Whisper writes on audio without speech. Compared after
# normalisation (NFKC, simplified, lower case, no punctuation or spaces).
PHANTOM_PHRASES: tuple[str, ...] = (
    "字幕由Amara.org社群提供",
    "字幕由Amara.org社区提供",
    "由Amara.org社区提供的字幕",
    "Amara.org社群提供的字幕",
    "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
    "明镜需要您的支持 欢迎订阅明镜",
    "点赞订阅转发打赏支持明镜与点点栏目",
    "谢谢观看",
    "谢谢收看",
    "感谢观看",
    "感谢收看",
    "谢谢大家观看",
    "谢谢大家收看",
    "谢谢您的观看",
    "谢谢你的观看",
    "谢谢大家的观看",
    "请订阅我的频道",
    "欢迎订阅我的频道",
    "记得点赞订阅",
    "字幕by索兰娅",
    "字幕志愿者",
    "中文字幕志愿者",
    "优优独播剧场YoYo Television Series Exclusive",
    "本字幕由网友制作",
    "字幕制作",
    "Thank you for watching",
    "Thanks for watching",
    "Thank you so much for watching",
    "Thank you very much for watching",
    "Please subscribe to my channel",
    "Don't forget to like and subscribe",
    "Subtitles by the Amara.org community",
    "Subtitles by Amara.org",
    "Transcription by CastingWords",
)
# Characters an output may have besides the phantom phrase and still count as the phrase.
PHANTOM_SLACK_CHARS = 2

# A loop is a span of ``p`` characters repeated back to back at least MIN_REPEATS[p] times
# (the last entry covers longer spans). Short spans must repeat more often: "好好好" or
# "对对对" are speech, twelve 哈 in a row or a clause written four times are not.
MIN_REPEATS_BY_PERIOD: tuple[int, ...] = (0, 8, 5, 4, 3)
MAX_LOOP_PERIOD_CHARS = 40
# Spans of this many characters or more are a loop after only two back-to-back copies.
LONG_SPAN_TWO_COPIES_CHARS = 10


@dataclass(frozen=True)
class Repetition:
    """A loop found in a text, in indices of the original string.

    Attributes:
        start: index where the first copy begins.
        first_end: index where the first copy ends (the text is cut here when trimmed).
        end: index where the last copy ends.
        period_chars: length of one copy, in word characters.
        repeats: number of back-to-back copies.
    """

    start: int
    first_end: int
    end: int
    period_chars: int
    repeats: int


def _phantom_keys() -> frozenset[str]:
    return frozenset(match_key(p) for p in PHANTOM_PHRASES)


_PHANTOM_KEYS = _phantom_keys()


def is_phantom(text: str) -> bool:
    """True when ``text`` is essentially one of PHANTOM_PHRASES (or several of them)."""
    key = match_key(text)
    if not key:
        return False
    rest = key
    for phrase in sorted(_PHANTOM_KEYS, key=len, reverse=True):
        rest = rest.replace(phrase, "")
    return len(rest) <= PHANTOM_SLACK_CHARS and len(rest) < len(key)


def min_repeats(period: int) -> int:
    """Back-to-back copies of a ``period``-character span that make a loop."""
    if period >= LONG_SPAN_TWO_COPIES_CHARS:
        return 2
    return MIN_REPEATS_BY_PERIOD[min(period, len(MIN_REPEATS_BY_PERIOD) - 1)]


def find_repetition(text: str) -> Repetition | None:
    """The longest-covering loop in ``text`` (punctuation and spaces ignored), or None."""
    positions = [i for i, c in enumerate(text) if is_word_char(c)]
    chars = match_key("".join(text[i] for i in positions))
    if len(chars) != len(positions):
        # Normalisation changed the length (a rare compatibility character): compare the
        # raw characters instead.
        chars = "".join(text[i].lower() for i in positions)
    n = len(chars)
    best: tuple[int, int, int, int] | None = None  # (covered, start, period, repeats)
    for period in range(1, min(MAX_LOOP_PERIOD_CHARS, n // 2) + 1):
        need = min_repeats(period)
        start = 0
        while start + period * need <= n:
            repeats = 1
            while (
                start + (repeats + 1) * period <= n
                and chars[start + repeats * period : start + (repeats + 1) * period]
                == chars[start : start + period]
            ):
                repeats += 1
            if repeats >= need:
                covered = repeats * period
                if best is None or covered > best[0]:
                    best = (covered, start, period, repeats)
                start += covered
            else:
                start += 1
    if best is None:
        return None
    covered, start, period, repeats = best
    return Repetition(
        start=positions[start],
        first_end=positions[start + period - 1] + 1,
        end=positions[start + covered - 1] + 1,
        period_chars=period,
        repeats=repeats,
    )


def trim_repetition(text: str, repetition: Repetition) -> str:
    """``text`` with every copy of the loop after the first removed."""
    return (text[: repetition.first_end] + text[repetition.end :]).strip()
