"""Keyword side of the index: the mixed Chinese/English tokenizer and BM25."""

from __future__ import annotations

import numpy as np

from reportqa.index.keywords import BM25, tokenize


def test_english_keeps_numbers_with_units_as_tokens():
    toks = tokenize("Big Six CapEx hit $212B in 2025; 800MM users, 5.5x faster, 99.7% share")
    for t in ("$212b", "800mm", "5.5x", "99.7%", "2025", "capex", "users", "faster"):
        assert t in toks
    assert "in" not in toks and "the" not in tokenize("the share")  # light stopwords


def test_chinese_is_segmented_into_words_by_jieba():
    toks = tokenize("人工智能的采用速度前所未有")
    assert "人工智能" in toks and "采用" in toks and "速度" in toks
    assert "的" not in toks
    assert not any(len(t) > 6 for t in toks)  # words, not the whole run of characters


def test_chinese_and_english_magnitudes_meet_in_a_canonical_value_token():
    en = tokenize("CapEx of $212B")
    zh = tokenize("资本支出达2120亿美元")
    shared = set(en) & set(zh)
    assert any(t.startswith("#") for t in shared), (en, zh)
    assert set(tokenize("800MM weekly users")) & set(tokenize("8亿周活跃用户")) >= {"#8e+08"}
    assert "5.5x" in tokenize("快 5.5 倍".replace(" ", ""))


def test_full_width_digits_and_mixed_text():
    toks = tokenize("ChatGPT达到５．１B次访问，GPT-4o")
    assert "chatgpt" in toks and "5.1b" in toks and "gpt-4o" in toks and "gpt" in toks


def test_bm25_ranks_the_document_with_rare_matching_terms_first():
    docs = [tokenize(t) for t in ("NVIDIA GPU revenue grew 78%", "ChatGPT weekly users 800MM",
                                  "GPU GPU GPU data centers", "英伟达 GPU 收入")]
    bm25 = BM25(docs)
    s = bm25.scores(tokenize("ChatGPT users"))
    assert int(np.argmax(s)) == 1 and s[0] == 0
    s = bm25.scores(tokenize("英伟达收入"))
    assert int(np.argmax(s)) == 3
    assert bm25.scores(["nowhere"]).sum() == 0


def test_bm25_matches_the_okapi_formula():
    rng = np.random.default_rng(1)
    docs = [list(rng.choice(list("abcdefghij"), size=rng.integers(0, 15))) for _ in range(40)]
    n, avg = len(docs), sum(map(len, docs)) / len(docs)

    def okapi(query, k1=1.2, b=0.75):
        out = np.zeros(n)
        for t in set(query):
            df = sum(t in d for d in docs)
            idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
            for i, d in enumerate(docs):
                tf = d.count(t)
                out[i] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avg))
        return out

    bm25 = BM25(docs)
    for query in (["a"], ["a", "b", "zz"], ["j", "j"]):
        assert np.allclose(bm25.scores(query), okapi(query), atol=1e-5)
    assert BM25([]).scores(["a"]).shape == (0,)


def test_numbers_written_as_words_also_give_their_digits():
    assert {"17", "months"} <= set(tokenize("+8x to 800MM in Seventeen Months"))
    assert "23" in tokenize("530MM MAUs in Twenty-Three Months")
    assert "17" in tokenize("在大约十七个月内") and "23" in tokenize("二十三个月")
    assert "8" in tokenize("八年内") and "#5e+09" in tokenize("五十亿美元")
    assert "10" not in tokenize("十分重要") and "1" not in tokenize("统一")  # ordinary words stay words
