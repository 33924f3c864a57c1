"""The serving half of the bench, run in its own process so that its peak RSS is the serving process's alone:

    python -m reportqa.bench.probe {ours,baseline} ID [ID ...]   (REPORTQA_* settings from the environment)

loads one pipeline, times retrieval over every question of the QA set, answers the questions with the given ids
(graded like the eval), and prints one JSON object on stdout:

    {"system", "load_s", "first_query_ms", "retrieval_ms": [...], "peak_rss_mb",
     "answers": [{"id", "lang", "ttft_s", "total_s", "prompt_tokens", "gen_tokens", "decode_s", "llm_calls",
                  "answer_correct", "refused", "answer", "error"}]}

Time to first token is taken at the first token the model generates (the answer engine shows a fixed Chinese
opening before that, which is not model work); an answer given without the model (an early refusal) counts its full
time.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tqdm import tqdm

from reportqa.answer import ChatLLM, Message
from reportqa.answer.llm import chatml
from reportqa.settings import Settings, load_settings

log = logging.getLogger(__name__)

WARM_UP = "warm-up question 预热问题"


@dataclass
class Call:
    prompt: str
    start: float
    first: float | None = None
    end: float | None = None
    text: str = ""


class MeteredLLM(ChatLLM):
    """Wraps a ChatLLM and records every generation: its prompt, first-token and end times, and output."""

    def __init__(self, inner: ChatLLM):
        super().__init__()
        self.inner, self.name = inner, inner.name
        self.calls: list[Call] = []

    def warm_up(self, prefix: Sequence[Message]) -> None:
        self.inner.warm_up(prefix)

    def _stream(self, messages: list[Message], max_tokens: int) -> Iterator[str]:
        call = Call(prompt=chatml(messages), start=time.perf_counter())
        self.calls.append(call)
        for piece in self.inner.stream(messages, max_tokens):
            if call.first is None:
                call.first = time.perf_counter()
            call.text += piece
            yield piece
        call.end = time.perf_counter()


class _Timed:
    """A System (see eval.runner) that remembers when its last ask() started."""

    def __init__(self, system):
        self.system, self.name, self.started = system, system.name, 0.0

    def retrieve(self, question: str, k: int) -> list[int]:
        return self.system.retrieve(question, k)

    def ask(self, question: str):
        self.started = time.perf_counter()
        return self.system.ask(question)


def _load(name: str, settings: Settings, llm: ChatLLM):
    """(System, top-k retrieval function, warm-up) of one pipeline, answering with `llm`. The warm-up is what the
    pipeline does at start-up: ours reads its fixed system prompt into the model's cache (as the UI does); the naive
    baseline has nothing to prepare, so it only gets the model's weights paged in."""
    if name == "ours":
        from reportqa.answer import AnswerEngine
        from reportqa.eval.runner import OurSystem
        from reportqa.index import open_retriever

        retriever = open_retriever(settings)
        engine = AnswerEngine(settings, retriever=retriever, llm=llm)
        return OurSystem(retriever, engine), lambda q: retriever.retrieve(q, k=settings.top_k), engine.warm_up
    from reportqa.eval.baseline import build_baseline

    system = build_baseline(settings, llm=llm)
    return system, lambda q: system.retrieve(q, settings.top_k), \
        lambda: llm.complete([Message("user", "Reply with OK.")], 1)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def probe(name: str, ids: Sequence[str], settings: Settings) -> dict:
    from reportqa.answer import get_llm
    from reportqa.eval.runner import DEFAULT_QA, evaluate_item, load_qa
    from reportqa.ingest import load_pages

    items = load_qa(DEFAULT_QA)
    by_id = {it.id: it for it in items}
    page_text = {p.page: p.text for p in load_pages(settings.report)}

    t0 = time.perf_counter()
    llm = MeteredLLM(get_llm(settings))
    system, retrieve, warm_up = _load(name, settings, llm)
    warm_up()
    load_s = time.perf_counter() - t0
    # The first query may pay for lazy loading (embedder page-in, jieba's dictionary): reported apart.
    t = time.perf_counter()
    retrieve(WARM_UP)
    first_query_ms = 1000 * (time.perf_counter() - t)

    retrieval_ms = []
    for it in tqdm(items, desc=f"{name}: retrieval", unit="q", file=sys.stderr, dynamic_ncols=True):
        t = time.perf_counter()
        retrieve(it.question)
        retrieval_ms.append(1000 * (time.perf_counter() - t))

    timed = _Timed(system)
    answers, calls_of = [], []
    for qid in tqdm(ids, desc=f"{name}: answers", unit="q", file=sys.stderr, dynamic_ncols=True):
        n_before = len(llm.calls)
        rec = evaluate_item(by_id[qid], timed, lambda p: page_text.get(p, ""), settings.eval_k,
                            retrieval_only=False)
        calls = llm.calls[n_before:]
        first = next((c.first for c in calls if c.first is not None), None)
        calls_of.append(calls)
        answers.append({
            "id": qid, "lang": rec["lang"], "total_s": rec["latency_s"], "error": rec["error"],
            "ttft_s": first - timed.started if first is not None else rec["latency_s"],
            "llm_calls": len(calls), "decode_s": sum(c.end - c.first for c in calls if c.first and c.end),
            "answer_correct": rec["grades"].get("answer_correct"), "refused": rec["refused"], "answer": rec["answer"],
        })
    peak = peak_rss_mb()  # before the tokenizer below adds its own memory

    count = _token_counter(settings)
    for a, calls in zip(answers, calls_of, strict=True):
        a["prompt_tokens"] = sum(count(c.prompt) for c in calls)
        a["gen_tokens"] = sum(count(c.text) for c in calls)
    return {"system": name, "load_s": load_s, "first_query_ms": first_query_ms, "retrieval_ms": retrieval_ms,
            "peak_rss_mb": peak, "answers": answers}


def _token_counter(settings: Settings):
    """Token count with the model's own tokenizer (vocabulary only, no weights), or a rough 1 token / 3 chars
    estimate when the model is not a local GGUF."""
    if settings.llm != "local":
        return lambda text: round(len(text) / 3)
    from llama_cpp import Llama

    from reportqa.answer import ensure_model

    vocab = Llama(model_path=str(ensure_model(settings)), vocab_only=True, verbose=False)
    return lambda text: len(vocab.tokenize(text.encode(), add_bos=False, special=True))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reportqa.bench.probe", description=__doc__.splitlines()[0])
    ap.add_argument("system", choices=["ours", "baseline"])
    ap.add_argument("ids", nargs="*")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    print(json.dumps(probe(args.system, args.ids, load_settings()), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
