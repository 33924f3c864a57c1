"""The answer stage's named rules: each fires on a crafted case and is recorded on the answer; an advisory rule
records its check and leaves the model's answer alone; an unknown rule name fails loading the settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_answer import engine, sources

from reportqa.answer.grounding import Params, Source, ground
from reportqa.answer.lexicon import Lexicon
from reportqa.answer.text import asked_years, stated_years
from reportqa.answer.types import Rule, Verdict
from reportqa.errors import UserError
from reportqa.index.types import PageHit
from reportqa.ingest.records import PageRecord
from reportqa.settings import load_settings

CHATGPT_USERS = "How many weekly active users does ChatGPT have?"
WATER = "What is the boiling point of water at sea level?"  # no term on any page, no name


def page(n: int, en: str, zh: str = "") -> list[Source]:
    return [Source.build(PageHit(n, 0.9, "", "content"), PageRecord(n, en, zh, "s"))]


def fired(checks) -> list[tuple[Rule, Verdict]]:
    return [(c.rule, c.verdict) for c in checks]


@pytest.fixture
def settings(tmp_path):
    return load_settings(home=tmp_path, llm="fake", top_k=3, advisory_rules="")


# ---------------------------------------------------------------- sentence rules

HUGGING = page(269, "AI Models on Hugging Face = +33x Increase 11/24 vs. 3/22\n~35K\n1.16MM")
YEARS = page(57, "Years to Reach 100MM Users 2000-2023\nChatGPT 0.2")
PRICES = page(189, "Consumer Subscriptions\nGoogle AI Ultra $250 per month", "消费者订阅")
JOKE = page(130, "Inference Costs\nThe economics are complex, and it is hard to ignore the burn.")


@pytest.mark.parametrize("rule, verdict, said, srcs, question, lang, subject", [
    (Rule.QUESTION_NOT_ANSWER, Verdict.DROPPED, "ChatGPT的每周活跃用户达到了多少 [p. 10]？", sources(10), "", "zh",
     "ChatGPT的每周活跃用户达到了多少"),
    (Rule.PAGE_NOT_RETRIEVED, Verdict.DROPPED, "As page 55 shows, ChatGPT reached 800MM weekly users.", sources(10), "",
     "en", "As page 55 shows, ChatGPT reached 800MM weekly users"),
    (Rule.RESTATEMENT, Verdict.WITHDRAWN, "根据报告，卫星互联网会带来新网民 [p. 30]。", sources(30),
     "报告认为卫星互联网会怎样带来新网民？", "zh", "根据报告，卫星互联网会带来新网民"),
    (Rule.OFF_QUESTION, Verdict.DROPPED, "Because it was too complex [p. 130]!", JOKE, "Tell me a joke.", "en",
     "Because it was too complex"),
    (Rule.NUMBER_REPAIRED, Verdict.REPAIRED, "ChatGPT每周活跃用户达到80亿 [p. 10]。", sources(10), "", "zh", "80亿"),
    (Rule.SENTENCE_UNSUPPORTED, Verdict.DROPPED, "Paris is the capital of France [p. 10].", sources(10, 20), "", "en",
     "Paris is the capital of France"),
    (Rule.MULTIPLE_FOR_AMOUNT, Verdict.DROPPED, "Hugging Face上有约33x的AI模型 [p. 269]。", HUGGING,
     "Hugging Face上有多少个AI模型？", "zh", "Hugging Face上有约33x的AI模型"),
    (Rule.YEARS_FOR_DURATION, Verdict.DROPPED, "ChatGPT达到1亿用户用了2000-2023年 [p. 57]。", YEARS,
     "ChatGPT达到1亿用户用了多少年？", "zh", "ChatGPT达到1亿用户用了2000-2023年"),
    (Rule.NUMBER_NOT_ON_PAGE, Verdict.DROPPED, "ChatGPT reached 900MM weekly active users [p. 10].", sources(10), "",
     "en", "ChatGPT reached 900MM weekly active users"),
    (Rule.NAME_NOT_ON_PAGE, Verdict.DROPPED, "ChatGPT and Gemini reached 800MM weekly active users [p. 10].",
     sources(10), CHATGPT_USERS, "en", "ChatGPT and Gemini reached 800MM weekly active users"),
    (Rule.CITATION_REPLACED, Verdict.REPAIRED, "ChatGPT reached 800MM weekly active users [p. 20].", sources(10, 20),
     "", "en", "ChatGPT reached 800MM weekly active users"),
    (Rule.CURRENCY_REPAIRED, Verdict.REPAIRED, "Google AI Ultra订阅每月250元 [p. 189]。", PRICES, "", "zh",
     "Google AI Ultra订阅每月250元"),
])
def test_each_sentence_rule_fires_and_is_recorded(rule, verdict, said, srcs, question, lang, subject):
    g = ground(said, srcs, [s.page for s in srcs], lang, question=question)
    (check,) = [c for c in g.checks if c.rule == rule]
    assert (check.verdict, check.subject) == (verdict, subject) and check.detail
    # advisory (every rule, so that no other one acts instead), the rule is recorded and the model's words kept
    g = ground(said, srcs, [s.page for s in srcs], lang, question=question, params=Params(advisory=frozenset(Rule)))
    (check,) = [c for c in g.checks if c.rule == rule]
    assert check.verdict == Verdict.ADVISORY and subject in " ".join(c.sentence.text for c in g.kept)


def test_what_the_sentence_rules_record():
    g = ground("ChatGPT reached 900MM weekly active users [p. 10].", sources(10), [10])
    assert g.checks[0].detail == "not on the pages that support it: 900MM"
    g = ground("ChatGPT每周活跃用户达到80亿 [p. 10]。", sources(10), [10], "zh")
    assert [(c.subject, c.detail) for c in g.checks] == [("80亿", "8亿")]
    g = ground("ChatGPT reached 800MM weekly active users [p. 20].", sources(10, 20), [10, 20])
    assert g.checks[0].detail == "cited p. 20; cites p. 10"


def test_the_first_acting_rule_decides_and_an_advisory_one_passes_the_sentence_on():
    said, srcs = "DeepSeek reached 800MM weekly active users [p. 10].", sources(10, 30)
    assert fired(ground(said, srcs, [10, 30]).checks) == [(Rule.NUMBER_NOT_ON_PAGE, Verdict.DROPPED)]
    g = ground(said, srcs, [10, 30], params=Params(advisory=frozenset([Rule.NUMBER_NOT_ON_PAGE])))
    assert (Rule.NUMBER_NOT_ON_PAGE, Verdict.ADVISORY) in fired(g.checks) and g.kept[0].pages


# ---------------------------------------------------------------- answer rules, through the engine

def test_low_coverage_refusal(settings):
    eng, llm = engine(settings, [])
    ans = eng.ask(WATER)
    assert ans.refused and not llm.calls
    assert fired(ans.checks) == [(Rule.LOW_COVERAGE_REFUSAL, Verdict.REFUSED)] and ans.checks[0].subject == WATER


def test_unknown_name_refusal(settings):
    eng, llm = engine(settings, [])
    ans = eng.ask("How many weekly active users does ChatGPT have in Antarctica?")
    assert ans.refused and not llm.calls and fired(ans.checks) == [(Rule.UNKNOWN_NAME_REFUSAL, Verdict.REFUSED)]
    assert "antarctica" in ans.checks[0].detail


def test_a_question_resting_on_a_figure_its_pages_never_state_is_refused(settings):
    """p. 10 says 800MM: a question about 900MM asks about something the report does not say; "about 820 million"
    is the same figure read loosely, and "page 10" is no figure."""
    eng, llm = engine(settings, [])
    ans = eng.ask("Why did ChatGPT reach 900MM weekly active users?")
    assert ans.refused and not llm.calls and fired(ans.checks) == [(Rule.FIGURE_NOT_IN_REPORT, Verdict.REFUSED)]
    assert "900MM" in ans.checks[0].detail
    for question in ("How did ChatGPT reach about 820 million weekly active users?",
                     "ChatGPT的每周活跃用户达到8亿用了多久？", "What does page 10 say about ChatGPT's weekly users?"):
        eng, _ = engine(settings, ["ChatGPT reached 800MM weekly active users in 4/25 [p. 10]."])
        assert Rule.FIGURE_NOT_IN_REPORT not in [c.rule for c in eng.ask(question).checks]


def test_a_question_about_a_year_its_pages_never_print_is_refused(settings):
    """p. 20 prints 2024 (and p. 10 "4/25"): a question about 2026 asks past what the report covers."""
    eng, llm = engine(settings, [])
    ans = eng.ask("What was the capex of the USA big six tech companies in 2026?")
    assert ans.refused and not llm.calls and fired(ans.checks) == [(Rule.YEAR_NOT_ON_PAGES, Verdict.REFUSED)]
    assert "2026" in ans.checks[0].detail
    eng, _ = engine(settings, ["CapEx of the USA big six tech companies reached $212B in 2024 [p. 20]."])
    assert Rule.YEAR_NOT_ON_PAGES not in [c.rule for c in eng.ask("2024年美国六大科技公司的资本支出是多少？").checks]


@pytest.mark.parametrize("question, years", [
    ("How many users in 2019?", {2019}), ("By 2030, how much?", {2030}), ("From 2014 to 2024, how fast?", {2014, 2024}),
    ("In May 2025, which was first?", {2025}), ("2024年的数据", {2024}), ("25年4月的用户", {2025}),
    # a name's number, a decade, an amount: no year
    ("What share of Russell 2000 companies?", set()), ("罗素2000指数成分公司", set()), ("In the 1990s", set()),
    ("$2024B", set()), ("2,024 users", set()),
])
def test_the_years_a_question_asks_about(question, years):
    assert asked_years(question) == years


def test_a_page_prints_a_year_in_any_form():
    assert stated_years("CapEx 2014-2024, 12/24, Q1:25, FY26, '23, 2030E") == {2014, 2023, 2024, 2025, 2026, 2030}


def test_a_chinese_name_the_report_never_mentions_in_either_language_is_unknown(settings):
    """小米 is "Xiaomi" in the dictionary, and the pages say neither; 中国 is on them, and 布莱切利 (Bletchley,
    which the dictionary lacks) is no 莱切 ("Lecce")."""
    eng, llm = engine(settings, [])
    ans = eng.ask("小米的月活跃用户有多少？")
    assert ans.refused and not llm.calls and fired(ans.checks) == [(Rule.UNKNOWN_NAME_REFUSAL, Verdict.REFUSED)]
    assert "小米" in ans.checks[0].detail
    assert eng.lexicon.unknown_zh_names("DeepSeek在中国的月活跃用户有多少？") == []
    assert eng.lexicon.unknown_zh_names("有多少个国家签署了《布莱切利宣言》？") == []


def test_an_acronym_the_report_spells_out_is_no_unknown_name(settings):
    """p. 40's title is "Inference Costs Falling": "ICF" names it, as "WSJ" names the "Wall Street Journal"."""
    eng, _ = engine(settings, [])
    assert eng.lexicon.mentions("ICF") and not eng.lexicon.mentions("ICX")
    eng, llm = engine(settings, ["The inference cost per token fell 99.7% over two years [p. 40]."])
    ans = eng.ask("How much did the inference cost per token fall, per the ICF chart?")
    assert not ans.refused and Rule.UNKNOWN_NAME_REFUSAL not in [c.rule for c in ans.checks]
    ans = engine(settings, [])[0].ask("How much did the inference cost per token fall, per the ICX chart?")
    assert fired(ans.checks) == [(Rule.UNKNOWN_NAME_REFUSAL, Verdict.REFUSED)]


MODELS = {50: PageRecord(50, "South Korea and Japan lead in robots; OpenAI GPT-4 and GPT-4.5 scores\n"
                             "ChatGPT 5.5x Faster vs. Google", "韩国", "s")}


def test_a_countrys_adjective_names_the_country():
    """"South Korean" is no unknown name where the report writes "South Korea"; "Intercom" shares only a prefix."""
    lex = Lexicon(MODELS.values())
    assert lex.mentions("South Korean") and lex.mentions("Japanese") and lex.mentions("Korean")
    assert not lex.mentions("Intercom") and not lex.mentions("Japanians")


def test_a_version_of_a_model_the_report_never_mentions_is_unknown(settings):
    """The pages write GPT-4 and GPT-4.5: "GPT-5" is another model, refused without asking the model; a version they
    print, or a count after a name ("ChatGPT 5.5x"), is not."""
    eng, llm = engine(settings, [], pages=MODELS)
    assert eng.lexicon.unknown_versions("How does GPT-5 compare with GPT-4.5?") == ["GPT-5"]
    assert eng.lexicon.unknown_versions("Is GPT-4 5.5x faster? Did ChatGPT 5年内 grow?") == []
    ans = eng.ask("OpenAI什么时候发布GPT-5？")
    assert ans.refused and not llm.calls and fired(ans.checks) == [(Rule.UNKNOWN_NAME_REFUSAL, Verdict.REFUSED)]


def test_off_topic(settings):
    said = "ChatGPT reached 800MM weekly active users [p. 10]."
    eng, llm = engine(settings, [said, said])
    ans = eng.ask("How many weekly active users does DeepSeek have?")
    assert (Rule.OFF_TOPIC, Verdict.WITHDRAWN) in fired(ans.checks) and "800MM" not in ans.answer


def test_wrong_language_retry_then_replaced(settings):
    english = "ChatGPT reached 800MM weekly active users [p. 10]."
    eng, llm = engine(settings, [english, "ChatGPT每周活跃用户达到8亿 [p. 10]。"])
    assert fired(eng.ask("ChatGPT的每周活跃用户有多少？").checks) == [(Rule.WRONG_LANGUAGE_RETRY, Verdict.RETRIED)]
    eng, llm = engine(settings, [english, english])
    ans = eng.ask("ChatGPT的每周活跃用户有多少？")
    assert fired(ans.checks) == [(Rule.WRONG_LANGUAGE_RETRY, Verdict.RETRIED),
                                 (Rule.WRONG_LANGUAGE_RETRY, Verdict.REPLACED)] and "8亿" in ans.answer


def test_model_refusal_retry(settings):
    eng, llm = engine(settings, ["NOT IN REPORT", "ChatGPT reached 800MM weekly active users [p. 10]."])
    ans = eng.ask(CHATGPT_USERS)
    assert fired(ans.checks) == [(Rule.MODEL_REFUSAL_RETRY, Verdict.RETRIED)] and len(llm.calls) == 2


def test_withdrawn_answer_retry(settings):
    eng, llm = engine(settings, ["ChatGPT reached 1.2B weekly active users [p. 10].",
                                 "ChatGPT reached 800MM weekly active users [p. 10]."])
    ans = eng.ask(CHATGPT_USERS)
    assert fired(ans.checks) == [(Rule.NUMBER_NOT_ON_PAGE, Verdict.DROPPED),
                                 (Rule.WITHDRAWN_ANSWER_RETRY, Verdict.RETRIED)]
    assert ans.answer == "ChatGPT reached 800MM weekly active users [p. 10]."


def test_evidence_quote_fallback(settings):
    eng, llm = engine(settings, ["NOT IN REPORT", "NOT IN REPORT"])
    ans = eng.ask(CHATGPT_USERS)
    assert fired(ans.checks) == [(Rule.MODEL_REFUSAL_RETRY, Verdict.RETRIED),
                                 (Rule.EVIDENCE_QUOTE_FALLBACK, Verdict.REPLACED)]
    assert ans.answer.startswith("The report says: ") and ans.checks[-1].subject in ans.answer


def test_checks_are_in_the_json_answer(settings):
    eng, _ = engine(settings, ["ChatGPT reached 800MM weekly active users [p. 20]."])
    d = json.loads(json.dumps(eng.ask(CHATGPT_USERS).to_json()))
    assert d["checks"] == [{"rule": "citation_replaced", "verdict": "repaired",
                            "subject": "ChatGPT reached 800MM weekly active users",
                            "detail": "cited p. 20; cites p. 10"}]


# ---------------------------------------------------------------- advisory mode

ALL_ADVISORY = ",".join(Rule)


@pytest.mark.parametrize("question, said", [
    ("How large is the user base of DeepSeek?", "DeepSeek reached 1.2B monthly active users [p. 30]."),  # figure
    ("ChatGPT的用户增长了多少？", "ChatGPT users grew 8x in 17 months [p. 10]."),  # language
    ("How many weekly active users does DeepSeek have?", "ChatGPT reached 800MM weekly active users [p. 10]."),
    (WATER, "Water boils at 100 degrees [p. 10]."),  # coverage
    ("How many weekly active users does ChatGPT have in Antarctica?", "Paris is the capital of France [p. 10]."),
])
def test_advisory_rules_leave_the_answer_as_the_model_wrote_it(tmp_path, question, said):
    settings = load_settings(home=tmp_path, llm="fake", top_k=3, advisory_rules=ALL_ADVISORY)
    eng, llm = engine(settings, [said])
    ans = eng.ask(question)
    prefill = "根据报告，" if ans.lang == "zh" else ""
    assert ans.answer == prefill + said and not ans.refused and len(llm.calls) == 1
    assert ans.checks and all(c.verdict == Verdict.ADVISORY for c in ans.checks)


def test_one_advisory_rule_only_records_itself(tmp_path):
    settings = load_settings(home=tmp_path, llm="fake", top_k=3, advisory_rules="number_not_on_page")
    eng, llm = engine(settings, ["ChatGPT reached 900MM weekly active users [p. 10]."])
    ans = eng.ask(CHATGPT_USERS)
    assert ans.answer == "ChatGPT reached 900MM weekly active users [p. 10]." and len(llm.calls) == 1
    assert fired(ans.checks) == [(Rule.NUMBER_NOT_ON_PAGE, Verdict.ADVISORY)]
    eng, llm = engine(settings.replace(advisory_rules=""), ["ChatGPT reached 900MM weekly active users [p. 10]."] * 2)
    assert "900MM" not in eng.ask(CHATGPT_USERS).answer  # the same rule acting


def test_advisory_refusal_rule_asks_the_model(tmp_path):
    settings = load_settings(home=tmp_path, llm="fake", top_k=3, advisory_rules="low_coverage_refusal")
    eng, llm = engine(settings, ["NOT IN REPORT"])
    ans = eng.ask(WATER)
    assert llm.calls and ans.refused  # the model refused on its own; the rule only advised
    assert fired(ans.checks)[0] == (Rule.LOW_COVERAGE_REFUSAL, Verdict.ADVISORY)


# ---------------------------------------------------------------- settings and docs

def test_unknown_rule_name_fails_loading_with_a_clear_message(tmp_path, monkeypatch):
    with pytest.raises(UserError, match=r"unknown rule 'off_topc'; the rules are: low_coverage_refusal"):
        load_settings(home=tmp_path, advisory_rules="off_topic, off_topc")
    monkeypatch.setenv("REPORTQA_ADVISORY_RULES", "bogus")
    with pytest.raises(UserError, match="REPORTQA_ADVISORY_RULES"):
        load_settings(home=tmp_path)
    monkeypatch.setenv("REPORTQA_ADVISORY_RULES", " off_topic ,restatement,")
    assert Params.of(load_settings(home=tmp_path).advisory_rules).advisory == {Rule.OFF_TOPIC, Rule.RESTATEMENT}


def test_the_shipped_default_makes_the_rules_advisory_that_did_more_harm_than_help(tmp_path, monkeypatch):
    monkeypatch.delenv("REPORTQA_ADVISORY_RULES", raising=False)
    assert Params.of(load_settings(home=tmp_path).advisory_rules).advisory == {
        Rule.EVIDENCE_QUOTE_FALLBACK, Rule.OFF_QUESTION, Rule.MULTIPLE_FOR_AMOUNT, Rule.FIGURE_NOT_IN_REPORT,
        Rule.YEAR_NOT_ON_PAGES, Rule.EXCERPT_WIDENED}


def test_cli_reports_an_unknown_rule_without_a_traceback(monkeypatch, capsys):
    from reportqa.app.cli import main

    monkeypatch.setenv("REPORTQA_ADVISORY_RULES", "bogus")
    assert main(["ask", "How many users?"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reportqa: advisory_rules (REPORTQA_ADVISORY_RULES): unknown rule 'bogus'")
    assert "Traceback" not in err


def test_every_rule_is_in_the_docs_table():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "answer.md").read_text(encoding="utf-8")
    table = doc.split("\n## Rules\n")[1].split("\n## ")[0]
    assert re.findall(r"^\| `(\w+)` \|", table, re.M) == list(Rule)
