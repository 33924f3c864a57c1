"""Shared fixtures. The real index of the bundled report is built once per machine into a git-ignored home
under the repo (a re-run finds it unchanged and skips the work), so tests use the real embedder and Chroma."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_HOME = Path(os.environ.get("REPORTQA_TEST_HOME", REPO / ".reportqa" / "test-home"))

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def settings():
    from reportqa.settings import load_settings

    return load_settings(home=TEST_HOME)


@pytest.fixture(scope="session")
def built_index(settings):
    """Settings whose home holds the real index of the bundled report."""
    from reportqa.index import build_index

    build_index(settings, settings.report)
    return settings


@pytest.fixture(scope="session")
def retriever(built_index):
    from reportqa.index import open_retriever

    return open_retriever(built_index)


@pytest.fixture(scope="session")
def report_pages(settings) -> dict:
    """The bundled report's pages by printed number, as the real ingest stage segments them."""
    from reportqa.ingest import load_pages

    return {p.page: p for p in load_pages(settings.report)}


@pytest.fixture(scope="session")
def report_words(settings) -> str:
    """The report's text for absent-term checks (tests/test_qa_set.py `words`: whitespace kept, U+E601 a space)."""
    from test_qa_set import words

    return words(Path(settings.report).read_text(encoding="utf-8"))
