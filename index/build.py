"""`build_index`: pages -> chunks -> embeddings (Chroma) + the page and chunk records (BM25 is built from them at
open time), written beside the live index and switched in atomically. Unchanged input (source, chunking, embedder,
store) is a no-op."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from tqdm import tqdm

from reportqa.index import store
from reportqa.index.embed import embedder_identity, get_embedder
from reportqa.settings import Settings

log = logging.getLogger(__name__)

# Called as progress(step, done, total) while a build runs ("embedding", chunks embedded, chunks to embed): how the
# chat shows an upload's progress bar (the tqdm bar on stderr stays for the command line).
Progress = Callable[[str, int, int], None]


def embed_text(chunk) -> str:
    """What gets embedded for a chunk: its English text (the Chinese block is a translation of it), or the Chinese
    when there is no English. e5 is cross-lingual, and Chinese words still reach the page through BM25: the hybrid
    hit@5 is the same as with both languages embedded, for 41% fewer tokens to embed (docs/index.md)."""
    return chunk.en or chunk.zh


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def _build_lock(settings: Settings):
    """One ingest at a time per index (per home for the default report); the kernel drops the lock if the process
    dies (even with kill -9)."""
    where = settings.index_dir.parent
    where.mkdir(parents=True, exist_ok=True)
    with open(where / ".index.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another ingest is running on %s; waiting for it", where)
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def drop_collection(settings: Settings, build_dir: Path) -> None:
    if settings.chroma_mode != "http":
        return
    try:
        store.chroma_client(settings, build_dir).delete_collection(store.collection_name(build_dir))
    except Exception as e:  # already gone, or a server that is down: nothing to clean then
        log.debug("could not delete collection of %s: %s", build_dir.name, e)


def _remove_stale_builds(settings: Settings, keep: Path | None) -> None:
    """Leftovers of killed or superseded builds (only called under the build lock, so none is in progress)."""
    keep = keep.resolve() if keep else None
    for d in settings.index_dir.parent.glob(store.build_prefix(settings) + "*"):
        if d.is_dir() and d.resolve() != keep:
            manifest = store.read_manifest(d)
            # a killed build has no manifest; its collection, if any, is on the server these settings name
            where = {k: v for k, v in manifest["store"].items() if k != "collection"} if manifest else None
            if where is None or where == store.store_identity(settings):
                drop_collection(settings, d)
            store.remove_build(d)
            log.debug("removed old build %s", d.name)


def _is_healthy(settings: Settings, build_dir: Path, manifest: dict) -> bool:
    if not all((build_dir / f).is_file() for f in (store.PAGES, store.CHUNKS)):
        return False
    try:
        collection = store.chroma_client(settings, build_dir).get_collection(manifest["store"]["collection"])
        return collection.count() == manifest["chunks"]
    except Exception as e:
        log.warning("the current index is damaged (%s); rebuilding", e)
        return False


def _stats(settings: Settings, build_dir: Path, manifest: dict, seconds: float, noop: bool) -> dict:
    return {
        "pages": manifest["pages"],
        "chunks": manifest["chunks"],
        "seconds": round(seconds, 2),
        "noop": noop,
        "index_dir": str(settings.index_dir),
        "size_mb": store.dir_size_mb(build_dir),
        "embedder": manifest["embedder"]["name"],
    }


def build_index(settings: Settings, source: Path, rebuild: bool = False, progress: Progress | None = None) -> dict:
    """Build (or keep) the index of `source`. Returns stats: pages, chunks, seconds, noop, index_dir, size_mb,
    embedder. `progress`, when given, hears how the embedding advances."""
    from reportqa.ingest import chunk_pages, load_pages

    t0 = time.perf_counter()
    source = Path(source)
    with _build_lock(settings):
        pages = load_pages(source)
        chunks = chunk_pages(pages, settings)
        embedder = get_embedder(settings)
        texts = [embed_text(c) for c in chunks]
        identity = {
            "format": store.FORMAT,
            "source": {"name": source.name, "sha256": _sha256(source.read_bytes())},
            "chunking": {"chunk_chars": settings.chunk_chars, "chunk_overlap": settings.chunk_overlap},
            # pages and chunks as ingested: covers changes of the ingest code that keep source and settings the same
            "content_sha256": _sha256(json.dumps([[p.to_json() for p in pages], [asdict(c) for c in chunks]],
                                                 ensure_ascii=False).encode()),
            "embedder": embedder_identity(embedder),
            "store": store.store_identity(settings),
        }
        fingerprint = _sha256(json.dumps(identity, sort_keys=True).encode())

        current = store.current_build(settings)
        manifest = store.read_manifest(current) if current else None
        if (not rebuild and manifest and manifest.get("fingerprint") == fingerprint
                and _is_healthy(settings, current, manifest)):
            _remove_stale_builds(settings, keep=current)
            log.info("index is up to date (%s)", current.name)
            return _stats(settings, current, manifest, time.perf_counter() - t0, noop=True)

        _remove_stale_builds(settings, keep=current)
        build_id = f"{datetime.now():%Y%m%dT%H%M%S%f}-{os.getpid()}"
        build_dir = settings.index_dir.parent / f"{store.build_prefix(settings)}{build_id}"
        build_dir.mkdir()
        store.write_jsonl(build_dir / store.PAGES, [p.to_json() for p in pages])
        store.write_jsonl(build_dir / store.CHUNKS, [asdict(c) for c in chunks])

        vectors = _embed_unique(embedder, texts, progress)
        collection_name = store.collection_name(build_dir)
        client = store.chroma_client(settings, build_dir)
        collection = store.create_collection(client, collection_name, len(chunks))
        batch = client.get_max_batch_size()
        for i in range(0, len(chunks), batch):
            part = chunks[i:i + batch]
            collection.add(ids=[c.id for c in part], embeddings=[vectors[t] for t in texts[i:i + batch]],
                           metadatas=[{"page": c.page, "kind": c.kind} for c in part])
        if settings.chroma_mode == "embedded":
            client.close()  # flush to disk before the manifest declares the build complete

        manifest = {
            **identity,
            "fingerprint": fingerprint,
            "pages": len(pages),
            "chunks": len(chunks),
            "embedded_texts": len(vectors),
            "store": {**identity["store"], "collection": collection_name},
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.perf_counter() - t0, 2),
        }
        store.write_json_atomic(build_dir / store.MANIFEST, manifest)
        store.switch_to(settings, build_dir)
        _remove_stale_builds(settings, keep=build_dir)
        seconds = time.perf_counter() - t0
        log.info("indexed %d pages / %d chunks (%d embedded) in %.1f s", len(pages), len(chunks), len(vectors),
                 seconds)
        return _stats(settings, build_dir, manifest, seconds, noop=False)


def _embed_unique(embedder, texts: list[str], progress: Progress | None = None) -> dict[str, list[float]]:
    """Embed each distinct text once, longest first, in batches of similar length (the engine runs one text per
    core, so a batch is as slow as its longest member)."""
    unique = sorted(set(texts), key=len, reverse=True)
    size = embedder.embed_batch_size
    out: dict[str, list[float]] = {}
    with tqdm(total=len(unique), desc="embedding", unit="chunk", file=sys.stderr, dynamic_ncols=True) as bar:
        if progress:
            progress("embedding", 0, len(unique))
        for i in range(0, len(unique), size):
            part = unique[i:i + size]
            out.update(zip(part, embedder.get_text_embedding_batch(part), strict=True))
            bar.update(len(part))
            if progress:
                progress("embedding", bar.n, len(unique))
    return out
