"""Retrieval figures for docs/index.md: page hit@k and MRR by language, and latency p50/p95, for each fusion method.

    python -m reportqa.index.measure [--qa FILE.jsonl] [--k 5] [--fusion rrf weighted]

Without --qa it uses the dev set in devset.py; a JSONL file (such as eval/qa.jsonl) needs "question", "lang" and
"pages" (a list) per line; kind "cross-lingual" counts in the zh-chart group.
The index must exist (`reportqa ingest`); REPORTQA_* settings apply as usual.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from reportqa.index.devset import DEV_QUESTIONS, DevQuestion
from reportqa.index.retriever import Retriever, open_retriever
from reportqa.settings import load_settings


def load_questions(path: Path | None) -> list[DevQuestion]:
    if path is None:
        return DEV_QUESTIONS
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [DevQuestion(r["question"], r.get("lang", "en"), tuple(r["pages"]), r.get("kind") == "cross-lingual")
            for r in rows if r.get("pages")]  # unanswerable questions have no page to find


def evaluate(retriever: Retriever, questions: list[DevQuestion], k: int) -> dict:
    """hit@k and MRR@k per group ("all", each language, "zh-chart"), and retrieval latency percentiles in ms."""
    groups: dict[str, list[float]] = {}
    latencies, misses = [], []
    for q in questions:
        t0 = time.perf_counter()
        hits = retriever.retrieve(q.question, k=k)
        latencies.append(1000 * (time.perf_counter() - t0))
        ranks = [i for i, h in enumerate(hits, start=1) if h.page in q.pages]
        rr = 1.0 / ranks[0] if ranks else 0.0
        if not ranks:
            misses.append((q.question, q.pages, [h.page for h in hits]))
        for g in ("all", q.lang) + (("zh-chart",) if q.chart else ()):
            groups.setdefault(g, []).append(rr)
    latencies.sort()
    return {
        "groups": {g: {"n": len(rr), f"hit@{k}": round(sum(r > 0 for r in rr) / len(rr), 3),
                       "mrr": round(statistics.fmean(rr), 3)} for g, rr in groups.items()},
        "latency_ms": {"p50": round(latencies[len(latencies) // 2], 1),
                       "p95": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1)},
        "misses": misses,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reportqa.index.measure", description=__doc__.splitlines()[0])
    ap.add_argument("--qa", type=Path, default=None)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--fusion", nargs="+", default=["rrf", "weighted"])
    ap.add_argument("--show-misses", action="store_true")
    args = ap.parse_args(argv)
    questions = load_questions(args.qa)
    base = load_settings()
    for fusion in args.fusion:
        retriever = open_retriever(base.replace(fusion=fusion))
        retriever.retrieve("warm-up")  # the first call pays for jieba's dictionary and the model's page-in
        result = evaluate(retriever, questions, args.k)
        print(f"fusion={fusion} k={args.k} questions={len(questions)} latency_ms={result['latency_ms']}")
        for g, m in result["groups"].items():
            print(f"  {g:9s} n={m['n']:3d} hit@{args.k}={m[f'hit@{args.k}']:.3f} mrr={m['mrr']:.3f}")
        if args.show_misses:
            for question, want, got in result["misses"]:
                print(f"  miss: {question}  want {list(want)} got {got}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
