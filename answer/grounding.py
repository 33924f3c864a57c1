"""Code-side grounding rules, independent of what the model was told: which sentences go into the prompt, whether
the evidence can answer a question at all, and which answer sentences survive (cited pages must be retrieved and
support the sentence; every number must be on a cited page). The rules that withdraw, repair, re-ask or refuse are
named (`types.Rule`), take their thresholds from one `Params`, and record each firing (`Checks`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property

from reportqa.answer.lexicon import Lexicon
from reportqa.answer.text import (
    ABBREV,
    Num,
    adds_to,
    cjk_count,
    date_last,
    detect_lang,
    est_tokens,
    names,
    number_on,
    numbers,
    periods,
    spelled_out,
    squash,
    stated_years,
    strip_axes,
    strip_squashed,
    terms,
    units,
    zh_places,
)
from reportqa.answer.types import Check, Lang, Rule, Verdict, parse_rules
from reportqa.index.types import PageHit
from reportqa.ingest.records import PageRecord

log = logging.getLogger(__name__)

QUOTE_CHARS = 240
_CJK_RANGE = r"\u3400-\u9fff"


# ---------------------------------------------------------------- the rules' parameters and their record

@dataclass(frozen=True)
class Params:
    """The thresholds of the answer stage's rules (docs/answer.md has the table), and the rules that only advise."""

    # LOW_COVERAGE_REFUSAL: below this share of the question's terms on the best retrieved page the report is taken
    # not to answer, without asking the model. Deliberately low: an answerable question must not be refused, and the
    # model and the citation checks still refuse what slips through.
    min_coverage: float = 0.17
    # MODEL_REFUSAL_RETRY: at or above this coverage a model refusal gets a second, more direct attempt, on wider
    # excerpts (an answer the checks withdrew always gets one: WITHDRAWN_ANSWER_RETRY); the prompt prints the best
    # page last, next to the question (below it, first).
    retry_coverage: float = 0.5
    # EVIDENCE_QUOTE_FALLBACK: at or above this coverage the model's "not in the report" (or an answer the checks
    # withdrew) is not trusted: the best-matching evidence line is quoted, if it carries `quote_share` of the
    # question's weight.
    trust_coverage: float = 0.6
    quote_share: float = 0.4
    # WRONG_LANGUAGE_RETRY: an evidence line standing in for an answer in the wrong language must still carry this
    # share of the question's weight.
    language_share: float = 0.2
    # EXCERPT_WIDENED: when the excerpts cover this much less of the question than the best retrieved page does, the
    # lines that would answer it were left out for want of budget: the first attempt reads wider excerpts.
    widen_gap: float = 0.1
    # SENTENCE_UNSUPPORTED: weighted share of a sentence's terms a page must hold to support it (without numbers).
    support_share: float = 0.35
    advisory: frozenset[Rule] = frozenset()  # rules that record their check but do not act

    @classmethod
    def of(cls, advisory_rules: str) -> Params:
        return cls(advisory=parse_rules(advisory_rules))

    def acts(self, rule: Rule) -> bool:
        return rule not in self.advisory


PARAMS = Params()


@dataclass
class Checks:
    """The rules that fired on one answer, in order: the one place that decides whether a firing rule acts."""

    params: Params = PARAMS
    done: list[Check] = field(default_factory=list)

    def fire(self, rule: Rule, verdict: Verdict, subject: str, detail: str = "") -> bool:
        """Record a firing; True if the rule acts on it (False: advisory, carry on as if it had not fired)."""
        acts = self.params.acts(rule)
        self.done.append(Check(rule, verdict if acts else Verdict.ADVISORY, subject, detail))
        log.info("%s %s %r%s", rule, self.done[-1].verdict, subject[:80], f": {detail}" if detail else "")
        return acts


@dataclass
class Source:
    """A retrieved page as the checks see it: its full text (both languages), split into units, and those units
    without chart axis ticks (`plain`: what the prompt shows and where the page's figures are read)."""

    page: int
    score: float
    text: str
    units: list[str]
    plain: list[str]
    terms: frozenset[str]
    nums: list[Num]

    @cached_property
    def years(self) -> frozenset[int]:
        """The years the page prints, in any form ("2024", "'24", "12/24", "Q1:25", "FY26")."""
        return stated_years(self.text)

    @cached_property
    def hyphen_parts(self) -> frozenset[str]:
        """The parts of the page's hyphenated terms, as terms ("co-ceo" -> "co", "ceo")."""
        return frozenset(p for t in self.terms if "-" in t for p in terms(t.replace("-", " ")))

    @cached_property
    def periods(self) -> frozenset[tuple[int, int]]:
        """The (year, month) pairs the page prints; read only for a question that names a month."""
        return periods(self.text)

    @classmethod
    def build(cls, hit: PageHit, record: PageRecord | None) -> Source:
        if record:  # each language on its own, so no unit straddles the English and Chinese blocks
            text, us = record.text, units(record.en) + units(record.zh)
        else:
            text = "\n".join(p.text for p in hit.passages)
            us = units(text)
        plain = strip_squashed([strip_axes(u) for u in us])
        # axis ticks are not figures the page states: "600" from a 0/200/400/600 axis does not support "600 users"
        return cls(hit.page, hit.score, text, us, plain, terms(text), numbers(" \n".join(plain), spelled=True))


def named_on(name: str, src: Source) -> bool:
    """Is the name (a content term, lower case) on the page: as is, wrapped at its hyphen ("o3- mini"), as a part
    of a hyphenated word of the page ("co" and "ceo" of "co-CEOs", "saharan" of "Sub-Saharan": names are read a
    capitalised word at a time), or as the words an acronym stands for ("fsd" on a page that says "Full
    Self-Driving", "fda": "Food and Drug Administration")?"""
    if name in src.terms or name in src.hyphen_parts or "-" in name and terms(name.replace("-", " ")) <= src.terms:
        return True
    pattern = spelled_out(name)
    return bool(pattern and pattern.search(src.text))


# ---------------------------------------------------------------- term matching across languages

TRANSLATED = 0.7  # a term matched only through its translation counts for a little less


@dataclass(frozen=True)
class Query:
    """The content terms of a text, each with its translations and a weight (rarer in the report = more telling).
    Without a lexicon every term weighs 1 and matches only itself."""

    alias: dict[str, frozenset[str]]
    weight: dict[str, float]

    @classmethod
    def of(cls, text: str, lex: Lexicon | None = None) -> Query:
        ts = terms(text)
        if lex is None:
            return cls({t: frozenset((t,)) for t in ts}, dict.fromkeys(ts, 1.0))
        return cls(lex.aliases(ts, text), {t: lex.idf(t) for t in ts})

    @property
    def total(self) -> float:
        return sum(self.weight.values())

    def hit(self, target: frozenset[str]) -> float:
        """Weight of the terms found in `target`, directly or translated."""
        return sum(w * (1.0 if t in target else TRANSLATED if self.alias[t] & target else 0.0)
                   for t, w in self.weight.items())

    def share(self, target: frozenset[str]) -> float:
        return self.hit(target) / self.total if self.weight else 0.0

    def count(self, target: frozenset[str]) -> int:
        return sum(1 for t in self.weight if self.alias[t] & target)


# ---------------------------------------------------------------- evidence sufficiency

def _informative(n: Num) -> bool:
    """Numbers that identify a fact: not years, not small counts that every chart axis prints."""
    if n.kind in ("pct", "x") or n.value != n.mantissa:
        return True
    if n.value != int(n.value):
        return True
    return n.value >= 100 and not 1900 <= n.value <= 2100


def excerpt_coverage(question: str, context: list[tuple[int, list[str]]], lex: Lexicon | None = None) -> float:
    """`coverage` of the question by the chosen excerpts, read as one page."""
    text = "\n".join(u for _, us in context for u in us)
    excerpts = Source(page=0, score=0.0, text=text, units=[], plain=[], terms=terms(text),
                      nums=numbers(text, spelled=True))
    return coverage(question, [excerpts], lex)


def coverage(question: str, sources: list[Source], lex: Lexicon | None = None) -> float:
    """Weighted share of the question's content terms and numbers found on the best single retrieved page, directly
    or through their translation, so a Chinese question about an English-only chart is covered too. A number
    weighs as much as the question's most telling term."""
    q, q_nums = Query.of(question, lex), numbers(question)
    w_num = max(q.weight.values(), default=1.0)
    total = q.total + w_num * len(q_nums)
    if not total or not sources:
        return 0.0
    return max((q.hit(s.terms) + w_num * sum(number_on(n, s.nums) for n in q_nums)) / total for s in sources)


FIGURE_SLACK = 0.1  # FIGURE_NOT_IN_REPORT: a question's figure within this share of a stated one is that one, rounded


def figures_absent(question: str, stated: list[Num]) -> list[str]:
    """The figures a question states (not years, page numbers or small counts) that none of the `stated` figures (the
    retrieved pages') is, even rounded: "Why did ChatGPT reach 900MM weekly users?" rests on a figure the pages about
    it do not give (they say 800MM), so the report cannot answer it."""
    asked = [n for n in numbers(_NAMED_PAGE.sub(" ", question)) if _informative(n)]
    return [n.text for n in asked if not any(number_on(near, stated) for near in _rounded(n))]


def _rounded(n: Num) -> list[Num]:
    """The figure, and the figure read loosely (FIGURE_SLACK either way): a reader's "about 2.7 million" for 2.6MM."""
    return [n, replace(n, tol=max(n.tol, abs(n.value) * FIGURE_SLACK))]


def on_topic(question: str, cited: list[Source], lex: Lexicon | None) -> bool:
    """Do the cited pages name anything the question names? An answer whose pages mention none of the question's
    names (DeepSeek, NVIDIA; Chinese place names like 中国) answers another question, e.g. another company's revenue
    growth with numbers that check out. A question without names passes."""
    target = frozenset().union(*(s.terms for s in cited))
    places = zh_places(question)
    if not names(question) and not places:
        return True
    return any(named_on(n, s) for n in names(question) for s in cited) or any(
        Query.of(p, lex).share(target) >= 0.5 for p in places)


# ---------------------------------------------------------------- prompt context

_QUANT = re.compile(r"\b(how (much|many|big|large|fast|long)|what (share|percent|percentage|number|amount|proportion)"
                    r"|growth|rate|revenue|cost|price|number of)\b"
                    r"|多少|几|比例|百分比|份额|增长|规模|数量|金额|成本|收入", re.I)
# A question for a duration wants a count of its unit, which `_informative` passes over (small counts are what chart
# axes print): "Searches in 2 Years (2024) vs. Google's 11 Years (2009)" answers "用了几年？". (question, figure) pairs;
# a bare Chinese 年 after up to three digits is a count ("11年"), not a date ("2009年").
_DURATIONS = tuple((re.compile(q, re.I), re.compile(f, re.I)) for q, f in (
    (r"\bhow many years\b|几年|多少年", r"(?<![\d.,])\d{1,3}(?:\.\d+)?\+?\s*(?:years?\b|年(?![前底初中末度]))"),
    (r"\bhow many days\b|几天|多少天", r"\d\+?\s*(?:days?\b|天)"),
    (r"\bhow many (?:months|weeks)\b|几个月|多少个月|几周|多少周", r"\d\+?\s*(?:months?\b|weeks?\b|个月|周)"),
    (r"\bhow long\b|多长时间|多久", r"\d\+?\s*(?:years?\b|months?\b|weeks?\b|days?\b|个月|天|周)"),
))


CONTINUATION = 0.7  # a unit that finishes (or starts) a matching clause inherits this share of its score
NEIGHBOUR = 0.5  # any other unit next to a matching one: a quote's speaker, a chart label's value line
LABEL_TOKENS = 6  # a chart label ("Anthropic Claude", "Google Gemini") is a few words over its value line
RANK_DECAY = 0.08  # each rank down the retrieved list takes this share off a unit's score


@dataclass(frozen=True)
class Wants:
    """What kind of figure a question asks for: any quantity, and which duration unit, if it asks "how long"."""

    number: bool
    duration: re.Pattern | None

    @classmethod
    def of(cls, question: str) -> Wants:
        return cls(bool(_QUANT.search(question)), next((f for q, f in _DURATIONS if q.search(question)), None))

    def bonus(self, unit: str) -> float:
        """Extra score for a unit that states a figure of the kind asked for."""
        if not self.number:
            return 0.0
        stated = any(map(_informative, numbers(unit))) or bool(self.duration and self.duration.search(unit))
        return 0.25 if stated else 0.0


def _unit_score(q: Query, wants: Wants, unit: str) -> float:
    ut = terms(unit)
    if not ut:
        return 0.0  # axis values, stray digits
    # a long unit must earn its place in the budget
    return (q.share(ut) + wants.bonus(unit)) / (1 + est_tokens(unit) / 120)


def _continues(prev: str, nxt: str) -> bool:
    """Does `nxt` carry on what `prev` left open? Timeline and chart entries wrap across units ("…driverless car
    named Stanley;" / "it completes a 132-mile course…"), and a chart label stands over its value line ("Anthropic
    Claude" / "From $1.25 (Claude 3 Haiku) to $75"): the half with the question's words rarely holds the answer too."""
    if not nxt or prev.endswith((".", "!", "?", "。", "！", "？")):
        return False
    if prev.endswith((";", ",", ":", "；", "，", "：")) or nxt[0].islower():
        return True
    return (est_tokens(prev) <= LABEL_TOKENS and not any(map(_informative, numbers(prev)))
            and any(map(_informative, numbers(nxt))))


def select_context(question: str, sources: list[Source], budget: int, lex: Lexicon | None = None,
                   named: frozenset[int] = frozenset()) -> list[tuple[int, list[str]]]:
    """The sentences of the retrieved pages that matter for the question, within a token budget: the title of the
    best page (its first two units: slide titles state the slide's claim; other pages' titles crowd out facts),
    then the best-overlapping units of every page, better ranked pages preferred; a unit's neighbours inherit part of
    its score, most when they finish its clause. Chart axis ticks are left out. The pages the question `named`
    ("what does page 55 say?") fill what budget is left in page order. Returns [(page, units in page order)] with
    the best-ranked page last, next to the question: the 1.5B model reads the excerpt nearest the question most
    reliably (on 60 questions, 8 wrong answers became right and 1 right one wrong against best-first). Pages left
    without units are left out."""
    q, wants = Query.of(question, lex), Wants.of(question)
    picked: dict[int, set[int]] = {s.page: set() for s in sources}
    cands = []
    for rank, s in enumerate(sources):
        us = s.plain
        scores = [_unit_score(q, wants, u) for u in us]
        for i, u in enumerate(us):
            score = scores[i]
            if i < 2 and rank < 1:
                score += 0.5 - 0.2 * i  # title and subtitle of the best page, even without overlap
            if i > 0:
                score = max(score, scores[i - 1] * (CONTINUATION if _continues(us[i - 1], u) else NEIGHBOUR))
            if i + 1 < len(us):
                score = max(score, scores[i + 1] * (CONTINUATION if _continues(u, us[i + 1]) else NEIGHBOUR))
            if s.page in named and terms(u):
                score = max(score, 0.1 / (1 + i / 10))
            if score > 0 and u:
                cands.append((score * (1 - RANK_DECAY * rank), s.page, i, u))
    used = 0
    for _score, page, i, u in sorted(cands, key=lambda c: -c[0]):
        cost = est_tokens(u) + 2
        if used + cost > budget:
            continue
        picked[page].add(i)
        used += cost
    by_page = {s.page: s for s in sources}
    return [(page, [by_page[page].plain[i] for i in sorted(idx)]) for page, idx in reversed(picked.items()) if idx]


def format_context(context: list[tuple[int, list[str]]]) -> str:
    return "\n".join(f"[p. {page}] " + " / ".join(map(date_last, us)) for page, us in context)


# ---------------------------------------------------------------- parsing the model's answer

# Bracketed or parenthesised page references in any format a model tends to produce: [p. 5], [pp. 5, 7], [5],
# (page 5), (p.5), [第5页], （第5页）, [Page 5-6].
_CITE = re.compile(
    r"\s*[\[【(（]\s*(?:(?:pp?|pages?|pg)\.?\s*|第\s*)?(?P<nums>\d{1,4}(?:\s*(?:[,，、;]|and|-|–)\s*(?:pp?\.?\s*)?\d{1,4})*)"
    r"\s*(?:页)?\s*[\]】)）]", re.I)
def cited_pages(text: str) -> list[int]:
    """The pages an answer cites, in order of first citation."""
    return list(dict.fromkeys(p for m in _CITE.finditer(text) for p in _cite_pages(m.group("nums"))))


def without_citations(text: str) -> str:
    """The model's text with its page references taken out (an answer shown unverified cites nothing)."""
    return _CITE.sub("", text).strip()


# Page references written into the sentence itself: "on page 5", "第5页" (页 required: "第12版" is a version).
_INLINE_PAGE = re.compile(r"(?:\bpages?\s+|\bp\.\s*)(\d{1,4})|第\s*(\d{1,4})\s*页", re.I)
_NAMED_PAGE = re.compile(r"(?:\b(?:pages?|slides?|p\.|pp\.)\s*)(\d{1,4})(?:\s*(?:and|&|-|–|to|,)\s*(\d{1,4}))?"
                         r"|第\s*(\d{1,4})\s*(?:[、,，和至到-]\s*第?\s*(\d{1,4})\s*)?[页张]", re.I)


def named_pages(question: str) -> list[int]:
    """Pages a question points at by number: "page 55", "pp. 55-56", "slide 12", "第55页", "第55、56页"."""
    return list(dict.fromkeys(int(n) for m in _NAMED_PAGE.findall(question) for n in m if n))


_QUOTED = re.compile(r"[“\"「『]([^”\"」』]{1,80})[”\"」』]")
TITLE_PAGES = 2  # a quoted title shared by more pages ("AI Monetization") names none of them


def title_index(records: list[PageRecord]) -> dict[str, list[int]]:
    """The pages by their slide title, as a reader quotes it: the first line of either language's block ("Context",
    "背景"), a "Topic =" line together with its claim, and either side of the "="."""
    index: dict[str, list[int]] = {}
    for r in records:
        for block in (r.en, r.zh):
            lines = [ln.strip() for ln in block.splitlines() if ln.strip()][:2]
            if not lines:
                continue
            title = " ".join(lines) if lines[0].endswith("=") else lines[0]
            for key in {squash(title), *map(squash, title.split("="))} - {""}:
                if r.page not in index.setdefault(key, []):
                    index[key].append(r.page)
    return index


def titled_pages(question: str, index: dict[str, list[int]]) -> list[int]:
    """Pages a question points at by quoting their title: 报告开头的“背景”部分 is p. 2."""
    found = (index.get(squash(q), []) for q in _QUOTED.findall(question))
    return list(dict.fromkeys(p for pages in found if len(pages) <= TITLE_PAGES for p in pages))


_SENT_SPLIT = re.compile(ABBREV + r"(?<=[.!?])\s+(?=[A-Z\u4e00-\u9fff\"“(])|(?<=[。！？])|\n+")
_REFUSAL = re.compile(
    r"NOT IN (THE )?REPORT|"
    r"(report|excerpts?|document|context|text|information)( provided)? (does not|doesn't|do not|don't) "
    r"(contain|mention|provide|include|say|specify|state|cover|give)|"
    r"not (mentioned|provided|specified|stated|covered|included|available|found) in the "
    r"(provided |given )?(report |document )?(report|excerpts?|document)|"
    r"\b(I )?(don't|do not) know\b|\b(cannot|can't|unable to) (find|answer|determine)|"
    r"\bno (information|data|mention|details?) (about|on|regarding|of)\b|"
    r"(报告|摘录|文中)[^，。]{0,6}(没有|未|并未)(提到|提及|包含|给出|说明|提供)|没有(相关|找到|提到|提及)|"
    r"未(提及|提到|找到)|无法(回答|确定|找到|得知)|不知道", re.I)


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.search(text))


def _cite_pages(spec: str) -> list[int]:
    nums = [int(x) for x in re.findall(r"\d+", spec)]
    if re.search(r"\d\s*[-–]\s*\d", spec) and len(nums) == 2 and 0 < nums[1] - nums[0] <= 5:
        return list(range(nums[0], nums[1] + 1))
    return nums


@dataclass
class Sentence:
    text: str  # without citations
    cited: list[int]  # pages the model cited (as written; a [1] may have meant the first excerpt)
    inline: list[int] = field(default_factory=list)  # pages the sentence names in its text
    end: str = ""  # terminal punctuation, kept apart so citations can go before it


_LABEL = re.compile(r"^\s*(answer|回答|答案)\s*[:：]\s*", re.I)  # the prompt's examples label their answers


def split_answer(text: str) -> list[Sentence]:
    """Sentences with their citations. A citation that follows the sentence end ("... users. [p. 5]") belongs to
    the sentence before it."""
    out: list[Sentence] = []
    for piece in _SENT_SPLIT.split(_LABEL.sub("", text.strip(), count=1)):
        piece = piece.strip()
        if not piece:
            continue
        cited = [p for m in _CITE.finditer(piece) for p in _cite_pages(m.group("nums"))]
        body = _CITE.sub("", piece).strip()
        if not re.search(rf"[A-Za-z0-9{_CJK_RANGE}]", body):  # a lone citation: attach it to the previous sentence
            if out:
                out[-1].cited.extend(cited)
            continue
        m = re.search(r"[.!?。！？]+$", body)
        end = m.group(0) if m else ""
        body = body[: len(body) - len(end)].rstrip(" ,，;；:：")
        out.append(Sentence(body, cited, [int(a or b) for a, b in _INLINE_PAGE.findall(body)], end))
    return out


# ---------------------------------------------------------------- checking

@dataclass
class Support:
    ok: bool
    score: float
    covered: frozenset[int | str]  # the sentence's numbers (by index) and names found on the page


def _fact_numbers(s: Sentence) -> list[Num]:
    text = _INLINE_PAGE.sub(" ", s.text)
    return numbers(text)


# A question for an amount or a count is not answered by a multiple alone ("OpenAI的估值为6.9x", "Hugging Face上有约
# 33x的AI模型"); unless it asks about a change, where "8x" is the answer.
_AMOUNT = re.compile(r"\bhow many\b|\b(valuation|market cap|revenue|sales)\b|多少(家|个|款|人|名|台|次|项|位|种|所)|"
                     r"估值|市值|收入|营收|销售额", re.I)
_CHANGE = re.compile(r"\b(grow|grew|growth|rise|rose|increase|fall|fell|decline|drop|faster|slower|times|multiple)|"
                     r"增长|增加|提高|上升|下降|减少|倍|快|慢", re.I)


# Nor is a question for a duration answered by calendar years alone ("ChatGPT达到1亿用户用了2000-2023年").
_DURATION = re.compile(r"\bhow (many years|long)\b|多少年|几年|多久|多长时间", re.I)


def _is_year(n: Num) -> bool:
    return n.kind == "n" and n.value == n.mantissa and n.value == int(n.value) and 1900 <= n.value <= 2100


def _new_numbers(s: Sentence, question: str) -> list[Num]:
    asked = numbers(question)
    return [n for n in _fact_numbers(s) if not number_on(n, asked)]


def support(s: Sentence, src: Source, lex: Lexicon | None = None, share: float = PARAMS.support_share) -> Support:
    """Does the page say what the sentence says? Content-term overlap in either language (directly or translated),
    or distinctive numbers in common (a Chinese sentence about an English-only chart shares figures and names)."""
    st = Query.of(s.text, lex)
    nums = _fact_numbers(s)
    found = [i for i, n in enumerate(nums) if number_on(n, src.nums)]
    hits, frac = st.count(src.terms), st.share(src.terms)
    strong_nums = sum(1 for i in found if _informative(nums[i]))
    named = [n for n in names(s.text) if named_on(n, src)]
    # one word in common is no support by itself: "Because it was too smart", a punch line after "tell me a joke",
    # shares "smart" with p. 336 and was cited to it
    lone = hits == 1 and not named and not found
    ok = (frac >= share and not lone) or (strong_nums and (hits >= 1 or frac >= 0.1)) or strong_nums >= 2
    covered = frozenset([*found, *named])
    return Support(ok, frac + 0.3 * len(found) + 0.2 * strong_nums, covered)


def quote(s: Sentence, src: Source, lex: Lexicon | None = None) -> str:
    """The unit of the page that best supports the sentence, as the citation's quote."""
    st, nums = Query.of(s.text, lex), _fact_numbers(s)

    def score(u: str) -> float:
        return st.share(terms(u)) * 4 + 2 * sum(number_on(n, numbers(u)) for n in nums) - est_tokens(u) / 200
    best = max(src.units, key=score, default=src.text)
    return best if len(best) <= QUOTE_CHARS else best[: QUOTE_CHARS - 1] + "…"


@dataclass
class Checked:
    sentence: Sentence
    pages: list[int]
    quotes: dict[int, str]


@dataclass
class Grounded:
    kept: list[Checked]
    checks: list[Check]  # the sentence rules that fired, in order
    refusal: bool  # the model said the report does not answer


def _resolve(cited: list[int], inline: list[int], by_page: dict[int, Source], order: list[int]) -> list[int]:
    """Pages a sentence points at. "[2]" that is no retrieved page but a valid excerpt position means that excerpt."""
    out = []
    for p in [*cited, *inline]:
        if p not in by_page and 1 <= p <= len(order) and p in cited:
            p = order[p - 1]
        if p not in out:
            out.append(p)
    return out


def _digits(n: Num) -> str:
    return f"{n.mantissa:.6f}".replace(".", "").strip("0")


def format_number(value: float, lang: Lang, page_form: str) -> str:
    """A page's figure as an answer in `lang` writes it: Chinese units in Chinese, the page's own form in English
    unless that form is Chinese ("1.2 亿" becomes "120MM")."""
    if lang == "zh" and value >= 1e4:
        unit, scale = ("亿", 1e8) if value >= 1e8 else ("万", 1e4)
    elif lang == "en" and cjk_count(page_form) and value >= 1e3:
        unit, scale = next((u, x) for u, x in (("T", 1e12), ("B", 1e9), ("MM", 1e6), ("K", 1e3)) if value >= x)
    else:
        return page_form
    return f"{value / scale:.4f}".rstrip("0").rstrip(".") + unit


_RANGE_LOW = re.compile(r"(?<![\d.,/:])(?P<d>\$)?(?P<n>\d+(?:\.\d+)?)\s?[-–~]\s?\$?$")


def zh_figures(text: str) -> str:
    """English-scaled figures in a Chinese sentence written the Chinese way: "$10MM" -> "1000万美元", "5.5B" -> "55亿".
    The model is shown the figures as printed and copies them; converting them is code's job, since a 1.5B model
    converting "$10MM" writes "100万" as often as "1000万"."""
    for n in numbers(text):
        m = re.search(rf"(?<![\d.,]){re.escape(n.text)}", text)
        if n.kind != "n" or n.value < 1e4 or n.value == n.mantissa or cjk_count(n.text) or not m:
            continue
        at = m.start()
        dollar = text[at - 1:at] == "$"
        start, end = at - dollar, at + len(n.text)
        zh = format_number(n.value, "zh", n.text)
        # a range scales its lower end too: "30-40MM" is 3000-4000万, not 30-4000万
        if low := _RANGE_LOW.search(text, 0, start):
            lower = format_number(float(low["n"]) * n.value / n.mantissa, "zh", low["n"])
            same = lower[-1:] == zh[-1:] and cjk_count(zh[-1:])
            start, dollar = low.start(), dollar or bool(low["d"])
            zh = (lower[:-1] if same else lower) + "-" + zh
        if dollar and not text[end:].lstrip().startswith("美元"):
            plus = text[end:end + 1] == "+"
            zh, end = zh + ("+" if plus else "") + "美元", end + plus
        text = text[:start] + zh + text[end:]
    return text


_YUAN = re.compile(r"(\d[\d,.]*\s?(?:千万|百万|十亿|[千万亿])?)\s?(?<![美欧日港台])元")
_DOLLARS = re.compile(r"(?:US)?\$\s?\d[\d,.]*\s?(?:MM|mn|bn|[KMBT]|thousand|million|billion|trillion)?(?![A-Za-z])")


def usd_yuan(text: str, cited: list[Source]) -> str:
    """"250元" for a page's "$250": the model kept the figure and dropped the currency's country. Only where the
    cited pages give that figure in dollars and never in yuan (the report quotes Chinese prices in 元 too)."""
    if not _YUAN.search(text):
        return text
    dollars = [d for src in cited for x in _DOLLARS.findall(src.text) for d in numbers(x)]
    yuan = [y for src in cited for x in _YUAN.findall(src.text) for y in numbers(x)]

    def fix(m: re.Match) -> str:
        said = numbers(m.group(1))
        if len(said) == 1 and number_on(said[0], dollars) and not number_on(said[0], yuan):
            return m.group(1) + "美元"
        return m.group(0)
    return _YUAN.sub(fix, text)


def _rescale(s: Sentence, srcs: list[Source], first: list[int], lang: Lang) -> list[tuple[str, str]]:
    """Fix numbers a small model converted to the wrong scale ("678MM" written as "678万" instead of "6.78亿"): a
    number that none of `srcs` states takes the value of the one number of theirs with the same digits and another
    scale (the same digits as written, if several), looked for on the pages the sentence cites (`first`) before all
    of them. A bare chart value with the same digits does not make the number stated when another page prints them
    with their scale ("2.5亿美元" beside a chart's "2.5" and a headline's "$2.5 billion" is 25亿美元)."""
    fixes = []
    by_page = {src.page: src for src in srcs}
    for n in _fact_numbers(s):
        if (n.kind == "n" and n.value == n.mantissa) or any(number_on(n, src.nums, unitless=False) for src in srcs):
            continue  # a bare count ("30 countries") has no scale to get wrong
        for group in ([by_page[p] for p in first if p in by_page], srcs):
            cands = {p.value: p for src in group for p in src.nums if p.kind == n.kind and _informative(p)
                     and _digits(p) == _digits(n) and p.value != n.value and (n.kind != "n" or p.value != p.mantissa)}
            if len(cands) > 1:  # the model copies the digits as printed and gets the unit wrong: "100K" -> "100万"
                cands = {v: p for v, p in cands.items() if p.mantissa == n.mantissa} or cands
            if len(cands) == 1:
                (p,) = cands.values()
                fixes.append((n.text.strip(), format_number(p.value, lang, p.text.strip())))
                break
            if cands:
                break  # ambiguous on the cited pages: the other pages cannot settle it
    return fixes


@dataclass(frozen=True)
class _Asked:
    """What the sentence rules check a sentence against."""

    question: str
    query: Query
    sources: list[Source]
    by_page: dict[int, Source]
    order: list[int]  # the pages in excerpt order: "[2]" may mean the second excerpt
    lang: Lang
    lex: Lexicon | None
    params: Params
    periods: frozenset[tuple[int, int]]  # the months the question asks about


@dataclass
class _Draft:
    """A sentence of the model's answer on its way through the rules, with the pages chosen for it."""

    s: Sentence
    pages: list[int] = field(default_factory=list)
    supported: bool = False  # some retrieved page supports it
    missing: set[int | str] = field(default_factory=set)  # its numbers (by index) and names no cited page states
    uncited: list[int] = field(default_factory=list)  # the model's citations of pages that do not support it
    repairs: list[tuple[str, str]] = field(default_factory=list)  # figure fixes recorded but not applied (advisory)


def _asks(d: _Draft, a: _Asked) -> str | None:
    return "a question, not an answer" if "?" in d.s.end or "？" in d.s.end else None


def _names_unretrieved_page(d: _Draft, a: _Asked) -> str | None:
    return "names a page that was not retrieved" if any(p not in a.by_page for p in d.s.inline) else None


def _restates(d: _Draft, a: _Asked) -> str | None:
    """Says nothing the question did not ("Yes.", a restatement): kept, but uncited, so it answers nothing."""
    if not adds_to(d.s.text, a.question) and not _new_numbers(d.s, a.question):
        return "says nothing the question did not"
    return None


def _off_question(d: _Draft, a: _Asked) -> str | None:
    """Neither the question's words nor a name or figure: "Because it was too complex" after "tell me a joke" shares
    a word or two with some page, but answers nothing that was asked."""
    s, q = d.s, a.question
    if q and not (a.query.count(terms(s.text)) or names(s.text) or any(map(_informative, _new_numbers(s, q)))):
        return "not about the question"
    return None


def _unsupported(d: _Draft, a: _Asked) -> str | None:
    return None if d.supported else "no retrieved page supports it"


def _multiple_for_amount(d: _Draft, a: _Asked) -> str | None:
    q = a.question
    figures = [n for n in _new_numbers(d.s, q) if _informative(n)]
    if figures and _AMOUNT.search(q) and not _CHANGE.search(q) and all(n.kind == "x" for n in figures):
        return "a multiple, where the question asks for an amount"
    return None


def _years_for_duration(d: _Draft, a: _Asked) -> str | None:
    new = _new_numbers(d.s, a.question)
    if new and _DURATION.search(a.question) and all(map(_is_year, new)):
        return "calendar years, where the question asks how long"
    return None


def _number_missing(d: _Draft, a: _Asked) -> str | None:
    nums = _fact_numbers(d.s)
    what = sorted(nums[x].text for x in d.missing if isinstance(x, int))
    return "not on the pages that support it: " + ", ".join(what) if what else None


def _name_missing(d: _Draft, a: _Asked) -> str | None:
    what = sorted(x for x in d.missing if isinstance(x, str))
    return "not on the pages that support it: " + ", ".join(what) if what else None


def _period_missing(d: _Draft, a: _Asked) -> str | None:
    """The question asks about a month or quarter ("on December 31, 2025", "截至2025年6月") and no cited page prints a
    date in it: the figure is another period's (a near miss the report does not answer), however well it matches."""
    if not a.periods or any(a.periods & a.by_page[p].periods for p in d.pages):
        return None
    return "the cited pages print no date in " + ", ".join(f"{m}/{y}" for y, m in sorted(a.periods))


SentenceRule = tuple[Rule, Verdict, Callable[[_Draft, _Asked], str | None]]

# The rules each sentence of the model's answer meets, in this order; the first that fires and acts decides its fate
# (DROPPED: left out; WITHDRAWN: kept uncited, so it answers nothing). Between the two lists the sentence's figures
# are repaired and its pages chosen (`_repair_and_cite`: NUMBER_REPAIRED, CITATION_REPLACED); a sentence that passes
# both has its dollar figures repaired (CURRENCY_REPAIRED, Chinese answers).
BEFORE_CITING: tuple[SentenceRule, ...] = (
    (Rule.QUESTION_NOT_ANSWER, Verdict.DROPPED, _asks),
    (Rule.PAGE_NOT_RETRIEVED, Verdict.DROPPED, _names_unretrieved_page),
    (Rule.RESTATEMENT, Verdict.WITHDRAWN, _restates),
    (Rule.OFF_QUESTION, Verdict.DROPPED, _off_question),
)
AFTER_CITING: tuple[SentenceRule, ...] = (
    (Rule.SENTENCE_UNSUPPORTED, Verdict.DROPPED, _unsupported),
    (Rule.MULTIPLE_FOR_AMOUNT, Verdict.DROPPED, _multiple_for_amount),
    (Rule.YEARS_FOR_DURATION, Verdict.DROPPED, _years_for_duration),
    (Rule.NUMBER_NOT_ON_PAGE, Verdict.DROPPED, _number_missing),
    (Rule.NAME_NOT_ON_PAGE, Verdict.DROPPED, _name_missing),
    (Rule.PERIOD_NOT_ON_PAGE, Verdict.DROPPED, _period_missing),
)


def _apply(rules: tuple[SentenceRule, ...], d: _Draft, a: _Asked, rec: Checks) -> Verdict | None:
    """The verdict of the first rule that fires and acts (advisory firings are recorded and passed)."""
    for rule, verdict, why in rules:
        reason = why(d, a)
        if reason and rec.fire(rule, verdict, d.s.text, reason):
            return verdict
    return None


def ground(answer: str, sources: list[Source], context_pages: list[int], lang: Lang = "en",
           lex: Lexicon | None = None, question: str = "", params: Params = PARAMS) -> Grounded:
    """Keep each sentence that the retrieved pages support, citing the pages that do; drop citations of pages that
    were not retrieved or do not support it; attach citations to uncited sentences; withdraw sentences with a
    number that no retrieved page states (after repairing mis-scaled ones)."""
    a = _Asked(question, Query.of(question, lex), sources, {s.page: s for s in sources}, context_pages, lang, lex,
               params, periods(question))
    rec = Checks(params)
    g = Grounded([], rec.done, False)
    for s in split_answer(answer):
        if is_refusal(s.text):
            g.refusal = True
            g.kept.append(Checked(s, [], {}))
            continue
        d = _Draft(s)
        verdict = _apply(BEFORE_CITING, d, a, rec)
        if verdict is Verdict.WITHDRAWN:
            g.kept.append(Checked(s, [], {}))
        if verdict:
            continue
        _repair_and_cite(d, a, rec)
        if _apply(AFTER_CITING, d, a, rec):
            continue
        if d.uncited:
            rec.fire(Rule.CITATION_REPLACED, Verdict.REPAIRED, s.text, "cited " + ", ".join(
                f"p. {p}" for p in d.uncited) + "; cites " + (", ".join(f"p. {p}" for p in d.pages) or "nothing"))
        if lang == "zh":
            s.text = zh_figures(s.text)  # a figure's form, not a check: the model copies figures as printed
            dollars = usd_yuan(s.text, [a.by_page[p] for p in d.pages])
            if dollars != s.text and rec.fire(Rule.CURRENCY_REPAIRED, Verdict.REPAIRED, s.text, dollars):
                s.text = dollars
        g.kept.append(Checked(s, d.pages, {p: quote(s, a.by_page[p], lex) for p in d.pages}))
    return g


def _repair_and_cite(d: _Draft, a: _Asked, rec: Checks) -> None:
    """Repair mis-scaled figures from all retrieved pages (NUMBER_REPAIRED), choose the pages to cite, then repair
    a figure that is stated on some retrieved page but not beside this sentence's subject from the supporting pages:
    "37亿" (OpenAI's $3.7B) for the $37B of the page about Alphabet."""
    s = d.s
    _repair(d, rec, _rescale(s, a.sources, _resolve(s.cited, s.inline, a.by_page, a.order), a.lang))
    _cite(d, a)
    if d.pages and any(isinstance(x, int) for x in d.missing) and _repair(
            d, rec, _rescale(s, [a.by_page[p] for p in d.pages], d.pages, a.lang)):
        _cite(d, a)


def _repair(d: _Draft, rec: Checks, fixes: list[tuple[str, str]]) -> bool:
    """Rewrite the sentence's figures (as written -> as the page states them), unless NUMBER_REPAIRED is advisory."""
    if not rec.params.acts(Rule.NUMBER_REPAIRED):  # unapplied, the first look's fixes are found again by the second
        fixes = [f for f in fixes if f not in d.repairs]
        d.repairs += fixes
    acts = [rec.fire(Rule.NUMBER_REPAIRED, Verdict.REPAIRED, old, new) for old, new in fixes]
    if not fixes or not all(acts):
        return False
    for old, new in fixes:
        d.s.text = d.s.text.replace(old, new, 1)
    return True


def _cite(d: _Draft, a: _Asked) -> None:
    """The pages to cite for a sentence — the model's valid citations, else the best supporting page, plus pages
    that state a number or name the first ones lack — and what no cited page states (numbers by index, names).
    The model's citations of pages that do not support it are replaced (CITATION_REPLACED; advisory, it keeps
    those that were retrieved, and a sentence no page supports keeps them under an advisory
    SENTENCE_UNSUPPORTED)."""
    s = d.s
    named = names(s.text)
    # A page that names none of the sentence's subjects (the names it shares with the question, else all its names)
    # is about something else, whatever figures it shares.
    subjects = (named & names(a.question)) or named
    sp = {p: support(s, src, a.lex, a.params.support_share) for p, src in a.by_page.items()}
    sup = [p for p, x in sp.items() if x.ok and (not subjects or x.covered & subjects)]
    cited = _resolve(s.cited, s.inline, a.by_page, a.order)
    retrieved = [p for p in cited if p in a.by_page]
    valid = [p for p in retrieved if p in sup or not a.params.acts(Rule.CITATION_REPLACED)]
    others = sorted((p for p in sup if p not in valid), key=lambda p: -sp[p].score)
    d.supported, d.uncited = bool(sup), [p for p in cited if p not in sup]
    pages = valid or others[:1] or ([] if a.params.acts(Rule.SENTENCE_UNSUPPORTED) else retrieved)
    nums = _fact_numbers(s)
    missing = {*range(len(nums)), *named} - {x for p in pages for x in sp[p].covered}
    for p in others:  # a comparison across slides: the second page supplies its own figures and names
        if not missing:
            break
        # ... each figure next to a subject: a slide comparing ChatGPT's 530MM with DeepSeek does not state
        # DeepSeek's 530MM
        adds = {x for x in sp[p].covered & missing
                if not isinstance(x, int) or _beside(nums[x], a.by_page[p], subjects)}
        if p not in pages and adds:
            pages.append(p)
            missing -= adds
    d.pages, d.missing = pages, missing


def _beside(n: Num, src: Source, subjects: frozenset[str]) -> bool:
    """Does a unit of the page state the number and name one of the subjects, itself or in one of the two units
    above it? A chart's value line names nothing, its title does ("Leading USA-Based AI LLM Revenue vs. Compute
    Expense" / "Source: …" / "Revenue (Blue) & Compute Expense (Red) +$3.7B -$5B")."""
    us = src.units
    return not subjects or any(number_on(n, numbers(u, spelled=True)) and any(
        terms(t) & subjects for t in us[max(0, i - 2): i + 1]) for i, u in enumerate(us))


def facts(kept: list[Checked]) -> list[Checked]:
    """The sentences that state something (and so carry citations)."""
    return [c for c in kept if c.pages]


def render(kept: list[Checked], lang: Lang) -> str:
    """Sentences with their citations before the closing punctuation: "... 800MM weekly users [p. 55]."."""
    parts = []
    for c in kept:
        s = c.sentence
        cites = "".join(f"[p. {p}]" for p in c.pages)
        end = s.end or ("。" if lang == "zh" else ".")
        parts.append(f"{s.text} {cites}{end}" if cites else f"{s.text}{end}")
    return ("" if lang == "zh" else " ").join(parts)


# ---------------------------------------------------------------- language

_LOWER_WORD = re.compile(r"(?<![A-Za-z])[a-z]{3,}(?![A-Za-z])")
_LATIN_CLAUSE = re.compile(r"(?:[A-Za-z][A-Za-z0-9'’.&-]*\s+){5,}[A-Za-z]")  # six words in a row: no name is that long


def sentence_in_lang(text: str, lang: Lang, latin_ok: frozenset[str] | None = None) -> bool:
    """Names and figures may stay as written; a whole English clause in a Chinese answer (or Chinese words in an
    English one) may not. With `latin_ok`, a Chinese sentence may use a lower-case English word only if it is in
    that set (words the report's Chinese text or the question use, like "token"): "解决 unfamiliar问题" is mixed. Six
    Latin words in a row are a pasted English line, not a name."""
    if lang == "en":
        return cjk_count(text) <= 2
    if detect_lang(text) != "zh" or _LATIN_CLAUSE.search(text):
        return False
    return latin_ok is None or all(terms(w) <= latin_ok for w in _LOWER_WORD.findall(text))


def in_lang(kept: list[Checked], lang: Lang, latin_ok: frozenset[str] | None = None) -> bool:
    return all(sentence_in_lang(c.sentence.text, lang, latin_ok) for c in kept)


def _names_on(question: str, src: Source, lex: Lexicon | None) -> bool:
    """Is the page about everything the question names ("ChatGPT" and "中国" in "ChatGPT在中国…")?"""
    return all(named_on(n, src) for n in names(question)) and all(
        Query.of(p, lex).share(src.terms) >= 0.5 for p in zh_places(question))


def fallback_answer(question: str, lang: Lang, sources: list[Source], hints: list[Checked],
                    lex: Lexicon | None = None, min_share: float = 0.0) -> list[Checked]:
    """Sentences taken from the evidence itself, in the asker's language, for when the model fails.

    With `hints` (the model's checked sentences, in the wrong language): for each page they cite, the unit in `lang`
    that best matches them and the question, plus their verified figures when that unit lacks them (chart values are
    often printed only in English). Without hints: the single best unit of the two best pages, if its page is on
    topic and has every name the question uses (so "…in Europe" is not answered with a China figure). Either way
    the unit must carry `min_share` of the question's own weight."""
    by_page = {s.page: s for s in sources}
    pages = [p for c in hints for p in c.pages] or [s.page for s in sources[:2]]
    asked, wants = Query.of(question, lex), Wants.of(question)
    cands: list[tuple[float, Checked]] = []
    for page in dict.fromkeys(pages):
        src = by_page.get(page)
        if not src or (not hints and not _names_on(question, src, lex)):
            continue
        said = [c.sentence.text for c in hints if page in c.pages]
        probe = Query.of(" ".join([question, *said]), lex)
        units_in_lang = [u for u in src.plain if sentence_in_lang(u, lang) and terms(u)]
        # a chart title matches the question's words best; for "how many", a line with the figure that is still
        # about the question answers it
        best = max(units_in_lang, key=lambda u, probe=probe: probe.share(terms(u)) + (
            wants.bonus(u) if asked.share(terms(u)) >= min_share else 0.0), default="")
        share = probe.share(terms(best)) if best else 0.0
        if not share or asked.share(terms(best)) < min_share or (
                not hints and asked.count(terms(best)) < min(2, len(asked.weight))):
            continue  # one rare word in common ("France" in a list of countries) is not an answer to the question
        best = best.rstrip("。.!！?？ ")
        if len(best) > QUOTE_CHARS:
            best = best[:QUOTE_CHARS - 1] + "…"
        figures = [format_number(n.value, lang, n.text.strip()) for n in numbers(" ".join(said))
                   if _informative(n) and number_on(n, src.nums) and not number_on(n, numbers(best, spelled=True))]
        text = best + (f"（{'，'.join(dict.fromkeys(figures))}）" if lang == "zh" else
                       f" ({', '.join(dict.fromkeys(figures))})") if figures else best
        cands.append((share, Checked(Sentence(text, [page]), [page], {page: best})))
    if hints:
        return [c for _, c in cands[:2]]
    return [max(cands, key=lambda sc: sc[0])[1]] if cands else []


def page_list(pages: list[int], lang: Lang, fmt: tuple[str, str]) -> str:
    item, sep = fmt
    return sep.join(item.format(n=p) for p in pages) if pages else ("—" if lang == "en" else "无")

