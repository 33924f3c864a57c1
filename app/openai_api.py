"""The OpenAI-compatible endpoint, served beside the chat: `GET /v1/models` (one model per report of the library) and
`POST /v1/chat/completions` (streamed or not). docs/app.md "OpenAI-compatible endpoint" is the user's reference.

Every generation takes its turn in the `Service` queue the chat uses, so the two doors never run the model at once;
the blocking engine runs in a thread of its own, never on the server's event loop. A streamed reply carries only the
checked answer: the engine's raw tokens may hold claims its checks later withdraw, so while the model writes, the
stream sends SSE comments to keep the connection open, then the checked answer in content deltas."""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from reportqa.answer.types import Answer, Final
from reportqa.app import render
from reportqa.app.service import Busy, Service
from reportqa.errors import UserError
from reportqa.index import library

log = logging.getLogger(__name__)

KEEPALIVE_S = 5.0  # an SSE comment this often while the model writes: proxies and clients drop silent connections
MAX_BODY_BYTES = 1 << 20  # a question, its history and options; anything bigger is not a chat request
RETRY_AFTER_S = 30  # the queue is full: about one answer's time on a busy laptop
ROLES_IGNORED = ("system", "developer")  # the report's grounding rules stay; a caller's instructions do not apply


class ApiError(Exception):
    """Becomes an OpenAI-style error object with an HTTP status."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"Retry-After": str(RETRY_AFTER_S)} if self.status == 429 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def api_error(e: BaseException, question: str = "") -> ApiError:
    """The error object for a failed generation: the queue full, a report gone, a user-facing failure (its message),
    anything else (logged here; the caller gets a short message, never a traceback)."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, Busy):
        return ApiError(429, render.message("busy", render.ui_lang(question, None)), "rate_limit_error",
                        code="queue_full")
    if isinstance(e, library.UnknownReport):
        return ApiError(404, str(e), param="model", code="model_not_found")
    if isinstance(e, UserError):
        return ApiError(500, str(e), "server_error")
    log.error("answering %r through the OpenAI-compatible endpoint failed", question, exc_info=e)
    return ApiError(500, render.message("failed", render.ui_lang(question, None)), "server_error")


@dataclass(frozen=True)
class ChatRequest:
    model: str
    question: str
    history: list[tuple[str, str]]
    stream: bool
    lang: str | None  # "en" / "zh" forces the answer language; None: the question's


def _text(message: dict, i: int) -> str:
    """A message's text: a string, or a list of text parts (as newer clients send)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise ApiError(400, f"messages[{i}].content must be a string or a list of text parts",
                   param=f"messages[{i}].content")


def parse_chat(body: object, max_question_chars: int) -> ChatRequest:
    """A chat.completions request body -> what the engine needs, or ApiError 400 naming the bad parameter.
    Sampling options (temperature, max_tokens, ...) are accepted and ignored: the engine's settings decide."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "you must provide a model parameter: the name of a report (GET /v1/models lists them)",
                       param="model")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise ApiError(400, "stream must be true or false", param="stream")
    if body.get("n") not in (None, 1):
        raise ApiError(400, "only n=1 is supported", param="n")
    lang = body.get("lang") or "auto"
    if lang not in ("auto", "en", "zh"):
        raise ApiError(400, "lang must be 'auto', 'en' or 'zh'", param="lang")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", param="messages")
    turns = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ApiError(400, f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = m.get("role")
        if role in ROLES_IGNORED:
            continue
        if role not in ("user", "assistant"):
            raise ApiError(400, f"messages[{i}].role {role!r} is not supported: use user and assistant messages",
                           param=f"messages[{i}].role")
        turns.append((i, role, _text(m, i)))
    last = len(messages) - 1
    if not turns or turns[-1][0] != last or turns[-1][1] != "user":
        raise ApiError(400, "the last message must be the user's question", param=f"messages[{last}]")
    for k, (i, role, _) in enumerate(turns):
        if role != ("user", "assistant")[k % 2]:
            raise ApiError(400, "before the question, messages must be user/assistant pairs in turn",
                           param=f"messages[{i}]")
    raw = turns[-1][2]
    try:
        question = render.check_question(raw, max_question_chars, render.ui_lang(raw, lang))
    except render.BadQuestion as e:
        raise ApiError(400, str(e), param=f"messages[{last}].content") from e
    history = [(turns[k][2], turns[k + 1][2]) for k in range(0, len(turns) - 1, 2)]
    return ChatRequest(model, question, history, stream, None if lang == "auto" else lang)


def extra(answer: Answer, report: str) -> dict:
    """The `reportqa` field: what the answer rests on (the message content is the answer itself)."""
    out = render.api_result(answer)
    del out["answer"]
    return {**out, "unverified": answer.unverified, "standalone_question": answer.standalone_question,
            "parts": answer.parts, "report": report}


def completion(answer: Answer, req: ChatRequest, cid: str, created: int) -> dict:
    return {"id": cid, "object": "chat.completion", "created": created, "model": req.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.answer},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": None, "reportqa": extra(answer, req.model)}


def chunk(cid: str, created: int, model: str, delta: dict, finish: str | None = None, **fields) -> str:
    data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **fields}
    return sse(data)


def sse(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def pieces(text: str) -> list[str]:
    """The answer in word-sized deltas (runs of CJK text without spaces stay whole)."""
    return re.findall(r"\s*\S+\s*", text) or [text]


def generate(service: Service, req: ChatRequest, cancel: threading.Event) -> asyncio.Future:
    """Start the generation in its own thread (it may wait its turn for minutes); the future gets the checked Answer
    (None when `cancel` was set: the client went away) or the exception."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result: Answer | None, error: BaseException | None) -> None:
        if not future.done():
            future.set_exception(error) if error else future.set_result(result)

    def work():
        answer, error = None, None
        try:
            with service.queue.turn():
                if not cancel.is_set():
                    for ev in service.engine(req.model).stream(req.question, history=req.history, lang=req.lang):
                        if cancel.is_set():
                            break  # closes the engine's generator: the model stops writing and the turn ends
                        if isinstance(ev, Final):
                            answer = ev.answer
        except Exception as e:
            error = e
        try:
            loop.call_soon_threadsafe(settle, answer, error)
        except RuntimeError:  # the server stopped meanwhile
            pass

    threading.Thread(target=work, name="reportqa-openai", daemon=True).start()
    return future


def model(report: dict) -> dict:
    """A report of `library.list_reports` as an OpenAI model object (created: when its index was built)."""
    built = report["built_at"]
    return {"id": report["name"], "object": "model",
            "created": int(datetime.strptime(built, "%Y-%m-%dT%H:%M:%S%z").timestamp()) if built else 0,
            "owned_by": "reportqa",
            "reportqa": {k: report[k] for k in ("title", "subtitle", "pages", "languages", "default")}}


def unknown_model(name: str, names: list[str]) -> ApiError:
    return ApiError(404, f"the model {name!r} does not exist: the models are the reports ({', '.join(names)})",
                    param="model", code="model_not_found")


async def read_json(request: Request) -> object:
    """The request body as JSON, read no further than MAX_BODY_BYTES."""
    raw = bytearray()
    async for part in request.stream():
        raw += part
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, f"the request body is larger than {MAX_BODY_BYTES:,} bytes")
    try:
        return json.loads(raw)
    except ValueError as e:
        raise ApiError(400, "the request body is not valid JSON") from e


def _openai_errors(handler):
    @functools.wraps(handler)
    async def wrapped(request: Request):
        try:
            return await handler(request)
        except Exception as e:
            return api_error(e).response()

    return wrapped


def router(service: Service, api_key: str | None = None) -> APIRouter:
    """The /v1 routes over `service`. With `api_key` (the chat's password), each request needs
    `Authorization: Bearer <api_key>`."""
    r = APIRouter(prefix="/v1")

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise ApiError(401, "this server needs the chat's password as the API key "
                           "(Authorization: Bearer <password>)", code="invalid_api_key")

    @r.get("/models")
    @_openai_errors
    async def models(request: Request):
        authorize(request)
        reports = await run_in_threadpool(library.list_reports, service.settings)
        return JSONResponse({"object": "list", "data": [model(x) for x in reports]})

    @r.get("/models/{name}")
    @_openai_errors
    async def one_model(request: Request):
        authorize(request)
        name = request.path_params["name"]
        reports = await run_in_threadpool(library.list_reports, service.settings)
        found = [model(x) for x in reports if x["name"] == name]
        if not found:
            raise unknown_model(name, [x["name"] for x in reports])
        return JSONResponse(found[0])

    @r.post("/chat/completions")
    @_openai_errors
    async def chat_completions(request: Request):
        authorize(request)
        req = parse_chat(await read_json(request), service.settings.max_question_chars)
        names = await run_in_threadpool(library.names, service.settings)
        if req.model not in names:
            raise unknown_model(req.model, names)
        queue = service.queue
        if req.stream and queue.waiting >= queue.max_waiting:
            raise api_error(Busy(), req.question)  # before the 200 goes out; a lost race is an error event
        cid, created, cancel = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), threading.Event()
        future = generate(service, req, cancel)
        if not req.stream:
            try:
                answer = await future
            except Exception as e:
                raise api_error(e, req.question) from e
            finally:
                cancel.set()
            return JSONResponse(completion(answer, req, cid, created))
        return StreamingResponse(stream(req, future, cancel, cid, created), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @r.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    @_openai_errors
    async def unknown_route(request: Request):
        authorize(request)
        raise ApiError(404, f"unknown request URL: {request.method} {request.url.path}", code="unknown_url")

    return r


async def stream(req: ChatRequest, future: asyncio.Future, cancel: threading.Event, cid: str, created: int):
    """The SSE body: the role at once, keep-alive comments while the model writes, then the checked answer, the
    `reportqa` field on the last chunk, and [DONE]. A failure after the 200 went out is sent as an error object."""
    try:
        yield chunk(cid, created, req.model, {"role": "assistant", "content": ""})
        while not (await asyncio.wait({future}, timeout=KEEPALIVE_S))[0]:
            yield ": generating\n\n"
        try:
            answer = future.result()
        except Exception as e:
            yield sse(api_error(e, req.question).body())
            return
        for piece in pieces(answer.answer):
            yield chunk(cid, created, req.model, {"content": piece})
        yield chunk(cid, created, req.model, {}, "stop", reportqa=extra(answer, req.model))
        yield "data: [DONE]\n\n"
    finally:
        cancel.set()  # also when the client went away: the generation stops at its next event
