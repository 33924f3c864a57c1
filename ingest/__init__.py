"""Ingest stage: a report source (bilingual text export or PDF) -> cleaned page records -> page-bound chunks."""

from reportqa.ingest.chunking import chunk_pages
from reportqa.ingest.loader import load_pages
from reportqa.ingest.records import Chunk, IngestError, PageRecord

__all__ = ["Chunk", "IngestError", "PageRecord", "chunk_pages", "load_pages"]
