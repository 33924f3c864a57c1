"""The conversation QA sets (eval/conv-dev.jsonl, eval/conv-dev2.jsonl, eval/conv-dev3.jsonl, eval/conv-test.jsonl)
checked against the bundled report.

A conversation item is a follow-up question (`question`) asked after the earlier user turns in `history`; its gold
describes that graded turn. Each has a standalone twin (`<id>-solo`, no history) asking the same thing in full, with
the same gold, so a run can tell a follow-up failure from a retrieval or answer failure. The gold rules are those of
eval/qa.jsonl (tests/test_qa_set.py), on the real segmentation.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest
from test_qa_set import (  # tests/ is on sys.path (rootdir-relative test modules)
    CJK,
    assert_absent,
    assert_cross_lingual_english_only,
    assert_each_page_needed,
    assert_gold_printed,
    assert_item_schema,
)

EVAL = Path(__file__).resolve().parent.parent / "eval"
SETS = {"dev": ("conv-dev.jsonl", "cd"), "dev2": ("conv-dev2.jsonl", "cd2"), "dev3": ("conv-dev3.jsonl", "cd3"),
        "test": ("conv-test.jsonl", "ct")}
FOLLOWUPS = {"ellipsis", "pronoun", "changed-year", "changed-unit", "changed-subject", "unanswerable", "new-topic"}
PAIRS = {("en", "en"), ("zh", "zh"), ("en", "zh"), ("zh", "en")}
# The test split's gold pages were drawn at random, so it cannot lean on pages the dev split was tuned on.
TEST_PAGE_SAMPLE = set(random.Random(7).sample(range(4, 338), 60))
# The dev2 conversations' gold pages come from their own draw (docs/qa-set.md, "The dev2 conversations").
DEV2_PAGE_SAMPLE = set(random.Random(2026).sample(range(4, 338), 80))
# ... and the dev3 files' (conversations and qa-dev3.jsonl) from theirs (docs/qa-set.md, "The dev3 questions").
DEV3_PAGE_SAMPLE = set(random.Random(2027).sample(range(4, 338), 120))


@dataclasses.dataclass(frozen=True)
class ConvMix:
    """What a conversation file must hold at least."""

    conversations: int = 42
    per_pair: int = 8  # conversations per language pair (history -> question)
    new_topic: int = 4
    unanswerable: int = 4
    three_turn: int = 10
    two_turn: int = 10


# dev2 is half the size of the other two: 24 conversations, >= 5 per language pair, >= 6 of each length. dev3 is
# smaller still and leans on new topics (>= 5; ellipsis and pronouns then need >= 5 each, so >= 20 conversations).
MIX = {"dev": ConvMix(), "test": ConvMix(),
       "dev2": ConvMix(conversations=24, per_pair=5, new_topic=4, unanswerable=3, three_turn=6, two_turn=6),
       "dev3": ConvMix(conversations=20, per_pair=5, new_topic=5, unanswerable=3, three_turn=6, two_turn=6)}


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
        assert_item_schema(item)
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
    name, items = split
    mix = MIX[name]
    convs = conversations(items)
    assert len(convs) >= mix.conversations
    pairs = Counter((history_lang(item), item["lang"]) for item in convs)
    assert pairs.keys() == PAIRS and min(pairs.values()) >= mix.per_pair, pairs
    followups = Counter(item["followup"] for item in convs)
    assert followups.keys() == FOLLOWUPS, followups
    assert followups["new-topic"] >= mix.new_topic and followups["unanswerable"] >= mix.unanswerable, followups
    # Ellipsis and pronouns are what users do most, so they are the most common kinds of follow-up.
    others = max(n for f, n in followups.items() if f not in {"ellipsis", "pronoun"})
    assert min(followups["ellipsis"], followups["pronoun"]) >= others, followups
    turns = Counter(len(item["history"]) + 1 for item in convs)
    assert turns[3] >= mix.three_turn and turns[2] >= mix.two_turn, turns


def test_splits_use_different_pages():
    dev, dev2, dev3, test = ({p for item in load(name) for p in item["pages"]}
                             for name in ("dev", "dev2", "dev3", "test"))
    assert not dev & test, sorted(dev & test)
    assert not dev2 & test, sorted(dev2 & test)
    assert not dev3 & test, sorted(dev3 & test)
    assert test <= TEST_PAGE_SAMPLE, sorted(test - TEST_PAGE_SAMPLE)
    assert dev2 <= DEV2_PAGE_SAMPLE, sorted(dev2 - DEV2_PAGE_SAMPLE)
    # dev3 also stays off the whole conv-test sample, not only off the pages conv-test used
    assert dev3 <= DEV3_PAGE_SAMPLE - TEST_PAGE_SAMPLE, sorted(dev3 - (DEV3_PAGE_SAMPLE - TEST_PAGE_SAMPLE))


def read_items(*paths: Path) -> list[dict]:
    return [json.loads(line) for path in paths for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def test_qa_dev3_stays_off_the_held_out_pages_and_terms():
    """qa-dev3.jsonl's gold pages come from the same draw as the dev3 conversations, off the conv-test sample and
    off every gold page of the test split; its absent terms are none of the test split's."""
    qa = read_items(EVAL / "qa-dev3.jsonl")
    held_out = read_items(*sorted(EVAL.glob("qa-test*.jsonl")), EVAL / SETS["test"][0])
    pages = {p for item in qa for p in item["pages"]}
    assert pages <= DEV3_PAGE_SAMPLE - TEST_PAGE_SAMPLE, sorted(pages - (DEV3_PAGE_SAMPLE - TEST_PAGE_SAMPLE))
    assert not pages & {p for item in held_out for p in item["pages"]}
    terms = {t.casefold() for item in held_out for t in item.get("absent", [])}
    assert not [t for item in qa for t in item.get("absent", []) if t.casefold() in terms]


@pytest.mark.parametrize("name", ["dev2", "dev3"])
def test_fresh_dev_uses_no_absent_term_of_the_test_conversations(name):
    terms = {t.casefold() for item in load("test") for t in item.get("absent", [])}
    assert not [t for item in load(name) for t in item.get("absent", []) if t.casefold() in terms]


@pytest.mark.parametrize("name", ["dev", "dev2", "dev3"])
def test_dev_stays_off_the_held_out_qa_test_split(name):
    """Follow-up handling is tuned on the dev conversations, so they use neither a gold page nor an absent term of
    the held-out QA test files (eval/qa-test*.jsonl)."""
    held_out = [
        json.loads(line)
        for path in sorted(EVAL.glob("qa-test*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    assert held_out
    dev = load(name)
    shared_pages = {p for item in dev for p in item["pages"]} & {p for item in held_out for p in item["pages"]}
    assert not shared_pages, sorted(shared_pages)
    terms = {t.casefold() for item in held_out for t in item.get("absent", [])}
    assert not [t for item in dev for t in item.get("absent", []) if t.casefold() in terms]


def test_must_include_printed_on_gold_pages(split, report_pages):
    assert_gold_printed(split[1], report_pages)


def test_multi_page_items_need_each_page(split, report_pages):
    assert_each_page_needed(split[1], report_pages)


def test_cross_lingual_fact_only_in_english_block(split, report_pages):
    assert_cross_lingual_english_only(split[1], report_pages)


def test_unanswerable_terms_absent_from_report(split, report_words):
    assert_absent(split[1], report_words)
