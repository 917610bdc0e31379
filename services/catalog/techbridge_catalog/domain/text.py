"""Bilingual text for search: one tokeniser for the index and the query, on both stores.

Chinese runs are segmented with jieba: documents with `cut_for_search` (every word and the
dictionary words inside it, so 锂电池隔膜 is indexed as 锂电, 电池, 锂电池, 隔膜), queries with
the precise `cut` (锂电池 stays one word, which the document index contains). Latin words are
case-folded and Snowball-stemmed (batteries -> batteri). The stores never tokenise themselves:
SQLite FTS5 and PostgreSQL receive space-separated tokens, so both see the same terms and
return the same hits.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache

import jieba
import snowballstemmer

jieba.setLogLevel(logging.WARNING)
_stemmer = snowballstemmer.stemmer("english")

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN_RE = re.compile(rf"[{_CJK}]+|[^\W_]+", re.UNICODE)
_CJK_RE = re.compile(rf"^[{_CJK}]+$")

STOPWORDS = frozenset(
    "a an and are as at be by for from has in is it its of on or that the this to was were with "
    "的 和 与 及 或 等 在 是 了 一种 其".split()
)


@lru_cache(maxsize=1)
def _warm() -> None:
    jieba.initialize()


def warm_up() -> None:
    """Load the segmenter's dictionary now (once per process) rather than on first use."""
    _warm()


@lru_cache(maxsize=50_000)
def _stem(word: str) -> str:
    return _stemmer.stemWord(word)


def _latin(run: str) -> list[str]:
    w = run.casefold()
    if w in STOPWORDS:
        return []
    return [_stem(w)] if w.isalpha() else [w]


def _normal(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def index_tokens(text: str) -> list[str]:
    """Tokens a document is indexed under (with repeats, for term frequency)."""
    _warm()
    out: list[str] = []
    for run in _RUN_RE.findall(_normal(text)):
        if _CJK_RE.match(run):
            out.extend(w for w in jieba.cut_for_search(run) if w not in STOPWORDS)
        else:
            out.extend(_latin(run))
    return out


def query_tokens(text: str) -> list[str]:
    """Distinct tokens a query must all match, in query order."""
    _warm()
    out: list[str] = []
    for run in _RUN_RE.findall(_normal(text)):
        words = (w for w in jieba.cut(run) if w not in STOPWORDS) if _CJK_RE.match(run) else _latin(run)
        for w in words:
            if w and w not in out:
                out.append(w)
    return out[:32]


def index_text(*parts: str) -> str:
    return " ".join(index_tokens(" ".join(p for p in parts if p)))
