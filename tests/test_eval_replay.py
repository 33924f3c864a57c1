"""The eval's splits, conversation items, replay store and rule ablation, with scripted models and a tiny in-memory
report (no index, no real model)."""

from __future__ import annotations

import json
import logging

import pytest
from test_answer import FakeRetriever

from reportqa.answer import ScriptedLLM
from reportqa.answer.llm import Message
from reportqa.answer.types import Answer, Check, Citation, Evidence, Final, Token
from reportqa.errors import UserError
from reportqa.eval import runner
from reportqa.eval.metrics import is_statement
from reportqa.eval.runner import QAFormatError, load_qa, run_eval
from reportqa.settings import load_settings

CAPEX = "What was the CapEx of the USA big six tech companies in 2024?"
ITEMS = [
    {"id": "r-1", "lang": "en", "question": "How many weekly active users did ChatGPT reach?", "answer": "800MM",
     "must_include": [["800MM"]], "pages": [10], "kind": "numeric"},
    {"id": "r-2", "lang": "zh", "question": "DeepSeek在中国的月活跃用户有多少？", "answer": "5400万",
     "must_include": [["5400万", "54MM"]], "pages": [30], "kind": "fact"},
    {"id": "c-1", "lang": "en", "question": "And how much did it grow?", "answer": "63%",
     "must_include": [["63%"]], "pages": [20], "kind": "numeric", "history": [CAPEX], "followup": "pronoun",
     "twin": "c-1-solo"},
    {"id": "c-1-solo", "lang": "en", "question": "How much did the CapEx of the USA big six tech companies grow?",
     "answer": "63%", "must_include": [["63%"]], "pages": [20], "kind": "numeric"},
    {"id": "c-2", "lang": "zh", "question": "推理成本下降了多少？", "answer": "99.7%", "must_include": [["99.7%"]],
     "pages": [40], "kind": "numeric", "history": [CAPEX, "And DeepSeek?"], "followup": "new-topic", "multi": True},
    {"id": "u-1", "lang": "en", "question": "What was Tesla's robotaxi revenue in 2024?",
     "answer": "Not in the report.", "must_include": [], "pages": [], "kind": "unanswerable"},
]


def write(path, items):
    path.write_text("".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items), encoding="utf-8")
    return path


def lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def fake_settings(tmp_path):
    return load_settings(home=tmp_path / "home", llm="fake", top_k=3, eval_k=5, advisory_rules="")


@pytest.fixture
def qa(tmp_path):
    return write(tmp_path / "qa.jsonl", ITEMS)


def refusing_model(messages):
    return AssertionError("the model was called for a stored prompt")


# ------------------------------------------------------------------ the QA format


@pytest.mark.parametrize("change,problem", [
    ({"history": "What was the CapEx?"}, "'history' must be a non-empty list"),
    ({"history": []}, "'history' must be a non-empty list"),
    ({"followup": None}, "'history' and 'followup' go together"),
    ({"followup": "sarcasm"}, "'followup' must be one of"),
    ({"followup": "unanswerable"}, "needs 'kind' 'unanswerable'"),
    ({"twin": 7}, "'twin' must be the id"),
    ({"multi": "yes"}, "'multi' must be true or false"),
])
def test_bad_conversation_fields_are_named(tmp_path, change, problem):
    item = {k: v for k, v in {**ITEMS[2], **change}.items() if v is not None}
    with pytest.raises(QAFormatError, match="line 1") as e:
        load_qa(write(tmp_path / "bad.jsonl", [item]))
    assert problem in str(e.value)


def test_a_twin_must_be_a_standalone_item_of_the_set(tmp_path):
    alone = write(tmp_path / "a.jsonl", [ITEMS[2]])
    with pytest.raises(QAFormatError, match=r"a\.jsonl, line 1: 'twin' 'c-1-solo' is not a standalone item"):
        load_qa(alone)
    twin_elsewhere = write(tmp_path / "b.jsonl", [ITEMS[3]])
    both = load_qa(alone, twin_elsewhere)
    assert [(it.id, it.file) for it in both] == [("c-1", "a.jsonl"), ("c-1-solo", "b.jsonl")]  # one set, two files
    with pytest.raises(QAFormatError, match="duplicate id 'c-1-solo'"):
        load_qa(alone, twin_elsewhere, twin_elsewhere)
    with pytest.raises(QAFormatError, match="is not a standalone item"):
        load_qa(write(tmp_path / "c.jsonl", [{**ITEMS[2], "twin": "c-2"}, ITEMS[4]]))


def test_splits_read_their_files_and_skip_missing_ones(tmp_path, monkeypatch, caplog, fake_settings):
    monkeypatch.setattr(runner, "EVAL_DIR", tmp_path)
    write(tmp_path / "qa.jsonl", ITEMS[:2])
    write(tmp_path / "conv-dev.jsonl", ITEMS[2:4])
    write(tmp_path / "qa-test-unanswerable.jsonl", ITEMS[5:])
    with caplog.at_level(logging.INFO, logger="reportqa.eval.runner"):
        assert [p.name for p in runner.split_files("test")] == ["qa-test-unanswerable.jsonl"]
    assert "qa-test.jsonl is not there yet" in caplog.text and "conv-test.jsonl is not there yet" in caplog.text
    out = tmp_path / "out"
    assert run_eval(fake_settings, out=out, retrieval_only=True, retriever=FakeRetriever()) == 0  # default: dev
    meta = json.loads((out / "metrics.json").read_text())["meta"]
    assert meta["split"] == "dev" and meta["qa"] == "qa.jsonl, conv-dev.jsonl"
    report = (out / "report.md").read_text()
    assert "Split dev" in report
    # each file on its own too (retrieval only leaves c-1 out: a follow-up needs the model's earlier answers)
    by_file = json.loads((out / "metrics.json").read_text())["systems"]["ours"]["by_file"]
    assert {f: m["n"] for f, m in by_file.items()} == {"qa.jsonl": 2, "conv-dev.jsonl": 1}
    assert "## By file" in report and "| qa.jsonl (n=2) |" in report
    (tmp_path / "qa-test-unanswerable.jsonl").unlink()
    with pytest.raises(QAFormatError, match="split test: none of its QA files exist"):
        run_eval(fake_settings, split="test", out=out, retrieval_only=True, retriever=FakeRetriever())
    with pytest.raises(UserError, match="--qa and --split exclude each other"):
        run_eval(fake_settings, qa=tmp_path / "qa.jsonl", split="dev", out=out, retriever=FakeRetriever())


def test_the_test_split_is_packaged_with_the_eval():
    import tomllib

    pyproject = tomllib.loads((runner.EVAL_DIR.parent / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["reportqa.eval"]
    assert "*.jsonl" in patterns and all(name.endswith(".jsonl") for names in runner.SPLITS.values()
                                         for name in names)


# ------------------------------------------------------------------ conversations


class ConversationEngine:
    """Answers from a table, rewrites follow-ups from a table, and records the history it was given."""

    REWRITES = {"And how much did it grow?": "How much did the CapEx of the USA big six tech companies grow?",
                "And DeepSeek?": "According to the report, DeepSeek reached 54MM users.",
                "推理成本下降了多少？": "推理成本下降了多少？", ITEMS[5]["question"]: ITEMS[5]["question"]}
    ANSWERS = {CAPEX: ("CapEx reached $212B in 2024.", [20]), "And how much did it grow?": ("Up 63% Y/Y.", [20]),
               "And DeepSeek?": ("", []), ITEMS[3]["question"]: ("Up 63%.", [20]),
               "推理成本下降了多少？": ("推理成本下降了99.7%。", [40])}

    def __init__(self):
        self.calls = []

    def stream(self, question, history=None, lang=None):
        self.calls.append((question, list(history or [])))
        text, cited = self.ANSWERS.get(question, ("The report does not say.", []))
        yield Evidence(cited)
        yield Token(text)
        yield Final(Answer(question=question, standalone_question=self.REWRITES.get(question, question), answer=text,
                           lang="zh" if "推理" in question else "en", refused=not cited,
                           citations=[Citation(p, "") for p in cited], error="model down" if not text else None))


def test_a_conversation_is_asked_turn_by_turn_with_the_engines_answers_as_history(fake_settings, qa, tmp_path):
    engine = ConversationEngine()
    out = tmp_path / "out"

    class Memoryless:  # like the baseline: no conversation memory, so asked the graded question alone
        name, asked = "baseline", []

        def retrieve(self, question, k):
            return [10]

        def ask(self, question):
            self.asked.append(question)
            return Answer(question=question, standalone_question=question, answer="?", lang="en", refused=True)

    baseline = Memoryless()
    assert run_eval(fake_settings, qa=qa, out=out, retriever=FakeRetriever(), engine=engine, baseline=True,
                    baseline_pipeline=baseline) == 0
    assert baseline.asked == [it["question"] for it in ITEMS]
    by_question = {}
    for question, history in engine.calls:
        by_question.setdefault(question, []).append(history)
    assert by_question["And how much did it grow?"] == [[(CAPEX, "CapEx reached $212B in 2024.")]]
    # the second turn failed (error set): as in the chat, it stays out of the history of the third
    assert by_question["And DeepSeek?"] == [[(CAPEX, "CapEx reached $212B in 2024.")]]
    assert by_question["推理成本下降了多少？"] == [[(CAPEX, "CapEx reached $212B in 2024.")]]

    results = {r["id"]: r for r in lines(out / "results.jsonl")}
    c1 = results["c-1"]
    assert c1["standalone_question"] == ConversationEngine.REWRITES["And how much did it grow?"]
    assert c1["retrieved"][0] == 20 and c1["grades"]["rank"] == 1  # ranked on the rewrite, not on "it"
    assert [t["answer"] for t in c1["history"]] == ["CapEx reached $212B in 2024."]
    assert c1["grades"]["answer_correct"] is True and c1["history_lang"] == "en" and c1["followup"] == "pronoun"
    assert [t["error"] for t in results["c-2"]["history"]] == [None, "model down"]
    assert results["c-2"]["multi"] is True

    metrics = json.loads((out / "metrics.json").read_text())
    conv = metrics["conversations"]
    assert conv["by_pair"]["en→en"] == conv["overall"] and conv["overall"]["n"] == 1
    assert conv["overall"]["followup_answer_correct"] == conv["overall"]["twin_answer_correct"] == 1.0
    assert conv["by_pair"]["en→zh"]["n"] == 0  # c-2 has no twin
    assert conv["followup_turns"] == 3 and conv["rewritten"] == 2
    assert [s["id"] for s in conv["statements"]] == ["c-2"]  # "According to the report, DeepSeek reached …"
    assert conv["standalone_items"] == 5 and conv["standalone_rewritten"] == []
    assert metrics["systems"]["ours"]["by_tag"]["multi-fact"]["n"] == 1
    assert metrics["systems"]["ours"]["by_tag"]["follow-up"]["n"] == 2
    report = (out / "report.md").read_text()
    assert "## Conversations" in report and "DeepSeek reached 54MM" in report and "| en→en | 1 |" in report


def test_statement_detector_is_the_answer_stages():
    assert is_statement("According to Pew, 20% of US adults aged 18-29 had used ChatGPT in July 2023.", "en")
    assert not is_statement("What did Pew find for US adults aged 18-29 in July 2023?", "en")
    assert is_statement("根据报告，资本支出为+21%", "zh")


def test_retrieval_only_leaves_conversations_out_unless_replayed(fake_settings, qa, tmp_path, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="reportqa.eval.runner"):
        run_eval(fake_settings, qa=qa, out=out, retrieval_only=True, retriever=FakeRetriever())
    assert "2 conversation items left out" in caplog.text
    assert {r["id"] for r in lines(out / "results.jsonl")} == {"r-1", "r-2", "c-1-solo", "u-1"}

    full = tmp_path / "full"
    run_eval(fake_settings, qa=qa, out=full, retriever=FakeRetriever(), llm=ScriptedLLM())
    ranked = tmp_path / "ranked"
    run_eval(fake_settings, qa=qa, out=ranked, retrieval_only=True, replay=full, retriever=FakeRetriever(),
             llm=ScriptedLLM(refusing_model))
    results = {r["id"]: r for r in lines(ranked / "results.jsonl")}
    stored = {r["id"]: r for r in lines(full / "results.jsonl")}
    assert results["c-1"]["mode"] == "retrieval" and "answer_correct" not in results["c-1"]["grades"]
    assert results["c-1"]["standalone_question"] == stored["c-1"]["standalone_question"]
    assert results["c-1"]["retrieved"] == stored["c-1"]["retrieved"]


# ------------------------------------------------------------------ replay


def test_replaying_an_unchanged_pipeline_reproduces_every_grade_without_the_model(fake_settings, qa, tmp_path):
    first = tmp_path / "first"
    llm = ScriptedLLM()
    run_eval(fake_settings, qa=qa, out=first, retriever=FakeRetriever(), llm=llm)
    stored = lines(first / "generations.jsonl")
    assert len(stored) == len(llm.calls) > 0 and not any(g["replayed"] for g in stored)

    again = tmp_path / "again"
    assert run_eval(fake_settings, qa=qa, out=again, replay=first, retriever=FakeRetriever(),
                    llm=ScriptedLLM(refusing_model)) == 0
    before = {r["id"]: r for r in lines(first / "results.jsonl")}
    after = {r["id"]: r for r in lines(again / "results.jsonl")}
    assert {i: r["grades"] for i, r in after.items()} == {i: r["grades"] for i, r in before.items()}
    assert {i: r["answer"] for i, r in after.items()} == {i: r["answer"] for i, r in before.items()}
    replay = json.loads((again / "metrics.json").read_text())["replay"]
    assert replay == {"from": "first", "prompts_replayed": len(llm.calls), "prompts_generated": 0,
                      "compared": len(ITEMS), "changed": []}
    assert all(g["replayed"] for g in lines(again / "generations.jsonl"))  # the replay is replayable in turn
    assert "## Replay" in (again / "report.md").read_text()


def test_a_changed_prompt_goes_to_the_model_and_is_counted(fake_settings, qa, tmp_path):
    first = tmp_path / "first"
    run_eval(fake_settings, qa=qa, out=first, retriever=FakeRetriever(), llm=ScriptedLLM())
    llm = ScriptedLLM()
    wider = fake_settings.replace(answer_context_tokens=60)  # other excerpts: every answering prompt changes
    run_eval(wider, qa=qa, out=tmp_path / "again", replay=first, retriever=FakeRetriever(), llm=llm)
    replay = json.loads((tmp_path / "again" / "metrics.json").read_text())["replay"]
    assert replay["prompts_generated"] == len(llm.calls) > 0
    assert replay["prompts_replayed"] == len(lines(tmp_path / "again" / "generations.jsonl")) - len(llm.calls)
    hotter = fake_settings.replace(llm_temperature=0.7)  # same prompts, another sampling: nothing is reused
    llm = ScriptedLLM()
    run_eval(hotter, qa=qa, out=tmp_path / "hot", replay=first, retriever=FakeRetriever(), llm=llm)
    assert json.loads((tmp_path / "hot" / "metrics.json").read_text())["replay"]["prompts_replayed"] == 0


def test_replay_needs_a_store_and_its_own_folder(fake_settings, qa, tmp_path):
    with pytest.raises(UserError, match="no generations.jsonl"):
        run_eval(fake_settings, qa=qa, out=tmp_path / "out", replay=tmp_path, retriever=FakeRetriever())
    with pytest.raises(UserError, match="--out must differ from --replay"):
        run_eval(fake_settings, qa=qa, out=tmp_path, replay=tmp_path, retriever=FakeRetriever())
    with pytest.raises(UserError, match="--ablate needs --replay"):
        run_eval(fake_settings, qa=qa, out=tmp_path / "out", ablate=True, retriever=FakeRetriever())


def test_cli_names_a_misused_flag(tmp_path, capsys):
    from reportqa.app.cli import main

    assert main(["eval", "--ablate", "--out", str(tmp_path / "out")]) == 2
    assert "--ablate needs --replay DIR" in capsys.readouterr().err


def test_an_interrupted_run_keeps_its_generations(fake_settings, qa, tmp_path):
    out = tmp_path / "out"

    class Interrupting(ScriptedLLM):
        def _stream(self, messages, max_tokens):
            if len(self.calls) == 2:
                raise KeyboardInterrupt
            yield from super()._stream(messages, max_tokens)

    with pytest.raises(KeyboardInterrupt):
        run_eval(fake_settings, qa=qa, out=out, retriever=FakeRetriever(), llm=Interrupting())
    kept = lines(out / "generations.jsonl")
    assert len(kept) == 2
    run_eval(fake_settings, qa=qa, out=out, retriever=FakeRetriever(), llm=ScriptedLLM())
    assert lines(out / "generations.jsonl")[:2] == kept  # resumed: appended to
    llm = ScriptedLLM()
    run_eval(fake_settings, qa=qa, out=out, retriever=FakeRetriever(), llm=llm)
    assert len(lines(out / "generations.jsonl")) == len(llm.calls)  # a finished run redone starts a new store


# ------------------------------------------------------------------ rule ablation

# the model's answer to each question, as a table (the prompt is the question itself)
REPLIES = {"How many weekly active users did ChatGPT reach?": "ChatGPT reached 800MM weekly users.",
           "DeepSeek在中国的月活跃用户有多少？": "DeepSeek的月活跃用户为5400万，2019年起。",
           "What was Tesla's robotaxi revenue in 2024?": "Tesla's robotaxi revenue was $9B."}


class RuledEngine:
    """An answer stage with one made-up rule, `no_nine` (an answer with a 9 in it is refused), recorded in
    Answer.checks as the real stage records its rules, and advisory when listed in `advisory`."""

    def __init__(self, llm, advisory):
        self.llm, self.advisory = llm, advisory

    def stream(self, question, history=None, lang=None):
        text = self.llm.complete([Message("user", question)], 40)
        refused, checks = False, []
        if "9" in text:
            verdict = "advisory" if "no_nine" in self.advisory else "refused"
            checks.append(Check("no_nine", verdict, text, "a 9"))
            if verdict == "refused":
                text, refused = "The report does not say.", True
        answer = Answer(question=question, standalone_question=question, answer=text, lang="zh" if "的" in question
                        else "en", refused=refused, checks=checks)
        yield Evidence([])
        yield Token(text)
        yield Final(answer)


def test_ablation_measures_each_rules_help_and_harm_on_replay(fake_settings, tmp_path):
    qa = write(tmp_path / "qa.jsonl", [ITEMS[0], ITEMS[1], ITEMS[5]])
    first = tmp_path / "first"
    model = ScriptedLLM(lambda messages: REPLIES[messages[-1].content])
    run_eval(fake_settings, qa=qa, out=first, retriever=FakeRetriever(), llm=model, engine_factory=RuledEngine)
    graded = {r["id"]: r["grades"] for r in lines(first / "results.jsonl")}
    assert graded["r-2"]["false_refusal"] is True and graded["u-1"]["refusal_correct"] is True

    out = tmp_path / "ablated"
    run_eval(fake_settings, qa=qa, out=out, replay=first, ablate=True, retriever=FakeRetriever(),
             llm=ScriptedLLM(refusing_model), engine_factory=RuledEngine)
    metrics = json.loads((out / "metrics.json").read_text())
    # r-2's right answer was lost to the rule (harm); u-1's answer to an unanswerable question was stopped (help)
    assert metrics["rules"] == {"no_nine": {"fired": 2, "verdicts": {"refused": 2}, "help": ["u-1"], "harm": ["r-2"],
                                            "model_calls": 0, "claims_removed": [], "facts_removed": []}}
    assert metrics["replay"]["prompts_generated"] == 0 and metrics["replay"]["prompts_replayed"] == 3
    ablated = lines(out / "ablation.jsonl")
    assert [(r["id"], r["advisory"], r["refused"]) for r in ablated] == [("r-2", "no_nine", False),
                                                                         ("u-1", "no_nine", False)]
    assert "| no_nine | 2 | refused 2 | 0 | 0 | 1 | 1 | 0 | +u-1 −r-2 |" in (out / "report.md").read_text()



def test_ablation_of_the_answer_stages_own_rules(fake_settings, tmp_path):
    """The real engine on the recording model: its number rule stops a wrong figure, and the ablation shows it."""
    from reportqa.answer.llm import echo_best_excerpt

    def model(messages):  # a misread figure for the ChatGPT question, the best excerpt line otherwise
        if "How many weekly active users" in messages[-1].content:
            return "ChatGPT reached 900MM weekly active users [p. 10]."
        return echo_best_excerpt(messages)

    qa = write(tmp_path / "qa.jsonl", [ITEMS[0], ITEMS[5]])
    run_eval(fake_settings, qa=qa, out=tmp_path / "first", retriever=FakeRetriever(), llm=ScriptedLLM(model))
    stored = {r["id"]: r for r in lines(tmp_path / "first" / "results.jsonl")}
    assert "900MM" not in stored["r-1"]["answer"] and stored["r-1"]["grades"]["answer_correct"] is True
    assert {"rule": "number_not_on_page", "verdict": "dropped"}.items() <= stored["r-1"]["checks"][0].items()

    out = tmp_path / "ablated"
    run_eval(fake_settings, qa=qa, out=out, replay=tmp_path / "first", ablate=True, retriever=FakeRetriever(),
             llm=ScriptedLLM(model))
    rules = json.loads((out / "metrics.json").read_text())["rules"]
    assert rules["number_not_on_page"]["help"] == ["r-1"] and rules["number_not_on_page"]["harm"] == []
    without = {r["advisory"]: r for r in lines(out / "ablation.jsonl") if r["id"] == "r-1"}
    assert "900MM" in without["number_not_on_page"]["answer"]
    assert {"rule": "number_not_on_page", "verdict": "advisory"}.items() <= without["number_not_on_page"][
        "checks"][0].items()
