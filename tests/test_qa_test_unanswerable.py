"""The held-out test split's unanswerable near misses (eval/qa-test-unanswerable.jsonl) checked against the report.

Every item must be refusable: none of its `absent` terms may occur anywhere in the bundled report text. The eval must
read the file, and the system must take each question in the language the item expects the refusal in.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from test_qa_set import CJK, EVAL, LANGS, REQUIRED, norm, read_qa, words

NAME = "qa-test-unanswerable.jsonl"
ID = re.compile(r"t-unans-\d{2}")


@pytest.fixture(scope="module")
def items() -> list[dict]:
    return read_qa(NAME)


def test_schema(items):
    ids = [item.get("id") for item in items]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    for item in items:
        assert isinstance(item.get("id"), str) and ID.fullmatch(item["id"]), item.get("id")
        for field, kind in REQUIRED.items():
            assert isinstance(item.get(field), kind), (item["id"], field)
        assert item["kind"] == "unanswerable" and item["lang"] in LANGS, item["id"]
        assert item["pages"] == [] and item["must_include"] == [], item["id"]
        assert item["question"].strip() and item["answer"].strip(), item["id"]
        absent = item.get("absent")
        assert isinstance(absent, list) and absent and all(isinstance(t, str) and t.strip() for t in absent), item["id"]


def test_size_and_languages(items):
    langs = Counter(item["lang"] for item in items)
    assert len(items) >= 40
    assert langs["en"] >= 18 and langs["zh"] >= 18, langs


def test_questions_and_refusals_are_in_their_language(items):
    from reportqa.answer.text import detect_lang

    for item in items:
        for field in ("question", "answer"):
            assert bool(CJK.search(item[field])) == (item["lang"] == "zh"), (item["id"], field)
        # The engine answers in the language it detects; the reference refusal must be in that same language.
        assert detect_lang(item["question"]) == item["lang"], item["id"]


def test_held_out_from_the_other_qa_files(items):
    others = [item for path in EVAL.glob("qa*.jsonl") if path.name != NAME for item in read_qa(path.name)]
    assert not {item["id"] for item in others} & {item["id"] for item in items}
    questions = {norm(item["question"]) for item in others}
    assert not [item["id"] for item in items if norm(item["question"]) in questions]


def test_eval_reads_the_file(items):
    from reportqa.eval.runner import load_qa

    loaded = load_qa(EVAL / NAME)
    assert [q.id for q in loaded] == [item["id"] for item in items]
    assert all(q.kind == "unanswerable" and not q.pages for q in loaded)


def test_absent_terms_absent_from_report(items, settings):
    """Stricter than the dev set's check: the report puts a private-use U+E601 between digits and Chinese characters
    ("2030\\ue601年"), which words() keeps, so "2030年" would look absent. It is read as a space here, and terms with
    Chinese characters are also matched with all whitespace removed, since Chinese has no spaces between words."""
    raw = Path(settings.report).read_text(encoding="utf-8")
    spaced, unspaced = words(raw.replace("\ue601", " ")), norm(raw)
    present = [
        (item["id"], term) for item in items for term in item["absent"]
        if words(term).strip() in spaced or (CJK.search(term) and norm(term) in unspaced)
    ]
    assert not present
