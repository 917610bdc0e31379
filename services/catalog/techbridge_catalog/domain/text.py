"""Bilingual text for search: one tokeniser for the index and the query, on both stores.

Chinese runs are segmented with jieba's dictionary and algorithms, as compiled by `rjieba` (a
Rust port: the same dictionary, DAG and HMM, some 25 times less CPU than the Python package):
documents with `cut_for_search` (every word and the dictionary words inside it, so 锂电池隔膜
is indexed as 锂电, 电池, 锂电池, 隔膜), queries with the precise `cut` (锂电池 stays one word,
which the document index contains). Latin words are case-folded and Snowball-stemmed
(batteries -> batteri). The stores never tokenise themselves: SQLite FTS5 and PostgreSQL
receive space-separated tokens, so both see the same terms and return the same hits.

The tokens are exactly those of the Python `jieba` package (0.42) that this module used
before, so indexes built by it stay valid: the Python package segments only U+4E00-U+9FD5
and yields every other ideograph (extension A, U+9FD6-U+9FFF, compatibility ideographs left
after NFKC) as a word of its own, where the port would segment them with their neighbours;
`_han_blocks` keeps the former behaviour. tests/test_text_tokens.py checks the equality.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

import rjieba
import snowballstemmer

_stemmer = snowballstemmer.stemmer("english")

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN_RE = re.compile(rf"[{_CJK}]+|[^\W_]+", re.UNICODE)
_CJK_RE = re.compile(rf"^[{_CJK}]+$")
# What the dictionary segmenter is given (jieba's own range); any other ideograph is a word.
_HAN = "\u4e00-\u9fd5"
_HAN_RUN_RE = re.compile(rf"[{_HAN}]+")
_HAN_BLOCK_RE = re.compile(rf"[{_HAN}]+|[^{_HAN}]")

STOPWORDS = frozenset(
    "a an and are as at be by for from has in is it its of on or that the this to was were with "
    "的 和 与 及 或 等 在 是 了 一种 其".split()
)


def warm_up() -> None:
    """Segment once now, so the dictionary is loaded at start-up rather than by the first request."""
    rjieba.cut("锂电池隔膜")


@lru_cache(maxsize=50_000)
def _stem(word: str) -> str:
    return _stemmer.stemWord(word)


def _latin(run: str) -> list[str]:
    w = run.casefold()
    if w in STOPWORDS:
        return []
    return [_stem(w)] if w.isalpha() else [w]


# The fullwidth forms of ASCII (U+FF01-U+FF5E: ， ： （ ） ！ ？ Ａ ...), which Chinese text is full
# of, are each their ASCII character under NFKC.
_FULLWIDTH_RE = re.compile("[\uff01-\uff5e]")


def _ascii_of(m: re.Match) -> str:
    return chr(ord(m.group()) - 0xFEE0)


def _normal(text: str) -> str:
    """NFKC, the same text as `unicodedata.normalize("NFKC", text)`, with less CPU for the
    common case. Text in NFKC already is returned as it is (a quick check); text whose only
    departures from NFKC are fullwidth ASCII forms gets those replaced (NFKC decomposes both
    strings to the same characters, so their NFKC is the same, and the replaced one is checked
    to be in NFKC); anything else is normalised. A Chinese abstract with a fullwidth comma took
    ~16 us to normalise, ~2.6 us this way (tests/test_text_tokens.py compares both)."""
    if unicodedata.is_normalized("NFKC", text):
        return text
    replaced = _FULLWIDTH_RE.sub(_ascii_of, text)
    if unicodedata.is_normalized("NFKC", replaced):
        return replaced
    return unicodedata.normalize("NFKC", replaced)


def _han_blocks(run: str, segment: Callable[[str], list[str]]) -> list[str]:
    """Segment a run of ideographs as jieba 0.42 did: its range through the dictionary, every
    other ideograph alone."""
    if _HAN_RUN_RE.fullmatch(run):
        return segment(run)
    out: list[str] = []
    for block in _HAN_BLOCK_RE.findall(run):
        if _HAN_RUN_RE.match(block):
            out.extend(segment(block))
        else:
            out.append(block)
    return out


@lru_cache(maxsize=30_000)
def _index_run(run: str) -> tuple[str, ...]:
    """The index tokens of one run of ideographs or of letters and digits (runs repeat a lot
    across listings: keywords, fields, set phrases, common English words)."""
    if _CJK_RE.match(run):
        return tuple(w for w in _han_blocks(run, rjieba.cut_for_search) if w not in STOPWORDS)
    return tuple(_latin(run))


@lru_cache(maxsize=20_000)
def _query_run(run: str) -> tuple[str, ...]:
    if _CJK_RE.match(run):
        return tuple(w for w in _han_blocks(run, rjieba.cut) if w not in STOPWORDS)
    return tuple(_latin(run))


def index_tokens(text: str) -> list[str]:
    """Tokens a document is indexed under (with repeats, for term frequency)."""
    out: list[str] = []
    for run in _RUN_RE.findall(_normal(text)):
        out.extend(_index_run(run))
    return out


def query_tokens(text: str) -> list[str]:
    """Distinct tokens a query must all match, in query order."""
    out: list[str] = []
    for run in _RUN_RE.findall(_normal(text)):
        for w in _query_run(run):
            if w and w not in out:
                out.append(w)
    return out[:32]


def index_text(*parts: str) -> str:
    return " ".join(index_tokens(" ".join(p for p in parts if p)))
