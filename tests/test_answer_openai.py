"""The OpenAI-compatible backend against a real server: llama-cpp-python's `llama_cpp.server` serving the bundled
GGUF on a free loopback port, started and stopped by the test. Also: a dead endpoint yields an error answer with the
retrieved pages, never an exception."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import pytest
from support import free_port, stop

from reportqa.answer import AnswerEngine, ensure_model, get_llm

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(built_index, tmp_path_factory):
    model = ensure_model(built_index)
    port = free_port()
    log = (tmp_path_factory.mktemp("llama-server") / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "qwen-test",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", str(built_index.llm_threads),
         "--chat_format", "chatml", "--verbose", "False"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(url + "/models", timeout=5).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"llama_cpp.server did not start (exit {proc.poll()}); see {log.name}")
            time.sleep(1)
    yield url
    stop(proc)
    log.close()


def test_answer_through_openai_compatible_server(server, built_index, retriever):
    settings = built_index.replace(llm="openai", openai_base_url=server, openai_model="qwen-test")
    engine = AnswerEngine(settings, retriever=retriever)
    assert engine.llm.name.startswith("openai:")
    # a slide whose title states the figure: this test is about the backend, not about reading a chart
    ans = engine.ask("How many weekly active users does ChatGPT have?")
    assert ans.error is None and not ans.refused, ans
    assert "800" in ans.answer and 55 in {c.page for c in ans.citations}
    assert {c.page for c in ans.citations} <= {p for p, _ in ans.retrieved}


def test_dead_endpoint_gives_error_answer_with_pages(built_index, retriever):
    settings = built_index.replace(llm="openai", openai_base_url=f"http://127.0.0.1:{free_port()}/v1",
                                   llm_timeout_s=5)
    ans = AnswerEngine(settings, retriever=retriever, llm=get_llm(settings)).ask(
        "What was global internet penetration according to the ITU?")
    assert ans.error and not ans.refused and ans.retrieved
    assert all(f"p. {p}" in ans.answer for p, _ in ans.retrieved)
