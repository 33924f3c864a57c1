"""Grading of one eval answer and aggregation into metrics. The exact definitions are documented in docs/eval.md;
keep the two in step.

Numbers are parsed and compared by the answer stage's own normalizer (reportqa.answer.text), so the eval and the
engine's grounding check agree on what "the same number" is: "800MM" = "800 million" = "8亿", "$212B" = "2120亿",
and a number matches when it agrees to the precision it was written with ("8亿" matches 780MM).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

# the answer stage's own tests, so the eval counts the same statements and follow-ups
from reportqa.answer.followup import is_statement, needs_rewrite
from reportqa.answer.text import Num, number_on, numbers
from reportqa.answer.text import detect_lang as _detect_lang

__all__ = ["is_statement"]  # re-exported: the eval's statement count uses it

# ---------------------------------------------------------------------------------------------------------------
# numbers

# Citation markers the answer text may carry ("[p. 12]", "[12, 13]", "（第12页）"); their digits are not claims.
_PAGE_REF = r"(?:pp?\.?|pages?|第)?\s*\d+\s*(?:页|頁)?"
_CITATION = re.compile(
    rf"\[\s*{_PAGE_REF}(?:\s*[,，、;\-–]\s*{_PAGE_REF})*\s*\]"
    rf"|【\s*{_PAGE_REF}(?:\s*[,，、;\-–]\s*{_PAGE_REF})*\s*】"
    rf"|[(（]\s*(?:pp?\.|pages?|第)\s*\d+\s*(?:页|頁)?(?:\s*[,，、;\-–]\s*{_PAGE_REF})*\s*[)）]",
    re.IGNORECASE,
)


def normalize_text(text: str) -> str:
    """NFKC (full-width digits, ％, ，) and case folding: the form every comparison here works on."""
    return unicodedata.normalize("NFKC", text).casefold()


def strip_citations(text: str) -> str:
    return _CITATION.sub(" ", text)


def _plain(n: Num) -> bool:
    return n.kind == "n" and n.value == n.mantissa


def is_trivial(n: Num) -> bool:
    """A bare small integer (list numbering, "top 3", "GPT-4"): pages often spell these out, so they are not checked."""
    return _plain(n) and n.tol >= 0.5 and n.value <= 10


def is_year(n: Num) -> bool:
    return _plain(n) and n.tol == 0.5 and 1900 <= n.value <= 2100


def same_number(a: Num, b: Num) -> bool:
    """Equal to the precision of either side: "2.1T" ~ "$2,059B" and "$2,059B" ~ "2.1T"."""
    return number_on(a, [b]) or number_on(b, [a])


# a page named in the sentence ("According to page 311, …", "第20页显示…") is a reference, not a figure
_PAGE_MENTION = re.compile(r"\b(?:pages?|pp?\.)\s*\d+|第\s*\d+\s*页", re.I)


def claimed_numbers(answer: str) -> list[Num]:
    """The numbers an answer asserts: citation markers, page mentions and trivial small integers left out."""
    return [n for n in numbers(_PAGE_MENTION.sub(" ", normalize_text(strip_citations(answer)))) if not is_trivial(n)]


# ---------------------------------------------------------------------------------------------------------------
# text matching

_TOKEN = re.compile(r"[0-9a-z]+|[^\W_]")  # Latin words and digit runs whole, every other letter (CJK) on its own


def _tokens(normalized: str) -> list[str]:
    return _TOKEN.findall(normalized)


def _without_numbers(text: str, nums: Iterable[Num]) -> str:
    """text with each parsed number blanked out: its first occurrence not already blanked and not inside a longer
    number (the parser may list a number more than once, e.g. "4/25" also as the year 2025)."""
    chars = list(text)
    for n in nums:
        at = text.find(n.text)
        while at >= 0 and (chars[at] == "\0" or (at and text[at - 1].isdigit())
                           or text[at + len(n.text):at + len(n.text) + 1].isdigit()):
            at = text.find(n.text, at + 1)
        if at >= 0:
            chars[at:at + len(n.text)] = "\0" * len(n.text)
    return "".join(chars).replace("\0", " ")


def _contains(hay: Sequence[str], needle: Sequence[str]) -> bool:
    """needle occurs as whole tokens in hay; its last token may carry an English plural ending ("agent" ~ "agents")."""
    if not needle:
        return True
    *head, last = needle
    for i in range(len(hay) - len(needle) + 1):
        if list(hay[i:i + len(head)]) == head and hay[i + len(head)] in (last, last + "s", last + "es"):
            return True
    return False


def phrase_in(alternative: str, text: str) -> bool:
    """Does text say `alternative`? Case, spacing and punctuation are ignored, words match whole, and numbers match by
    value (see same_number): every number of the alternative must occur in text, and the alternative's remaining
    words must occur in text's remaining words."""
    alt, hay = normalize_text(alternative), normalize_text(strip_citations(text))
    alt_numbers = numbers(alt)
    if not alt_numbers:
        return _contains(_tokens(hay), _tokens(alt))
    hay_numbers = numbers(hay)
    if not all(any(same_number(a, h) for h in hay_numbers) for a in alt_numbers):
        return False
    return _contains(_tokens(_without_numbers(hay, hay_numbers)), _tokens(_without_numbers(alt, alt_numbers)))


def groups_matched(must_include: Sequence[Sequence[str]], text: str) -> list[bool]:
    return [any(phrase_in(alt, text) for alt in group) for group in must_include]


# ---------------------------------------------------------------------------------------------------------------
# language

_NAME = re.compile(r"\b[a-z0-9]*[A-Z][A-Za-z0-9]*[A-Z][A-Za-z0-9]*\b")  # two capitals: ChatGPT, NVIDIA, AI, DeepSeek
_LETTER = re.compile(r"[^\W\d_]")


def answer_lang(text: str) -> str | None:
    """'zh', 'en', or None when nothing language-bearing is left (e.g. "$212B [p. 4]"). Citation markers, numbers
    and names with two capitals (ChatGPT, NVIDIA, AI) are not evidence, so a Chinese answer may quote "ChatGPT" and
    still count as Chinese; the rest is decided by the answer stage's CJK-share detector."""
    rest = strip_citations(unicodedata.normalize("NFKC", text))
    rest = _NAME.sub(" ", _without_numbers(rest, numbers(rest)))
    return _detect_lang(rest) if _LETTER.search(rest) else None


# ---------------------------------------------------------------------------------------------------------------
# grading one item


def rank_of_gold(retrieved: Sequence[int], gold: Iterable[int]) -> int | None:
    """1-based rank of the first gold page in the ranked page list (any gold page counts)."""
    gold = set(gold)
    return next((i for i, p in enumerate(retrieved, 1) if p in gold), None)


def grade_retrieval(retrieved: Sequence[int], gold: Sequence[int], k: int) -> dict:
    if not gold:  # unanswerable: nothing to find
        return {}
    rank = rank_of_gold(retrieved[:k], gold)
    return {"rank": rank, "rr": 1.0 / rank if rank else 0.0}


def page_supports(page: int, page_text: str, gold: Sequence[int], must_include: Sequence[Sequence[str]],
                  claimed: Sequence[Num]) -> bool:
    """A cited page supports the answer if it is a gold page, or it says one of the must_include alternatives, or it
    prints one of the answer's numbers other than years."""
    if page in gold:
        return True
    if any(phrase_in(alt, page_text) for group in must_include for alt in group):
        return True
    page_numbers = numbers(normalize_text(page_text), spelled=True)
    return any(number_on(n, page_numbers) for n in claimed if not is_year(n))


def grade_answer(*, answer: str, refused: bool, citations: Sequence[int], lang: str, gold: Sequence[int],
                 must_include: Sequence[Sequence[str]], page_text: Callable[[int], str],
                 context: str | None = None) -> dict:
    """Grades of one generated answer; None where a metric does not apply to it. citations: cited pages, in order;
    context: the excerpts the model read ("" if it was not asked; None if not recorded)."""
    answerable = bool(gold)
    matched = groups_matched(must_include, answer) if answerable and not refused else []
    claimed = claimed_numbers(answer) if not refused else []
    cited = list(dict.fromkeys(citations))
    texts = {p: page_text(p) for p in cited}
    supporting = [p for p in cited if page_supports(p, texts[p], gold, must_include, claimed)]
    cited_numbers = [n for p in cited for n in numbers(normalize_text(texts[p]), spelled=True)]
    unsupported = [n.text for n in claimed if not number_on(n, cited_numbers)]
    detected = answer_lang(answer)
    return {
        "answer_correct": (not refused and all(matched)) if answerable else None,
        # did the facts reach the model? Separates losses of retrieval and excerpt selection from the model's own
        "context_recall": all(groups_matched(must_include, context)) if answerable and context is not None else None,
        "groups_matched": matched,
        "refusal_correct": refused if not answerable else None,
        "false_refusal": refused if answerable else None,
        "citation_precision": len(supporting) / len(cited) if answerable and not refused and cited else None,
        "supporting_pages": supporting,
        "cited": bool(cited) if answerable and not refused else None,
        "number_faithful": not unsupported if claimed else None,
        "unsupported_numbers": unsupported,
        "detected_lang": detected,
        "language_match": detected in (None, lang),
    }


def removed_kind(sentence: str, *, answer: str, refused: bool, gold: Sequence[int],
                 must_include: Sequence[Sequence[str]], page_text: Callable[[int], str]) -> str | None:
    """What a sentence a rule left out of the answer was, by the item's gold: "fact" when it held a required fact
    that the answer as given lacks (harm), "claim" when it answered an unanswerable question or stated a figure that
    no gold page prints (help: an unsupported claim removed), None otherwise (it said something the pages support,
    or nothing the grades can tell)."""
    if not gold:
        return "claim"
    had = groups_matched(must_include, answer) if not refused else [False] * len(must_include)
    if any(said and not kept for said, kept in zip(groups_matched(must_include, sentence), had, strict=True)):
        return "fact"
    on_gold = [n for p in gold for n in numbers(normalize_text(page_text(p)), spelled=True)]
    if any(not is_year(n) and not number_on(n, on_gold) for n in claimed_numbers(sentence)):
        return "claim"
    return None


def failure_grades(gold: Sequence[int]) -> dict:
    """Grades of a generation that raised: a wrong answer, not a refusal, no language match."""
    answerable = bool(gold)
    return {"answer_correct": False if answerable else None, "refusal_correct": None if answerable else False,
            "language_match": False}


# ---------------------------------------------------------------------------------------------------------------
# aggregation

# metric name -> the per-item grade it averages (records without that grade, or with None, are left out)
RATE_METRICS = {
    "answer_correct": "answer_correct",
    "context_recall": "context_recall",
    "citation_precision": "citation_precision",
    "cited_rate": "cited",
    "number_faithfulness": "number_faithful",
    "refusal_accuracy": "refusal_correct",
    "false_refusal_rate": "false_refusal",
    "language_match": "language_match",
}
HIT_KS = (1, 3, 5, 10)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile, q in 0..100; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(records: Sequence[dict], k: int) -> dict:
    """Metrics of one group of graded records (see docs/eval.md). Errored records carry failure_grades and are left
    out of the latency figures."""
    out: dict = {"n": len(records), "errors": sum(1 for r in records if r.get("error"))}
    graded = [r for r in records if r["gold"]]
    ranks = [r["grades"].get("rank") for r in graded]
    out["n_answerable"] = len(graded)
    for hk in HIT_KS:
        if hk <= k:
            out[f"hit@{hk}"] = _mean([1.0 if rk and rk <= hk else 0.0 for rk in ranks])
    out["mrr"] = _mean([r["grades"].get("rr", 0.0) for r in graded])
    out["hit_curve"] = [_mean([1.0 if rk and rk <= i else 0.0 for rk in ranks]) for i in range(1, k + 1)]
    support = {name: len(graded) for name in out if name.startswith("hit@") or name == "mrr"}
    generated = [r for r in records if r.get("mode") == "full"]
    for name, grade in RATE_METRICS.items():
        values = [float(r["grades"][grade]) for r in generated if r["grades"].get(grade) is not None]
        out[name] = _mean(values)
        support[name] = len(values)
    out["support"] = support
    for field, name in (("latency_s", "latency"), ("first_token_s", "first_token")):
        values = [r[field] for r in generated if r.get(field) is not None and not r.get("error")]
        out[f"{name}_p50"] = percentile(values, 50)
        out[f"{name}_p95"] = percentile(values, 95)
        support[f"{name}_p50"] = support[f"{name}_p95"] = len(values)
    return out


# item groups across kinds: multi-fact questions, and the graded turns of conversations (follow-ups)
TAGS = {"multi-fact": lambda r: bool(r.get("multi")), "follow-up": lambda r: "followup" in r}


def aggregate(records: Sequence[dict], k: int) -> dict:
    """Overall, per language, per kind, per language x kind, per tag (TAGS; only tags some record has) and, for a run
    of several QA files (a split), per file."""
    def groups(key: Callable[[dict], str]) -> dict:
        keys = sorted({key(r) for r in records})
        return {g: summarize([r for r in records if key(r) == g], k) for g in keys}

    tagged = {tag: [r for r in records if has(r)] for tag, has in TAGS.items()}
    return {
        "overall": summarize(records, k),
        "by_lang": groups(lambda r: r["lang"]),
        "by_kind": groups(lambda r: r["kind"]),
        "by_lang_kind": groups(lambda r: f"{r['lang']}/{r['kind']}"),
        "by_tag": {tag: summarize(recs, k) for tag, recs in tagged.items() if recs},
        "by_file": groups(lambda r: r.get("file", "")) if len({r.get("file") for r in records}) > 1 else {},
    }


def outcome_right(rec: dict) -> bool:
    """The item's one verdict: answered right (answerable) or refused (unanswerable)."""
    g = rec["grades"]
    return bool(g.get("answer_correct") if rec["gold"] else g.get("refusal_correct"))


# ---------------------------------------------------------------------------------------------------------------
# conversations and rules

COMPARED = ("answer_correct", "refusal_accuracy", "hit@5")


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


Follows = Callable[[str, Sequence[tuple[str, str]]], bool]  # is the question taken for a follow-up after that history?


def conversations(records: Sequence[dict], k: int, follows: Follows = needs_rewrite) -> dict:
    """Conversation items against their standalone twins (overall, by language pair history -> follow-up, by kind of
    follow-up; only pairs whose twin is in the run), the follow-up turns the engine rewrote and those rewrites that
    state instead of asking (is_statement), and the standalone questions (no history, or a new topic) it rewrote."""
    by_id = {r["id"]: r for r in records}
    conv = [r for r in records if "followup" in r]

    def compare(group: list[dict]) -> dict:
        pairs = [(r, by_id[r["twin"]]) for r in group if r.get("twin") in by_id]
        side = [summarize([p[i] for p in pairs], k) for i in (0, 1)]
        return {"n": len(pairs), **{f"{name}_{m}": s.get(m) for name, s in zip(("followup", "twin"), side,
                                                                               strict=True) for m in COMPARED}}

    def grouped(key: Callable[[dict], str]) -> dict:
        return {g: compare([r for r in conv if key(r) == g]) for g in sorted({key(r) for r in conv})}

    turns = []  # (id, asked, standalone, lang) of every follow-up turn: the graded one and earlier ones but the first
    for r in conv:
        turns += [(r["id"], t["question"], t.get("standalone_question"), _detect_lang(t["question"]))
                  for t in r.get("history", [])[1:]]
        turns.append((r["id"], r["question"], r.get("standalone_question"), r["lang"]))
    rewritten = [t for t in turns if t[2] is not None and not _same_text(t[1], t[2])]
    standalone = [r for r in records if r.get("standalone_question") is not None
                  and r.get("followup") in (None, "new-topic")]
    return {
        "overall": compare(conv),
        "by_pair": grouped(lambda r: f"{r['history_lang']}→{r['lang']}"),
        "by_followup": grouped(lambda r: r["followup"]),
        "followup_turns": sum(1 for t in turns if t[2] is not None),
        "rewritten": len(rewritten),
        "statements": [{"id": i, "asked": a, "standalone": s} for i, a, s, lang in rewritten if is_statement(s, lang)],
        "standalone_items": len(standalone),
        "standalone_rewritten": [{"id": r["id"], "asked": r["question"], "standalone": r["standalone_question"]}
                                 for r in standalone if not _same_text(r["question"], r["standalone_question"])],
        "after_another": after_another(records, follows),
    }


def after_another(records: Sequence[dict], follows: Follows = needs_rewrite) -> dict:
    """Every standalone question of the run asked, without the model, after the one before it in the run: the ids of
    those the engine would take for a follow-up (`follows`: the engine's FollowUps.follows in a run, else
    answer.followup.needs_rewrite, the same without the report's lexicon). A new-topic probe over the whole
    set, where the conversation items hold only a few new topics."""
    solo = [r for r in records if not r.get("history") and r.get("kind")]
    flagged = [{"id": r["id"], "asked": r["question"], "after": p["question"]}
               for p, r in zip(solo, solo[1:], strict=False) if follows(r["question"], [(p["question"], "")])]
    return {"n": max(len(solo) - 1, 0), "flagged": flagged}


def turn_probes(path: Path, follows: Follows = needs_rewrite) -> dict:
    """Pairs of turns labelled by whether the second needs the first (eval/turns-dev.jsonl, docs/qa-set.md), decided
    without the model (`follows`, as in after_another): the standalone questions taken for follow-ups and the
    follow-ups missed."""
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    wrong = [i for i in items if follows(i["question"], [(i["previous"], "")]) != i["needs_context"]]
    return {"file": path.name, "standalone": sum(not i["needs_context"] for i in items),
            "followups": sum(bool(i["needs_context"]) for i in items),
            "taken": [i["id"] for i in wrong if not i["needs_context"]],
            "missed": [i["id"] for i in wrong if i["needs_context"]]}


def _rule_row() -> dict:
    return {"fired": 0, "verdicts": {}, "claims_removed": [], "facts_removed": []}


def rule_table(records: Sequence[dict], ablation: dict[str, dict] | None = None) -> dict[str, dict]:
    """rule -> fired (items on any of whose answers it fired), verdicts (firings by verdict) and, from an ablation
    (eval/runner.py), help and harm (item ids) and the prompts that needed the model."""
    table: dict[str, dict] = {}
    for rec in records:
        checks = [*rec.get("checks", []), *(c for t in rec.get("history", []) for c in t.get("checks", []))]
        for c in checks:
            row = table.setdefault(c["rule"], _rule_row())
            row["verdicts"][c["verdict"]] = row["verdicts"].get(c["verdict"], 0) + 1
        for rule in dict.fromkeys(c["rule"] for c in checks):
            table[rule]["fired"] += 1
        for removed in rec.get("grades", {}).get("removed", []):
            ids = table[removed["rule"]][f"{removed['kind']}s_removed"]
            if rec["id"] not in ids:
                ids.append(rec["id"])
    for rule, measured in (ablation or {}).items():
        table.setdefault(rule, _rule_row()).update(
            help=measured["help"], harm=measured["harm"], model_calls=measured["model_calls"])
    return dict(sorted(table.items()))

