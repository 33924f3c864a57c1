"""The answer stage's output types: what the CLI, the UI and the eval consume."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Literal

from reportqa.errors import UserError

Lang = Literal["en", "zh"]


class Rule(StrEnum):
    """The answer stage's checks that withdraw, repair, re-ask or refuse (docs/answer.md has the table)."""

    # before the model is asked
    LOW_COVERAGE_REFUSAL = "low_coverage_refusal"
    UNKNOWN_NAME_REFUSAL = "unknown_name_refusal"
    FIGURE_NOT_IN_REPORT = "figure_not_in_report"
    YEAR_NOT_ON_PAGES = "year_not_on_pages"
    EXCERPT_WIDENED = "excerpt_widened"
    # each sentence of the model's answer, in this order
    QUESTION_NOT_ANSWER = "question_not_answer"
    PAGE_NOT_RETRIEVED = "page_not_retrieved"
    RESTATEMENT = "restatement"
    OFF_QUESTION = "off_question"
    NUMBER_REPAIRED = "number_repaired"
    SENTENCE_UNSUPPORTED = "sentence_unsupported"
    MULTIPLE_FOR_AMOUNT = "multiple_for_amount"
    YEARS_FOR_DURATION = "years_for_duration"
    NUMBER_NOT_ON_PAGE = "number_not_on_page"
    NAME_NOT_ON_PAGE = "name_not_on_page"
    PERIOD_NOT_ON_PAGE = "period_not_on_page"
    CITATION_REPLACED = "citation_replaced"
    CURRENCY_REPAIRED = "currency_repaired"
    # the answer as a whole
    OFF_TOPIC = "off_topic"
    WRONG_LANGUAGE_RETRY = "wrong_language_retry"
    MODEL_REFUSAL_RETRY = "model_refusal_retry"
    WITHDRAWN_ANSWER_RETRY = "withdrawn_answer_retry"
    EVIDENCE_QUOTE_FALLBACK = "evidence_quote_fallback"
    # a question of several questions, when the parts' answers are joined
    REPEATED_PART = "repeated_part"


class Verdict(StrEnum):
    DROPPED = "dropped"  # the sentence is left out
    REPAIRED = "repaired"  # a figure or citation is rewritten
    RETRIED = "retried"  # the model is asked again
    REFUSED = "refused"  # the engine refuses without asking the model
    WITHDRAWN = "withdrawn"  # the answer (or a sentence's claim to be one) is taken back
    REPLACED = "replaced"  # the model's words give way to the report's
    WIDENED = "widened"  # the excerpts are chosen again on a larger budget
    ADVISORY = "advisory"  # the rule fired but is set not to act (`Settings.advisory_rules`)


@dataclass(frozen=True)
class Check:
    """One firing of a rule on an answer."""

    rule: Rule
    verdict: Verdict
    subject: str  # the sentence or figure concerned (the question, for a rule on the whole answer)
    detail: str = ""


def parse_rules(spec: str) -> frozenset[Rule]:
    """Comma-separated rule names (the form of `Settings.advisory_rules`); an unknown name is the user's error."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in Rule._value2member_map_]
    if unknown:
        raise UserError(f"advisory_rules (REPORTQA_ADVISORY_RULES): unknown rule {', '.join(map(repr, unknown))}; "
                        f"the rules are: {', '.join(Rule)}")
    return frozenset(map(Rule, names))


@dataclass(frozen=True)
class Citation:
    page: int
    quote: str  # the passage on that page that supports the sentence


@dataclass
class Answer:
    question: str  # as asked
    standalone_question: str  # after follow-up rewriting
    answer: str
    lang: Lang
    refused: bool
    citations: list[Citation] = field(default_factory=list)
    retrieved: list[tuple[int, float]] = field(default_factory=list)  # (page, score), best first
    first_token_s: float | None = None
    total_s: float | None = None
    error: str | None = None  # set when the LLM failed but pages could still be shown
    # refused because the model's answer did not hold up on the pages, not because the evidence says the report lacks it
    unverified: bool = False
    context: str = ""  # the report excerpts the model read ("" when it was not asked), for diagnosis and the eval
    checks: list[Check] = field(default_factory=list)  # every rule that fired, in order, over all attempts
    parts: list[str] = field(default_factory=list)  # a question of several, as its parts were answered, each alone
    # a follow-up no rule could write out: the earlier (standalone question, answer) it leans on, shown to the model
    # as the conversation before it
    leans_on: tuple[str, str] | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        d["retrieved"] = [{"page": p, "score": round(s, 4)} for p, s in self.retrieved]
        d["checks"] = [{k: str(v) for k, v in asdict(c).items()} for c in self.checks]
        return d


# Stream events: evidence first (pages known before any token), then tokens, then the checked final answer.
@dataclass(frozen=True)
class Evidence:
    pages: list[int]


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Final:
    answer: Answer


Event = Evidence | Token | Final
