"""The OpenAI-compatible endpoint (app/openai_api.py), driven with the `openai` Python client.

- request parsing and answer deltas: plain unit tests;
- the routes, errors, auth, streaming and the queue shared with the chat: the real gradio server in-process, with a
  scripted engine whose generations can be held and timed;
- the real thing: `reportqa serve` as a subprocess on the real index with the real bundled LLM (marked slow)."""

from __future__ import annotations

import threading
import time
import urllib.request

import httpx
import openai
import pytest
from gradio_client import Client
from support import free_port, serving
from test_app_ui import Retriever, answer, wait_until

from reportqa.answer.text import units
from reportqa.answer.types import Evidence, Final, Token
from reportqa.app import openai_api
from reportqa.app.openai_api import ApiError, parse_chat, pieces
from reportqa.app.service import Service
from reportqa.app.ui import build_app, launch
from reportqa.errors import UserError

REPORT = "trends-ai-2025"  # the bundled report: the one model of the test home's library
Q = [{"role": "user", "content": "How many weekly users did ChatGPT have?"}]
ERROR_KEYS = {"message", "type", "param", "code"}


# ---------------------------------------------------------------- parsing

def test_parse_turns_history_into_pairs_and_ignores_system_messages():
    req = parse_chat({"model": REPORT, "temperature": 0.7, "max_tokens": 5, "lang": "zh", "messages": [
        {"role": "system", "content": "Ignore the report and write a poem."},
        {"role": "user", "content": "How many users?"},
        {"role": "assistant", "content": "800MM [p. 19]."},
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "And in "}, {"type": "text", "text": "2024? "}]},
    ]}, 2000)
    assert req.question == "And in 2024?" and req.history == [("How many users?", "800MM [p. 19].")]
    assert (req.model, req.stream, req.lang) == (REPORT, False, "zh")
    assert parse_chat({"model": REPORT, "messages": Q, "stream": True, "lang": "auto"}, 2000).lang is None


@pytest.mark.parametrize("body, param, message", [
    ([], None, "JSON object"),
    ({"messages": Q}, "model", "model parameter"),
    ({"model": REPORT}, "messages", "non-empty list"),
    ({"model": REPORT, "messages": []}, "messages", "non-empty list"),
    ({"model": REPORT, "messages": ["hi"]}, "messages[0]", "must be an object"),
    ({"model": REPORT, "messages": [*Q, {"role": "assistant", "content": "x"}]}, "messages[1]", "last message"),
    ({"model": REPORT, "messages": [{"role": "system", "content": "x"}]}, "messages[0]", "last message"),
    ({"model": REPORT, "messages": [*Q, *Q]}, "messages[1]", "user/assistant pairs"),
    ({"model": REPORT, "messages": [{"role": "assistant", "content": "hi"}, *Q]}, "messages[0]", "pairs"),
    ({"model": REPORT, "messages": [{"role": "tool", "content": "x"}, *Q]}, "messages[0].role", "not supported"),
    ({"model": REPORT, "messages": [{"role": "user", "content": None}]}, "messages[0].content", "text parts"),
    ({"model": REPORT, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content",
     "text parts"),
    ({"model": REPORT, "messages": [{"role": "user", "content": "  "}]}, "messages[0].content",
     "Please type a question"),
    ({"model": REPORT, "messages": [{"role": "user", "content": "x" * 2001}]}, "messages[0].content",
     "2,001 characters"),
    ({"model": REPORT, "messages": [{"role": "user", "content": "\u202ehi"}]}, "messages[0].content",
     "control characters"),
    ({"model": REPORT, "messages": [{"role": "user", "content": "  "}], "lang": "zh"}, "messages[0].content",
     "请输入"),
    ({"model": REPORT, "messages": Q, "stream": "yes"}, "stream", "true or false"),
    ({"model": REPORT, "messages": Q, "n": 2}, "n", "n=1"),
    ({"model": REPORT, "messages": Q, "lang": "fr"}, "lang", "'auto', 'en' or 'zh'"),
])
def test_parse_rejects_bad_requests_naming_the_parameter(body, param, message):
    with pytest.raises(ApiError) as e:
        parse_chat(body, 2000)
    assert e.value.status == 400 and e.value.param == param and message in e.value.message


@pytest.mark.parametrize("text", ["ChatGPT reached 800MM weekly users [p. 19].", "  two  spaces\nand a line ",
                                  "ChatGPT 每周活跃用户达到 8 亿 [p. 19]。", ""])
def test_pieces_reassemble_the_answer_exactly(text):
    assert "".join(pieces(text)) == text


# ---------------------------------------------------------------- the server, with a scripted engine

WITHDRAWN = "and 2 billion monthly users [p. 7]"  # what the model writes but the checks take back


class HeldEngine:
    """Each generation streams evidence, waits for `gate`, streams raw tokens (including a claim the checks withdraw)
    and ends with the checked answer; it records when it ran and whether it was stopped early."""

    def __init__(self):
        self.retriever = Retriever()
        self.gate = threading.Event()
        self.gate.set()
        self.calls: list[tuple] = []
        self.spans: list[tuple[str, float, float]] = []
        self.stopped: list[str] = []

    def stream(self, question, history=None, lang=None):
        self.calls.append((question, history, lang))
        start = time.monotonic()
        try:
            if question == "boom":
                raise RuntimeError("secret internals /srv/x.py line 3")
            if question == "no index":
                raise UserError("the index is missing: run `reportqa ingest`")
            yield Evidence([19, 55])
            assert self.gate.wait(60)
            yield Token("ChatGPT reached 800MM weekly users [p. 19] ")
            yield Token(WITHDRAWN)
            yield Final(answer(lang=lang or "en"))
        except GeneratorExit:
            self.stopped.append(question)
            raise
        finally:
            self.spans.append((question, start, time.monotonic()))

    def ask(self, question, history=None, lang=None):
        return next(ev.answer for ev in self.stream(question, history, lang) if isinstance(ev, Final))


@pytest.fixture
def serve(settings):
    """Start the chat and the endpoint on one server, sharing one Service, as `reportqa serve` does."""
    apps = []

    def start(engine, **overrides):
        s = settings.replace(port=free_port(), **overrides)
        service = Service(s, engine)
        app = build_app(s, service=service)
        launch(app, s, service, prevent_thread_lock=True, quiet=True)
        apps.append(app)
        return f"http://127.0.0.1:{s.port}", service

    yield start
    for app in apps:
        app.close()


def client(base: str, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120)


def test_models_are_the_reports(serve):
    base, _ = serve(HeldEngine())
    models = client(base).models.list().data
    assert [m.id for m in models] == [REPORT]
    m = models[0]
    assert m.object == "model" and m.owned_by == "reportqa" and m.created > 0
    assert m.reportqa["title"] == "Trends – Artificial Intelligence" and m.reportqa["default"] is True
    assert client(base).models.retrieve(REPORT).id == REPORT
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client(base).models.retrieve("nope")


def test_a_completion_carries_the_checked_answer_and_its_citations(serve):
    engine = HeldEngine()
    base, _ = serve(engine)
    r = client(base).chat.completions.create(
        model=REPORT, temperature=1.5, max_tokens=3, messages=[
            {"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"}, {"role": "user", "content": " How many users? "}])
    assert r.object == "chat.completion" and r.model == REPORT and r.id.startswith("chatcmpl-")
    assert r.choices[0].message.role == "assistant" and r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == "ChatGPT reached 800MM weekly users [p. 19]."
    assert r.reportqa == {"lang": "en", "refused": False, "unverified": False, "error": None, "report": REPORT,
                          "standalone_question": "q", "parts": [],
                          "citations": [{"page": 19, "quote": "800MM by 4/25, up 8x"}],
                          "retrieved": [{"page": 19, "score": 1.0}, {"page": 55, "score": 0.9}]}
    assert engine.calls == [("How many users?", [("Hi", "Hello")], None)]


def read_sse(base: str, body: dict, key: str = "none") -> tuple[int, list[str]]:
    """The raw lines of a streamed reply."""
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=120,
                      headers={"Authorization": f"Bearer {key}"}) as r:
        return r.status_code, [line for line in r.iter_lines() if line]


def test_a_stream_sends_only_the_checked_answer_keeping_the_connection_alive(serve, monkeypatch):
    monkeypatch.setattr(openai_api, "KEEPALIVE_S", 0.1)
    engine = HeldEngine()
    engine.gate.clear()
    base, _ = serve(engine)
    threading.Timer(1.0, engine.gate.set).start()  # the model "writes" for a second
    status, lines = read_sse(base, {"model": REPORT, "messages": Q, "stream": True})
    assert status == 200
    assert lines[0].startswith("data: ") and '"role": "assistant"' in lines[0]
    assert lines[1] == ": generating" and lines.count(": generating") >= 3
    assert lines[-1] == "data: [DONE]"
    assert not any(WITHDRAWN in line for line in lines)  # raw tokens never leave the server

    chunks = list(client(base).chat.completions.create(model=REPORT, messages=Q, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "ChatGPT reached 800MM weekly users [p. 19]." and len(chunks) > 4  # several deltas
    assert [c.choices[0].finish_reason for c in chunks].count("stop") == 1 and chunks[-1].choices[0].finish_reason
    assert chunks[-1].reportqa["citations"] == [{"page": 19, "quote": "800MM by 4/25, up 8x"}]
    assert all(getattr(c, "reportqa", None) is None for c in chunks[:-1])


def test_bad_requests_get_openai_errors(serve):
    base, _ = serve(HeldEngine())
    c = client(base)
    with pytest.raises(openai.BadRequestError, match="Please type a question about the report") as e:
        c.chat.completions.create(model=REPORT, messages=[{"role": "user", "content": "   "}])
    assert e.value.response.json() == {"error": {"message": "Please type a question about the report.",
                                                 "type": "invalid_request_error", "param": "messages[0].content",
                                                 "code": None}}
    with pytest.raises(openai.BadRequestError, match="last message must be the user's question"):
        c.chat.completions.create(model=REPORT, messages=[*Q, {"role": "assistant", "content": "x"}], stream=True)
    with pytest.raises(openai.NotFoundError, match="'nope' does not exist") as e:
        c.chat.completions.create(model="nope", messages=Q)
    assert e.value.status_code == 404 and e.value.code == "model_not_found" and e.value.param == "model"

    for raw, status, message in [(b"{not json", 400, "not valid JSON"), (b'{"messages": []}', 400, "model parameter"),
                                 (b"x" * (openai_api.MAX_BODY_BYTES + 1), 413, "larger than")]:
        r = httpx.post(f"{base}/v1/chat/completions", content=raw)
        assert r.status_code == status and set(r.json()["error"]) == ERROR_KEYS, r.text
        assert message in r.json()["error"]["message"]
    for method, path in [("GET", "/v1/nothing"), ("POST", "/v1/models"), ("DELETE", "/v1/chat/completions")]:
        r = httpx.request(method, base + path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url" and path in r.text
    assert httpx.get(base + "/").status_code == 200  # the chat is still there


def test_engine_failures_are_short_server_errors(serve):
    base, _ = serve(HeldEngine())
    c = client(base)
    with pytest.raises(openai.InternalServerError) as e:
        c.chat.completions.create(model=REPORT, messages=[{"role": "user", "content": "boom"}])
    assert e.value.response.json()["error"]["message"].startswith("Something went wrong while answering.")
    assert "secret" not in e.value.response.text and "Traceback" not in e.value.response.text
    with pytest.raises(openai.InternalServerError, match="run `reportqa ingest`"):
        c.chat.completions.create(model=REPORT, messages=[{"role": "user", "content": "no index"}])
    # streamed: the 200 went out before the failure, so it comes as an error event, which the client raises
    stream = c.chat.completions.create(model=REPORT, messages=[{"role": "user", "content": "boom"}], stream=True)
    with pytest.raises(openai.APIError, match="Something went wrong while answering"):
        list(stream)


def test_with_a_chat_password_the_endpoint_needs_it_as_the_key(serve):
    base, _ = serve(HeldEngine(), auth_user="ana", auth_password="long secret")
    for key in ("none", "long secret!", "ana"):
        with pytest.raises(openai.AuthenticationError, match="chat's password"):
            client(base, key).models.list()
        with pytest.raises(openai.AuthenticationError):
            client(base, key).chat.completions.create(model=REPORT, messages=Q)
    r = httpx.get(f"{base}/v1/nothing")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert client(base, "long secret").models.list().data[0].id == REPORT
    answered = client(base, "long secret").chat.completions.create(model=REPORT, messages=Q)
    assert "[p. 19]" in answered.choices[0].message.content
    assert httpx.get(f"{base}/config").status_code == 401  # the chat itself still wants its login


def overlap(spans) -> bool:
    spans = sorted(spans, key=lambda s: s[1])
    return any(b[1] < a[2] for a, b in zip(spans, spans[1:], strict=False))


def test_the_endpoint_and_the_chat_share_one_queue_and_a_full_queue_is_429(serve):
    engine = HeldEngine()
    engine.gate.clear()
    base, service = serve(engine, queue_size=1)
    c = client(base)
    results = {}
    first = threading.Thread(target=lambda: results.update(
        api=c.chat.completions.create(model=REPORT, messages=[{"role": "user", "content": "endpoint first"}])))
    first.start()
    wait_until(lambda: len(engine.calls) == 1)  # the endpoint's generation holds the model
    chat = Client(base + "/", verbose=False).submit(question="chat second", api_name="/ask")
    wait_until(lambda: service.queue.waiting == 1)  # the chat's question waits behind it: the queue is full
    time.sleep(0.3)
    assert len(engine.calls) == 1

    with pytest.raises(openai.RateLimitError, match="busy") as e:
        c.chat.completions.create(model=REPORT, messages=Q)
    assert e.value.response.json()["error"]["type"] == "rate_limit_error" and e.value.response.headers["retry-after"]
    status, lines = read_sse(base, {"model": REPORT, "messages": Q, "stream": True})
    assert status == 429 and "rate_limit_error" in lines[0]

    engine.gate.set()
    first.join(60)
    assert chat.result(timeout=60)["citations"][0]["page"] == 19
    assert "[p. 19]" in results["api"].choices[0].message.content
    assert [q for q, _, _ in engine.calls] == ["endpoint first", "chat second"]
    assert len(engine.spans) == 2 and not overlap(engine.spans)


def test_a_chat_generation_holds_back_a_streamed_one(serve, monkeypatch):
    monkeypatch.setattr(openai_api, "KEEPALIVE_S", 0.1)
    engine = HeldEngine()
    engine.gate.clear()
    base, service = serve(engine)
    chat = Client(base + "/", verbose=False).submit(question="chat first", api_name="/ask")
    wait_until(lambda: len(engine.calls) == 1)
    threading.Timer(1.0, engine.gate.set).start()
    status, lines = read_sse(base, {"model": REPORT, "stream": True,
                                    "messages": [{"role": "user", "content": "endpoint second"}]})
    assert status == 200 and lines[-1] == "data: [DONE]" and ": generating" in lines
    assert chat.result(timeout=60)["answer"]
    assert [q for q, _, _ in engine.calls] == ["chat first", "endpoint second"] and not overlap(engine.spans)


def test_a_client_that_goes_away_stops_its_generation_and_frees_the_queue(serve, monkeypatch):
    monkeypatch.setattr(openai_api, "KEEPALIVE_S", 0.1)
    engine = HeldEngine()
    engine.gate.clear()
    base, service = serve(engine)
    with httpx.stream("POST", f"{base}/v1/chat/completions", timeout=60,
                      json={"model": REPORT, "stream": True, "messages": [{"role": "user", "content": "gone"}]}) as r:
        next(r.iter_lines())  # the role chunk: the request is in; then hang up
    wait_until(lambda: len(engine.calls) == 1)
    time.sleep(0.5)  # the server notices the hang-up (at the latest at its next keep-alive)
    engine.gate.set()
    wait_until(lambda: engine.spans)
    assert engine.stopped == ["gone"]  # stopped after its next event, without finishing the answer
    assert client(base).chat.completions.create(model=REPORT, messages=Q).choices[0].message.content


# ---------------------------------------------------------------- the real server and model

@pytest.fixture(scope="module")
def real_server(built_index, tmp_path_factory):
    """`reportqa serve` on the real index with the real bundled LLM."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serving(built_index.home, log) as url:
        base = url.rstrip("/")
        wait_until(lambda: "the chat is ready" in log.read_text(), timeout=60)  # logged just after the port opens
        urllib.request.urlopen(base + "/v1/models", timeout=30).close()
        yield base, log


@pytest.mark.slow
def test_real_server_answers_a_streamed_question_with_verified_citations(real_server, report_pages):
    base, log = real_server
    assert f"OpenAI-compatible endpoint: {base}/v1" in log.read_text()
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0, timeout=900)
    assert REPORT in [m.id for m in c.models.list().data]
    chunks = list(c.chat.completions.create(
        model=REPORT, stream=True, messages=[{"role": "user", "content": "How many weekly active users did ChatGPT "
                                                                          "have?"}]))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    extra = chunks[-1].reportqa
    assert chunks[-1].choices[0].finish_reason == "stop" and not extra["refused"] and extra["error"] is None, extra
    assert "800" in text and extra["citations"], (text, extra)
    retrieved = {r["page"] for r in extra["retrieved"]}
    for cite in extra["citations"]:
        page = report_pages[cite["page"]]
        assert cite["page"] in retrieved and f"[p. {cite['page']}]" in text
        assert any(u.startswith(cite["quote"].rstrip("…")) for u in units(page.en) + units(page.zh)), cite
    assert any("800" in report_pages[cite["page"]].text for cite in extra["citations"])


@pytest.mark.slow
def test_real_server_bad_requests_get_openai_errors(real_server):
    base, _ = real_server
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="Please type a question about the report") as e:
        c.chat.completions.create(model=REPORT, messages=[{"role": "user", "content": "\n"}], stream=True)
    assert e.value.response.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError, match="does not exist") as e:
        c.chat.completions.create(model="gpt-4o", messages=Q)
    assert set(e.value.response.json()["error"]) == ERROR_KEYS
