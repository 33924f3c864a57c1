"""The index stage's output types, shared by the answer engine, the eval and the UI."""

from __future__ import annotations

from dataclasses import dataclass, field

from reportqa.errors import UserError


class IndexUnavailable(UserError):
    """Index missing, corrupt or unreachable; the message is short and meant for the user."""


@dataclass(frozen=True)
class Passage:
    chunk_id: str
    page: int
    text: str
    score: float


@dataclass
class PageHit:
    page: int
    score: float
    section: str
    kind: str
    passages: list[Passage] = field(default_factory=list)  # best first
