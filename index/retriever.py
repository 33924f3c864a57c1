"""`open_retriever`: hybrid dense (Chroma) + keyword (BM25) retrieval over the current build, aggregated to pages."""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
import time
from pathlib import Path

import numpy as np

from reportqa.index import store
from reportqa.index.embed import embedder_identity, get_embedder
from reportqa.index.fusion import pages_from_chunks, rrf, weighted, with_continuation
from reportqa.index.keywords import BM25, tokenize
from reportqa.index.types import IndexUnavailable, PageHit, Passage
from reportqa.ingest.records import PageRecord
from reportqa.settings import Settings

log = logging.getLogger(__name__)


_ELLIPSIS = ("…", "...")


def _title_topic(page: PageRecord) -> str | None:
    """The topic of a slide title "Topic = Claim" (first line), lower-cased, when it has two words or more."""
    first = (page.en or page.zh).split("\n", 1)[0].strip()
    if "=" not in first:
        return None
    topic = " ".join(first.split("=", 1)[0].strip(" .…").lower().split())
    return topic if len(topic.split()) >= 2 else None


def continued_slides(pages: list[PageRecord]) -> dict[int, int]:
    """Page -> the other half of its slide, for a title continued on the next page: "AI Adoption @ USA Firms =
    Rising…" then "…AI Adoption @ USA Firms = +21% Q/Q @ ~7% of Companies". The report splits a story over such
    pairs (a chart, then its figures), and a question matched to one half often needs the other."""
    by_number = {p.page: p for p in pages}
    out: dict[int, int] = {}
    for p in pages:
        nxt = by_number.get(p.page + 1)
        if nxt is None or not (nxt.en or nxt.zh).lstrip().startswith(_ELLIPSIS):
            continue
        topic = _title_topic(p)
        if topic is not None and topic == _title_topic(nxt):
            out.setdefault(p.page, nxt.page)
            out.setdefault(nxt.page, p.page)
    return out


class Retriever:
    """Read-only after construction, so one instance can serve many threads (the embedder serialises itself)."""

    def __init__(self, settings: Settings, build_dir: Path, manifest: dict):
        self.settings = settings
        self.build_dir = build_dir
        self.manifest = manifest
        self._lock = threading.Lock()
        self._next: Retriever | None = None  # the build that replaced this one, once a query here failed
        try:
            pages = [PageRecord(**{k: v for k, v in row.items() if k != "text"})
                     for row in store.read_jsonl(build_dir / store.PAGES)]
            chunks = store.read_jsonl(build_dir / store.CHUNKS)
        except (OSError, ValueError, TypeError) as e:
            raise IndexUnavailable(f"the index at {settings.index_dir} is damaged ({type(e).__name__}); "
                                   f"{store.REBUILD_HINT}") from e
        self._pages = {p.page: p for p in pages}
        self._chunk_ids = [c["id"] for c in chunks]
        self._chunk_row = {cid: i for i, cid in enumerate(self._chunk_ids)}
        self._chunk_page = [c["page"] for c in chunks]
        self._chunk_text = ["\n".join(t for t in (c["en"], c["zh"]) if t) for c in chunks]
        # Rebuilt at open time rather than stored: 0.3 s for this report (loading stored tokens took 0.02 s), and the
        # keyword index then always matches the tokenizer of the running code, without re-embedding anything.
        self._bm25 = BM25([tokenize(t) for t in self._chunk_text])
        # verbatim repeats (the outline page is printed again before every section) are one page for ranking
        self._page_key = {p.page: hashlib.sha1(re.sub(r"\s+", " ", p.text).encode()).hexdigest() for p in pages}
        self._partner = continued_slides(pages)
        self._embedder = get_embedder(settings)
        # the answer engine, the eval and users repeat questions; lru_cache is thread-safe
        self._query_vector = functools.lru_cache(maxsize=512)(self._embedder.get_query_embedding)
        try:
            self._client = store.chroma_client(settings, build_dir)  # an unreadable database fails already here
            self._collection = self._client.get_collection(manifest["store"]["collection"])
            count = self._collection.count()
        except IndexUnavailable:
            raise
        except Exception as e:
            raise IndexUnavailable(f"the vector store of the index is missing or unreadable ({type(e).__name__}); "
                                   f"{store.REBUILD_HINT}") from e
        if count != len(chunks):
            raise IndexUnavailable(f"the vector store holds {count} of {len(chunks)} chunks; {store.REBUILD_HINT}")

    @property
    def pages(self) -> list[int]:
        return self._next.pages if self._next else sorted(self._pages)

    def page(self, n: int) -> PageRecord | None:
        """The full cleaned page record of printed page `n` (of the build that answers now, see `retrieve`)."""
        return self._next.page(n) if self._next else self._pages.get(n)

    def retrieve(self, query: str, k: int | None = None) -> list[PageHit]:
        """The `k` (default settings.top_k) best pages for `query`, each with its matching passages, best first.
        A later ingest replaces this retriever's build and deletes it. Chroma reopens its files lazily, so a query
        on the deleted build can fail ("Failed to get segments"). It then goes to the current build, the same
        report ingested again, and so do later queries and page lookups."""
        if self._next:
            return self._next.retrieve(query, k)
        try:
            return self._retrieve(query, k)
        except IndexUnavailable:
            if (successor := self._successor()) is None:
                raise
            return successor.retrieve(query, k)

    def _successor(self) -> Retriever | None:
        with self._lock:
            if self._next is None:
                current = store.current_build(self.settings)
                if current is None or current == self.build_dir.resolve():
                    return None
                log.info("the index was rebuilt (%s -> %s); answering from the new build", self.build_dir.name,
                         current.name)
                self._next = open_retriever(self.settings)
            return self._next

    def _retrieve(self, query: str, k: int | None) -> list[PageHit]:
        k = k or self.settings.top_k
        if not query.strip() or not self._chunk_ids:
            return []
        t0 = time.perf_counter()
        n = min(len(self._chunk_ids), max(self.settings.retrieval_candidates, 4 * k))
        dense = self._dense(query, n)
        keyword = self._keyword(query, n)
        if self.settings.fusion == "weighted":
            w = self.settings.dense_weight
            fused = weighted([dense, keyword], [w, 1.0 - w])
        else:
            fused = rrf([list(dense), list(keyword)], k=self.settings.rrf_k)
        ranked = pages_from_chunks(
            fused,
            page_of=lambda row: self._chunk_page[row],
            page_weight=lambda page: 1.0 if self._pages[page].kind == "content" else self.settings.divider_weight,
            same_as=self._page_key.__getitem__,
        )
        hits = []
        for page, score, chunks in with_continuation(ranked, k, self._partner):
            record = self._pages[page]
            hits.append(PageHit(page=page, score=score, section=record.section, kind=record.kind, passages=[
                Passage(chunk_id=self._chunk_ids[row], page=page, text=self._chunk_text[row], score=s)
                for row, s in chunks]))
        log.debug("retrieve %.1f ms: %r -> %s", 1000 * (time.perf_counter() - t0), query[:60], [h.page for h in hits])
        return hits

    def _dense(self, query: str, n: int) -> dict[int, float]:
        """Chunk row -> cosine similarity for the `n` nearest chunks, best first."""
        vector = self._query_vector(query)
        try:
            res = self._collection.query(query_embeddings=[vector], n_results=n, include=["distances"])
        except Exception as e:
            raise IndexUnavailable(f"the vector store stopped answering ({type(e).__name__}: {e})") from e
        return {self._chunk_row[cid]: 1.0 - d for cid, d in zip(res["ids"][0], res["distances"][0], strict=True)}

    def _keyword(self, query: str, n: int) -> dict[int, float]:
        """Chunk row -> BM25 score for the `n` best chunks with any matching term, best first."""
        scores = self._bm25.scores(tokenize(query))
        top = np.argsort(-scores, kind="stable")[:n]
        return {int(i): float(scores[i]) for i in top if scores[i] > 0}


def open_retriever(settings: Settings) -> Retriever:
    """The retriever over the current index; IndexUnavailable (with the fix) when there is none or it is broken."""
    if settings.fusion not in ("weighted", "rrf"):
        raise IndexUnavailable(f"unknown fusion {settings.fusion!r} (expected 'weighted' or 'rrf')")
    build_dir = store.current_build(settings)
    if build_dir is None:
        raise IndexUnavailable(f"no index at {settings.index_dir}; run `reportqa ingest` first")
    manifest = store.read_manifest(build_dir)
    if manifest is None:
        raise IndexUnavailable(f"the index at {settings.index_dir} is incomplete, corrupt or from an older version; "
                               f"{store.REBUILD_HINT}")
    if manifest["store"]["mode"] != settings.chroma_mode:
        raise IndexUnavailable(f"the index was built for chroma_mode={manifest['store']['mode']!r}, settings say "
                               f"{settings.chroma_mode!r}; {store.REBUILD_HINT}")
    built_with, current = manifest["embedder"], embedder_identity(get_embedder(settings))
    if built_with != current:
        raise IndexUnavailable(f"the index was built with {built_with['name']} ({built_with['dim']}d) but settings "
                               f"select {current['name']} ({current['dim']}d); {store.REBUILD_HINT}")
    return Retriever(settings, build_dir, manifest)
