"""Whisper's byte-level BPE tokenizer: special tokens, prompt encoding, text decoding.

Read from the model directory: ``tokenizer.json`` (vocabulary, merges and added tokens) when
present, else ``vocabulary.json`` or ``vocabulary.txt`` (the token list CTranslate2 writes).
Encoding uses the ``tokenizers`` package when it is installed and ``tokenizer.json`` exists;
otherwise a BPE implemented here from the merges (or, without merges, a greedy longest-match
over the vocabulary, valid token ids though not always the canonical split). Decoding is
done here in every case: byte-level tokens are mapped back to bytes and decoded as UTF-8, so
a Chinese character split across tokens is joined, and bytes left over from an unfinished
sequence are dropped.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# GPT-2 pre-tokenization: contractions, letter runs, digit runs, other symbols, spaces.
_PRETOKENIZE_RE = re.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""
)
_SPECIAL_RE = re.compile(r"^<\|[^|]*\|>$")
MAX_GREEDY_TOKEN_CHARS = 32


@functools.lru_cache(maxsize=1)
def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


@functools.lru_cache(maxsize=1)
def unicode_to_byte() -> dict[str, int]:
    """Inverse of byte_to_unicode()."""
    return {c: b for b, c in byte_to_unicode().items()}


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the control tokens of one Whisper vocabulary."""

    eot: int
    sot: int
    transcribe: int
    translate: int
    sot_prev: int
    no_timestamps: int
    timestamp_begin: int
    no_speech: int | None


class WhisperTokenizer:
    """Token ids to text and back for one Whisper model directory."""

    def __init__(self, model_dir: Path) -> None:
        tokens, merges, self._fast = _load_vocabulary(model_dir)
        self._tokens: list[str] = tokens
        self._ids: dict[str, int] = {t: i for i, t in enumerate(tokens) if t}
        self._merge_ranks: dict[tuple[str, str], int] = {m: r for r, m in enumerate(merges)}
        no_timestamps = self._require("<|notimestamps|>")
        self.special = SpecialTokens(
            eot=self._require("<|endoftext|>"),
            sot=self._require("<|startoftranscript|>"),
            transcribe=self._require("<|transcribe|>"),
            translate=self._require("<|translate|>"),
            sot_prev=self._require("<|startofprev|>"),
            no_timestamps=no_timestamps,
            timestamp_begin=self._ids.get("<|0.00|>", no_timestamps + 1),
            no_speech=self._ids.get("<|nospeech|>", self._ids.get("<|nocaptions|>")),
        )
        self.languages: tuple[str, ...] = tuple(
            t[2:-2]
            for t in tokens[self.special.sot + 1 : self.special.translate]
            if _SPECIAL_RE.match(t)
        )

    @property
    def vocabulary_size(self) -> int:
        return len(self._tokens)

    def _require(self, token: str) -> int:
        if token not in self._ids:
            raise ValueError(f"the vocabulary lacks the Whisper token {token}")
        return self._ids[token]

    def token_id(self, token: str) -> int:
        """Id of a token string such as ``<|zh|>``; KeyError when unknown."""
        return self._ids[token]

    def language_token(self, language: str) -> int:
        """Id of ``<|language|>``; ValueError when the model does not know the language."""
        token = f"<|{language}|>"
        if token not in self._ids:
            raise ValueError(f"the model has no language token {token}")
        return self._ids[token]

    def token_string(self, token_id: int) -> str:
        return self._tokens[token_id]

    # ----------------------------------------------------------------- decoding

    def decode(self, ids: list[int]) -> str:
        """Text of the ordinary tokens in ``ids``; control and timestamp tokens are skipped."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace").replace("\ufffd", "")

    def decode_bytes(self, ids: list[int]) -> bytes:
        """UTF-8 bytes of the ordinary tokens in ``ids``, with any unfinished tail removed."""
        to_byte = unicode_to_byte()
        out = bytearray()
        eot = self.special.eot
        for token_id in ids:
            if token_id >= eot or token_id < 0:
                continue
            out.extend(to_byte[c] for c in self._tokens[token_id] if c in to_byte)
        return bytes(out[: _complete_utf8_length(out)])

    # ----------------------------------------------------------------- encoding

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens)."""
        if self._fast is not None:
            ids: list[int] = self._fast.encode(text, add_special_tokens=False).ids
            return ids
        ids = []
        for piece in _PRETOKENIZE_RE.findall(text):
            mapped = "".join(byte_to_unicode()[b] for b in piece.encode("utf-8"))
            ids.extend(self._ids[t] for t in self._bpe(mapped))
        return ids

    def _bpe(self, word: str) -> list[str]:
        if not self._merge_ranks:
            return self._greedy(word)
        parts = list(word)
        while len(parts) > 1:
            best_rank = None
            best_i = -1
            for i in range(len(parts) - 1):
                rank = self._merge_ranks.get((parts[i], parts[i + 1]))
                if rank is not None and (best_rank is None or rank < best_rank):
                    best_rank, best_i = rank, i
            if best_rank is None:
                break
            parts[best_i : best_i + 2] = [parts[best_i] + parts[best_i + 1]]
        return parts

    def _greedy(self, word: str) -> list[str]:
        parts = []
        i = 0
        while i < len(word):
            for j in range(min(len(word), i + MAX_GREEDY_TOKEN_CHARS), i, -1):
                if word[i:j] in self._ids:
                    parts.append(word[i:j])
                    i = j
                    break
            else:
                raise ValueError(f"cannot encode {word[i]!r} with this vocabulary")
        return parts


def _complete_utf8_length(data: bytearray) -> int:
    """Length of ``data`` without a trailing, unfinished UTF-8 sequence."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        b = data[n - back]
        if b < 0x80:
            return n
        if b >= 0xC0:
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return n if back >= need else n - back
    return n


def _load_vocabulary(model_dir: Path) -> tuple[list[str], list[tuple[str, str]], Any]:
    """Token list, BPE merges and an optional ``tokenizers.Tokenizer`` for ``model_dir``.

    The token list comes from the vocabulary file CTranslate2 wrote beside model.bin (it
    matches the model's output layer); tokenizer.json gives the merges, and the token list
    when no vocabulary file exists.
    """
    tokens: list[str] | None = None
    if (model_dir / "vocabulary.json").is_file():
        tokens = list(json.loads((model_dir / "vocabulary.json").read_text(encoding="utf-8")))
    elif (model_dir / "vocabulary.txt").is_file():
        tokens = (model_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
    tokenizer_file = model_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        if tokens is None:
            raise FileNotFoundError(f"{model_dir} has no tokenizer.json or vocabulary file")
        return tokens, [], None
    data = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    merges = [
        (m[0], m[1]) if isinstance(m, list) else tuple(m.split(" ", 1))
        for m in data["model"].get("merges", [])
    ]
    if tokens is None:
        vocab: dict[str, int] = dict(data["model"]["vocab"])
        for added in data.get("added_tokens", []):
            vocab[added["content"]] = int(added["id"])
        tokens = [""] * (max(vocab.values()) + 1)
        for token, token_id in vocab.items():
            tokens[token_id] = token
    return tokens, merges, _fast_tokenizer(tokenizer_file)


def _fast_tokenizer(tokenizer_file: Path) -> Any:
    try:
        import tokenizers
    except ImportError:
        return None
    return tokenizers.Tokenizer.from_file(str(tokenizer_file))
