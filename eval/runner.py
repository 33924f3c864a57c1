"""`reportqa eval`: run a QA file through our pipeline (and optionally the naive baseline), grade every answer, and
write results.jsonl, metrics.json and report.md. Metric definitions: docs/eval.md.

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
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from reportqa.errors import UserError
from reportqa.eval.metrics import aggregate, failure_grades, grade_answer, grade_retrieval
from reportqa.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_QA = Path(__file__).resolve().parent / "qa.jsonl"
LANGS = ("en", "zh")
KINDS = ("fact", "numeric", "cross-lingual", "multi-page", "summary", "unanswerable")
# settings that shape the results, recorded in metrics.json (no paths, hosts or secrets: results get committed)
RECORDED_SETTINGS = ("embedder", "chunk_chars", "chunk_overlap", "top_k", "fusion", "rrf_k", "dense_weight",
                     "retrieval_candidates", "divider_weight", "llm", "llm_ctx", "llm_max_tokens", "llm_temperature",
                     "answer_context_tokens", "answer_retry_context_tokens")
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


def _str_list(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(s, str) and s.strip() for s in value)


def _item(obj, seen: set[str]) -> QAItem:
    """The item of one parsed line; ValueError names the first problem."""
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
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
    return QAItem(id=obj["id"], lang=obj["lang"], question=obj["question"], answer=obj["answer"],
                  must_include=tuple(tuple(g) for g in groups), pages=tuple(pages), kind=obj["kind"])


def load_qa(path: Path) -> list[QAItem]:
    """Items of a QA file (JSONL, blank lines allowed). QAFormatError names the first bad line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise QAFormatError(f"cannot read QA file {path}: {e}") from e
    items: list[QAItem] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = _item(json.loads(line), seen)
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            raise QAFormatError(f"{path}, line {n}: {e}") from e
        seen.add(item.id)
        items.append(item)
    if not items:
        raise QAFormatError(f"{path}: no questions")
    return items


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


class System(Protocol):
    name: str

    def retrieve(self, question: str, k: int) -> list[int]:
        """Ranked pages, best first."""

    def ask(self, question: str):
        """A reportqa.answer.Answer whose first_token_s and total_s are set."""


class OurSystem:
    """The real pipeline: the index's retriever for the ranking, the answer engine (streamed) for the answer."""

    name = "ours"

    def __init__(self, retriever, engine=None):
        self.retriever = retriever
        self.engine = engine

    def retrieve(self, question: str, k: int) -> list[int]:
        return [h.page for h in self.retriever.retrieve(question, k=k)]

    def ask(self, question: str):
        from reportqa.answer import Final, Token

        start = time.perf_counter()
        first = final = None
        for event in self.engine.stream(question):
            if isinstance(event, Token) and first is None:
                first = time.perf_counter() - start
            elif isinstance(event, Final):
                final = event.answer
        if final is None:
            raise RuntimeError("the answer stream ended without a Final event")
        return dataclasses.replace(final, first_token_s=first, total_s=time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------------------------
# one item


def evaluate_item(item: QAItem, system: System, page_text: Callable[[int], str], k: int,
                  retrieval_only: bool) -> dict:
    """The graded record of one question. Failures are recorded in "error", never raised."""
    rec = {"id": item.id, "question": item.question, "lang": item.lang, "kind": item.kind, "gold": list(item.pages),
           "system": system.name, "mode": "retrieval" if retrieval_only else "full", "answer": None, "refused": None,
           "citations": [], "retrieved": [], "latency_s": None, "first_token_s": None, "error": None}
    try:
        rec["retrieved"] = list(dict.fromkeys(system.retrieve(item.question, k)))
    except Exception as e:  # recorded; the item counts as a miss
        rec["error"] = f"retrieval: {type(e).__name__}: {e}"
    if not retrieval_only:
        try:
            ans = system.ask(item.question)
            cited = list(dict.fromkeys(c.page for c in ans.citations))
            rec.update(answer=ans.answer, refused=ans.refused, citations=cited, latency_s=ans.total_s,
                       first_token_s=ans.first_token_s, error=rec["error"] or ans.error, context=ans.context)
        except Exception as e:  # recorded; the item counts as a failure
            rec["error"] = f"answer: {type(e).__name__}: {e}"
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
    return grades


# ---------------------------------------------------------------------------------------------------------------
# results files and resuming


def _results_path(out: Path, system: str) -> Path:
    return out / ("results.jsonl" if system == "ours" else f"results-{system}.jsonl")


# what the baseline's answers depend on; the rest of Settings tunes our pipeline only
BASELINE_SETTINGS = ("report", "embedder", "st_model", "llm", "llm_model_path", "llm_ctx", "llm_max_tokens",
                     "llm_temperature", "openai_base_url", "openai_model")


def _fingerprint(settings: Settings, qa_path: Path, items: Iterable[QAItem], system: str,
                 retrieval_only: bool) -> dict:
    """What one system's graded records depend on: records are reused only under an equal fingerprint."""
    fields = dataclasses.asdict(settings)
    questions = {"qa_sha256": hashlib.sha256(qa_path.read_bytes()).hexdigest(), "ids": [it.id for it in items]}
    if system == "baseline":  # matched question by question instead (_run_system): a new question costs one run
        fields = {f: fields[f] for f in BASELINE_SETTINGS}
        fields["report_sha256"] = hashlib.sha256(Path(settings.report).read_bytes()).hexdigest()
        questions = {}
    return questions | {
        "retrieval_only": retrieval_only,
        "settings_sha256": hashlib.sha256(repr(sorted(fields.items())).encode()).hexdigest(),
    }


def _git_commit() -> str | None:
    """The checkout's commit, so committed results say what they measured; None outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


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


def _print_summary(metrics: dict, out: Path) -> None:
    names = ("hit@1", "hit@5", "mrr", "answer_correct", "context_recall", "citation_precision", "number_faithfulness",
             "refusal_accuracy", "false_refusal_rate", "language_match", "latency_p50", "latency_p95")
    for system, m in metrics["systems"].items():
        o = m["overall"]
        shown = [f"{n}={o[n]:.3f}" for n in names if o.get(n) is not None]
        print(f"{system} (n={o['n']}, errors={o['errors']}): " + "  ".join(shown))
    for bar in metrics["bars"]:
        state = "skipped" if bar["passed"] is None else "ok" if bar["passed"] else "FAIL"
        value = "-" if bar["value"] is None else f"{bar['value']:.3f}"
        print(f"bar {bar['name']} >= {bar['min']}: {value} {state}")
    print(f"report: {out / 'report.md'}")


def run_eval(settings: Settings, qa: str | Path | None = None, out: Path = Path("eval/out"),
             retrieval_only: bool = False, limit: int | None = None, baseline: bool = False,
             stratified: bool = False, fail_under: bool = False, fresh: bool = False, *, retriever=None,
             engine=None, baseline_pipeline=None) -> int:
    """Evaluate; returns the exit code (1 when fail_under and a bar is missed). retriever, engine and
    baseline_pipeline replace the real ones (tests)."""
    from reportqa.eval.report import write_report

    qa_path = Path(qa) if qa else DEFAULT_QA
    if not qa_path.exists():
        raise QAFormatError(f"QA file not found: {qa_path}")
    if limit is not None and limit < 1:
        raise UserError("--limit must be at least 1")
    items = select(load_qa(qa_path), limit, stratified)
    if retriever is None:
        from reportqa.index import open_retriever

        retriever = open_retriever(settings)
    if not retrieval_only and engine is None:
        from reportqa.answer import AnswerEngine

        engine = AnswerEngine(settings, retriever=retriever)
    systems: list[System] = [OurSystem(retriever, engine)]
    if baseline:
        if baseline_pipeline is None:
            from reportqa.eval.baseline import build_baseline

            baseline_pipeline = build_baseline(settings)
        systems.append(baseline_pipeline)

    def page_text(n: int) -> str:
        record = retriever.page(n)
        return record.text if record else ""

    out.mkdir(parents=True, exist_ok=True)
    fingerprints = {s.name: _fingerprint(settings, qa_path, items, s.name, retrieval_only) for s in systems}
    previous = _previous_records(out, fingerprints, fresh)
    for stale in ("metrics.json", "report.md"):
        (out / stale).unlink(missing_ok=True)
    (out / "run.json").write_text(json.dumps(fingerprints, ensure_ascii=False, indent=1))
    log.info("evaluating %d questions from %s%s", len(items), qa_path, " (retrieval only)" if retrieval_only else "")
    commit = _git_commit()
    records = {s.name: _run_system(s, items, previous.get(s.name, {}), _results_path(out, s.name), page_text,
                                   settings.eval_k, retrieval_only, commit) for s in systems}
    metrics = {
        "meta": {"qa": qa_path.name, "qa_sha256": fingerprints["ours"]["qa_sha256"], "n": len(items),
                 "retrieval_only": retrieval_only, "k": settings.eval_k, "limit": limit, "stratified": stratified,
                 "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit,
                 # a reused baseline may have been graded at an earlier commit
                 "commits": {name: sorted({str(r.get("commit")) for r in recs}) for name, recs in records.items()},
                 "settings": {f: getattr(settings, f) for f in RECORDED_SETTINGS if hasattr(settings, f)}},
        "systems": {name: aggregate(recs, settings.eval_k) for name, recs in records.items()},
    }
    metrics["bars"] = check_bars(metrics["systems"]["ours"], settings)
    write_report(metrics, records, out)
    (out / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=1))
    _print_summary(metrics, out)
    failed = [b["name"] for b in metrics["bars"] if b["passed"] is False]
    if fail_under and failed:
        print(f"eval: below the bar: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
