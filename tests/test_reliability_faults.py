"""Injected faults: an ingest killed with SIGKILL, a corrupted index, an LLM backend that is down, hangs and comes
back, a model file with the wrong hash. Each ends in a short message (and the pages, where there are any), never a
traceback, and the system recovers by the documented step.

Index faults run on a small real index (the report's first pages, real embedder, real Chroma) built once in a
temporary home and copied per test, so breaking it never touches the shared test index."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import free_port

from reportqa.answer import AnswerEngine, Evidence, Final, LLMUnavailable, ensure_model
from reportqa.answer.llm import MODEL_FILE, Message, echo_best_excerpt
from reportqa.app.cli import main
from reportqa.index import IndexUnavailable, build_index, open_retriever
from reportqa.settings import load_settings

PROBE = "ChatGPT weekly active users"
QUESTION = "How many weekly active users did ChatGPT reach?"
SMALL_LINES = 700  # the report's first 8 pages: a valid export that embeds in seconds
LIVENESS_S = 300  # a hang becomes a failure after this long (a loaded 2-core machine is slow); not a speed bar


def cli(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reportqa.app.cli", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "REPORTQA_HOME": str(home), **env})


def served(settings) -> tuple:
    """The build being served, its fingerprint and a retrieval result."""
    r = open_retriever(settings)
    return os.readlink(settings.index_dir), r.manifest["fingerprint"], [h.page for h in r.retrieve(PROBE)]


@pytest.fixture(scope="module")
def small_source(tmp_path_factory, settings) -> Path:
    path = tmp_path_factory.mktemp("src") / "head.txt"
    path.write_text("\n".join(settings.report.read_text(encoding="utf-8").splitlines()[:SMALL_LINES]) + "\n",
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def small_home(tmp_path_factory, small_source) -> Path:
    home = tmp_path_factory.mktemp("small-home")
    build_index(load_settings(home=home), small_source)
    return home


@pytest.fixture(scope="module")
def before(small_home) -> tuple:
    """What the small index serves, read from the original: in-process Chroma clients are cached per path, so a
    client opened on a copy before breaking it could hide the damage."""
    return served(load_settings(home=small_home))


@pytest.fixture
def small(tmp_path, small_home):
    """Settings on a private copy of the small index."""
    home = tmp_path / "home"
    shutil.copytree(small_home, home, symlinks=True)
    return load_settings(home=home, llm="fake")


# ---------------------------------------------------------------- kill -9 during ingest

def test_kill_9_during_ingest_keeps_previous_index(small, small_source, before):
    live = open_retriever(small)
    proc = subprocess.Popen([sys.executable, "-m", "reportqa.app.cli", "ingest", str(small.report)],
                            env={**os.environ, "REPORTQA_HOME": str(small.home)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # The new build's chunks are written just before embedding starts (minutes for the whole report): killing
        # then leaves a half-built directory and a held build lock behind.
        deadline = time.monotonic() + LIVENESS_S
        while not list(small.home.glob(f".index-*-{proc.pid}/chunks.jsonl")):
            assert proc.poll() is None, "the ingest ended before it could be killed"
            assert time.monotonic() < deadline, "the ingest never started building"
            time.sleep(0.05)
        assert [h.page for h in live.retrieve(PROBE)] == before[2]  # served while the build runs
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(list(small.home.glob(".index-*"))) == 2  # the killed build is left behind...

    assert served(small) == before
    assert [h.page for h in live.retrieve(PROBE)] == before[2]
    r = cli("ingest", str(small_source), "--json", home=small.home)  # ...until the next ingest (lock released)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["noop"] is True
    assert [p.name for p in small.home.glob(".index-*")] == [before[0]]
    assert served(small) == before


def test_running_retriever_survives_a_rebuild(small, small_source):
    """A server keeps answering from the build it opened while `ingest --rebuild` replaces and deletes it."""
    live = open_retriever(small)
    pages = [h.page for h in live.retrieve(PROBE)]
    r = cli("ingest", "--rebuild", str(small_source), home=small.home)
    assert r.returncode == 0, r.stderr
    assert not (small.home / live.build_dir.name).exists()
    assert [h.page for h in live.retrieve(PROBE)] == pages
    assert live.page(pages[0]) is not None
    assert served(small)[2] == pages


# ---------------------------------------------------------------- corrupted index

def _garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


CORRUPTIONS = {
    "manifest-deleted": lambda b: (b / "manifest.json").unlink(),
    "manifest-garbage": lambda b: (b / "manifest.json").write_text("{not json"),
    "manifest-other-format": lambda b: (b / "manifest.json").write_text('{"format": 999}'),
    "pages-garbage": lambda b: _garbage(b / "pages.jsonl"),
    "chunks-truncated": lambda b: (b / "chunks.jsonl").write_bytes((b / "chunks.jsonl").read_bytes()[:5000]),
    "chunks-deleted": lambda b: (b / "chunks.jsonl").unlink(),
    "vectors-deleted": lambda b: shutil.rmtree(b / "chroma"),
    "vector-db-garbage": lambda b: _garbage(b / "chroma" / "chroma.sqlite3"),
    "build-deleted": shutil.rmtree,  # the index link dangles
}


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corrupt_index_clear_message_then_rebuild_recovers(small, small_source, before, kind, monkeypatch, capsys):
    CORRUPTIONS[kind](small.index_dir.resolve())

    with pytest.raises(IndexUnavailable, match="reportqa ingest") as e:
        open_retriever(small)
    assert "\n" not in str(e.value)

    monkeypatch.setenv("REPORTQA_HOME", str(small.home))
    monkeypatch.setenv("REPORTQA_LLM", "fake")
    assert main(["ask", QUESTION]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("reportqa: ") and "reportqa ingest" in err[-1] and "unexpected" not in err[-1]

    assert main(["ingest", "--rebuild", str(small_source)]) == 0
    after = served(small)
    assert after[0] != before[0] and after[1:] == before[1:]


def test_plain_ingest_also_repairs_a_damaged_index(small, small_source, before):
    """Without --rebuild, an unchanged source over a broken vector store is rebuilt, not declared up to date."""
    shutil.rmtree(small.index_dir.resolve() / "chroma")
    stats = build_index(small, small_source)
    assert stats["noop"] is False
    assert served(small)[1:] == before[1:]


# ---------------------------------------------------------------- LLM backend down, hanging, back

class FakeOpenAI(ThreadingHTTPServer):
    """A loopback OpenAI-compatible chat server whose behaviour the test switches: "hang" holds every request until
    released, "ok" streams the default scripted answer (the first excerpt with its page) as server-sent events."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "hang"
        self.release = threading.Event()
        self.requests = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def stop(self):
        self.release.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests += 1
        if self.server.mode == "hang":
            self.server.release.wait()
            return
        reply = echo_best_excerpt([Message(m["role"], m["content"]) for m in body["messages"]])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for piece in reply.split(" "):
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "local",
                     "choices": [{"index": 0, "delta": {"content": piece + " "}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def backend():
    server = FakeOpenAI()
    yield server
    server.stop()


def _ask(engine, question=QUESTION):
    """All stream events, run in a thread so a hang fails the test instead of stalling the run."""
    out: list = []
    failed: list[BaseException] = []

    def run():
        try:
            out.extend(engine.stream(question))
        except BaseException as e:  # re-raised below, in the test's thread
            failed.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(LIVENESS_S)
    assert not t.is_alive(), "the answer never finished"
    if failed:
        raise failed[0]
    return out


def _assert_pages_and_message(events) -> None:
    assert isinstance(events[0], Evidence) and events[0].pages
    final = events[-1]
    assert isinstance(final, Final)
    a = final.answer
    assert a.error and not a.refused and not a.citations
    assert a.answer.startswith("The language model is not available right now")
    assert [p for p, _ in a.retrieved] == events[0].pages
    assert [int(n) for n in re.findall(r"p\. (\d+)", a.answer)] == events[0].pages


def test_llm_unreachable_gives_pages_and_message(built_index, retriever):
    s = built_index.replace(llm="openai", openai_base_url=f"http://127.0.0.1:{free_port()}/v1")
    events = _ask(AnswerEngine(s, retriever=retriever))
    _assert_pages_and_message(events)
    assert "Connection" in events[-1].answer.error


def test_llm_hanging_times_out_then_recovers(built_index, retriever, backend):
    s = built_index.replace(llm="openai", openai_base_url=backend.url, llm_timeout_s=2.0)
    engine = AnswerEngine(s, retriever=retriever)
    events = _ask(engine)
    _assert_pages_and_message(events)
    assert "Timeout" in events[-1].answer.error
    assert backend.requests == 1

    backend.mode = "ok"  # the backend comes back: the same engine answers, with citations, no restart
    a = _ask(engine)[-1].answer
    assert a.error is None and not a.refused
    assert a.citations and {c.page for c in a.citations} <= {p for p, _ in a.retrieved}
    assert backend.requests == 2


def test_cli_ask_with_backend_down_prints_pages(built_index):
    port = free_port()
    r = cli("ask", QUESTION, home=built_index.home, REPORTQA_LLM="openai",
            REPORTQA_OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1")
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert r.stdout.startswith("The language model is not available right now") and "p. " in r.stdout


# ---------------------------------------------------------------- model file with the wrong hash

def test_model_with_wrong_hash_is_refused(tmp_path):
    s = load_settings(home=tmp_path, llm="local", llm_model_path="")
    s.model_dir.mkdir(parents=True)
    (s.model_dir / MODEL_FILE).write_bytes(b"GGUF" + bytes(1024))
    with pytest.raises(LLMUnavailable, match="sha256 .*expected .*delete it"):
        ensure_model(s)
    assert not (s.model_dir / (MODEL_FILE + ".sha256")).exists()  # nothing vouches for the bad file


def test_ask_with_wrong_model_hash_still_shows_pages(small, tmp_path):
    s = small.replace(llm="local", llm_model_path="")
    s.model_dir.mkdir(parents=True)
    (s.model_dir / MODEL_FILE).write_bytes(b"GGUF" + bytes(1024))
    events = _ask(AnswerEngine(s), PROBE)
    assert isinstance(events[0], Evidence) and events[0].pages
    a = events[-1].answer
    assert a.error and "sha256" in a.error and "expected" in a.error
    assert a.answer.startswith("The language model is not available right now")
