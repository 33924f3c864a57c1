"""Language-agnostic text helpers for grounding: language detection, content terms, normalized numbers, sentence
units. Pure functions on strings, so the citation and refusal checks can be unit-tested without a model."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from functools import lru_cache

from reportqa.answer.types import Lang
from reportqa.index.keywords import spelled_counts

CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{CJK}]")
_CJK_RUN = re.compile(f"[{CJK}]+")
_LATIN_RE = re.compile(r"[A-Za-z]")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-'][A-Za-z0-9]+)*")
# Chinese function words: their presence marks a Chinese sentence even when it is full of English names.
_ZH_GRAMMAR = re.compile("[的了吗呢是么哪谁几在和与为]|什么|多少|怎么|如何|为什么")

MONTHS = "january february march april may june july august september october november december".split()
EN_STOP = frozenset("""
a an the and or but if of to in on at by for from with about as into over under than then so such that this these
those there their they them it its is are was were be been being do does did done have has had having i you he she we
me my your our his her what which who whom whose when where why how much many more most less least any some all each
other own same can could should would will shall may might must not no nor only also just very too up down out off
again further once here both few per via vs according report say says said tell show shows shown give gives please
according answer question did does one ones what's it's don't doesn't ai
""".split()) | frozenset(MONTHS)  # month names: dates are matched by year ("April 2025" ~ "4/25")
# Single CJK characters that carry no topic on their own; a bigram made only of these is not a content term.
ZH_STOP_CHARS = frozenset("的了吗呢是么什多少哪谁几在和与为有个这那其中对从到被把也都而及或就将还以之于"
                          "请问告诉报据根按照所说")


def cjk_count(text: str) -> int:
    return len(_CJK_RE.findall(text))


def detect_lang(text: str) -> Lang:
    """Chinese when CJK characters carry about as much of the text as Latin letters do (a CJK character ~ 2.5 Latin
    letters of meaning), or when Chinese grammar words appear at all: "NVIDIA的data center收入是多少" is Chinese."""
    cjk = cjk_count(text)
    if not cjk:
        return "en"
    latin = len(_LATIN_RE.findall(text))
    return "zh" if cjk * 2.5 >= latin or _ZH_GRAMMAR.search(text) else "en"


def _stem(w: str) -> str:
    w = w.removesuffix("'s")
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


# Question words: no content, and their bigrams with the next word ("哪些模型" -> "些模") look like rare terms.
_ZH_ASKING = re.compile("哪些|哪个|哪家|哪款|哪种|哪里|什么|多少|如何|怎样|怎么|为什么|是否|多大|多久|多长")


@lru_cache(maxsize=4096)
def terms(text: str) -> frozenset[str]:
    """Content terms: stemmed English words (stop words out) and CJK bigrams (single-character runs kept as is)."""
    out = {_stem(w) for w in (m.lower() for m in _WORD_RE.findall(text)) if w not in EN_STOP and len(w) > 1}
    for run in _CJK_RUN.findall(_ZH_ASKING.sub(" ", text)):
        if len(run) == 1:
            if run not in ZH_STOP_CHARS:
                out.add(run)
            continue
        out.update(run[i:i + 2] for i in range(len(run) - 1)
                   if not (run[i] in ZH_STOP_CHARS and run[i + 1] in ZH_STOP_CHARS))
    return frozenset(out)


def adds_to(text: str, question: str) -> bool:
    """Does the text say anything the question did not, in words? Chinese is compared character by character: a
    restatement reorders the question's words ("…如何描述不同年龄段的人使用…" answered "…描述了不同年龄段的人使用…"),
    which makes bigrams the question does not have (述了)."""
    asked = set(_CJK_RE.findall(question))
    return any(not cjk_count(t) for t in terms(text) - terms(question)) or any(
        c not in asked and c not in ZH_STOP_CHARS for c in _CJK_RE.findall(text))


_NAME = re.compile(r"\b(?:[A-Z][a-z]*[A-Z][A-Za-z0-9]*|[A-Z]{2,}[0-9]*|[A-Z][a-z]+)\b")


def names(text: str) -> frozenset[str]:
    """Proper names, as content terms: CamelCase (DeepSeek, ChatGPT), all-caps (NVIDIA, ITU), and capitalised words
    not opening an English sentence; in Chinese text every Latin word is a name."""
    zh = detect_lang(text) == "zh"
    out = set()
    for m in _NAME.finditer(text):
        w = m.group(0)
        opening = not text[: m.start()].rstrip(" \"'“(") or text[: m.start()].rstrip()[-1:] in ".!?:;"
        if zh or not (w.istitle() and opening):
            out |= terms(w)
    if zh:
        out |= {t for t in terms(text) if not cjk_count(t)}
    return frozenset(out)


def zh_places(text: str) -> list[str]:
    """Chinese place names in the text ("中国", "欧洲"; jieba POS tag ns). Person and company names are left out:
    the report mostly writes those in English, and jieba's tags for transliterations are unreliable."""
    if not cjk_count(text):
        return []
    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    return [w.word for w in jieba.posseg.cut(text) if w.flag == "ns" and 1 < len(w.word) == cjk_count(w.word)]


# ---------------------------------------------------------------- numbers

@dataclass(frozen=True)
class Num:
    value: float  # scaled: "800MM" -> 8e8, "2120亿" -> 2.12e11, "5.5x" -> 5.5, "99.7%" -> 99.7
    kind: str  # "n" plain/currency, "pct", "x" multiple, else a unit written right after the digits ("ef", "mw")
    mantissa: float  # as written before the scale: "800MM" -> 800, "8亿" -> 8
    tol: float  # half a unit of the last written digit, scaled: "8亿" -> 5e7, "27%" -> 0.5
    text: str


_SCALES = {
    "k": 1e3, "thousand": 1e3, "mm": 1e6, "m": 1e6, "mn": 1e6, "million": 1e6, "millions": 1e6,
    "b": 1e9, "bn": 1e9, "billion": 1e9, "billions": 1e9, "t": 1e12, "tn": 1e12, "trillion": 1e12, "trillions": 1e12,
    "千": 1e3, "万": 1e4, "十万": 1e5, "百万": 1e6, "千万": 1e7, "亿": 1e8, "十亿": 1e9, "百亿": 1e10, "千亿": 1e11,
    "万亿": 1e12,
}
_NUM_RE = re.compile(
    r"(?<![A-Za-z0-9.])(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:\s?(?:[多余](?=[十百千万亿]))?(?P<unit>万亿|十万|百万|千万|十亿|百亿|千亿|[千万亿]|(?:thousand|millions?|billions?|trillions?)(?![A-Za-z])"
    r"|%|％|percent(?![A-Za-z])|per cent|times(?![A-Za-z])|[×倍])"
    r"|(?P<suffix>mm|mn|bn|tn|[kmbtx])(?![A-Za-z])"  # one-letter suffixes only right after the digits
    # any other unit: "220EF" (exaflops), "37MW", "4o" (a version); a lone "E" marks an estimate ("2025E")
    r"|(?P<glued>(?!e(?![a-z]))[a-z]+))?",
    re.IGNORECASE,
)


# The report dates things as "4/25", "10/22-4/25", "5/15/25", "Q1:25", "FQ4:25" or "25年4月"; an answer says
# "April 2025" or "2025年4月". These yield the four-digit year as an extra number, so both sides meet on it. A
# two-digit "NN年" is a year only where a month, quarter or part of the year follows ("25年5月", "24年第二季度",
# "24年底"); otherwise it counts years: "谷歌用了11年", "19年前", "20年内".
_SHORT_YEAR = re.compile(r"(?<![\d/])(?:(?:1[0-2]|0?[1-9])/(?:[0-3]?\d/)?|\b[FC]?[QH][1-4]\s?[:']\s?)(\d{2})(?![\d/])"
                         r"|(?<!\d)(\d{2})\s?年(?=\s?(?:\d{1,2}\s?月|第|[初底末]|[上下]半|[QH][1-4]))")


# A chart legend's "’15-20", "’20+": two-digit years after an apostrophe (a range's second year may lack it). Read as
# counts they stated an answer's "用了20年" on a slide whose bars say 0.2 years.
_APOS_YEAR = re.compile(r"(?<![A-Za-z0-9])[’'‘](\d{2})(?!\d)(?:\s?[-–]\s?[’'‘]?(\d{2})(?!\d))?")


def _full_year(yy: str) -> float:
    """"97" in "5/97" is 1997 (the report's timelines start in 1950); "25" is 2025."""
    return (1900.0 if int(yy) > 40 else 2000.0) + int(yy)


# Month and day, written out: "May 19", "7月", "5月19日". Dates are compared by their year alone.
_MONTH_DAY = re.compile(r"\b(?:" + "|".join(m.capitalize() for m in MONTHS) + r")\.?\s+\d{1,2}(?:st|nd|rd|th)?\b"
                        r"|(?<![\d.])\d{1,2}月(?:\d{1,2}[日号])?")


def numbers(text: str, spelled: bool = False) -> list[Num]:
    dates = [*_SHORT_YEAR.finditer(text), *_APOS_YEAR.finditer(text)]
    out = [Num(year, "n", year, 0.5, m.group(0)) for m in dates for yy in m.groups() if yy for year in [_full_year(yy)]]
    # A date's month and day are no figures: the "7/24" under a quote does not state an answer's "7 million".
    in_date = {i for m in [*dates, *_MONTH_DAY.finditer(text)] for i in range(*m.span())}
    for m in _NUM_RE.finditer(text):
        if m.start() in in_date:
            continue
        raw, unit = m.group("num"), (m.group("unit") or m.group("suffix") or "").lower()
        mantissa = float(raw.replace(",", ""))
        decimals = len(raw.split(".")[1]) if "." in raw else 0
        kind, scale = "n", 1.0
        if unit in ("%", "％", "percent", "per cent"):
            kind = "pct"
        elif unit in ("x", "×", "倍", "times"):  # "5.5 times" states the slide's "5.5x"
            kind = "x"
        elif m.group("glued"):
            kind = m.group("glued").lower()  # "220EF" states 220 exaflops, not an answer's 220 GPUs
        elif unit:
            scale = _SCALES[unit]
        out.append(Num(mantissa * scale, kind, mantissa, 0.5 * 10 ** -decimals * scale, m.group(0)))
    # With `spelled` (page text), counts written in words too: the page's "Fifteen Months" states an answer's "15个月".
    # Not for answers: "一年内" (within a year) is a figure of speech that no page needs to state.
    for value, written, unit in spelled_counts(text) if spelled else ():
        out.append(Num(float(value), "x" if unit in ("times", "倍") else "n", float(value), 0.5, written))
    return out


# Month-level periods: "October 2005", "May 19, 2025", "5/15/25", "3/22-11/24", "2024年11月", "25年4月", quarters
# ("Q1:25", "FQ4:25", "1Q25", "Q3 2024", "2025年第一季度", "the fourth quarter of 2025") as their three months. Years
# alone are not periods here: an answer's "2024" is read off "C2024", "2024E" or a timeline far too loosely for a check.
_MON3 = [m[:3] for m in MONTHS]
_MONTH_YEAR = re.compile(r"\b(" + "|".join(_MON3) + r")[a-z]*\.?\s+(?:\d{1,2}(?:st|nd|rd|th)?,?\s+)?((?:19|20)\d{2})\b",
                         re.I)
_SLASH_DATE = re.compile(r"(?<![\d/])(1[0-2]|0?[1-9])/(?:[0-3]?\d/)?((?:19|20)\d{2}|\d{2})(?![\d/])")
_ZH_MONTH = re.compile(r"((?:19|20)?\d{2})\s?年\s?(1[0-2]|0?[1-9])\s?月")
_QUARTERS = [re.compile(p, re.I) for p in (
    r"\b[FC]?Q(?P<q>[1-4])\s*(?:[:']\s*|\s+(?:of\s+)?(?=(?:19|20)\d{2}))?(?P<y>(?:19|20)?\d{2})\b",  # Q1:25, Q3 2024
    r"\b(?P<q>[1-4])Q\s*(?P<y>(?:19|20)?\d{2})\b",  # 1Q25
    r"\b(?P<y>(?:19|20)\d{2})\s*Q(?P<q>[1-4])\b",  # 2024 Q2
    r"(?P<y>(?:19|20)?\d{2})\s?年\s?(?:第\s?)?(?P<q>[一二三四1-4])\s?季度",  # 2025年第一季度
    r"\b(?P<q>first|second|third|fourth|[1-4](?:st|nd|rd|th))\s+(?:(?:fiscal|calendar)\s+)?quarter\s+(?:of\s+|in\s+)?"
    r"(?:(?:fiscal|calendar)\s+)?(?P<y>(?:19|20)\d{2})\b")]  # the fourth quarter of 2025
_QUARTER_NUMBER = {"一": "1", "二": "2", "三": "3", "四": "4", "first": "1", "second": "2", "third": "3", "fourth": "4"}


def _year(y: str) -> int:
    return int(_full_year(y)) if len(y) == 2 else int(y)


_YEAR_DIGITS = re.compile(r"(?<![\d$])(?<!\d[.,])(19[89]\d|20[0-4]\d)(?!\d|[.,]\d|%|s\b)")
_ZH_YEAR = re.compile(r"(?<![\d.])(?:(19[89]\d|20[0-4]\d)|(\d{2}))\s*年(?!代)")
_NAME_BEFORE = re.compile(r"\b([A-Z][A-Za-z]*)\s+$")  # "Russell 2000", "Windows 2000": a name's number, no year
_FISCAL = re.compile(r"\b(?:FY|CY|F|C)'?(\d{2})\b")


def asked_years(question: str) -> frozenset[int]:
    """The calendar years a question asks about: "in 2019", "2024年", "24年", or a year of a month or quarter it
    names. A number in a name is none ("Russell 2000", "罗素2000指数")."""
    if cjk_count(question):
        out = {int(y) if y else int(_full_year(yy)) for y, yy in _ZH_YEAR.findall(question)}
    else:
        out = set()
        for m in _YEAR_DIGITS.finditer(question):
            before = _NAME_BEFORE.search(question[: m.start()])
            if not before or before.group(1).lower() in EN_STOP or before.group(1).lower() in MONTHS:
                out.add(int(m.group(1)))
    return frozenset(out | {y for y, _ in periods(question)})


def stated_years(text: str) -> frozenset[int]:
    """Every year a page prints in any form: "2024", "2024E", "C2024", "'24", "12/24", "Q1:25", "FY24", "2024年"."""
    out = {int(y) for y in re.findall(r"(19[89]\d|20[0-4]\d)", text)}
    out |= {int(n.value) for n in numbers(text) if n.tol == 0.5 and 1980 <= n.value <= 2049}
    out |= {int(_full_year(yy)) for yy in _FISCAL.findall(text)}
    return frozenset(out | {y for y, _ in periods(text)})


def periods(text: str) -> frozenset[tuple[int, int]]:
    """The (year, month) pairs a text names: a question's "in April 2025" and a page's "(4/25)" meet on (2025, 4)."""
    out = {(_year(y), _MON3.index(m.lower()[:3]) + 1) for m, y in _MONTH_YEAR.findall(text)}
    out |= {(_year(y), int(m)) for m, y in _SLASH_DATE.findall(text)}
    out |= {(_year(y), int(m)) for y, m in _ZH_MONTH.findall(text)}
    for pattern in _QUARTERS:
        for m in pattern.finditer(text):
            q = int(_QUARTER_NUMBER.get(m["q"].lower(), m["q"][0]))
            out |= {(_year(m["y"]), month) for month in range(3 * q - 2, 3 * q + 1)}
    return frozenset(out)


def number_on(n: Num, page_numbers: list[Num], unitless: bool = True) -> bool:
    """True when `n` (from an answer) is stated by some number of the page, allowing for rounding by the answer
    ("8亿" for 795MM), a different scale word ("$212B" = "2120亿美元"), and, with `unitless`, chart pages whose unit
    sits in an axis header ("Users (MM)" then a bare "800": the answer's "800 million" matches the bare 800, and vice
    versa) unless the page also prints those digits with another scale ("800MM" makes the answer's "800万" wrong)."""
    for p in page_numbers:
        if n.kind == p.kind or (n.kind != "n" and p.kind == "n"):
            if math.isclose(n.value, p.value, rel_tol=1e-9) or abs(n.value - p.value) <= n.tol:
                return True
        if unitless and p.kind == n.kind == "n" and (p.value == p.mantissa) != (n.value == n.mantissa) and (
                math.isclose(n.mantissa, p.mantissa)) and not (  # exactly one side carries the scale
                n.value != n.mantissa and any(_rescaled(n, q) for q in page_numbers)):
            return True
    return False


def _rescaled(n: Num, p: Num) -> bool:
    """p prints n's digits with a different scale word."""
    return p.kind == "n" and p.value != p.mantissa and math.isclose(n.mantissa, p.mantissa) and not math.isclose(
        n.value, p.value)


# ---------------------------------------------------------------- chart axes

_TICK = re.compile(r"^([-+]?)(\$?)(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)([%KMBT]|MM)?$")


def strip_axes(text: str) -> str:
    """The text without chart axis ticks: a run of numbers in one format that step evenly ("0 200 400 600",
    "-50% 150% 350%", "$0 $1 $2 $3", "2018 2019 2020 2021") or by powers of ten ("1 100 10,000"), four or more, or
    three from zero. A small model reads ticks as data ("600 users" for a 530MM chart); the values a chart
    labels rarely step evenly."""
    toks = text.split(" ")
    ticks = [(m.group(2), m.group(4), float(m.group(1) + m.group(3).replace(",", ""))) if (m := _TICK.match(t))
             else None for t in toks]

    def step(x: float, y: float, ratio: bool) -> float:
        return y / x if ratio else y - x

    drop: set[int] = set()
    i = 0
    while i + 1 < len(toks):
        a, b = ticks[i], ticks[i + 1]
        if not (a and b and a[:2] == b[:2] and a[2] != b[2]):
            i += 1
            continue
        ratio = a[2] > 0 and b[2] / a[2] in (10, 100, 1000)
        d, j = step(a[2], b[2], ratio), i + 1
        while j + 1 < len(toks) and (c := ticks[j + 1]) and c[:2] == a[:2] and math.isclose(
                step(ticks[j][2], c[2], ratio), d):
            j += 1
        if j - i + 1 >= 4 or (j - i + 1 == 3 and a[2] == 0):
            drop.update(range(i, j + 1))
            i = j + 1
        else:
            i += 1
    return " ".join(t for k, t in enumerate(toks) if k not in drop) if drop else text


_SQUASHED = re.compile(r"(?<!\S)(?=(?:\S*[A-Z]){3})[!-~]{16,}(?!\S)")  # printable ASCII, 3+ capitals


def _letters(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def squash(text: str) -> str:
    """Lower case without spaces, punctuation or hyphens, for matching names and titles as a reader types them."""
    return re.sub(r"[\W_]+", "", text.lower())


def strip_squashed(units: list[str]) -> list[str]:
    """The units without the export's space-less copies of chart labels ("ChatGPTWeeklyActiveUsers,MM0") when the
    page prints the label properly too: noise in the prompt, with axis digits glued on."""
    rest = _letters(" ".join(_SQUASHED.sub(" ", u) for u in units))
    out = [_SQUASHED.sub(lambda m: "" if _letters(m.group()) in rest else m.group(), u) for u in units]
    return [re.sub(r"\s{2,}", " ", u).strip() for u in out]


# ---------------------------------------------------------------- sentence units

# No sentence ends after these ("68% vs. 16%", "e.g. Apple", "U.S. companies"), nor at a short name spelled with
# "!" ("Yum! Brands", "Yahoo! Finance").
ABBREV = (r"(?<!\bvs\.)(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bU\.S\.)(?<!\bInc\.)(?<!\bNo\.)(?<!\bapprox\.)"
          r"(?<!\b[A-Z][a-z]{2}!)(?<!\b[A-Z][a-z]{3}!)(?<!\b[A-Z][a-z]{4}!)")
_SENT_END = re.compile(ABBREV + r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[$])|(?<=;)\s+|(?<=[。！？；])")
_LINE_CONT_EN = re.compile(r"^[a-z(,;:&–-]")
# A timeline entry opens with its date ("5/97:", "11/23:"); it never continues the entry before it, whose last words
# would otherwise read as the next date's event ("…champion at the time 9/02: Roomba…").
_ENTRY = re.compile(r"^((?:1[0-2]|0?[1-9])/\d{2}):\s*")


def date_last(unit: str) -> str:
    """A timeline entry with its date at the end, "Deep Blue … defeats Garry Kasparov (5/97)", for the prompt: a 1.5B
    model pairs a date with the words before it, so "…at the time / 9/02: Roomba…" read as Deep Blue's 2002."""
    m = _ENTRY.match(unit)
    return f"{unit[m.end():]} ({m.group(1)})" if m and m.end() < len(unit) else unit


def units(text: str, max_chars: int = 320) -> list[str]:
    """Split page text into sentence-like units: wrapped lines are re-joined (English continuation lines start
    lower-case; Chinese lines are wrapped mid-sentence), then split at sentence ends. Exact repeats are dropped
    (the export repeats each slide's English block)."""
    merged: list[str] = []
    titled = False  # the last unit is a whole slide title: nothing more joins it
    for line in _without_tick_lines([ln.strip() for ln in text.splitlines()]):
        if not line:
            continue
        if merged and not titled and not _ENTRY.match(line):
            prev = merged[-1]
            zh_wrap = (cjk_count(prev[-1:]) or prev.endswith(("，", ","))) and (
                cjk_count(line[:1]) or line[:1].isdigit()) and cjk_count(prev) * 3 > len(prev)
            en_wrap = not cjk_count(line[:1]) and (prev.endswith(" vs.") or not prev.endswith((".", "!", "?")) and (
                (_LINE_CONT_EN.match(line) and len(prev) > 25) or (re.search(r"[a-z,]$", prev) and len(prev) > 40)))
            # slide titles are "Topic =" over "Claim"; one unit, so the claim's figure stays with its topic
            titled = prev.endswith("=") and bool(cjk_count(prev)) == bool(cjk_count(line))
            if zh_wrap or en_wrap or titled:
                merged[-1] = prev + ("" if zh_wrap else " ") + line
                continue
        titled = False
        merged.append(line)
    out, seen = [], set()
    for block in _group_short(list(dict.fromkeys(merged))):
        for s in _SENT_END.split(block):
            s = s.strip()
            while len(s) > max_chars:  # very long run-ons: cut at a space or comma near the limit
                cut = max(s.rfind(" ", 0, max_chars), s.rfind(",", 0, max_chars), max_chars // 2)
                piece, s = s[:cut].strip(), s[cut:].strip()
                if piece and piece not in seen:
                    seen.add(piece)
                    out.append(piece)
            if len(s) > 1 and s not in seen:
                seen.add(s)
                out.append(s)
    return out


def _without_tick_lines(lines: list[str]) -> list[str]:
    """The lines without a chart axis printed one tick a line ("0" / "400" / "800"): dropped before lines are
    joined, since a tick glued to a note or a label ("Source: OpenAI disclosures 0", "400 800 Weekly Active Users,
    MM") no longer looks like an axis and reads as data."""
    out: list[str] = []
    run: list[str] = []
    for line in [*lines, ""]:
        if _TICK.match(line):
            run.append(line)
            continue
        if run:
            kept = strip_axes(" ".join(run)).split(" ")
            out += run if len(kept) == len(run) else [t for t in kept if t]
            run = []
        out.append(line)
    return out[:-1]


def _group_short(lines: list[str], short: int = 40, most: int = 160) -> list[str]:
    """Chart slides print a label, its unit and its value on separate short lines ("CapEx, $B" / "+63%" / "$212B");
    runs of short lines become one unit so that a value stays next to its label."""
    def is_short(line: str) -> bool:  # a CJK character carries about as much as 2.5 Latin ones
        return len(line) + 1.5 * cjk_count(line) < short and not line.endswith((".", "。", "!", "！", "?", "？"))

    out: list[str] = []
    grouping = False
    for line in lines:
        if (grouping and is_short(line) and len(out[-1]) + len(line) < most and not _ENTRY.match(line)
                and bool(cjk_count(line)) == bool(cjk_count(out[-1]))):
            out[-1] += " " + line
        else:
            out.append(line)
            grouping = is_short(line)
    return out


def est_tokens(text: str) -> int:
    """Rough Qwen token count: one per CJK character and per digit (Qwen splits numbers into digits), about four
    characters per token otherwise."""
    cjk, digits = cjk_count(text), sum(c.isdigit() for c in text)
    return cjk + digits + math.ceil((len(text) - cjk - digits) / 4)


_JOINT = r"[\s-]+(?:(?:and|of|for|the|&)\s+)?"


@lru_cache(maxsize=1024)
def spelled_out(name: str) -> re.Pattern | None:
    """The words an acronym of 3-5 letters stands for, as a pattern: "fda" finds "Food and Drug Administration",
    "wsj" "Wall Street Journal". None for anything else."""
    return re.compile(r"\b" + _JOINT.join(f"{c.upper()}[a-z]+" for c in name) + r"\b") if (
        3 <= len(name) <= 5 and name.isalpha()) else None
