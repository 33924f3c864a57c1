"""Code-side grounding rules, independent of what the model was told: which sentences go into the prompt, whether
the evidence can answer a question at all, and which answer sentences survive (cited pages must be retrieved and
support the sentence; every number must be on a cited page)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from reportqa.answer.text import Num, cjk_count, detect_lang, est_tokens, number_on, numbers, terms, units
from reportqa.answer.types import Lang
from reportqa.index.types import PageHit
from reportqa.ingest.records import PageRecord

QUOTE_CHARS = 240
_CJK_RANGE = r"\u3400-\u9fff"


@dataclass
class Source:
    """A retrieved page as the checks see it: its full text (both languages), split into units."""

    page: int
    score: float
    text: str
    units: list[str]
    terms: frozenset[str]
    nums: list[Num]

    @classmethod
    def build(cls, hit: PageHit, record: PageRecord | None) -> Source:
        text = record.text if record else "\n".join(p.text for p in hit.passages)
        return cls(hit.page, hit.score, text, units(text), terms(text), numbers(text))


# ---------------------------------------------------------------- evidence sufficiency

def _informative(n: Num) -> bool:
    """Numbers that identify a fact: not years, not small counts that every chart axis prints."""
    if n.kind != "n" or n.value != n.mantissa:
        return True
    if n.value != int(n.value):
        return True
    return n.value >= 100 and not 1900 <= n.value <= 2100


def coverage(question: str, sources: list[Source]) -> float:
    """Share of the question's content terms and numbers found on the best single retrieved page. Lexical in both
    languages (pages carry English and Chinese), so it also works for a Chinese question about an English chart."""
    q_terms, q_nums = terms(question), numbers(question)
    total = len(q_terms) + len(q_nums)
    if not total or not sources:
        return 0.0
    return max((len(q_terms & s.terms) + sum(number_on(n, s.nums) for n in q_nums)) / total for s in sources)


# ---------------------------------------------------------------- prompt context

_QUANT = re.compile(r"\b(how (much|many|big|large|fast|long)|what (share|percent|percentage|number|amount|proportion)"
                    r"|growth|rate|revenue|cost|price|number of)\b"
                    r"|多少|几|比例|百分比|份额|增长|规模|数量|金额|成本|收入", re.I)


def _unit_score(q_terms: frozenset[str], wants_number: bool, unit: str) -> float:
    ut = terms(unit)
    if not ut:
        return 0.0  # axis values, stray digits
    hit = len(q_terms & ut) / max(len(q_terms), 1)
    if wants_number and any(_informative(n) for n in numbers(unit)):
        hit += 0.25
    return hit / (1 + est_tokens(unit) / 120)  # a long unit must earn its place in the budget


def select_context(question: str, sources: list[Source], budget: int) -> list[tuple[int, list[str]]]:
    """The sentences of the retrieved pages that matter for the question, within a token budget: each page's title
    (its first unit: slide titles state the slide's claim), then the best-overlapping units of every page, better
    ranked pages first. Returns [(page, units in page order)] in retrieval order; pages left without units are left
    out."""
    q_terms, wants_number = terms(question), bool(_QUANT.search(question))
    picked: dict[int, set[int]] = {s.page: set() for s in sources}
    cands = []
    for rank, s in enumerate(sources):
        for i, u in enumerate(s.units):
            score = _unit_score(q_terms, wants_number, u)
            if i == 0 and rank < 2:
                score += 0.5  # the titles of the two best pages, even without overlap
            if score > 0:
                cands.append((score * (1 - 0.08 * rank), s.page, i, u))
    used = 0
    for _score, page, i, u in sorted(cands, key=lambda c: -c[0]):
        cost = est_tokens(u) + 2
        if used + cost > budget:
            continue
        picked[page].add(i)
        used += cost
    by_page = {s.page: s for s in sources}
    return [(page, [by_page[page].units[i] for i in sorted(idx)]) for page, idx in picked.items() if idx]


def format_context(context: list[tuple[int, list[str]]]) -> str:
    return "\n".join(f"[p. {page}] " + " / ".join(us) for page, us in context)


# ---------------------------------------------------------------- parsing the model's answer

# Bracketed or parenthesised page references in any format a model tends to produce: [p. 5], [pp. 5, 7], [5],
# (page 5), (p.5), [第5页], （第5页）, [Page 5-6].
_CITE = re.compile(
    r"\s*[\[【(（]\s*(?:(?:pp?|pages?|pg)\.?\s*|第\s*)?(?P<nums>\d{1,4}(?:\s*(?:[,，、;]|and|-|–)\s*(?:pp?\.?\s*)?\d{1,4})*)"
    r"\s*(?:页)?\s*[\]】)）]", re.I)
# Page references written into the sentence itself: "on page 5", "第5页".
_INLINE_PAGE = re.compile(r"(?:\bpages?\s+|\bp\.\s*|第\s*)(\d{1,4})\s*页?", re.I)
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\u4e00-\u9fff\"“(])|(?<=[。！？])|\n+")
_REFUSAL = re.compile(
    r"NOT IN (THE )?REPORT|not (mentioned|provided|specified|stated|covered|included|available|found) in|"
    r"(does not|doesn't|do not|don't) (contain|mention|provide|include|say|specify|state|cover|give|have)|"
    r"\bno (information|data|mention|details?)\b|\b(I )?(don't|do not) know\b|cannot (find|answer|determine)|"
    r"unable to (find|answer|determine)|"
    r"没有(提到|提及|相关|找到|包含|给出|说明|具体|关于)|未(提及|提到|包含|说明|给出|找到)|无法(回答|确定|找到|得知)|"
    r"不知道|不清楚|并未(提及|提到)", re.I)


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


def split_answer(text: str) -> list[Sentence]:
    """Sentences with their citations. A citation that follows the sentence end ("... users. [p. 5]") belongs to
    the sentence before it."""
    out: list[Sentence] = []
    for piece in _SENT_SPLIT.split(text.strip()):
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
        out.append(Sentence(body, cited, [int(x) for x in _INLINE_PAGE.findall(body)], end))
    return out


# ---------------------------------------------------------------- checking

@dataclass
class Support:
    ok: bool
    score: float
    covered: frozenset[int]  # indexes of the sentence's numbers found on the page


def _fact_numbers(s: Sentence) -> list[Num]:
    text = _INLINE_PAGE.sub(" ", s.text)
    return numbers(text)


def support(s: Sentence, src: Source) -> Support:
    """Does the page say what the sentence says? Content-term overlap in either language, or distinctive numbers
    in common (a Chinese sentence about an English-only chart shares its figures and names, few words)."""
    st = terms(s.text)
    nums = _fact_numbers(s)
    covered = frozenset(i for i, n in enumerate(nums) if number_on(n, src.nums))
    matched = len(st & src.terms)
    frac = matched / len(st) if st else 0.0
    strong_nums = sum(1 for i in covered if _informative(nums[i]))
    # Chinese sentences are counted in bigrams, many of which straddle word boundaries: a lower share suffices.
    need = 0.25 if cjk_count(s.text) > len(s.text) / 3 else 0.34
    ok = frac >= need or matched >= 4 or (strong_nums and (matched >= 1 or frac >= 0.1)) or strong_nums >= 2
    return Support(ok, frac + 0.3 * len(covered) + 0.2 * strong_nums, covered)


def quote(s: Sentence, src: Source) -> str:
    """The unit of the page that best supports the sentence, as the citation's quote."""
    st, nums = terms(s.text), _fact_numbers(s)

    def score(u: str) -> float:
        return len(st & terms(u)) + 2 * sum(number_on(n, numbers(u)) for n in nums) - est_tokens(u) / 200
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
    dropped: list[tuple[str, str]]  # (sentence, reason), for logs and tests
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


def ground(answer: str, sources: list[Source], context_pages: list[int]) -> Grounded:
    """Keep each sentence that the retrieved pages support, citing the pages that do; drop citations of pages that
    were not retrieved or do not support it; attach citations to uncited sentences; withdraw sentences with a
    number that no retrieved page states."""
    by_page = {s.page: s for s in sources}
    kept, dropped, refusal = [], [], False
    for s in split_answer(answer):
        if is_refusal(s.text):
            refusal = True
            kept.append(Checked(s, [], {}))
            continue
        pointed = _resolve(s.cited, s.inline, by_page, context_pages)
        if any(p not in by_page for p in s.inline):
            dropped.append((s.text, "names a page that was not retrieved"))
            continue
        if not terms(s.text) and not _fact_numbers(s):
            kept.append(Checked(s, [], {}))  # no content ("Yes.", a lead-in): nothing to cite
            continue
        sup = {p: support(s, src) for p, src in by_page.items()}
        valid = [p for p in pointed if p in sup and sup[p].ok]
        others = sorted((p for p in sup if sup[p].ok and p not in valid), key=lambda p: -sup[p].score)
        nums = _fact_numbers(s)
        pages = list(valid) or others[:1]
        uncovered = set(range(len(nums))) - {i for p in pages for i in sup[p].covered}
        for p in others:  # numbers from a second page (a comparison across slides)
            if not uncovered:
                break
            if p not in pages and sup[p].covered & uncovered:
                pages.append(p)
                uncovered -= sup[p].covered
        if not pages:
            dropped.append((s.text, "no retrieved page supports it"))
        elif uncovered:
            dropped.append((s.text, "number not on any retrieved page: " + ", ".join(nums[i].text for i in uncovered)))
        else:
            kept.append(Checked(s, pages, {p: quote(s, by_page[p]) for p in pages}))
    return Grounded(kept, dropped, refusal)


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

def sentence_in_lang(text: str, lang: Lang) -> bool:
    """Names and figures may stay as written; a whole English clause in a Chinese answer (or Chinese words in an
    English one) may not."""
    if lang == "en":
        return cjk_count(text) <= 2
    return detect_lang(text) == "zh"


def in_lang(kept: list[Checked], lang: Lang) -> bool:
    return all(sentence_in_lang(c.sentence.text, lang) for c in kept)


def fallback_answer(question: str, lang: Lang, sources: list[Source], hints: list[Checked]) -> list[Checked]:
    """Sentences taken from the evidence itself, in the asker's language, for when the model keeps answering in the
    wrong one: for each page the model relied on (else the best pages), the unit in `lang` that best matches the
    model's sentence and the question."""
    pages = [p for c in hints for p in c.pages] or [s.page for s in sources[:2]]
    by_page = {s.page: s for s in sources}
    out: list[Checked] = []
    for page in dict.fromkeys(pages):
        src = by_page.get(page)
        if not src:
            continue
        probe = " ".join([question, *(c.sentence.text for c in hints if page in c.pages)])
        pt, pn = terms(probe), numbers(probe)
        cands = [u for u in src.units if sentence_in_lang(u, lang) and terms(u)]
        if not cands:
            continue
        best = max(cands, key=lambda u: len(pt & terms(u)) + 2 * sum(number_on(n, numbers(u)) for n in pn))
        if not (pt & terms(best)):
            continue
        best = best.rstrip("。.!！?？ ")
        if len(best) > QUOTE_CHARS:
            best = best[:QUOTE_CHARS - 1] + "…"
        out.append(Checked(Sentence(best, [page]), [page], {page: best}))
        if len(out) == 2:
            break
    return out


def page_list(pages: list[int], lang: Lang, fmt: tuple[str, str]) -> str:
    item, sep = fmt
    return sep.join(item.format(n=p) for p in pages) if pages else ("—" if lang == "en" else "无")

