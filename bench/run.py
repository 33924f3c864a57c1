"""`reportqa bench`: speed and memory of our pipeline against the naive llama-index baseline, measured in one run on
this machine, plus the scaling figure. Method and latest figures: docs/benchmarks.md.

Everything is built in a temporary REPORTQA_HOME (the user's index is never touched; only the assembled model is
reused). Serving figures come from a fresh subprocess per pipeline (bench/probe.py), so each peak RSS is that
serving process's alone.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from reportqa.bench import stats
from reportqa.errors import UserError
from reportqa.settings import Settings
from reportqa.version import git_commit

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_QUESTIONS = 8


def sample_questions(items: Sequence, n: int) -> list:
    """A deterministic sample of n QA items, half Chinese (the larger half when n is odd) and half English, each
    half spread over the question kinds (eval's stratified selection), languages alternating."""
    from reportqa.eval.runner import select

    if n < 1:
        raise UserError("--questions must be at least 1")
    halves = [select([it for it in items if it.lang == lang], share, stratified=True)
              for lang, share in (("zh", (n + 1) // 2), ("en", n // 2))]
    mixed = [it for pair in zip(*halves, strict=False) for it in pair]
    longer = max(halves, key=len)
    return (mixed + longer[len(min(halves, key=len)):])[:n]


def _timed(what: str, fn: Callable[[], T]) -> tuple[T, float]:
    log.info("bench: %s", what)
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment under which a subprocess's load_settings() returns exactly `settings`."""
    return {**os.environ, "ANONYMIZED_TELEMETRY": "False",
            **{f"REPORTQA_{f.name.upper()}": str(getattr(settings, f.name)) for f in dataclasses.fields(settings)}}


def run_probe(system: str, ids: Sequence[str], settings: Settings) -> dict:
    """Serving figures of one pipeline from a fresh process (progress goes to our stderr)."""
    proc = subprocess.run([sys.executable, "-m", "reportqa.bench.probe", system, *ids], env=settings_env(settings),
                          stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        raise RuntimeError(f"the {system} serving probe exited with code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ingest_figures(settings: Settings) -> tuple[dict, dict, float]:
    """Cold and no-op ingest of both pipelines in settings.home: (ours, baseline, our cold seconds)."""
    from reportqa.eval.baseline import NAME, build_baseline
    from reportqa.index import build_index, store

    cold, cold_s = _timed("cold ingest (ours)", lambda: build_index(settings, settings.report))
    noop, noop_s = _timed("no-op re-ingest (ours)", lambda: build_index(settings, settings.report))
    if not noop["noop"]:
        log.warning("the second ingest was not a no-op")
    ours = {"ingest_cold_s": cold_s, "ingest_pages_per_s": cold["pages"] / cold_s, "ingest_noop_s": noop_s,
            "index_mb": cold["size_mb"]}
    _, base_cold_s = _timed("cold ingest (baseline)", lambda: build_baseline(settings, rebuild=True))
    _, base_noop_s = _timed("no-op re-ingest (baseline)", lambda: build_baseline(settings))
    baseline = {"ingest_cold_s": base_cold_s, "ingest_pages_per_s": cold["pages"] / base_cold_s,
                "ingest_noop_s": base_noop_s, "index_mb": store.dir_size_mb(settings.home / NAME)}
    return ours, baseline, cold_s


def measure(settings: Settings, questions: int, scaling: bool, work: Path) -> dict:
    """The whole bench; `work` is an empty scratch folder."""
    from reportqa.answer import ensure_model
    from reportqa.eval.runner import DEFAULT_QA, load_qa

    started, load_start = time.time(), os.getloadavg()
    items = load_qa(DEFAULT_QA)
    sample = sample_questions(items, questions)
    model = str(ensure_model(settings)) if settings.llm == "local" else settings.llm_model_path
    bench = settings.replace(home=work / "home", llm_model_path=model)

    metrics: dict[str, dict] = {}
    metrics["ours"], metrics["baseline"], cold_s = ingest_figures(bench)
    answers, errors = {}, []
    for system in stats.SYSTEMS:
        try:
            probe, _ = _timed(f"serving probe ({system}, {len(sample)} answers)",
                              lambda s=system: run_probe(s, [it.id for it in sample], bench))
        except (RuntimeError, ValueError, IndexError) as e:
            log.error("%s", e)
            errors.append(str(e))
            continue
        metrics[system] |= stats.serving_figures(probe)
        answers[system] = probe["answers"]

    scaled = None
    if scaling:
        from reportqa.bench.scaling import run_scaling

        try:
            scaled, _ = _timed("scaling (1x/4x/16x, embedded and server Chroma)",
                               lambda: run_scaling(bench, [it.question for it in items], cold_s, work / "scaling"))
        except Exception as e:  # the figures measured so far are still worth writing
            log.exception("scaling failed")
            errors.append(f"scaling: {type(e).__name__}: {e}")
    return {
        "meta": {
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
            "seconds": round(time.time() - started, 1),
            "load_avg_start": [round(x, 2) for x in load_start],
            "load_avg_end": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
            "python": platform.python_version(), "commit": git_commit(),
            "report": settings.report.name, "questions": [it.id for it in sample],
            "settings": {k: getattr(settings, k) for k in ("top_k", "chunk_chars", "chunk_overlap", "embedder",
                                                            "llm", "llm_ctx", "llm_threads", "llm_max_tokens",
                                                            "answer_context_tokens", "answer_retry_context_tokens")},
            "errors": errors,
        },
        "metrics": metrics,
        "ratios": {r.key: stats.ratio(metrics.get("ours", {}).get(r.key), metrics.get("baseline", {}).get(r.key))
                   for r in stats.ROWS},
        "goals": stats.goals(metrics),
        "answers": answers,
        "scaling": scaled,
    }


def scaling_table(scaled: dict) -> str:
    lines = ["mode      copies  pages  chunks  ingest s (measured)  open s  size MB  retrieval p50/p95 ms"]
    for mode in ("embedded", "http"):
        rows = scaled.get(mode)
        if isinstance(rows, dict):
            lines.append(f"{mode:8s}  skipped: {rows['error']}")
            continue
        for r in rows:
            lines.append(f"{mode:8s}  {r['copies']:6d}  {r['pages']:5d}  {r['chunks']:6d}  "
                         f"{r['ingest_s']:8.1f} ({r['measured_s']:6.1f})  {r['open_s']:6.1f}  {r['size_mb']:7.1f}  "
                         f"{r['retrieval_ms']['p50']:.1f}/{r['retrieval_ms']['p95']:.1f}")
    return "\n".join(lines)


def render(result: dict) -> str:
    meta = result["meta"]
    out = [f"reportqa bench: {len(meta['questions'])} answers per pipeline, {meta['cpus']} CPUs, load average "
           f"{meta['load_avg_start'][0]:.1f} -> {meta['load_avg_end'][0]:.1f}, {meta['seconds'] / 60:.1f} min",
           "", stats.table(result["metrics"]), "", "goals (ours):", stats.goals_table(result["goals"])]
    if result.get("scaling"):
        out += ["", "scaling (embedding cost extrapolated from the cold ingest):", scaling_table(result["scaling"])]
    return "\n".join(out)


def run_bench(settings: Settings, as_json: bool = False, out: Path = Path("bench/out"),
              questions: int = DEFAULT_QUESTIONS, scaling: bool = True) -> int:
    """Measure, write out/bench.json, bench-compare.png and bench-scaling.png, print a table or the JSON; 1 if a part
    failed."""
    out.mkdir(parents=True, exist_ok=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Chroma server request otherwise
    with tempfile.TemporaryDirectory(prefix="reportqa-bench-") as tmp:
        result = measure(settings, questions, scaling, Path(tmp))
    (out / "bench.json").write_text(json.dumps(result, ensure_ascii=False, indent=1))
    from reportqa.bench import plots

    if result["answers"]:
        plots.comparison(result, out / "bench-compare.png")
    if result["scaling"]:
        plots.scaling(result["scaling"], out / "bench-scaling.png")
    print(json.dumps(result, ensure_ascii=False) if as_json else render(result))
    log.info("bench: results in %s", out)
    return 1 if result["meta"]["errors"] else 0
