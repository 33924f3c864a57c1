"""The answer stage's output types: what the CLI, the UI and the eval consume."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Lang = Literal["en", "zh"]


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
    context: str = ""  # the report excerpts the model read ("" when it was not asked), for diagnosis and the eval

    def to_json(self) -> dict:
        d = asdict(self)
        d["retrieved"] = [{"page": p, "score": round(s, 4)} for p, s in self.retrieved]
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
