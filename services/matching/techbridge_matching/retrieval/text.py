"""Text analysis for lexical retrieval: English words (stemmed) and Chinese (jieba).

Runs of CJK characters are segmented with jieba's search mode (which yields both the long
word and its parts: 锂电池 -> 锂电, 电池, 锂电池), everything else is split into lower-cased
word tokens, stop words dropped, and stemmed with the Snowball English stemmer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType

import snowballstemmer

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RE = re.compile(rf"[{_CJK}]+|[a-z0-9]+")
_CJK_RE = re.compile(rf"^[{_CJK}]+$")

ENGLISH_STOP = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves may might must shall via per within without upon""".split()
)
CHINESE_STOP = frozenset("的 了 和 与 及 或 在 是 对 为 等 中 有 用 可 以 将 其 该 于 由 把 被 一种 一个 基于 进行 通过 具有 相关 技术".split())

_stemmer = snowballstemmer.stemmer("english")
_jieba = None


def _segmenter():
    global _jieba
    if _jieba is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        _jieba = jieba
    return _jieba


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer.stemWord(word)


def analyse(text: str) -> list[str]:
    """Index/query terms of a text, in order, repeats kept (term frequency matters)."""
    terms: list[str] = []
    for piece in _TOKEN_RE.findall(text.lower()):
        if _CJK_RE.match(piece):
            for word in _segmenter().cut_for_search(piece):
                if word not in CHINESE_STOP and word.strip():
                    terms.append(word)
        else:
            if piece in ENGLISH_STOP or len(piece) > 40:
                continue
            terms.append(_stem(piece))
    return terms


def display_terms(text: str) -> Mapping[str, str]:
    """term -> the first surface form it came from, so explanations show real words.

    Kept for the last texts asked about: every hit of one query is explained with the same
    query text."""
    return _display_terms(text)


@lru_cache(maxsize=256)
def _display_terms(text: str) -> Mapping[str, str]:
    surface: dict[str, str] = {}
    for piece in _TOKEN_RE.findall(text.lower()):
        if _CJK_RE.match(piece):
            for word in _segmenter().cut_for_search(piece):
                surface.setdefault(word, word)
        elif piece not in ENGLISH_STOP:
            surface.setdefault(_stem(piece), piece)
    return MappingProxyType(surface)
