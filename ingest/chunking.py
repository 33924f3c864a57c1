"""Page-bound chunks (placeholder: one chunk per page; split with overlap follows)."""

from __future__ import annotations

from reportqa.ingest.records import Chunk, PageRecord


def chunk_pages(pages: list[PageRecord], settings) -> list[Chunk]:
    return [Chunk(f"p{p.page}-c0", p.page, p.section, p.kind, p.en, p.zh) for p in pages]
