"""`reportqa eval`: run a split of the QA set (or any QA file) through our pipeline (and optionally the naive
baseline), grade every answer, and write results.jsonl, metrics.json and report.md. Metric definitions: docs/eval.md.

Conversation items (with `history`) are asked turn by turn through the same engine, its own answers fed back as the
history, as the chat does. Every model output is stored with its prompt's hash (generations.jsonl), so `--replay DIR`
re-runs the pipeline answering prompts from that store, and `--ablate` measures each answer-stage rule by replaying
the items it fired on with the rule advisory (eval/replay.py).

A run in an output folder that holds an unfinished run with the same settings and questions resumes it: finished
items are kept and only the missing or failed ones run again. A finished run (metrics.json present) is redone, except
for the baseline: its code is fixed, so its record of a question is reused whenever the question's text and the
baseline's own inputs (report, embedder, LLM settings) are unchanged, and only new or edited questions run; --fresh
redoes it too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from reportqa.answer.followup import needs_rewrite
from reportqa.answer.llm import ChatLLM, get_llm
from reportqa.answer.text import detect_lang
from reportqa.errors import UserError
from reportqa.eval.metrics import (
    aggregate,
    conversations,
    failure_grades,
    grade_answer,
    grade_retrieval,
    outcome_right,
    removed_kind,
    rule_table,
    turn_probes,
)
from reportqa.eval.replay import GENERATIONS, RecordingLLM, backend_prefill, load_store, model_id
from reportqa.settings import Settings
from reportqa.version import git_commit

log = logging.getLogger(__name__)

EVAL_DIR = Path(__file__).resolve().parent
DEFAULT_QA = EVAL_DIR / "qa.jsonl"
# The QA files of each split, in eval/. Tune on dev; run test once at the end and report both (docs/eval.md).
SPLITS = {"dev": ("qa.jsonl", "qa-dev2.jsonl", "qa-dev3.jsonl", "conv-dev.jsonl", "conv-dev2.jsonl",
                 "conv-dev3.jsonl"),
          "test": ("qa-test.jsonl", "qa-test-unanswerable.jsonl", "conv-test.jsonl")}
# Turn pairs that measure the follow-up decision alone, without the model (docs/qa-set.md); dev only.
TURN_PROBES = {"dev": "turns-dev.jsonl"}
LANGS = ("en", "zh")
KINDS = ("fact", "numeric", "cross-lingual", "multi-page", "summary", "unanswerable")
FOLLOWUPS = ("ellipsis", "pronoun", "changed-year", "changed-unit", "changed-subject", "unanswerable", "new-topic")
# settings that shape the results, recorded in metrics.json (no paths, hosts or secrets: results get committed)
RECORDED_SETTINGS = ("embedder", "chunk_chars", "chunk_overlap", "top_k", "fusion", "rrf_k", "dense_weight",
                     "retrieval_candidates", "divider_weight", "llm", "llm_ctx", "llm_max_tokens", "llm_temperature",
                     "answer_context_tokens", "answer_retry_context_tokens", "advisory_rules", "followup_turns",
                     "followup_pages")
MAX_CONSECUTIVE_ERRORS = 5  # that many failures in a row means the system is down, not that some items are hard


class QAFormatError(UserError):
    """A QA file that does not follow the format; the message names the file and line."""


@dataclass(frozen=True)
class QAItem:
    id: str
    lang: str
    question: str
    answer: str  # reference answer, for the report
    must_include: tuple[tuple[str, ...], ...]
    pages: tuple[int, ...]  # gold pages; empty for unanswerable
    kind: str
    history: tuple[str, ...] = ()  # earlier user turns of a conversation item, asked in order before `question`
    followup: str | None = None  # what kind of follow-up `question` is (FOLLOWUPS); set exactly with history
    twin: str | None = None  # id of the standalone item asking the same in full
    multi: bool = False  # asks for several facts
    file: str = ""  # name of the QA file it came from: the report breaks a run of several files down by file


def _str_list(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(s, str) and s.strip() for s in value)


def _item(obj, seen: Container[str]) -> QAItem:
    """The item of one parsed line; ValueError names the first problem."""
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    if "draft" in obj:  # written by `reportqa eval --from-feedback` (eval/feedback.py)
        raise ValueError(f"{obj.get('id')!r} is a draft: fill in {', '.join(map(repr, obj.get('needs') or ()))} "
                         "(docs/qa-set.md), then delete its 'draft' and 'needs'")
    for key in ("id", "lang", "question", "answer", "must_include", "pages", "kind"):
        if key not in obj:
            raise ValueError(f"missing field {key!r}")
    if not isinstance(obj["id"], str) or not obj["id"].strip():
        raise ValueError("'id' must be a non-empty string")
    if obj["id"] in seen:
        raise ValueError(f"duplicate id {obj['id']!r}")
    if obj["lang"] not in LANGS:
        raise ValueError(f"'lang' must be one of {LANGS}, got {obj['lang']!r}")
    if obj["kind"] not in KINDS:
        raise ValueError(f"'kind' must be one of {KINDS}, got {obj['kind']!r}")
    for key in ("question", "answer"):
        if not isinstance(obj[key], str) or (key == "question" and not obj[key].strip()):
            raise ValueError(f"{key!r} must be a {'non-empty ' if key == 'question' else ''}string")
    groups = obj["must_include"]
    if not isinstance(groups, list) or not all(_str_list(g) for g in groups):
        raise ValueError("'must_include' must be a list of non-empty lists of non-empty strings")
    pages = obj["pages"]
    if not isinstance(pages, list) or not all(isinstance(p, int) and not isinstance(p, bool) and p > 0 for p in pages):
        raise ValueError("'pages' must be a list of positive integers")
    if (obj["kind"] == "unanswerable") != (not pages):
        raise ValueError("'pages' must be empty exactly when 'kind' is 'unanswerable'")
    history, followup, twin = obj.get("history"), obj.get("followup"), obj.get("twin")
    if history is not None and not _str_list(history):
        raise ValueError("'history' must be a non-empty list of non-empty strings (the earlier user turns)")
    if (history is None) != (followup is None):
        raise ValueError("'history' and 'followup' go together: a conversation item has both")
    if followup is not None and followup not in FOLLOWUPS:
        raise ValueError(f"'followup' must be one of {FOLLOWUPS}, got {followup!r}")
    if followup == "unanswerable" and obj["kind"] != "unanswerable":
        raise ValueError("an 'unanswerable' follow-up needs 'kind' 'unanswerable'")
    if twin is not None and (history is None or not isinstance(twin, str) or not twin.strip()):
        raise ValueError("'twin' must be the id (a string) of a standalone item, on a conversation item")
    if not isinstance(obj.get("multi", False), bool):
        raise ValueError("'multi' must be true or false")
    return QAItem(id=obj["id"], lang=obj["lang"], question=obj["question"], answer=obj["answer"],
                  must_include=tuple(tuple(g) for g in groups), pages=tuple(pages), kind=obj["kind"],
                  history=tuple(history or ()), followup=followup, twin=twin, multi=obj.get("multi", False))


def load_qa(*paths: Path) -> list[QAItem]:
    """Items of one or more QA files (JSONL, blank lines allowed; ids unique across them). QAFormatError names the
    first bad line."""
    items: list[QAItem] = []
    where: dict[str, str] = {}
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise QAFormatError(f"cannot read QA file {path}: {e}") from e
        before = len(items)
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = dataclasses.replace(_item(json.loads(line), where.keys()), file=path.name)
            except ValueError as e:  # json.JSONDecodeError is a ValueError
                raise QAFormatError(f"{path}, line {n}: {e}") from e
            where[item.id] = f"{path}, line {n}"
            items.append(item)
        if len(items) == before:
            raise QAFormatError(f"{path}: no questions")
    by_id = {it.id: it for it in items}
    for it in items:
        if it.twin is not None and (it.twin not in by_id or by_id[it.twin].history):
            raise QAFormatError(f"{where[it.id]}: 'twin' {it.twin!r} is not a standalone item of the set")
    return items


def split_files(split: str) -> list[Path]:
    """The split's QA files that exist; one not written yet is skipped with a log line."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    paths = [EVAL_DIR / name for name in SPLITS[split]]
    for p in paths:
        if not p.exists():
            log.info("split %s: %s is not there yet; skipped", split, p.name)
    present = [p for p in paths if p.exists()]
    if not present:
        raise QAFormatError(f"split {split}: none of its QA files exist ({', '.join(SPLITS[split])})")
    return present


def select(items: Sequence[QAItem], limit: int | None, stratified: bool) -> list[QAItem]:
    """The first `limit` items, or with `stratified` a deterministic subset spread over lang x kind: cells take turns
    (in sorted order) claiming one more item, and each cell's items are picked evenly spaced through its list."""
    if limit is None or limit >= len(items):
        return list(items)
    if not stratified:
        return list(items[:limit])
    cells: dict[tuple[str, str], list[QAItem]] = {}
    for it in items:
        cells.setdefault((it.lang, it.kind), []).append(it)
    quota = dict.fromkeys(cells, 0)
    while sum(quota.values()) < limit:
        for cell in sorted(cells):
            if sum(quota.values()) < limit and quota[cell] < len(cells[cell]):
                quota[cell] += 1
    picked = {cells[c][int((i + 0.5) * len(cells[c]) / q)].id for c, q in quota.items() for i in range(q)}
    return [it for it in items if it.id in picked]


# ---------------------------------------------------------------------------------------------------------------
# the systems under test


History = Sequence[tuple[str, str]]


class System(Protocol):
    """What the runner evaluates. A system with `conversational = True` is also passed the history of a
    conversation item (see converse); any other is asked the item's question alone."""

    name: str

    def retrieve(self, question: str, k: int) -> list[int]:
        """Ranked pages, best first."""

    def ask(self, question: str):
        """A reportqa.answer.Answer whose first_token_s and total_s are set."""


def _conversational(system: System) -> bool:
    return getattr(system, "conversational", False)


class OurSystem:
    """The real pipeline: the index's retriever for the ranking, the answer engine (streamed) for the answer."""

    name = "ours"
    conversational = True

    def __init__(self, retriever, engine=None):
        self.retriever = retriever
        self.engine = engine

    def retrieve(self, question: str, k: int) -> list[int]:
        return [h.page for h in self.retriever.retrieve(question, k=k)]

    def ask(self, question: str, history: History = ()):
        from reportqa.answer import Final, Token

        start = time.perf_counter()
        first = final = None
        for event in self.engine.stream(question, list(history)):
            if isinstance(event, Token) and first is None:
                first = time.perf_counter() - start
            elif isinstance(event, Final):
                final = event.answer
        if final is None:
            raise RuntimeError("the answer stream ended without a Final event")
        final.first_token_s, final.total_s = first, time.perf_counter() - start
        return final


def converse(system: System, item: QAItem):
    """The item's answer and the records of its earlier turns. The earlier turns are asked in order, each answer going
    into the history as the chat does it: (question, answer text) pairs, a turn that failed left out."""
    if not (item.history and _conversational(system)):
        return system.ask(item.question), []
    pairs: list[tuple[str, str]] = []
    turns = []
    for question in item.history:
        ans = system.ask(question, pairs)
        turns.append({"question": question, "standalone_question": ans.standalone_question, "answer": ans.answer,
                      "refused": ans.refused, "error": ans.error, "checks": _check_records(ans)})
        if not ans.error:
            pairs.append((question, ans.answer))
    return system.ask(item.question, pairs), turns


def _check_records(ans) -> list[dict]:
    """The answer stage's rule firings (Answer.checks) as plain dicts: rule, verdict, subject, detail."""
    return [{key: str(value) for key, value in dataclasses.asdict(c).items()} for c in ans.checks]


# ---------------------------------------------------------------------------------------------------------------
# one item


def evaluate_item(item: QAItem, system: System, page_text: Callable[[int], str], k: int,
                  retrieval_only: bool) -> dict:
    """The graded record of one question. Failures are recorded in "error", never raised.

    The ranking is that of the standalone question the engine answered (for a follow-up, its rewrite). So a
    conversation item needs the engine even in a retrieval-only run; its answer is then recorded, not graded."""
    conversation = bool(item.history) and _conversational(system)
    rec = {"id": item.id, "question": item.question, "lang": item.lang, "kind": item.kind, "gold": list(item.pages),
           "system": system.name, "mode": "retrieval" if retrieval_only else "full", "answer": None, "refused": None,
           "citations": [], "retrieved": [], "latency_s": None, "first_token_s": None, "error": None}
    if item.history:
        rec |= {"history": [], "history_lang": detect_lang(item.history[0]), "followup": item.followup,
                "twin": item.twin}
    if item.multi:
        rec["multi"] = True
    if item.file:
        rec["file"] = item.file
    query = item.question
    if conversation or not retrieval_only:
        try:
            ans, turns = converse(system, item)
            cited = list(dict.fromkeys(c.page for c in ans.citations))
            rec.update(answer=ans.answer, refused=ans.refused, citations=cited, latency_s=ans.total_s,
                       first_token_s=ans.first_token_s, error=ans.error, context=ans.context,
                       standalone_question=ans.standalone_question, checks=_check_records(ans))
            if item.history:
                rec["history"] = turns
            if getattr(ans, "parts", None):  # a question of several, answered part by part
                rec["parts"] = ans.parts
            query = ans.standalone_question
        except Exception as e:  # recorded; the item counts as a failure, and a conversation item as a miss
            rec["error"] = f"answer: {type(e).__name__}: {e}"
            if conversation:
                query = None
    if query is not None:
        try:
            rec["retrieved"] = list(dict.fromkeys(system.retrieve(query, k)))
        except Exception as e:  # recorded; the item counts as a miss
            rec["error"] = rec["error"] or f"retrieval: {type(e).__name__}: {e}"
    rec["grades"] = grade_record(rec, item, page_text, k)
    return rec


def grade_record(rec: dict, item: QAItem, page_text: Callable[[int], str], k: int) -> dict:
    """The grades of a record's ranking and answer by the current grader. Kept records (resumed, reused baseline)
    are graded again, so one report never mixes grades of two versions of the metrics."""
    grades = grade_retrieval(rec["retrieved"], item.pages, k)
    if rec["mode"] == "full":
        if rec["answer"] is None:  # the answer raised
            grades |= failure_grades(item.pages)
        else:
            grades |= grade_answer(answer=rec["answer"], refused=rec["refused"], citations=rec["citations"],
                                   lang=item.lang, gold=item.pages, must_include=item.must_include,
                                   page_text=page_text, context=rec.get("context"))
            # each sentence a rule left out, by what it was (harm: a required fact; help: an unsupported claim)
            grades["removed"] = [
                {"rule": c["rule"], "kind": kind} for c in rec.get("checks", []) if c["verdict"] == "dropped"
                and (kind := removed_kind(c["subject"], answer=rec["answer"], refused=rec["refused"], gold=item.pages,
                                          must_include=item.must_include, page_text=page_text))]
    return grades


# ---------------------------------------------------------------------------------------------------------------
# results files and resuming


def _results_path(out: Path, system: str) -> Path:
    return out / ("results.jsonl" if system == "ours" else f"results-{system}.jsonl")


# what the baseline's answers depend on; the rest of Settings tunes our pipeline only
BASELINE_SETTINGS = ("report", "embedder", "st_model", "llm", "llm_model_path", "llm_ctx", "llm_max_tokens",
                     "llm_temperature", "openai_base_url", "openai_model")


def _fingerprint(settings: Settings, qa_paths: Sequence[Path], items: Iterable[QAItem], system: str,
                 retrieval_only: bool, replay_sha: str | None = None) -> dict:
    """What one system's graded records depend on: records are reused only under an equal fingerprint."""
    fields = dataclasses.asdict(settings)
    qa_sha = hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in qa_paths)).hexdigest()
    questions = {"qa_sha256": qa_sha, "ids": [it.id for it in items]}
    if system == "baseline":  # matched question by question instead (_run_system): a new question costs one run
        fields = {f: fields[f] for f in BASELINE_SETTINGS}
        fields["report_sha256"] = hashlib.sha256(Path(settings.report).read_bytes()).hexdigest()
        questions = {}
    return questions | {
        "retrieval_only": retrieval_only,
        "settings_sha256": hashlib.sha256(repr(sorted(fields.items())).encode()).hexdigest(),
    } | ({"replay_sha256": replay_sha} if replay_sha and system != "baseline" else {})


def _previous_records(out: Path, fingerprints: dict[str, dict], fresh: bool) -> dict[str, dict[str, dict]]:
    """system -> id -> record worth keeping from the folder's last run: that of a system with the same fingerprint,
    if the run was unfinished or the system is the baseline (see the module doc). Failed records are dropped."""
    run_file = out / "run.json"
    if fresh or not run_file.exists():
        return {}
    try:
        previous = json.loads(run_file.read_text())
    except ValueError:
        return {}
    finished = (out / "metrics.json").exists()
    kept: dict[str, dict[str, dict]] = {}
    for system, fingerprint in fingerprints.items():
        if (finished and system != "baseline") or previous.get(system) != fingerprint:
            continue
        path = _results_path(out, system)
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:  # a line cut short by the interruption
                    continue
                if not rec.get("error"):
                    kept.setdefault(system, {})[rec["id"]] = rec
    return kept


def _run_system(system: System, items: list[QAItem], done: dict[str, dict], path: Path,
                page_text: Callable[[int], str], k: int, retrieval_only: bool, commit: str | None) -> list[dict]:
    errors_in_row = 0
    by_id = {it.id: it for it in items}
    done = {i: rec for i, rec in done.items() if i in by_id and rec.get("question") == by_id[i].question}
    with path.open("w", encoding="utf-8") as f:
        for rec in done.values():
            rec["grades"] = grade_record(rec, by_id[rec["id"]], page_text, k)
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        todo = [it for it in items if it.id not in done]
        if done:
            log.info("%s: resuming, %d of %d items already done", system.name, len(done), len(items))
        bar = tqdm(todo, desc=f"eval {system.name}", unit="q", file=sys.stderr, dynamic_ncols=True)
        errors = 0
        for item in bar:
            rec = evaluate_item(item, system, page_text, k, retrieval_only) | {"commit": commit}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()
            done[item.id] = rec
            if rec["error"]:
                errors += 1
                errors_in_row += 1
                log.warning("%s %s: %s", system.name, item.id, rec["error"])
                bar.set_postfix(errors=errors)
                if errors_in_row >= MAX_CONSECUTIVE_ERRORS:
                    raise UserError(f"{system.name}: {errors_in_row} items failed in a row (last: {rec['error']}); "
                                    f"stopped. Fix the cause and rerun: finished items are kept.")
            else:
                errors_in_row = 0
    return [done[it.id] for it in items]


# ---------------------------------------------------------------------------------------------------------------
# replay and rule ablation

EngineFactory = Callable[[ChatLLM, tuple[str, ...]], object]  # (llm, rules made advisory) -> answer engine


def _answer_engine(settings: Settings, retriever, llm: ChatLLM, advisory: tuple[str, ...]):
    from reportqa.answer import AnswerEngine

    if advisory:
        current = [r.strip() for r in settings.advisory_rules.split(",") if r.strip()]
        settings = settings.replace(advisory_rules=",".join(dict.fromkeys([*current, *advisory])))
    return AnswerEngine(settings, retriever=retriever, llm=llm)


def _fired(rec: dict) -> list[str]:
    """The rules that acted on any turn of a record (an advisory firing only recorded itself)."""
    checks = [*rec.get("checks", []), *(c for t in rec.get("history", []) for c in t.get("checks", []))]
    return list(dict.fromkeys(c["rule"] for c in checks if c.get("verdict") != "advisory"))


def _ablate(records: list[dict], by_id: dict[str, QAItem], make_engine: EngineFactory, recorder: RecordingLLM,
            retriever, page_text: Callable[[int], str], k: int, out: Path) -> dict[str, dict]:
    """rule -> what replaying the items it acted on, with it advisory, did to their outcome (outcome_right):
    help = items right with the rule and wrong without it, harm = the reverse. The records go to ablation.jsonl."""
    fired: dict[str, list[str]] = {}
    for rec in records:
        for rule in _fired(rec):
            fired.setdefault(rule, []).append(rec["id"])
    with_rule = {r["id"]: r for r in records}
    table = {}
    with (out / "ablation.jsonl").open("w", encoding="utf-8") as f:
        for rule, ids in sorted(fired.items()):
            system = OurSystem(retriever, make_engine(recorder, (rule,)))
            replayed, generated = recorder.replayed, recorder.generated
            help_ids, harm_ids = [], []
            for i in tqdm(ids, desc=f"ablate {rule}", unit="q", file=sys.stderr, dynamic_ncols=True):
                rec = evaluate_item(by_id[i], system, page_text, k, retrieval_only=False)
                f.write(json.dumps(rec | {"advisory": rule}, ensure_ascii=False) + "\n")
                before, after = outcome_right(with_rule[i]), outcome_right(rec)
                if before and not after:
                    help_ids.append(i)
                elif after and not before:
                    harm_ids.append(i)
            table[rule] = {"fired": len(ids), "help": help_ids, "harm": harm_ids,
                           "model_calls": recorder.generated - generated,
                           "prompts_replayed": recorder.replayed - replayed}
    return table


def _compare_stored(folder: Path, records: list[dict], by_id: dict[str, QAItem], page_text: Callable[[int], str],
                    k: int) -> dict:
    """The replayed items whose grades differ from the stored run's answers graded by today's grader (so a change
    of the grader is not taken for a change of the pipeline)."""
    stored = {}
    path = folder / "results.jsonl"
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            stored[rec["id"]] = rec
    changed = []
    compared = [r for r in records if r["id"] in stored and stored[r["id"]].get("mode") == r["mode"]]
    for rec in compared:
        before = grade_record(stored[rec["id"]], by_id[rec["id"]], page_text, k)
        if before != rec["grades"]:
            changed.append({"id": rec["id"], "was_right": outcome_right({**rec, "grades": before}),
                            "is_right": outcome_right(rec), "was": stored[rec["id"]].get("answer"),
                            "is": rec.get("answer")})
    return {"compared": len(compared), "changed": changed}


# ---------------------------------------------------------------------------------------------------------------
# the run


def check_bars(summary: dict, settings: Settings) -> list[dict]:
    """The --fail-under bars on our metrics. A bar whose group is empty (e.g. a subset without Chinese
    cross-lingual questions) is reported as skipped (passed=None)."""
    zh_cross = summary["by_lang_kind"].get("zh/cross-lingual", {})
    bars = [("hit@5", summary["overall"].get("hit@5"), settings.eval_min_hit_at_5),
            ("mrr", summary["overall"].get("mrr"), settings.eval_min_mrr),
            ("zh cross-lingual hit@5", zh_cross.get("hit@5"), settings.eval_min_zh_cross_hit_at_5)]
    return [{"name": name, "value": value, "min": bar, "passed": None if value is None else value >= bar}
            for name, value, bar in bars]


def _print_summary(metrics: dict, out: Path, enforced: bool) -> None:
    names = ("hit@1", "hit@5", "mrr", "answer_correct", "context_recall", "citation_precision", "number_faithfulness",
             "refusal_accuracy", "false_refusal_rate", "language_match", "latency_p50", "latency_p95")
    for system, m in metrics["systems"].items():
        o = m["overall"]
        shown = [f"{n}={o[n]:.3f}" for n in names if o.get(n) is not None]
        print(f"{system} (n={o['n']}, errors={o['errors']}): " + "  ".join(shown))
    for bar in metrics["bars"]:
        # without --fail-under a bar is information (a 12-question subset often misses one), not a failure
        state = "skipped" if bar["passed"] is None else "ok" if bar["passed"] else "FAIL" if enforced else \
            "under (not enforced without --fail-under)"
        value = "-" if bar["value"] is None else f"{bar['value']:.3f}"
        print(f"bar {bar['name']} >= {bar['min']}: {value} {state}")
    print(f"report: {out / 'report.md'}")


def run_eval(settings: Settings, qa: str | Path | None = None, out: Path = Path("eval/out"),
             retrieval_only: bool = False, limit: int | None = None, baseline: bool = False,
             stratified: bool = False, fail_under: bool = False, fresh: bool = False, split: str | None = None,
             replay: str | Path | None = None, ablate: bool = False, *, retriever=None, engine=None,
             baseline_pipeline=None, llm: ChatLLM | None = None, engine_factory: EngineFactory | None = None) -> int:
    """Evaluate; returns the exit code (1 when fail_under and a bar is missed). retriever, engine and
    baseline_pipeline replace the real ones (tests); llm replaces the model behind the recorded engine, and
    engine_factory(llm, advisory_rules) how that engine is built."""
    from reportqa.eval.report import write_report

    out = Path(out)
    if qa and split:
        raise UserError("--qa and --split exclude each other: a QA file is a set of its own")
    if ablate and replay is None:
        raise UserError("--ablate needs --replay DIR: each rule is measured by replaying the items it fired on")
    if replay is not None and Path(replay).resolve() == out.resolve():
        raise UserError("--out must differ from --replay: the replay would overwrite the store it reads")
    if limit is not None and limit < 1:
        raise UserError("--limit must be at least 1")
    qa_paths = [Path(qa)] if qa else split_files(split or "dev")
    for p in qa_paths:
        if not p.exists():
            raise QAFormatError(f"QA file not found: {p}")
    items = select(load_qa(*qa_paths), limit, stratified)
    store = load_store(Path(replay)) if replay is not None else None
    if retrieval_only and store is None and any(it.history for it in items):
        # a follow-up is retrieved on the engine's rewrite, which needs the model's earlier answers: without a store
        # of them a retrieval-only run could only rank the follow-up's bare words, which no user's query is
        log.info("retrieval only: %d conversation items left out (their standalone question needs the model; "
                 "add --replay DIR of a full run to rank them on the engine's own rewrite)",
                 sum(1 for it in items if it.history))
        items = [it for it in items if not it.history]
        if not items:
            raise UserError("retrieval only: every selected item is a conversation item; add --replay DIR")
    if ablate and engine_factory is None and not hasattr(settings, "advisory_rules"):
        raise UserError("--ablate: this answer stage has no advisory rules (Settings.advisory_rules)")
    if retriever is None:
        from reportqa.index import open_retriever

        retriever = open_retriever(settings)

    def page_text(n: int) -> str:
        record = retriever.page(n)
        return record.text if record else ""

    out.mkdir(parents=True, exist_ok=True)
    replay_sha = hashlib.sha256((Path(replay) / GENERATIONS).read_bytes()).hexdigest() if replay else None
    names = ["ours", *(["baseline"] if baseline else [])]
    fingerprints = {s: _fingerprint(settings, qa_paths, items, s, retrieval_only, replay_sha) for s in names}
    previous = _previous_records(out, fingerprints, fresh)
    if not previous.get("ours"):  # generations.jsonl holds the outputs behind results.jsonl: a resumed run's too
        (out / GENERATIONS).unlink(missing_ok=True)
    recorder = make_engine = None
    if engine is None and (not retrieval_only or any(it.history for it in items)):
        recorder = RecordingLLM(model_id(settings, llm), llm.prefill if llm else backend_prefill(settings),
                                (lambda: llm) if llm else (lambda: get_llm(settings)), out / GENERATIONS, store)
        make_engine = engine_factory or partial(_answer_engine, settings, retriever)
        engine = make_engine(recorder, ())
    systems: list[System] = [OurSystem(retriever, engine)]
    if baseline:
        if baseline_pipeline is None:
            from reportqa.eval.baseline import build_baseline

            baseline_pipeline = build_baseline(settings)
        systems.append(baseline_pipeline)

    for stale in ("metrics.json", "report.md"):
        (out / stale).unlink(missing_ok=True)
    (out / "run.json").write_text(json.dumps(fingerprints, ensure_ascii=False, indent=1))
    label = Path(qa).name if qa else f"split {split or 'dev'} ({', '.join(p.name for p in qa_paths)})"
    log.info("evaluating %d questions from %s%s%s", len(items), label, " (retrieval only)" if retrieval_only else "",
             f", replaying {replay}" if replay else "")
    commit = git_commit()
    records = {s.name: _run_system(s, items, previous.get(s.name, {}), _results_path(out, s.name), page_text,
                                   settings.eval_k, retrieval_only, commit) for s in systems}
    by_id = {it.id: it for it in items}
    counts = {"prompts_replayed": recorder.replayed, "prompts_generated": recorder.generated} if recorder else {}
    ablation = None
    if ablate:
        ablation = _ablate(records["ours"], by_id, make_engine, recorder, retriever, page_text, settings.eval_k, out)
    # the engine's own decision (with the report's lexicon) when it has one; a test's stand-in may not
    follows = engine.followups.follows if hasattr(engine, "followups") else needs_rewrite
    metrics = {
        "meta": {"split": None if qa else split or "dev", "qa": ", ".join(p.name for p in qa_paths),
                 "qa_sha256": fingerprints["ours"]["qa_sha256"], "n": len(items),
                 "retrieval_only": retrieval_only, "k": settings.eval_k, "limit": limit, "stratified": stratified,
                 "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit,
                 # a reused baseline may have been graded at an earlier commit
                 "commits": {name: sorted({str(r.get("commit")) for r in recs}) for name, recs in records.items()},
                 "settings": {f: getattr(settings, f) for f in RECORDED_SETTINGS if hasattr(settings, f)}},
        "systems": {name: aggregate(recs, settings.eval_k) for name, recs in records.items()},
        "conversations": conversations(records["ours"], settings.eval_k, follows),
        "rules": rule_table(records["ours"], ablation),
    }
    probes = None if qa else TURN_PROBES.get(split or "dev")
    if probes and (EVAL_DIR / probes).is_file():
        metrics["conversations"]["turn_probes"] = turn_probes(EVAL_DIR / probes, follows)
    if replay is not None:
        metrics["replay"] = {"from": Path(replay).name, **counts,
                             **_compare_stored(Path(replay), records["ours"], by_id, page_text, settings.eval_k)}
    metrics["bars"] = check_bars(metrics["systems"]["ours"], settings)
    write_report(metrics, records, out)
    (out / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=1))
    _print_summary(metrics, out, fail_under)
    failed = [b["name"] for b in metrics["bars"] if b["passed"] is False]
    if fail_under and failed:
        print(f"eval: below the bar: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
