"""The eval stage: QA-set runner, metrics, report, and the naive llama-index baseline. See docs/eval.md."""

from reportqa.eval.baseline import BaselinePipeline, build_baseline
from reportqa.eval.runner import QAFormatError, QAItem, load_qa, run_eval

__all__ = ["BaselinePipeline", "QAFormatError", "QAItem", "build_baseline", "load_qa", "run_eval"]
