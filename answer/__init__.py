"""The answer stage: grounded, page-cited answers in the asker's language. See docs/answer.md."""

from reportqa.answer.engine import AnswerEngine
from reportqa.answer.llm import ChatLLM, LLMUnavailable, Message, ScriptedLLM, ensure_model, get_llm
from reportqa.answer.types import Answer, Citation, Event, Evidence, Final, Token

__all__ = ["Answer", "AnswerEngine", "ChatLLM", "Citation", "Event", "Evidence", "Final", "LLMUnavailable", "Message",
           "ScriptedLLM", "Token", "ensure_model", "get_llm"]
