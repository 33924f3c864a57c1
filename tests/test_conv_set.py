"""The conversation QA sets (eval/conv-dev.jsonl, eval/conv-test.jsonl) checked against the bundled report.

A conversation item is a follow-up question (`question`) asked after the earlier user turns in `history`; its gold
describes that graded turn. Each has a standalone twin (`<id>-solo`, no history) asking the same thing in full, with
the same gold, so a run can tell a follow-up failure from a retrieval or answer failure. The gold rules are those of
eval/qa.jsonl (tests/test_qa_set.py), on the real segmentation.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest
from test_qa_set import CJK, KINDS, LANGS, norm, words  # tests/ is on sys.path (rootdir-relative test modules)

EVAL = Path(__file__).resolve().parent.parent / "eval"
SETS = {"dev": ("conv-dev.jsonl", "cd"), "test": ("conv-test.jsonl", "ct")}
FOLLOWUPS = {"ellipsis", "pronoun", "changed-year", "changed-unit", "changed-subject", "unanswerable", "new-topic"}
PAIRS = {("en", "en"), ("zh", "zh"), ("en", "zh"), ("zh", "en")}
# The test split's gold pages were drawn at random, so it cannot lean on pages the dev split was tuned on.
TEST_PAGE_SAMPLE = set(random.Random(7).sample(range(4, 338), 60))
GOLD = {"lang": str, "question": str, "answer": str, "must_include": list, "pages": list, "kind": str}


def load(name: str) -> list[dict]:
    path = EVAL / SETS[name][0]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def conversations(items: list[dict]) -> list[dict]:
    return [item for item in items if "history" in item]


def lang_of(text: str) -> str:
    return "zh" if CJK.search(text) else "en"


def history_lang(item: dict) -> str:
    return lang_of(item["history"][0])


@pytest.fixture(scope="module", params=sorted(SETS))
def split(request) -> tuple[str, list[dict]]:
    return request.param, load(request.param)


def test_schema(split):
    name, items = split
    prefix = SETS[name][1]
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    for item in items:
        assert re.fullmatch(rf"{prefix}-\d\d(-solo)?", item["id"]), item["id"]
        for field, kind in GOLD.items():
            assert isinstance(item.get(field), kind), (item["id"], field)
        assert item["lang"] in LANGS and item["kind"] in KINDS, item["id"]
        assert item["question"].strip() and item["answer"].strip(), item["id"]
        assert all(isinstance(p, int) for p in item["pages"]), item["id"]
        for group in item["must_include"]:
            assert group and all(isinstance(a, str) and a.strip() for a in group), item["id"]
        unanswerable = item["kind"] == "unanswerable"
        assert unanswerable == (not item["pages"]) == (not item["must_include"]), item["id"]
        assert unanswerable == bool(item.get("absent")), item["id"]
        # Only conversation items carry conversation fields; twins are ordinary QA items.
        solo = item["id"].endswith("-solo")
        assert solo == (not {"history", "followup", "twin"} & item.keys()), item["id"]


def test_conversation_fields(split):
    _, items = split
    for item in conversations(items):
        history = item["history"]
        assert isinstance(history, list) and 1 <= len(history) <= 2, item["id"]
        assert all(isinstance(turn, str) and turn.strip() for turn in history), item["id"]
        # One conversation, one history language: the pairs below are counted by it.
        assert len({lang_of(turn) for turn in history}) == 1, item["id"]
        assert item["followup"] in FOLLOWUPS, item["id"]
        assert (item["followup"] == "unanswerable") == (item["kind"] == "unanswerable"), item["id"]
        assert item["question"] not in history, item["id"]


def test_twins(split):
    _, items = split
    by_id = {item["id"]: item for item in items}
    convs = conversations(items)
    for item in convs:
        assert item["twin"] == item["id"] + "-solo", item["id"]
        twin = by_id.get(item["twin"])
        assert twin is not None, item["id"]
        for field in ("lang", "pages", "kind", "must_include", "absent"):
            assert twin.get(field) == item.get(field), (item["id"], field)
        # A new topic stands alone, so its twin is the very same question; any other follow-up needs writing out.
        assert (twin["question"] == item["question"]) == (item["followup"] == "new-topic"), item["id"]
    assert len(items) == 2 * len(convs), "every item is a conversation item or the twin of one"


def test_languages(split):
    _, items = split
    for item in items:
        for field in ("question", "answer"):
            assert lang_of(item[field]) == item["lang"], (item["id"], field)
        if item["kind"] == "cross-lingual":
            assert item["lang"] == "zh", item["id"]


def test_mix(split):
    _, items = split
    convs = conversations(items)
    assert len(convs) >= 42
    pairs = Counter((history_lang(item), item["lang"]) for item in convs)
    assert pairs.keys() == PAIRS and min(pairs.values()) >= 8, pairs
    followups = Counter(item["followup"] for item in convs)
    assert followups.keys() == FOLLOWUPS, followups
    assert followups["new-topic"] >= 4 and followups["unanswerable"] >= 4, followups
    # Ellipsis and pronouns are what users do most, so they are the most common kinds of follow-up.
    others = max(n for f, n in followups.items() if f not in {"ellipsis", "pronoun"})
    assert min(followups["ellipsis"], followups["pronoun"]) >= others, followups
    turns = Counter(len(item["history"]) + 1 for item in convs)
    assert turns[3] >= 10 and turns[2] >= 10, turns


def test_splits_use_different_pages():
    dev, test = ({p for item in load(name) for p in item["pages"]} for name in ("dev", "test"))
    assert not dev & test, sorted(dev & test)
    assert test <= TEST_PAGE_SAMPLE, sorted(test - TEST_PAGE_SAMPLE)


def test_dev_stays_off_the_held_out_qa_test_split():
    """Follow-up handling is tuned on the dev conversations, so they use neither a gold page nor an absent term of
    the held-out QA test files (eval/qa-test*.jsonl)."""
    held_out = [
        json.loads(line)
        for path in sorted(EVAL.glob("qa-test*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    assert held_out
    dev = load("dev")
    shared_pages = {p for item in dev for p in item["pages"]} & {p for item in held_out for p in item["pages"]}
    assert not shared_pages, sorted(shared_pages)
    terms = {t.casefold() for item in held_out for t in item.get("absent", [])}
    assert not [t for item in dev for t in item.get("absent", []) if t.casefold() in terms]


def test_must_include_printed_on_gold_pages(split, report_pages):
    _, items = split
    missing = []
    for item in (i for i in items if i["pages"]):
        assert all(p in report_pages for p in item["pages"]), (item["id"], item["pages"])
        text = norm("\n".join(report_pages[p].text for p in item["pages"]))
        missing += [(item["id"], group) for group in item["must_include"] if not any(norm(a) in text for a in group)]
    assert not missing


def test_multi_page_items_need_each_page(split, report_pages):
    _, items = split
    for item in (i for i in items if i["kind"] == "multi-page"):
        assert len(item["pages"]) >= 2, item["id"]
        for p in item["pages"]:
            text = norm(report_pages[p].text)
            assert any(norm(a) in text for group in item["must_include"] for a in group), (item["id"], p)


def test_cross_lingual_fact_only_in_english_block(split, report_pages):
    _, items = split
    for item in (i for i in items if i["kind"] == "cross-lingual"):
        zh = norm("\n".join(report_pages[p].zh for p in item["pages"]))
        en = norm("\n".join(report_pages[p].en for p in item["pages"]))
        key = item["must_include"][0]
        assert not any(norm(a) in zh for a in key), item["id"]
        assert any(norm(a) in en for a in key), item["id"]


def test_unanswerable_terms_absent_from_report(split, report_words):
    _, items = split
    for item in (i for i in items if i["kind"] == "unanswerable"):
        # Chinese is written without spaces, so a term with Chinese in it is also looked for with them removed.
        present = [
            t
            for t in item["absent"]
            if words(t).strip() in report_words or (CJK.search(t) and norm(t) in report_words.replace(" ", ""))
        ]
        assert not present, (item["id"], present)
