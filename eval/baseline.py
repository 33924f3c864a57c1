"""The naive baseline our pipeline is measured against: llama-index defaults end to end. One Document per report page
(split by the default SentenceSplitter), a default in-memory VectorStoreIndex persisted under settings.home/baseline,
and the default query engine (default prompt, top-2 chunks), with the same embedder and LLM as our pipeline.

    pipeline = build_baseline(settings)      # builds the index once, then loads it
    pipeline.ask("What is ...?")             # -> reportqa.answer.Answer (citations = the source nodes' pages)
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from typing import Any

from llama_index.core.llms import CompletionResponse, CompletionResponseGen, CustomLLM, LLMMetadata
from llama_index.core.llms.callbacks import llm_completion_callback
from pydantic import PrivateAttr

from reportqa.answer import Answer, ChatLLM, Citation, Message, get_llm
from reportqa.answer.grounding import is_refusal
from reportqa.answer.text import detect_lang
from reportqa.settings import Settings

log = logging.getLogger(__name__)

NAME = "baseline"
QUOTE_CHARS = 240
DEFAULT_SYSTEM = "You are a helpful assistant."  # what Qwen's own chat template adds when a prompt has no system turn
# Refusal wordings of llama-index's default prompt ("Given the context information and not prior knowledge...") on top
# of the answer stage's general refusal patterns.
_CONTEXT_REFUSAL = re.compile(r"not (in|within|part of) the (given |provided )?context|^empty response$|"
                              r"(没有|未)提供|上下文(中)?(没有|未)", re.I)


def is_baseline_refusal(text: str) -> bool:
    return not text.strip() or is_refusal(text) or bool(_CONTEXT_REFUSAL.search(text.strip()))


class ChatLLMCompletion(CustomLLM):
    """Our ChatLLM (get_llm) as a llama-index completion model, the way llama-index's LlamaCPP integration runs a
    GGUF: the formatted prompt becomes one user turn."""

    context_window: int = 4096
    num_output: int = 256
    model_name: str = "reportqa"
    _llm: Any = PrivateAttr()

    def __init__(self, llm, **kw: Any):
        super().__init__(model_name=llm.name, **kw)
        self._llm = llm

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self.context_window, num_output=self.num_output, model_name=self.model_name)

    def _messages(self, prompt: str) -> list[Message]:
        return [Message("system", DEFAULT_SYSTEM), Message("user", prompt)]

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self._llm.complete(self._messages(prompt), self.num_output))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        def gen() -> Iterator[CompletionResponse]:
            text = ""
            for delta in self._llm.stream(self._messages(prompt), self.num_output):
                text += delta
                yield CompletionResponse(text=text, delta=delta)
        return gen()


class BaselinePipeline:
    """Quacks like the eval's System: .retrieve(question, k) -> ranked pages, .ask(question) -> Answer. A query
    engine has no conversation memory: a follow-up is asked alone."""

    name = NAME

    def __init__(self, index, settings: Settings, llm: ChatLLM | None = None):
        self.index = index
        self.settings = settings
        self._llm = llm
        self._engine = None

    def retrieve(self, question: str, k: int) -> list[int]:
        """Pages of the top-k chunks of the default retriever (the query engine itself reads only the top 2)."""
        nodes = self.index.as_retriever(similarity_top_k=k).retrieve(question)
        return list(dict.fromkeys(int(n.metadata["page"]) for n in nodes))

    def _query_engine(self):
        if self._engine is None:  # the LLM loads on first use, so retrieval-only runs never load it
            llm = ChatLLMCompletion(self._llm or get_llm(self.settings), context_window=self.settings.llm_ctx,
                                    num_output=self.settings.llm_max_tokens)
            self._engine = self.index.as_query_engine(llm=llm, streaming=True)
        return self._engine

    def ask(self, question: str) -> Answer:
        start = time.perf_counter()
        response = self._query_engine().query(question)
        first, parts = None, []
        for delta in response.response_gen:
            if first is None:
                first = time.perf_counter() - start
            parts.append(delta)
        text = "".join(parts).strip()
        pages = _pages(response.source_nodes)
        citations = [Citation(page=p, quote=q) for p, q in pages.items()]
        return Answer(question=question, standalone_question=question, answer=text, lang=detect_lang(question),
                      refused=is_baseline_refusal(text), citations=citations,
                      retrieved=[(int(n.metadata["page"]), float(n.score or 0.0)) for n in response.source_nodes],
                      first_token_s=first, total_s=time.perf_counter() - start,
                      context="\n".join(n.node.get_content() for n in response.source_nodes))


def _pages(nodes: Sequence) -> dict[int, str]:
    """page -> quote (the start of its best source node), in rank order."""
    out: dict[int, str] = {}
    for n in nodes:
        out.setdefault(int(n.metadata["page"]), n.node.get_content()[:QUOTE_CHARS])
    return out


def _stamp(settings: Settings, embedder) -> dict:
    import llama_index.core

    return {"report_sha256": hashlib.sha256(settings.report.read_bytes()).hexdigest(),
            "embedder": embedder.model_name, "llama_index": llama_index.core.__version__}


def build_baseline(settings: Settings, rebuild: bool = False, llm: ChatLLM | None = None) -> BaselinePipeline:
    """The baseline over settings.report: loaded from settings.home/baseline, or built there first (once; again
    when the report, the embedder or llama-index change). llm defaults to get_llm(settings), loaded on first ask."""
    from llama_index.core import Document, StorageContext, VectorStoreIndex, load_index_from_storage

    from reportqa.index import get_embedder
    from reportqa.ingest import load_pages

    folder = settings.home / NAME
    embedder = get_embedder(settings)
    stamp = _stamp(settings, embedder)
    stamp_file = folder / "stamp.json"
    if not rebuild and stamp_file.exists() and json.loads(stamp_file.read_text()) == stamp:
        index = load_index_from_storage(StorageContext.from_defaults(persist_dir=str(folder)), embed_model=embedder)
        return BaselinePipeline(index, settings, llm)
    pages = load_pages(settings.report)
    log.info("building the baseline index of %d pages into %s (once)", len(pages), folder)
    docs = [Document(text=p.text, metadata={"page": p.page}) for p in pages if p.text.strip()]
    index = VectorStoreIndex.from_documents(docs, embed_model=embedder, show_progress=True)
    tmp = folder.with_name(NAME + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    index.storage_context.persist(persist_dir=str(tmp))
    (tmp / "stamp.json").write_text(json.dumps(stamp))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)  # only a complete build ever sits under the final name
    return BaselinePipeline(index, settings, llm)
