"""Replay: every raw model output of a run is stored with a hash of its prompt, so a later run can answer each prompt
from the store and call the model only for prompts that changed (a change after generation re-grades the whole set in
seconds; a change to a prompt regenerates only the questions it touches). See docs/eval.md, "Replay"."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from reportqa.answer.llm import ChatLLM, Message
from reportqa.errors import UserError
from reportqa.settings import Settings

log = logging.getLogger(__name__)

GENERATIONS = "generations.jsonl"


def model_id(settings: Settings, llm: ChatLLM | None = None) -> str:
    """What decides a generation besides the prompt: the backend, its model and the sampling temperature (a fixed
    seed per call makes the local model's output a function of these). Read from the settings, so a replay that
    needs no model never loads one."""
    if llm is not None:
        name = llm.name
    elif settings.llm == "local":
        from reportqa.answer.llm import MODEL_FILE

        name = f"local:{Path(settings.llm_model_path).name if settings.llm_model_path else MODEL_FILE}"
    elif settings.llm == "openai":
        name = f"openai:{settings.openai_model}"
    else:
        name = settings.llm
    return f"{name}|temperature={settings.llm_temperature}"


def prompt_hash(messages: Sequence[Message], max_tokens: int, model: str) -> str:
    payload = json.dumps({"messages": [[m.role, m.content] for m in messages], "max_tokens": max_tokens,
                          "model": model}, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def load_store(folder: Path) -> dict[str, str]:
    """hash -> output of a run folder's generations.jsonl (a later line wins: it is the latest run's)."""
    path = folder / GENERATIONS
    if not path.is_file():
        raise UserError(f"--replay {folder}: no {GENERATIONS} there (replay needs the output folder of a full run "
                        f"made by this version of the eval)")
    store = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
            store[rec["hash"]] = rec["output"]
        except (ValueError, KeyError, TypeError):  # a line cut short by an interrupted run
            continue
    return store


class RecordingLLM(ChatLLM):
    """Delegates to the real model and appends every output, with its prompt hash, to `path`; with a `store`, a prompt
    whose hash is there is answered from it instead. The real model is built on the first prompt that needs it."""

    def __init__(self, model: str, prefill: bool, backend: Callable[[], ChatLLM], path: Path,
                 store: dict[str, str] | None = None) -> None:
        super().__init__()
        self.name = model
        self.prefill = prefill
        self._backend_factory = backend
        self._backend: ChatLLM | None = None
        self._path = path
        self._store = store
        self.replayed = 0  # prompts answered from the store
        self.generated = 0  # prompts sent to the model

    def _model(self) -> ChatLLM:
        if self._backend is None:
            self._backend = self._backend_factory()
        return self._backend

    def _stream(self, messages: list[Message], max_tokens: int) -> Iterator[str]:
        key = prompt_hash(messages, max_tokens, self.name)
        replayed = self._store is not None and key in self._store
        if replayed:
            output = self._store[key]
            yield output
        else:
            output = ""
            for piece in self._model().stream(messages, max_tokens):
                output += piece
                yield piece
        # counted and stored only once the output is complete: a generation cut short is no answer to replay
        if replayed:
            self.replayed += 1
        else:
            self.generated += 1
        with self._path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"hash": key, "model": self.name, "max_tokens": max_tokens, "replayed": replayed,
                                "output": output}, ensure_ascii=False) + "\n")


def backend_prefill(settings: Settings) -> bool:
    """Whether the configured backend continues a trailing assistant message, read off its class so a replay that
    needs no model never loads one."""
    from reportqa.answer.llm import LlamaCppLLM, OpenAICompatLLM, ScriptedLLM

    return {"local": LlamaCppLLM, "openai": OpenAICompatLLM}.get(settings.llm, ScriptedLLM).prefill
