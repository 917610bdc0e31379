"""The compiled segmenter gives exactly the tokens of the Python jieba package it replaced.

Stored search indexes (FTS5 rows, tsvectors) were built with `jieba` 0.42 in Python; queries are
now segmented by `rjieba`. If the two ever disagreed, a stored document would miss queries that
match its text. These tests run the former tokeniser (kept here as the reference) and the
current one over the search test corpus, benchmark-like listings, the whole jieba dictionary
in windows, ideographs outside jieba's range, and generated text, and require equal tokens.
"""

from __future__ import annotations

import logging
import random
import unicodedata
from pathlib import Path

import jieba
import pytest
import rjieba
from hypothesis import given, settings
from hypothesis import strategies as st
from search_corpus import CORPUS

from techbridge_catalog.domain import text as T
from techbridge_catalog.domain.text import index_text, index_tokens, query_tokens

jieba.setLogLevel(logging.WARNING)
jieba.initialize()


def former_index_tokens(text: str) -> list[str]:
    out: list[str] = []
    for run in T._RUN_RE.findall(unicodedata.normalize("NFKC", text)):
        if T._CJK_RE.match(run):
            out.extend(w for w in jieba.cut_for_search(run) if w not in T.STOPWORDS)
        else:
            out.extend(T._latin(run))
    return out


def former_query_tokens(text: str) -> list[str]:
    out: list[str] = []
    for run in T._RUN_RE.findall(unicodedata.normalize("NFKC", text)):
        words = (w for w in jieba.cut(run) if w not in T.STOPWORDS) if T._CJK_RE.match(run) else T._latin(run)
        for w in words:
            if w and w not in out:
                out.append(w)
    return out[:32]


def assert_same(text: str) -> None:
    assert index_tokens(text) == former_index_tokens(text), text
    assert query_tokens(text) == former_query_tokens(text), text


def corpus_texts() -> list[str]:
    out = []
    for _, _, body in CORPUS:
        out += [body["title_zh"], body["title_en"], body["abstract_zh"], body["abstract_en"],
                " ".join(body["keywords"]), body["confidential_details"]]
    return out


def test_search_corpus_tokens_are_unchanged():
    for text in corpus_texts():
        assert_same(text)


def test_listing_like_text_tokens_are_unchanged():
    materials = ["锂电池", "固态电解质", "石墨烯", "碳纤维", "钙钛矿", "氢燃料电池", "光刻胶", "生物降解塑料",
                 "纳米涂层", "高温合金", "半导体激光器", "水凝胶", "锂离子电池", "稻瘟病"]
    objects = ["隔膜", "传感器", "正极材料", "芯片", "控制系统", "检测方法", "制备工艺", "算法", "装置", "膜",
               "疫苗", "机器人", "荷电状态估计"]
    adjectives = ["高安全性", "低成本", "高效", "柔性", "智能", "耐高温", "可回收", "便携式"]
    fields = ["新能源", "新材料", "生物医药", "集成电路", "人工智能", "高端装备", "节能环保", "现代农业"]
    rnd = random.Random(3)
    for _ in range(500):
        m, o, a = rnd.choice(materials), rnd.choice(objects), rnd.choice(adjectives)
        assert_same(f"一种{a}{m}{o}及其制备方法 Low-cost {m} separators, 2nd generation")
        assert_same(f"本发明公开了一种{a}的{m}{o}，适用于{rnd.choice(fields)}领域，"
                    f"具有{rnd.choice(adjectives)}和{rnd.choice(adjectives)}的特点。")


def test_dictionary_words_in_windows_are_unchanged():
    """Every 40th stretch of the dictionary, words glued in windows of 1-6 (DAG and HMM paths)."""
    path = Path(jieba.__file__).with_name("dict.txt")
    words = [line.split(" ", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()]
    rnd = random.Random(5)
    i = 0
    while i < len(words):
        k = rnd.randint(1, 6)
        assert_same("".join(words[i: i + k]))
        i += 40 * k


@pytest.mark.parametrize("text", [
    "䱙鿲", "汗血盐车蔨于铁坚赪䱙鿲", "不肯联想䣕鿸", "㐀㐁锂电池", "锂电池鿿隔膜",  # outside U+4E00-U+9FD5
    "\uf900\uf901锂电池", "\ufa0e\ufa0f",                                       # compatibility ideographs
    "ＬＩＴＨＩＵＭ　电池１２３", "锂电池,隔膜;H01M-10/052", "the of and 的 和", "", "   ",
    "Li-ion 电池 (NCM811) 98.5%", "一种锂电池隔膜的制备方法", "电动汽车电池管理系统的荷电状态估计",
])
def test_edge_cases_are_unchanged(text):
    assert_same(text)


def test_ideographs_outside_jiebas_range_stay_single_words():
    """The port alone would glue unknown neighbours outside U+4E00-U+9FD5 into one word; the
    former tokens (and so the stored indexes) have one word per such ideograph."""
    assert rjieba.cut("䱙鿲") == ["䱙鿲"]           # what the guard exists for
    assert query_tokens("䱙鿲") == ["䱙", "鿲"]
    assert index_tokens("汗血盐车䱙鿲")[-2:] == ["䱙", "鿲"]
    # and it does not apply inside jieba's range: unknown neighbours there are still joined by the HMM
    assert query_tokens("柯正腾") == ["柯正腾"]
    assert query_tokens("柯正腾䱙鿲") == ["柯正腾", "䱙", "鿲"]
    assert query_tokens("锂电池隔膜") == ["锂电池", "隔膜"]


_ideographs = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
_rare = st.characters(min_codepoint=0x3400, max_codepoint=0x4DBF)
_other = st.sampled_from(list("abc XYZ 12 ，。-_%.·锂电池隔膜石墨烯传感器"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_ideographs, _ideographs, _rare, _other), max_size=30).map("".join))
def test_generated_text_tokens_are_unchanged(text):
    assert_same(text)


def test_index_text_is_space_separated_tokens():
    assert index_text("锂电池隔膜", "Batteries") == "锂电 电池 锂电池 隔膜 batteri"


# --- NFKC ------------------------------------------------------------------------------------
# `_normal` skips the normalisation of text already in NFKC and replaces fullwidth ASCII forms
# itself; it must give exactly `unicodedata.normalize("NFKC", ...)` for every text, including
# fullwidth forms next to combining marks (which compose with the replaced letter), other
# compatibility characters and ideographs.

_fullwidth = st.characters(min_codepoint=0xFF01, max_codepoint=0xFF5E)
_combining = st.characters(min_codepoint=0x0300, max_codepoint=0x036F)
_compat = st.sampled_from(list("ﬁ①㎏ｶﾞ™Ⅻ½ℌ﹐︰\u3000\u00a0ＡＺａｚ０９Å"))


@pytest.mark.parametrize("text", [
    "", "plain ascii", "锂电池隔膜", "本发明公开了一种锂电池隔膜，适用于新能源领域。", "ＬＩＴＨＩＵＭ　电池（固态）！",
    "Ａ\u0301", "ｅ\u0301\u0323", "A\u0301", "ﬁlm ①", "Ｅ\u0300ｌｅｃｔｒｏｌｙｔｅ", "、。「」",
])
def test_nfkc_shortcuts_give_the_same_text(text):
    assert T._normal(text) == unicodedata.normalize("NFKC", text)


def test_nfkc_shortcuts_give_the_same_text_over_the_corpus():
    for text in corpus_texts():
        assert T._normal(text) == unicodedata.normalize("NFKC", text)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(_fullwidth, _combining, _compat, _ideographs, _other, st.characters()), max_size=40)
       .map("".join))
def test_nfkc_shortcuts_give_the_same_text_for_generated_text(text):
    assert T._normal(text) == unicodedata.normalize("NFKC", text)
