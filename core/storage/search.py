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

Words separated by spaces must all match. Text in double quotes (ASCII, full-width or
Chinese “…” quotes) is a phrase: its words must follow one another ("thank you for
calling"). Text and query are both NFKC-normalised and converted to simplified Chinese, so
投訴 finds 投诉 and full-width letters find ASCII.

`search` applies its filters (speaker, agent, team, time range, a rubric item that fired on
the call), counts every hit and cuts the page in one place, in SQL, for the gRPC API and the
admin web alike.

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
import sqlite3
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


# Quotation marks a user may type around a phrase: ASCII (and full-width, which NFKC turns
# into ASCII), and the Chinese and corner quotes of an input method.
_OPEN_CLOSE_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u300c": '"',
                                    "\u300d": '"', "\u300e": '"', "\u300f": '"'})
_PHRASE = re.compile(r'"([^"]*)"?')
_SPACE_IN_CJK = re.compile(f"(?<=[{_CJK}])\\s+(?=[{_CJK}])")


def _term_pieces(term: str) -> list[_Piece]:
    """The CJK runs and other words of one term, in order (punctuation between is dropped)."""
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
    return parts


def _terms(query: str) -> list[tuple[list[_Piece], bool]]:
    """The query's terms, each (pieces, is_phrase); every term must match.

    Text in double quotes is one phrase: its pieces must follow one another in the utterance
    (only spaces or punctuation between them; spaces between Chinese characters are ignored).
    Outside quotes every CJK run and every word is a term of its own.
    """
    norm = _normalise(query).translate(_OPEN_CLOSE_QUOTES)
    terms: list[tuple[list[_Piece], bool]] = []

    def loose(text: str) -> None:
        for word in text.split():
            terms.extend(([p], False) for p in _term_pieces(word))

    pos = 0
    for m in _PHRASE.finditer(norm):
        loose(norm[pos:m.start()])
        pieces = _term_pieces(_SPACE_IN_CJK.sub("", m.group(1).replace("*", " ")))
        if len(pieces) > 1:
            terms.append((pieces, True))
        elif pieces:
            terms.append((pieces, False))
        pos = m.end()
    loose(norm[pos:])
    return terms


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _grams_only(text: str) -> list[str]:
    return [text[i:i + 2] for i in range(len(text) - 1)]


def _phrase_fts(pieces: list[_Piece]) -> str:
    """An FTS5 phrase for pieces that must follow one another.

    A CJK run followed by more of the phrase must end there, so its last character (indexed
    alone after every run) comes after its bigrams; the phrase's last CJK run may go on.
    """
    tokens: list[str] = []
    prefix = False
    for i, p in enumerate(pieces):
        last = i == len(pieces) - 1
        if p.cjk:
            grams = _grams_only(p.text)
            if not last:
                tokens += [*grams, p.text[-1]]
            elif grams:
                tokens += grams
            else:
                tokens.append(p.text)
                prefix = True
        else:
            tokens += _WORD.findall(p.text)
    return _quote(" ".join(tokens)) + ("*" if prefix else "")


def fts_query(query: str) -> str | None:
    """The FTS5 MATCH expression for a user query (None when it holds nothing to search)."""
    out = []
    for pieces, phrase in _terms(query):
        if phrase:
            out.append(_phrase_fts(pieces))
            continue
        p = pieces[0]
        if p.cjk:
            grams = _grams_only(p.text)
            out.append(_quote(" ".join(grams)) if grams else _quote(p.text) + "*")
        else:
            out.append(_quote(p.text) + ("*" if p.prefix else ""))
    return " AND ".join(out) if out else None


def _hit_pattern(p: _Piece) -> str:
    if p.cjk:
        return re.escape(p.text)
    words = _WORD.findall(p.text)
    body = r"[\W_]+".join(re.escape(w) for w in words)
    tail = r"[^\W_]*" if p.prefix else f"(?!{_NOT_BOUNDARY})"
    return f"(?<!{_NOT_BOUNDARY}){body}{tail}"


def highlight_parts(text: str, query: str, max_chars: int = SNIPPET_MAX_CHARS
                    ) -> list[tuple[str, bool]]:
    """`text` cut around the first hit of `query`, as (part, is_hit) pairs, in order.

    Plain text, never markup: a page escapes each part and marks the hits itself. A cut is
    shown by an ellipsis part at either end (not a hit).
    """
    norm = _normalise(text)
    base = text if len(norm) == len(text) else norm
    spans: list[tuple[int, int]] = []
    for pieces, _phrase in _terms(query):
        pattern = r"[\W_]*".join(_hit_pattern(p) for p in pieces)
        for m in re.finditer(pattern, norm, re.IGNORECASE):
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
    out: list[tuple[str, bool]] = [("…", False)] if lo > 0 else []
    pos = lo
    for start, end in merged:
        if end <= lo or start >= hi:
            continue
        start, end = max(start, lo), min(end, hi)
        if start > pos:
            out.append((base[pos:start], False))
        out.append((base[start:end], True))
        pos = end
    if hi > pos:
        out.append((base[pos:hi], False))
    if hi < len(base):
        out.append(("…", False))
    return out


def highlight(text: str, query: str, max_chars: int = SNIPPET_MAX_CHARS) -> str:
    """`text` with the parts matching `query` in [brackets], cut around the first hit."""
    return "".join(f"[{part}]" if hit else part
                   for part, hit in highlight_parts(text, query, max_chars))


@dataclass(frozen=True)
class SearchFilters:
    """What narrows a search besides its words; every field is optional.

    `since` and `until` are ISO 8601 times (with their offset; UTC without one), compared as
    instants, so that calls stored with different offsets compare right.
    """

    speaker: str | None = None      # 'agent' or 'customer'
    agent_id: str | None = None
    team_id: str | None = None
    item_id: str | None = None      # only calls where this rubric item fired
    since: str | None = None        # call started at or after
    until: str | None = None        # call started before

    def where(self, schema: str) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for clause, value in (("u.speaker = ?", self.speaker),
                              ("c.agent_id = ?", self.agent_id),
                              ("c.team_id = ?", self.team_id),
                              ("datetime(c.started_at) >= datetime(?)", self.since),
                              ("datetime(c.started_at) < datetime(?)", self.until)):
            if value:
                clauses.append(clause)
                params.append(value)
        if self.item_id:
            clauses.append(f"EXISTS (SELECT 1 FROM {schema}.findings fi"
                           " WHERE fi.call_id = u.call_id AND fi.item_id = ?)")
            params.append(self.item_id)
        return clauses, params


@dataclass(frozen=True)
class SearchResult:
    """One page of hits and the number of hits in all."""

    hits: list[dict[str, Any]]
    total: int


_SCHEMA = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def search(conn: sqlite3.Connection, query: str, filters: SearchFilters | None = None, *,
           limit: int = 50, offset: int = 0, schema: str = "main") -> SearchResult:
    """Utterances containing every term of `query` that pass `filters`, newest call first.

    Filters, the count and the page are all in SQL, so a page is never short of hits that
    exist and `total` counts every hit. `schema` names the attached database holding the
    calls (the admin web attaches it as ``cq``).

    Hits: id (the utterance's), seq, call_id, started_at, agent_id, team_id, start_s, end_s,
    speaker, text, and snippet (the text with the hits in [brackets]). See the module
    documentation for what matches.
    """
    if not _SCHEMA.fullmatch(schema):
        raise ValueError(f"not a schema name: {schema!r}")
    match = fts_query(query)
    if match is None:
        return SearchResult([], 0)
    clauses, params = (filters or SearchFilters()).where(schema)
    where = "".join(f" AND {c}" for c in clauses)
    body = (
        f" FROM {schema}.utterances_fts f"
        f" JOIN {schema}.utterances u ON u.id = f.rowid"
        f" JOIN {schema}.calls c ON c.id = u.call_id"
        f" WHERE f.utterances_fts MATCH ?{where}"
    )
    total = int(conn.execute("SELECT COUNT(*)" + body, [match, *params]).fetchone()[0])
    cursor = conn.execute(
        "SELECT u.id, u.seq, u.call_id, c.started_at, c.agent_id, c.team_id, u.start_s,"
        " u.end_s, u.speaker, u.text" + body
        + " ORDER BY c.started_at DESC, u.call_id DESC, u.start_s, u.seq LIMIT ? OFFSET ?",
        [match, *params, max(0, int(limit)), max(0, int(offset))],
    )
    names = [d[0] for d in cursor.description]
    hits = []
    for values in cursor:
        row = dict(zip(names, values, strict=True))
        row["snippet"] = highlight(row["text"], query)
        hits.append(row)
    return SearchResult(hits, total)


def search_utterances(db: Database, query: str, limit: int = 50, *,
                      filters: SearchFilters | None = None, offset: int = 0
                      ) -> list[dict[str, Any]]:
    """The hits of `search` on a sqlite-utils database, without the count."""
    return search(db.conn, query, filters, limit=limit, offset=offset).hits
