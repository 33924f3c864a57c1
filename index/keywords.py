"""Keyword tokens for BM25: jieba words for Chinese, lower-cased words for English, numbers kept whole with their unit.

Chart values are often printed only in the English block ("$212B") while a Chinese question writes them the Chinese
way ("2120亿美元"); a number with a magnitude is therefore also emitted as a canonical value token ("#2.12e+11") so
the two match lexically. Likewise numbers written as words on one side ("Seventeen Months", "十七个月") also give
their digits.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata

import numpy as np

# Magnitude words and suffixes -> multiplier. Single-letter suffixes only count directly after the digits.
# (十亿 needs no entry: 十 has become 10 by then, and 10亿 is 1e9.)
_MAGNITUDE = {
    "k": 1e3, "thousand": 1e3, "千": 1e3,
    "m": 1e6, "mm": 1e6, "mn": 1e6, "million": 1e6, "百万": 1e6,
    "b": 1e9, "bn": 1e9, "billion": 1e9,
    "t": 1e12, "tn": 1e12, "trillion": 1e12, "万亿": 1e12,
    "万": 1e4, "亿": 1e8,
}
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(
    rf"""
    (?P<num>[$€£¥]?\d+(?:[.,]\d+)*)
      (?: (?P<unit>%|x|×|倍)
        | (?P<mag>万亿|百万|亿|万|千
            |(?:mm|mn|bn|tn|[kmbt])(?![a-z])
            |\s?(?:thousand|million|billion|trillion)\b) )?
    | (?P<word>[a-z][a-z0-9]*(?:[-.&][a-z0-9]+)*)
    | (?P<cjk>[{_CJK}]+)
    """,
    re.VERBOSE,
)

_EN_NUMBERS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen".split())}
_EN_NUMBERS.update({w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(),
                                                     start=2)})
_ZH_DIGITS = dict(zip("零一二两三四五六七八九", (0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9), strict=True))
# 1..99 written with 十 (not 十分 "very"), or a single digit right before a time unit ("八年"); other single
# characters such as 一 are too often part of ordinary words (统一, 一些) to be read as numbers
_ZH_TENS = r"[一二两三四五六七八九]?十(?!分)[一二三四五六七八九]?"
_ZH_NUMERAL = re.compile(rf"{_ZH_TENS}|[一二两三四五六七八九](?=[年倍天月周])")


def _zh_numeral_value(numeral: str) -> str:
    tens, _, ones = numeral.partition("十")
    if "十" not in numeral:
        return str(_ZH_DIGITS[numeral])
    return str(10 * (_ZH_DIGITS[tens] if tens else 1) + (_ZH_DIGITS[ones] if ones else 0))


def _en_number_value(word: str) -> int | None:
    """"seventeen" -> 17, "twenty-three" -> 23, "fifty-plus" -> 50."""
    first, _, rest = word.partition("-")
    if first not in _EN_NUMBERS:
        return None
    ones = _EN_NUMBERS.get(rest.partition("-")[0], 0) if _EN_NUMBERS[first] >= 20 else 0
    return _EN_NUMBERS[first] + (ones if ones < 10 else 0)


# counts spelled out before a unit of time or a multiple: "Fifteen Months", "十五个月", "八年", "三倍"
_SPELLED_EN = re.compile(r"\b([a-z]+(?:-[a-z]+)?)\s+(months?|years?|weeks?|days?|quarters?|times)\b", re.I)
_SPELLED_ZH = re.compile(rf"({_ZH_TENS}|[一二两三四五六七八九])个?([年月周天倍])")  # also "八个月"


def spelled_counts(text: str) -> list[tuple[int, str, str]]:
    """(value, as written, unit) of the counts `text` spells out in words, for matching them against digits."""
    out = []
    for m in _SPELLED_EN.finditer(text):
        value = _en_number_value(m[1].lower())
        if value is not None:
            out.append((value, m[0], m[2].lower()))
    for m in _SPELLED_ZH.finditer(text):
        out.append((int(_zh_numeral_value(m[1])), m[0], m[2]))
    return out


EN_STOPWORDS = frozenset(
    """a an the of and or to in on for by with as at from into is are was were be been being it its this that these
    those what which who whom whose how why when where did does do done has have had than then there their they them
    s i me my we our you your he she his her will would can could should may might about according report bond
    much many also such per via vs""".split()
)
ZH_STOPWORDS = frozenset(
    """的 了 是 在 和 与 及 或 有 为 对 中 上 下 把 被 这 那 个 之 其 于 以 等 也 都 就 而 并 从 到 由 吗 呢 吧 啊
    什么 多少 哪 哪些 哪个 哪里 怎么 怎样 如何 为什么 是否 多大 几 报告 根据 我们 他们 它 它们 一个 这个 那个 这些 那些
    可以 已经 所 将 该 还 又 给 让 向 约 大约 左右""".split()
)

_jieba = None
_jieba_lock = threading.Lock()


def segmenter():
    """jieba's default Tokenizer, initialised lazily and silently (it logs its dictionary loading otherwise). The
    default one, not a private Tokenizer: the answer stage's POS tagger and lexicon use it too, and each Tokenizer
    loads its own copy of the dictionary (~0.7 s, ~75 MB)."""
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()  # builds or loads the prefix dict cache in the temp dir
                _jieba = jieba.dt
    return _jieba


def _canonical(value: float) -> str:
    return f"#{value:.3g}"


def tokenize(text: str) -> list[str]:
    """Tokens of mixed English/Chinese text, in order, stopwords removed."""
    text = unicodedata.normalize("NFKC", text).lower()  # full-width digits and % in the Chinese blocks
    text = _ZH_NUMERAL.sub(lambda m: _zh_numeral_value(m[0]), text)
    out: list[str] = []
    for m in _TOKEN.finditer(text):
        if m["num"]:
            num, unit, mag = m["num"], m["unit"], m["mag"]
            if unit:
                out.append(num + ("x" if unit in "x×倍" else unit))
            elif mag:
                mag = mag.strip()
                out.append(num + mag if mag.isascii() and len(mag) <= 2 else num)  # "800mm", but "2120" for 2120亿
                try:
                    out.append(_canonical(float(num.lstrip("$€£¥").replace(",", "")) * _MAGNITUDE[mag]))
                except ValueError:  # "1.2.3": not a number, the surface token is enough
                    pass
            else:
                out.append(num)
        elif m["word"]:
            word = m["word"].strip(".")
            if word not in EN_STOPWORDS:
                out.append(word)
            value = _en_number_value(word)
            if value is not None:
                out.append(str(value))
            if "-" in word or "." in word:  # "open-source" also matches "open source"
                out.extend(p for p in re.split(r"[-.]", word) if p and p not in EN_STOPWORDS)
        else:
            out.extend(w for w in segmenter().cut_for_search(m["cjk"]) if w not in ZH_STOPWORDS)
    return out


class BM25:
    """Okapi BM25 over pre-tokenized documents, kept as an inverted index in flat numpy arrays (postings sorted by
    term): building it is a few vector operations, and scoring a query touches only the postings of its terms."""

    def __init__(self, docs: list[list[str]], k1: float = 1.2, b: float = 0.75):
        self.n_docs = len(docs)
        self._vocab: dict[str, int] = {}
        term_ids = np.fromiter((self._vocab.setdefault(t, len(self._vocab)) for d in docs for t in d), dtype=np.int64)
        lengths = np.array([len(d) for d in docs], dtype=np.int64)
        pairs, tf = np.unique(term_ids * max(self.n_docs, 1) + np.repeat(np.arange(self.n_docs), lengths),
                              return_counts=True)
        terms, self._docs = np.divmod(pairs, max(self.n_docs, 1))
        df = np.bincount(terms, minlength=len(self._vocab))
        self._starts = np.concatenate([[0], np.cumsum(df)])
        idf = np.log(1 + (self.n_docs - df + 0.5) / (df + 0.5))
        avg = lengths.mean() if self.n_docs and lengths.any() else 1.0
        norm = k1 * (1 - b + b * lengths / avg)
        self._weights = (idf[terms] * tf * (k1 + 1) / (tf + norm[self._docs])).astype(np.float32)

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        out = np.zeros(self.n_docs, dtype=np.float32)
        for term in dict.fromkeys(query_tokens):  # a repeated query word should not count twice
            i = self._vocab.get(term)
            if i is not None:
                sl = slice(self._starts[i], self._starts[i + 1])
                out[self._docs[sl]] += self._weights[sl]  # a term's postings name each doc once
        return out
