"""The answer stage: grounded, page-cited answers in the asker's language. See docs/answer.md.

The names are loaded on first use (PEP 562): the settings object validates rule names against `answer.types` when it
loads, and importing the engine with it would cost every command over a second."""

from importlib import import_module

_EXPORTS = {
    "AnswerEngine": "engine",
    "ChatLLM": "llm", "LLMUnavailable": "llm", "Message": "llm", "ScriptedLLM": "llm", "ensure_model": "llm",
    "get_llm": "llm",
    "Answer": "types", "Citation": "types", "Event": "types", "Evidence": "types", "Final": "types", "Token": "types",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
