"""How ingest time, index size and retrieval latency grow with the corpus: the report replicated 1x, 4x, 16x as
distinct documents, served by embedded Chroma and by a `chroma run` server on loopback.

Embedding 16 copies at ~3-5 passages/s would take over an hour, so embeddings are reused: copy c of a chunk gets the
vector of the original chunk plus Gaussian jitter (copy 0 keeps the real vectors), and the embedding cost is taken
from the cold ingest of one copy and scaled linearly. Everything else is real work at full size: chunking, the index
files, the vector store inserts, opening the retriever (which tokenizes every chunk and builds BM25) and hybrid
retrieval (query embedding, Chroma query, BM25, fusion).

The index API builds from one source file with the configured embedder, so the replicated builds are written here in
the index's on-disk layout (index.store) and then opened with the public open_retriever.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from reportqa.bench.probe import WARM_UP
from reportqa.bench.stats import dist
from reportqa.ingest import PageRecord, chunk_pages
from reportqa.settings import Settings

log = logging.getLogger(__name__)

SCALES = (1, 4, 16)
QUESTIONS = 60  # retrieval latency is taken over this many QA questions per scale and mode (evenly spaced)
JITTER = 0.01  # per-dimension sd: a jittered copy keeps cosine ~0.98 to its original (384 dims)


def page_offset(pages: Sequence[PageRecord]) -> int:
    """Copy c numbers its pages p + c * offset, so page numbers stay readable and never collide."""
    return 10 ** len(str(max(p.page for p in pages)))


def replicate(pages: Sequence[PageRecord], copies: int) -> list[PageRecord]:
    """`copies` distinct documents: copy 0 is the original, copy c > 0 has offset page numbers and its own marker
    line (so no page text repeats across copies and none is folded into another as a verbatim repeat)."""
    offset = page_offset(pages)
    out = list(pages)
    for c in range(1, copies):
        out += [replace(p, page=p.page + c * offset, en=f"Copy {c}.\n{p.en}", section=f"{p.section} (copy {c})")
                for p in pages]
    return out


def copy_vectors(chunks, base: dict[str, np.ndarray], offset: int, seed: int = 0) -> np.ndarray:
    """One unit vector per chunk: the vector of the same chunk of the original page (its first chunk when a
    marker line shifted the split), jittered for every copy but the original."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(chunks), len(next(iter(base.values())))), dtype=np.float32)
    for i, c in enumerate(chunks):
        copy, page = divmod(c.page, offset)
        n = c.id.rsplit("-c", 1)[1]
        v = base.get(f"p{page}-c{n}", base.get(f"p{page}-c0"))
        if copy:
            v = v + rng.normal(0.0, JITTER, v.shape)
        out[i] = v / np.linalg.norm(v)
    return out


def read_vectors(settings: Settings) -> tuple[dict[str, np.ndarray], dict]:
    """chunk id -> vector of the current index, and its manifest."""
    from reportqa.index import store

    build = store.current_build(settings)
    manifest = store.read_manifest(build)
    got = store.chroma_client(settings, build).get_collection(manifest["store"]["collection"]).get(
        include=["embeddings"])
    return {cid: np.asarray(v, dtype=np.float32) for cid, v in zip(got["ids"], got["embeddings"], strict=True)}, \
        manifest


def write_build(settings: Settings, pages: list[PageRecord], vectors_of, manifest: dict) -> dict:
    """Write and switch to a build of `pages` in settings.home with the vectors `vectors_of(chunks)` gives;
    returns the timings (s) of its steps."""
    from reportqa.index import store

    settings.home.mkdir(parents=True, exist_ok=True)
    build_dir = settings.home / f"{store.build_prefix(settings)}bench-{len(pages)}"
    t0 = time.perf_counter()
    chunks = chunk_pages(pages, settings)
    t1 = time.perf_counter()
    build_dir.mkdir()
    store.write_jsonl(build_dir / store.PAGES, [p.to_json() for p in pages])
    store.write_jsonl(build_dir / store.CHUNKS, [asdict(c) for c in chunks])
    t2 = time.perf_counter()
    vectors = vectors_of(chunks)
    t3 = time.perf_counter()
    client = store.chroma_client(settings, build_dir)
    name = store.collection_name(build_dir)
    collection = client.create_collection(name, metadata={"hnsw:space": "cosine"}, embedding_function=None)
    batch = client.get_max_batch_size()
    for i in range(0, len(chunks), batch):
        collection.add(ids=[c.id for c in chunks[i:i + batch]], embeddings=vectors[i:i + batch],
                       metadatas=[{"page": c.page, "kind": c.kind} for c in chunks[i:i + batch]])
    if settings.chroma_mode == "embedded":
        client.close()
    t4 = time.perf_counter()
    store.write_json_atomic(build_dir / store.MANIFEST, {
        **manifest, "pages": len(pages), "chunks": len(chunks), "embedded_texts": len(chunks),
        "store": {**store.store_identity(settings), "collection": name}})
    store.switch_to(settings, build_dir)
    return {"chunks": len(chunks), "chunk_s": t1 - t0, "files_s": t2 - t1, "vector_store_s": t4 - t3,
            "size_mb": store.dir_size_mb(build_dir)}


def retrieval_ms(settings: Settings, questions: Sequence[str]) -> tuple[float, list[float]]:
    """Seconds to open the retriever, and the latency (ms) of each question."""
    from reportqa.index import open_retriever

    t0 = time.perf_counter()
    retriever = open_retriever(settings)
    open_s = time.perf_counter() - t0
    retriever.retrieve(WARM_UP)
    out = []
    for q in questions:
        t = time.perf_counter()
        retriever.retrieve(q, k=settings.top_k)
        out.append(1000 * (time.perf_counter() - t))
    return open_s, out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def chroma_server(path: Path, timeout_s: float = 60.0) -> Iterator[int]:
    """A `chroma run` server on 127.0.0.1 persisting to `path`; yields its port, stops it afterwards."""
    import chromadb

    exe = Path(sys.executable).with_name("chroma")
    exe = str(exe) if exe.exists() else shutil.which("chroma")
    if exe is None:
        raise FileNotFoundError("the `chroma` command (chromadb's server) is not installed")
    port = _free_port()
    log_file = open(path.with_suffix(".log"), "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                chromadb.HttpClient(host="127.0.0.1", port=port,
                                    settings=chromadb.Settings(anonymized_telemetry=False)).heartbeat()
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chroma server did not start (see {log_file.name})") from None
                time.sleep(0.3)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()


def _measure(settings: Settings, pages, vectors_of, manifest, questions, per_copy_s: float, copies: int,
             extra_mb=lambda: 0.0) -> dict:
    build = write_build(settings, pages, vectors_of, manifest)
    open_s, lat = retrieval_ms(settings, questions)
    measured = build["chunk_s"] + build["files_s"] + build["vector_store_s"]
    return {"copies": copies, "pages": len(pages), "chunks": build["chunks"],
            "ingest_s": copies * per_copy_s + measured, "per_copy_s": per_copy_s, "measured_s": measured,
            **{k: build[k] for k in ("chunk_s", "files_s", "vector_store_s")},
            "size_mb": build["size_mb"] + extra_mb(), "open_s": open_s,
            "retrieval_ms": dist(lat)}


def run_scaling(settings: Settings, questions: Sequence[str], cold_ingest_s: float, work: Path,
                scales: Sequence[int] = SCALES) -> dict:
    """Scaling figures for both Chroma modes. `settings` holds the cold-built 1x index; `cold_ingest_s` its build
    time. Results: {"embedded": [row per scale], "http": [...] or {"error": ...}, "per_copy_s", "notes"}."""
    from reportqa.ingest import load_pages

    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # before chromadb is imported
    from reportqa.index import store

    questions = list(questions)[::max(1, len(questions) // QUESTIONS)][:QUESTIONS]
    base, manifest = read_vectors(settings)
    original = load_pages(settings.report)
    offset = page_offset(original)

    def vectors_of(chunks):
        return copy_vectors(chunks, base, offset)

    # One copy's share that is not re-measured at scale (parsing, embedding): the cold ingest minus what the
    # 1x replicated build measures.
    one = write_build(settings.replace(home=work / "calibrate"), original, vectors_of, manifest)
    per_copy_s = max(cold_ingest_s - one["chunk_s"] - one["files_s"] - one["vector_store_s"], 0.0)
    shutil.rmtree(work / "calibrate", ignore_errors=True)

    result: dict = {"scales": list(scales), "per_copy_s": per_copy_s, "embedded": [], "http": []}
    for n in tqdm(scales, desc="scaling", unit="scale", file=sys.stderr, dynamic_ncols=True):
        pages = replicate(original, n)
        home = work / f"embedded-{n}x"
        result["embedded"].append(_measure(settings.replace(home=home, chroma_mode="embedded"), pages, vectors_of,
                                           manifest, questions, per_copy_s, n))
        shutil.rmtree(home, ignore_errors=True)
        try:
            data = work / f"chroma-server-{n}x"
            with chroma_server(data) as port:
                home = work / f"http-{n}x"
                s = settings.replace(home=home, chroma_mode="http", chroma_host="127.0.0.1", chroma_port=port)
                result["http"].append(_measure(s, pages, vectors_of, manifest, questions, per_copy_s, n,
                                               extra_mb=lambda d=data: store.dir_size_mb(d)))
            shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(data, ignore_errors=True)
        except (OSError, RuntimeError) as e:
            log.warning("Chroma server part skipped: %s", e)
            result["http"] = {"error": str(e)}
            break
    return result
