"""Metric definitions of the eval (docs/eval.md) on hand-made answers and rankings."""

from __future__ import annotations

import pytest

from reportqa.eval.metrics import (
    aggregate,
    answer_lang,
    claimed_numbers,
    grade_answer,
    grade_retrieval,
    groups_matched,
    percentile,
    phrase_in,
    rank_of_gold,
    removed_kind,
    rule_table,
    strip_citations,
)

PAGES = {
    2: "ChatGPT weekly active users reached 800MM in 4/25.\nChatGPT 周活跃用户达到 8 亿。",
    3: "Big Six USA tech CapEx was $212B in 2024, +63% Y/Y.",
    4: "NVIDIA developers grew to 6MM in 2025.",
    5: "Section divider: AI & Work Evolution (2025)",
}


def grade(answer, *, gold=(2,), must_include=(("800MM",),), citations=(2,), refused=False, lang="en", context=""):
    return grade_answer(answer=answer, refused=refused, citations=list(citations), lang=lang, gold=list(gold),
                        must_include=[list(g) for g in must_include], page_text=lambda p: PAGES.get(p, ""),
                        context=context)


def test_context_recall_tells_facts_the_model_had_from_facts_it_stated():
    had = "[p. 2] ChatGPT weekly active users reached 800MM in 4/25."
    g = grade("ChatGPT has many users [p. 2].", context=had)
    assert g["context_recall"] is True and g["answer_correct"] is False  # the model lost it
    assert grade("The report does not say.", refused=True, context="")["context_recall"] is False
    assert grade("No.", gold=(), must_include=(), refused=True, context=had)["context_recall"] is None


# ------------------------------------------------------------------ retrieval


def test_rank_of_gold_takes_the_first_gold_page_of_any():
    assert rank_of_gold([5, 3, 9], [3]) == 2
    assert rank_of_gold([5, 3, 9], [9, 3]) == 2  # multi-page: the first gold page found counts
    assert rank_of_gold([5, 3, 9], [7]) is None


def test_grade_retrieval_cuts_at_k_and_skips_unanswerable():
    assert grade_retrieval([1, 2, 3, 4], [4], k=3) == {"rank": None, "rr": 0.0}
    assert grade_retrieval([1, 2, 3, 4], [2], k=3) == {"rank": 2, "rr": 0.5}
    assert grade_retrieval([1, 2], [], k=3) == {}


def _rec(rank, lang="en", kind="fact", gold=(1,), mode="retrieval", **grades):
    g = {"rank": rank, "rr": 1 / rank if rank else 0.0} if gold else {}
    return {"lang": lang, "kind": kind, "gold": list(gold), "mode": mode, "grades": {**g, **grades}, "error": None}


def test_hit_at_k_and_mrr_aggregate_over_answerable_items_only():
    recs = [_rec(1), _rec(2), _rec(6), _rec(None, lang="zh"), _rec(None, gold=(), kind="unanswerable")]
    m = aggregate(recs, k=10)
    o = m["overall"]
    assert o["n"] == 5 and o["n_answerable"] == 4
    assert o["hit@1"] == pytest.approx(1 / 4)
    assert o["hit@5"] == pytest.approx(2 / 4)
    assert o["hit@10"] == pytest.approx(3 / 4)
    assert o["mrr"] == pytest.approx((1 + 0.5 + 1 / 6 + 0) / 4)
    assert o["hit_curve"][0] == o["hit@1"] and o["hit_curve"][4] == o["hit@5"] and len(o["hit_curve"]) == 10
    assert m["by_lang"]["zh"]["hit@5"] == 0.0
    assert m["by_lang_kind"]["en/fact"]["n"] == 3
    assert m["by_kind"]["unanswerable"]["hit@5"] is None  # nothing to find
    assert o["answer_correct"] is None  # retrieval-only records carry no answer grades


def test_rates_average_only_the_items_they_apply_to():
    recs = [_rec(1, mode="full", answer_correct=True, false_refusal=False, language_match=True),
            _rec(1, mode="full", answer_correct=False, false_refusal=True, language_match=True),
            _rec(None, gold=(), mode="full", kind="unanswerable", refusal_correct=True, language_match=False)]
    o = aggregate(recs, k=5)["overall"]
    assert o["answer_correct"] == 0.5 and o["support"]["answer_correct"] == 2
    assert o["false_refusal_rate"] == 0.5
    assert o["refusal_accuracy"] == 1.0 and o["support"]["refusal_accuracy"] == 1
    assert o["language_match"] == pytest.approx(2 / 3)


def test_percentile_interpolates():
    assert percentile([], 50) is None
    assert percentile([4.0], 95) == 4.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)


# ------------------------------------------------------------------ must_include matching


@pytest.mark.parametrize("alternative,text", [
    ("800MM", "ChatGPT 每周活跃用户达到 8亿 [p. 2]"),
    ("800 million", "about 800MM+ weekly users"),
    ("$212B", "资本支出达到2120亿美元。"),
    ("2120亿", "CapEx was $212B"),
    ("5.5x", "增长了5.5倍"),
    ("99.7%", "a 99.7 % decline"),
    ("1,600 GW", "1600 GW of solar"),
    ("2.1T", "$2,059B"),  # agree to the precision written
    ("Open-Source", "open source models"),
    ("agent", "AI agents are rising"),
    ("weekly users 800MM", "800 million weekly users"),
    ("ChatGPT", "CHATGPT's app"),
    ("美元", "2120亿美元"),
])
def test_phrase_matches_ignoring_case_spacing_and_number_format(alternative, text):
    assert phrase_in(alternative, text)


@pytest.mark.parametrize("alternative,text", [
    ("80%", "grew 180%"),  # numbers match whole, by value
    ("800MM", "900 million users"),
    ("$212B", "$21.2B"),
    ("AI", "he said so"),  # words match whole
    ("530MM users", "530MM downloads"),
    ("Meta", "metadata"),
    ("55", "see [p. 55]"),  # citation markers are not content
])
def test_phrase_does_not_match_other_numbers_or_partial_words(alternative, text):
    assert not phrase_in(alternative, text)


def test_every_group_needs_one_alternative():
    groups = [["800MM", "8亿"], ["weekly active users", "周活跃用户"]]
    assert groups_matched(groups, "ChatGPT 周活跃用户达到8亿 [p. 2]") == [True, True]
    assert groups_matched(groups, "ChatGPT had 800 million monthly users") == [True, False]


# ------------------------------------------------------------------ grading an answer


def test_correct_answer_in_the_other_number_format():
    g = grade("ChatGPT 周活跃用户达到8亿 [p. 2]", lang="zh")
    assert g["answer_correct"] is True
    assert g["citation_precision"] == 1.0
    assert g["number_faithful"] is True
    assert g["language_match"] is True


def test_citation_precision_counts_gold_alternative_and_number_bearing_pages():
    # page 2 is gold; page 3 prints the answer's "$212B"; page 4 supports nothing in the answer
    g = grade("Weekly users hit 800MM [p. 2] while CapEx was $212B [p. 3].", citations=(2, 3, 4))
    assert g["supporting_pages"] == [2, 3]
    assert g["citation_precision"] == pytest.approx(2 / 3)
    # a page with a must_include alternative supports even when it is not gold
    g = grade("CapEx was $212B [p. 3].", gold=(9,), must_include=[["$212B"]], citations=(3,))
    assert g["citation_precision"] == 1.0
    # years alone do not make a page supporting
    g = grade("In 2025 it was 800MM [p. 5].", gold=(2,), must_include=[["800MM"]], citations=(5,))
    assert g["citation_precision"] == 0.0


def test_number_faithfulness_needs_every_claimed_number_on_a_cited_page():
    assert grade("ChatGPT had 800 million weekly users in 2023 [p. 2]")["number_faithful"] is False  # 2023 not on p.2
    g = grade("ChatGPT had 900MM weekly users [p. 2]")
    assert g["number_faithful"] is False and g["unsupported_numbers"] == ["900mm"]
    assert g["answer_correct"] is False
    g = grade("It reached 800MM, see [p. 2] and [p. 3]", citations=(2, 3))
    assert g["number_faithful"] is True  # page markers are not claims
    assert grade("The top 3 apps grew fast [p. 2]")["number_faithful"] is None  # no checkable numbers
    assert grade("It reached 800MM.", citations=())["number_faithful"] is False  # nothing cited to check against


def test_refusals():
    g = grade("The report does not say.", gold=(), must_include=(), citations=(), refused=True)
    assert g["refusal_correct"] is True and g["answer_correct"] is None and g["citation_precision"] is None
    g = grade("The report does not say.", refused=True, citations=())
    assert g["false_refusal"] is True and g["answer_correct"] is False and g["refusal_correct"] is None
    g = grade("Mars has 1MM people [p. 2]", gold=(), must_include=(), citations=(2,))
    assert g["refusal_correct"] is False


def test_claimed_numbers_skip_citations_and_small_counts():
    assert [n.value for n in claimed_numbers("Top 3 apps: 800MM users [p. 12] (p. 13)")] == [8e8]
    assert [n.value for n in claimed_numbers("According to page 311, 68% of people are online [p. 311].")] == [68]
    assert [n.value for n in claimed_numbers("第20页显示快5.5倍 [p. 20]。")] == [5.5]
    assert strip_citations("a [p. 4, p. 5] b 【第3页】 c (2024)").split() == ["a", "b", "c", "(2024)"]


@pytest.mark.parametrize("text,lang", [
    ("ChatGPT的周活跃用户达到8亿[p. 2]。", "zh"),
    ("NVIDIA AI CapEx 达到2120亿美元", "zh"),
    ("ChatGPT reached 800 million weekly users [p. 2].", "en"),
    ("DeepSeek (深度求索) is a Chinese AI company.", "en"),
    ("$212B [p. 3]", None),
    ("NVIDIA。", None),
])
def test_answer_language_ignores_numbers_and_names(text, lang):
    assert answer_lang(text) == lang


def test_language_match_accepts_answers_without_language():
    assert grade("800MM [p. 2]", lang="zh")["language_match"] is True
    assert grade("ChatGPT reached 800MM weekly users [p. 2]", lang="zh")["language_match"] is False


@pytest.mark.parametrize("text,refused", [
    ("I don't know.", True),
    ("The context does not provide information about Mars.", True),
    ("This is not in the given context.", True),
    ("上下文中没有提到火星。", True),
    ("报告没有提供这方面的信息。", True),
    ("Empty Response", True),
    ("", True),
    ("Global solar capacity reached 1,600 GW.", False),
    ("全球太阳能装机容量达到1,600 GW。", False),
])
def test_baseline_refusal_patterns(text, refused):
    from reportqa.eval.baseline import is_baseline_refusal

    assert is_baseline_refusal(text) is refused


def test_after_another_asks_each_standalone_question_after_the_previous_one_without_the_model():
    from reportqa.eval.metrics import after_another

    recs = [{"id": "a", "question": "How many users does Starlink have?", "kind": "fact"},
            {"id": "b", "question": "And in 2023?", "kind": "fact"},  # written as a standalone item, but elliptic
            {"id": "c", "question": "And OpenAI?", "kind": "fact", "history": ["x"], "followup": "ellipsis"},
            {"id": "d", "question": "What share of US adults used ChatGPT in 2025?", "kind": "numeric"}]
    probe = after_another(recs)
    assert probe["n"] == 2 and [r["id"] for r in probe["flagged"]] == ["b"]


def test_turn_probes_count_standalone_questions_taken_for_follow_ups_and_follow_ups_missed(tmp_path):
    import json

    from reportqa.eval.metrics import turn_probes

    probes = [("p1", "How many users does Starlink have?", "And in 2023?", True),
              ("p2", "How many users does Starlink have?", "What is Abridge?", False),
              ("p3", "What did Microsoft spend on capex?", "How much did it grow?", True),
              ("p4", "What did Microsoft spend on capex?", "Who founded Anthropic and when?", False),
              ("p5", "What did Microsoft spend on capex?", "Where does the report get its Turing test data?", False)]
    path = tmp_path / "turns.jsonl"
    path.write_text("\n".join(json.dumps({"id": i, "previous": p, "question": q, "lang": "en", "needs_context": n})
                              for i, p, q, n in probes), encoding="utf-8")
    out = turn_probes(path)
    assert (out["standalone"], out["followups"], out["missed"]) == (3, 2, [])
    assert out["taken"] == ["p5"]  # "its" after "the report": still read as pointing back (docs/answer.md)


# ---------------------------------------------------------------------------------------------------------------
# what a rule left out

GOLD_PAGE = {4: "CapEx of the Big Six reached $212B in 2024, +63% Y/Y."}


@pytest.mark.parametrize("sentence, answer, gold, kind", [
    # the sentence held the required figure and the answer as given lacks it: harm
    ("CapEx reached $212B in 2024 [p. 4].", "CapEx grew 63% [p. 4].", [4], "fact"),
    # the answer still says it elsewhere: nothing lost
    ("CapEx reached $212B [p. 4].", "It was $212B in 2024 [p. 4].", [4], None),
    # a figure no gold page prints: an unsupported claim removed
    ("CapEx reached $950B in 2024 [p. 9].", "The report does not say.", [4], "claim"),
    # supported, but not what was asked: neither
    ("CapEx grew 63% in 2024 [p. 4].", "CapEx reached $212B [p. 4].", [4], None),
    # any claim answering an unanswerable question
    ("Tesla held $1.1T in cash [p. 181].", "The report does not say.", [], "claim"),
])
def test_a_left_out_sentence_is_a_fact_lost_or_a_claim_removed(sentence, answer, gold, kind):
    assert removed_kind(sentence, answer=answer, refused=answer.startswith("The report"), gold=gold,
                        must_include=[["212B", "2120亿"]] if gold else [],
                        page_text=lambda p: GOLD_PAGE.get(p, "")) == kind


def test_the_rule_table_counts_items_by_what_their_left_out_sentences_were():
    recs = [{"id": "a", "checks": [{"rule": "number_not_on_page", "verdict": "dropped"}] * 2,
             "grades": {"removed": [{"rule": "number_not_on_page", "kind": "claim"}] * 2}},
            {"id": "b", "checks": [{"rule": "number_not_on_page", "verdict": "dropped"}],
             "grades": {"removed": [{"rule": "number_not_on_page", "kind": "fact"}]}}]
    row = rule_table(recs)["number_not_on_page"]
    assert (row["fired"], row["claims_removed"], row["facts_removed"]) == (2, ["a"], ["b"])
