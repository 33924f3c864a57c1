"""The app's `ask` API through gradio_client, served in-process on the real index with the real bundled LLM."""

from __future__ import annotations

import pytest
from gradio_client import Client
from support import free_port

from reportqa.app.ui import build_app, launch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(built_index):
    settings = built_index.replace(host="127.0.0.1", port=free_port())
    app = build_app(settings)
    launch(app, settings, prevent_thread_lock=True, quiet=True)
    try:
        yield Client(f"http://127.0.0.1:{settings.port}/", verbose=False)
    finally:
        app.close()


def test_ask_returns_an_answer_with_page_citations(client):
    out = client.predict(question="How many weekly active users did ChatGPT reach?", lang="auto", history=[],
                         api_name="/ask")
    assert out["lang"] == "en" and not out["refused"] and out["error"] is None
    assert out["citations"], out
    retrieved = {r["page"] for r in out["retrieved"]}
    for c in out["citations"]:
        assert isinstance(c["page"], int) and c["page"] in retrieved and c["quote"]
        assert f"[p. {c['page']}]" in out["answer"]


def test_ask_rejects_a_bad_question_with_its_message(client):
    with pytest.raises(Exception, match="Please type a question"):
        client.predict(question="   ", api_name="/ask")
