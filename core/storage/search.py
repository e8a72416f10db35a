"""Full-text search over stored utterances.

Transcripts are Chinese (no spaces between words) or English. SQLite's FTS5 ``trigram``
tokenizer cannot answer queries shorter than three characters, yet the words a QA team
searches for are mostly two characters long (投诉, 退款, 经理). The index therefore uses
FTS5's ``unicode61`` tokenizer over a *search text* built at insert time
(`search_text`): every run of CJK characters is rewritten as its overlapping bigrams plus
its last character alone ("我要投诉" -> "我要 要投 投诉 诉"); other text is left as it is,
and unicode61 splits it into case- and accent-insensitive words. A query (`fts_query`) is
rewritten the same way:

* a CJK run of two or more characters becomes the phrase of its bigrams
  ("投诉你们" -> "投诉 诉你 你们"), which matches exactly the texts containing it;
* a single CJK character becomes a prefix query ("投"*): every character of a run starts
  one of its bigrams, or is the run's last character, indexed alone;
* anything else is a word (or a phrase, for "follow-up"); a trailing ``*`` asks for a
  prefix ("complain*").

Words separated by spaces must all match. Text and query are both NFKC-normalised and
converted to simplified Chinese, so 投訴 finds 投诉 and full-width letters find ASCII.

Measured on 200,000 synthetic Chinese utterances of 8-32 characters (SQLite 3.40, one
core, warm cache): a two-character query takes 0.05-0.5 ms through the bigram index
(depending on how many rows match) against 30-45 ms for ``LIKE '%投诉%'``, a full scan
that grows with the table. Indexing single characters and querying phrases of them was
as fast for queries with many hits but 5-10x slower for selective ones (0.3-0.6 ms: every
character's posting list is long); it only wins for one-character queries (2.4 ms against
6 ms for the bigram prefix query).
The search text plus its index take about four times the size of the text itself, which
is small beside the recordings.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from core.text_norm import to_simplified

SNIPPET_MAX_CHARS = 160

_CJK = (
    "\u3005-\u3007\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
    "\U00020000-\U0003134f"
)
_CJK_RUN = re.compile(f"[{_CJK}]+")
# A letter or digit that is not CJK: what makes a word boundary for other scripts.
_NOT_BOUNDARY = f"[^\\W_{_CJK}]"
_WORD = re.compile(r"[^\W_]+")


def _normalise(text: str) -> str:
    return to_simplified(unicodedata.normalize("NFKC", text))


def _grams(run: str) -> list[str]:
    return [run[i:i + 2] for i in range(len(run) - 1)] + [run[-1]]


def search_text(text: str) -> str:
    """`text` as the full-text index stores it: CJK runs as bigrams plus their last character."""
    norm = _normalise(text)
    out: list[str] = []
    pos = 0
    for m in _CJK_RUN.finditer(norm):
        out.append(norm[pos:m.start()])
        out.append(" " + " ".join(_grams(m.group())) + " ")
        pos = m.end()
    out.append(norm[pos:])
    return "".join(out)


@dataclass(frozen=True)
class _Piece:
    text: str
    cjk: bool
    prefix: bool = False


def _pieces(query: str) -> list[_Piece]:
    pieces: list[_Piece] = []
    for term in _normalise(query).split():
        prefix = term.endswith("*")
        term = term.rstrip("*")
        parts: list[_Piece] = []
        pos = 0
        for m in _CJK_RUN.finditer(term):
            if _WORD.search(term[pos:m.start()]):
                parts.append(_Piece(term[pos:m.start()], False))
            parts.append(_Piece(m.group(), True))
            pos = m.end()
        if _WORD.search(term[pos:]):
            parts.append(_Piece(term[pos:], False))
        if parts and prefix and not parts[-1].cjk:
            parts[-1] = _Piece(parts[-1].text, False, True)
        pieces.extend(parts)
    return pieces


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def fts_query(query: str) -> str | None:
    """The FTS5 MATCH expression for a user query (None when it holds nothing to search)."""
    terms = []
    for p in _pieces(query):
        if p.cjk:
            grams = [p.text[i:i + 2] for i in range(len(p.text) - 1)]
            terms.append(_quote(" ".join(grams)) if grams else _quote(p.text) + "*")
        else:
            terms.append(_quote(p.text) + ("*" if p.prefix else ""))
    return " AND ".join(terms) if terms else None


def _hit_pattern(p: _Piece) -> str:
    if p.cjk:
        return re.escape(p.text)
    words = _WORD.findall(p.text)
    body = r"[\W_]+".join(re.escape(w) for w in words)
    tail = r"[^\W_]*" if p.prefix else f"(?!{_NOT_BOUNDARY})"
    return f"(?<!{_NOT_BOUNDARY}){body}{tail}"


def highlight(text: str, query: str, max_chars: int = SNIPPET_MAX_CHARS) -> str:
    """`text` with the parts matching `query` in [brackets], cut around the first hit."""
    norm = _normalise(text)
    base = text if len(norm) == len(text) else norm
    spans: list[tuple[int, int]] = []
    for p in _pieces(query):
        for m in re.finditer(_hit_pattern(p), norm, re.IGNORECASE):
            if m.end() > m.start():
                spans.append((m.start(), m.end()))
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    lo, hi = 0, len(base)
    if len(base) > max_chars:
        first = merged[0][0] if merged else 0
        lo = max(0, min(first - max_chars // 4, len(base) - max_chars))
        hi = lo + max_chars
    out: list[str] = ["…" if lo > 0 else ""]
    pos = lo
    for start, end in merged:
        if end <= lo or start >= hi:
            continue
        start, end = max(start, lo), min(end, hi)
        out += [base[pos:start], "[", base[start:end], "]"]
        pos = end
    out.append(base[pos:hi])
    if hi < len(base):
        out.append("…")
    return "".join(out)


def search_utterances(db: Database, query: str, limit: int = 50) -> list[dict[str, Any]]:
    """Utterances containing every word of `query`, newest call first.

    Rows: call_id, started_at, agent_id, start_s, end_s, speaker, text, and snippet (the
    text with the hits in [brackets]). See the module documentation for what matches.
    """
    match = fts_query(query)
    if match is None:
        return []
    rows = db.query(
        "SELECT u.call_id, c.started_at, c.agent_id, u.start_s, u.end_s, u.speaker, u.text"
        " FROM utterances_fts f"
        " JOIN utterances u ON u.id = f.rowid"
        " JOIN calls c ON c.id = u.call_id"
        " WHERE utterances_fts MATCH ?"
        " ORDER BY c.started_at DESC, u.call_id DESC, u.start_s, u.seq LIMIT ?",
        [match, max(0, int(limit))],
    )
    out = []
    for row in rows:
        row["snippet"] = highlight(row["text"], query)
        out.append(row)
    return out
