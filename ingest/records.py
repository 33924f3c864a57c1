"""The ingest stage's output types: what every later stage may rely on."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from reportqa.errors import UserError

PageKind = Literal["content", "divider", "outline"]


class IngestError(UserError):
    """A source that cannot be ingested; the message is short and meant for the user."""


@dataclass(frozen=True)
class PageRecord:
    page: int  # printed page number (text export) or 1-based physical page (PDF)
    en: str
    zh: str
    section: str
    kind: PageKind = "content"
    label: str | None = None  # printed page label, when a PDF carries one

    @property
    def text(self) -> str:
        return "\n".join(t for t in (self.en, self.zh) if t)

    def to_json(self) -> dict:
        return {**asdict(self), "text": self.text}


@dataclass(frozen=True)
class Chunk:
    id: str  # stable: "p{page}-c{n}"
    page: int
    section: str
    kind: PageKind
    en: str
    zh: str

    @property
    def text(self) -> str:
        return "\n".join(t for t in (self.en, self.zh) if t)
