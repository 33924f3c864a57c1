"""Runner logic on a tiny QA file with a fake retriever and a scripted answer engine (no model): output files and
their fields, error recording, resuming, subsets, bars and QA-file validation."""

from __future__ import annotations

import dataclasses
import json

import pytest

from reportqa.answer.types import Answer, Citation, Evidence, Final, Token
from reportqa.eval.runner import QAFormatError, load_qa, run_eval, select
from reportqa.index.types import PageHit
from reportqa.ingest.records import PageRecord

PAGES = {
    2: ("ChatGPT weekly active users reached 800MM.", "ChatGPT 周活跃用户达到 8 亿。"),
    3: ("Big Six USA tech CapEx was $212B in 2024.", "美国六大科技公司资本支出"),
    4: ("NVIDIA developers grew to 6MM.", "NVIDIA 开发者"),
}
QA = [
    {"id": "en-1", "lang": "en", "question": "How many weekly users does ChatGPT have?", "answer": "800MM",
     "must_include": [["800MM"]], "pages": [2], "kind": "numeric"},
    {"id": "zh-1", "lang": "zh", "question": "科技公司资本支出是多少？", "answer": "2120亿美元",
     "must_include": [["$212B"]], "pages": [3], "kind": "cross-lingual", "note": "extra fields are ignored"},
    {"id": "en-2", "lang": "en", "question": "How many NVIDIA developers?", "answer": "6MM",
     "must_include": [["6MM"]], "pages": [4], "kind": "fact"},
    {"id": "en-3", "lang": "en", "question": "What is the population of Mars?", "answer": "Not in the report.",
     "must_include": [], "pages": [], "kind": "unanswerable"},
]
# question -> (ranked pages, answer text, cited pages, refused)
SCRIPT = {
    QA[0]["question"]: ([2, 3], "ChatGPT has 800 million weekly users [p. 2].", [2], False),
    QA[1]["question"]: ([4, 3], "资本支出为2120亿美元 [p. 3]。", [3], False),
    QA[2]["question"]: ([3, 2], "NVIDIA had 9MM developers [p. 3].", [3], False),
    QA[3]["question"]: ([4], "The report does not say.", [], True),
}


class FakeRetriever:
    def __init__(self, ranking=None):
        self.ranking = ranking or {q: s[0] for q, s in SCRIPT.items()}

    def retrieve(self, query, k=None):
        return [PageHit(page=p, score=1.0 / (i + 1), section="", kind="content")
                for i, p in enumerate(self.ranking[query][:k])]

    def page(self, n):
        en, zh = PAGES.get(n, ("", ""))
        return PageRecord(page=n, en=en, zh=zh, section="") if n in PAGES else None


class ScriptedEngine:
    """Streams the scripted answer like AnswerEngine.stream; raises for questions listed in `fail`."""

    def __init__(self, fail=(), interrupt_after=None):
        self.fail = set(fail)
        self.asked: list[str] = []
        self.interrupt_after = interrupt_after

    def stream(self, question, history=None, lang=None):
        if self.interrupt_after is not None and len(self.asked) >= self.interrupt_after:
            raise KeyboardInterrupt
        self.asked.append(question)
        if question in self.fail:
            raise RuntimeError("model crashed")
        pages, text, cited, refused = SCRIPT[question]
        yield Evidence(pages=pages)
        for word in text.split(" "):
            yield Token(text=word + " ")
        yield Final(answer=Answer(question=question, standalone_question=question, answer=text,
                                  lang="zh" if "资本" in question else "en", refused=refused,
                                  citations=[Citation(page=p, quote=PAGES[p][0]) for p in cited]))


@pytest.fixture
def qa_file(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in QA) + "\n\n", encoding="utf-8")
    return path


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_full_run_writes_graded_results_metrics_and_report(settings, qa_file, tmp_path):
    out = tmp_path / "out"
    code = run_eval(settings, qa=qa_file, out=out, retriever=FakeRetriever(), engine=ScriptedEngine())
    assert code == 0
    results = {r["id"]: r for r in _lines(out / "results.jsonl")}
    assert set(results) == {q["id"] for q in QA}
    for r in results.values():
        for field in ("id", "question", "lang", "kind", "answer", "refused", "citations", "retrieved", "latency_s",
                      "first_token_s", "grades", "error"):
            assert field in r
        assert r["latency_s"] >= r["first_token_s"] > 0
    assert results["en-1"]["retrieved"] == [2, 3] and results["en-1"]["citations"] == [2]
    assert results["en-1"]["grades"]["answer_correct"] is True
    assert results["zh-1"]["grades"]["rank"] == 2 and results["zh-1"]["grades"]["answer_correct"] is True
    assert results["en-2"]["grades"]["number_faithful"] is False  # 9MM is not on p. 3
    assert results["en-3"]["grades"]["refusal_correct"] is True

    metrics = json.loads((out / "metrics.json").read_text())
    o = metrics["systems"]["ours"]["overall"]
    assert o["hit@1"] == pytest.approx(1 / 3) and o["hit@5"] == pytest.approx(2 / 3)
    assert o["mrr"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert o["answer_correct"] == pytest.approx(2 / 3)
    assert o["refusal_accuracy"] == 1.0 and o["false_refusal_rate"] == 0.0
    assert o["latency_p50"] is not None and o["first_token_p95"] is not None
    assert metrics["systems"]["ours"]["by_lang"]["zh"]["n"] == 1
    assert [b["name"] for b in metrics["bars"]] == ["hit@5", "mrr", "zh cross-lingual hit@5"]

    report = (out / "report.md").read_text()
    for png in ("metrics_by_lang.png", "hit_at_k.png", "latency.png"):
        assert f"]({png})" in report and (out / png).stat().st_size > 1000
    assert "en-2" in report  # listed under failures


def test_retrieval_only_never_calls_the_engine(settings, qa_file, tmp_path):
    out = tmp_path / "out"
    assert run_eval(settings, qa=qa_file, out=out, retrieval_only=True, retriever=FakeRetriever()) == 0
    results = _lines(out / "results.jsonl")
    assert all(r["answer"] is None and r["mode"] == "retrieval" for r in results)
    o = json.loads((out / "metrics.json").read_text())["systems"]["ours"]["overall"]
    assert o["hit@5"] == pytest.approx(2 / 3) and o["answer_correct"] is None
    assert not (out / "latency.png").exists()


def test_fail_under_exit_code(settings, qa_file, tmp_path):
    # hit@5 = 2/3 is under the bar
    assert run_eval(settings, qa=qa_file, out=tmp_path / "a", retrieval_only=True, fail_under=True,
                    retriever=FakeRetriever()) == 1
    perfect = FakeRetriever({q["question"]: q["pages"] or [1] for q in QA})
    assert run_eval(settings, qa=qa_file, out=tmp_path / "b", retrieval_only=True, fail_under=True,
                    retriever=perfect) == 0
    bars = json.loads((tmp_path / "b" / "metrics.json").read_text())["bars"]
    assert all(b["passed"] for b in bars)


def test_a_failing_item_is_recorded_not_raised(settings, qa_file, tmp_path):
    out = tmp_path / "out"
    engine = ScriptedEngine(fail={QA[0]["question"]})
    assert run_eval(settings, qa=qa_file, out=out, retriever=FakeRetriever(), engine=engine) == 0
    results = {r["id"]: r for r in _lines(out / "results.jsonl")}
    assert "model crashed" in results["en-1"]["error"]
    assert results["en-1"]["grades"]["answer_correct"] is False
    assert results["en-1"]["grades"]["rank"] == 1  # retrieval still graded
    o = json.loads((out / "metrics.json").read_text())["systems"]["ours"]["overall"]
    assert o["errors"] == 1 and o["answer_correct"] == pytest.approx(1 / 3)


def test_an_interrupted_run_resumes_and_a_finished_one_is_redone(settings, qa_file, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_eval(settings, qa=qa_file, out=out, retriever=FakeRetriever(), engine=ScriptedEngine(interrupt_after=2))
    assert len(_lines(out / "results.jsonl")) == 2 and not (out / "metrics.json").exists()
    engine = ScriptedEngine()
    assert run_eval(settings, qa=qa_file, out=out, retriever=FakeRetriever(), engine=engine) == 0
    assert engine.asked == [QA[2]["question"], QA[3]["question"]]
    assert len(_lines(out / "results.jsonl")) == 4
    engine = ScriptedEngine()
    run_eval(settings, qa=qa_file, out=out, retriever=FakeRetriever(), engine=engine)
    assert len(engine.asked) == 4


class FakeBaseline:
    name = "baseline"

    def retrieve(self, question, k):
        return [3]

    def ask(self, question):
        return Answer(question=question, standalone_question=question, answer="I don't know.", lang="en",
                      refused=True, first_token_s=0.1, total_s=0.2)


def _run_with_baseline(settings, qa_file, out):
    run_eval(settings, qa=qa_file, out=out, baseline=True, retriever=FakeRetriever(), engine=ScriptedEngine(),
             baseline_pipeline=FakeBaseline())
    assert len(_lines(out / "results-baseline.jsonl")) == 4


def test_baseline_runs_side_by_side(settings, qa_file, tmp_path):
    out = tmp_path / "out"
    _run_with_baseline(settings, qa_file, out)
    systems = json.loads((out / "metrics.json").read_text())["systems"]
    assert systems["baseline"]["overall"]["false_refusal_rate"] == 1.0
    assert systems["baseline"]["overall"]["hit@1"] == pytest.approx(1 / 3)
    assert "| metric | ours | baseline |" in (out / "report.md").read_text()


def test_a_finished_baselines_answers_are_reused_unless_its_inputs_change(settings, qa_file, tmp_path):
    out = tmp_path / "out"
    _run_with_baseline(settings, qa_file, out)
    asked = []

    class CountingBaseline(FakeBaseline):
        def ask(self, question):
            asked.append(question)
            return super().ask(question)

    engine = ScriptedEngine()
    kwargs = dict(qa=qa_file, out=out, baseline=True, retriever=FakeRetriever(), baseline_pipeline=CountingBaseline())
    run_eval(dataclasses.replace(settings, top_k=3), engine=engine, **kwargs)  # our pipeline's settings changed
    assert asked == [] and len(engine.asked) == 4  # ours is redone, the baseline reused
    assert len(_lines(out / "results-baseline.jsonl")) == 4
    path = out / "results-baseline.jsonl"
    forged = [r | {"grades": {"answer_correct": True}} for r in _lines(path)]
    path.write_text("".join(json.dumps(r) + "\n" for r in forged))
    run_eval(settings, engine=ScriptedEngine(), **kwargs)
    assert asked == []  # reused again, but graded anew: stale grades never reach the report
    assert {r["grades"]["false_refusal"] for r in _lines(path) if r["gold"]} == {True}
    run_eval(settings, engine=ScriptedEngine(), fresh=True, **kwargs)
    assert len(asked) == 4
    run_eval(dataclasses.replace(settings, llm_temperature=0.5), engine=ScriptedEngine(), **kwargs)
    assert len(asked) == 8  # the baseline's LLM changed
    items = [json.loads(line) for line in qa_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    edited = [items[0] | {"question": items[0]["question"] + " (edited)"}, *items[1:],
              items[1] | {"id": "new-1", "question": "A question added later?"}]
    qa_file.write_text("".join(json.dumps(it, ensure_ascii=False) + "\n" for it in edited), encoding="utf-8")
    run_eval(dataclasses.replace(settings, llm_temperature=0.5), engine=ScriptedEngine(), **kwargs)
    assert asked[8:] == [edited[0]["question"], "A question added later?"]  # only what is new is asked


def test_stratified_subset_covers_every_cell_deterministically(qa_file):
    items = load_qa(qa_file) * 1
    more = [type(items[0])(**{**it.__dict__, "id": f"{it.id}-{n}"}) for n in range(5) for it in items]
    subset = select(more, 4, stratified=True)
    assert {(it.lang, it.kind) for it in subset} == {(it.lang, it.kind) for it in items}
    assert [it.id for it in select(more, 4, stratified=True)] == [it.id for it in subset]
    assert [it.id for it in select(more, 3, stratified=False)] == [it.id for it in more[:3]]
    assert len(select(more, 7, stratified=True)) == 7


@pytest.mark.parametrize("line,problem", [
    ("{not json", "line 2"),
    (json.dumps({**QA[0], "id": "x", "lang": "fr"}), "'lang'"),
    (json.dumps({**QA[0], "id": "x", "pages": []}), "'pages' must be empty exactly when"),
    (json.dumps({**QA[0], "id": "x", "must_include": ["800MM"]}), "'must_include'"),
    (json.dumps({k: v for k, v in QA[0].items() if k != "question"}), "missing field 'question'"),
    (json.dumps(QA[0]), "duplicate id 'en-1'"),
])
def test_bad_qa_line_is_named(tmp_path, line, problem):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(QA[0]) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(QAFormatError, match="line 2") as e:
        load_qa(path)
    assert problem in str(e.value)


def test_cli_exits_2_on_a_bad_qa_file(tmp_path, capsys):
    from reportqa.app.cli import main

    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(QA[0]) + "\n" + json.dumps({**QA[1], "kind": "trivia"}) + "\n", encoding="utf-8")
    assert main(["eval", "--qa", str(path), "--out", str(tmp_path / "out"), "--fail-under"]) == 2
    assert "line 2" in capsys.readouterr().err


def test_a_missed_bar_reads_as_a_failure_only_when_enforced(tmp_path, capsys):
    from reportqa.eval.runner import _print_summary

    metrics = {"systems": {"ours": {"overall": {"n": 12, "errors": 0, "hit@5": 0.9}}},
               "bars": [{"name": "hit@5", "value": 0.9, "min": 0.95, "passed": False},
                        {"name": "zh cross-lingual hit@5", "value": None, "min": 0.9, "passed": None}]}
    _print_summary(metrics, tmp_path, enforced=True)
    assert "bar hit@5 >= 0.95: 0.900 FAIL" in capsys.readouterr().out
    _print_summary(metrics, tmp_path, enforced=False)
    out = capsys.readouterr().out
    assert "FAIL" not in out and "under (not enforced without --fail-under)" in out and "skipped" in out
