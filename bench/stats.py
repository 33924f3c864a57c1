"""Bench bookkeeping that needs no model: per-question samples -> figures, goals, the ours-vs-baseline table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reportqa.eval.metrics import percentile

SYSTEMS = ("ours", "baseline")


@dataclass(frozen=True)
class Row:
    key: str  # flat metric name in the JSON
    label: str
    fmt: str  # format spec of the value
    lower_is_better: bool = True


ROWS = (
    Row("ingest_cold_s", "cold ingest (s)", ".1f"),
    Row("ingest_pages_per_s", "cold ingest (pages/s)", ".2f", False),
    Row("ingest_noop_s", "no-op re-ingest (s)", ".2f"),
    Row("index_mb", "index size (MB)", ".1f"),
    Row("load_s", "serving start-up (s)", ".1f"),
    Row("first_query_ms", "first retrieval after start-up (ms)", ".0f"),
    Row("retrieval_p50_ms", "retrieval p50 (ms)", ".1f"),
    Row("retrieval_p95_ms", "retrieval p95 (ms)", ".1f"),
    Row("ttft_p50_s", "time to first token p50 (s)", ".2f"),
    Row("ttft_p95_s", "time to first token p95 (s)", ".2f"),
    Row("answer_p50_s", "full answer p50 (s)", ".2f"),
    Row("answer_p95_s", "full answer p95 (s)", ".2f"),
    Row("prompt_tokens", "prompt tokens / answer (mean)", ".0f"),
    Row("decode_tok_s", "decode speed (tokens/s)", ".1f", False),
    Row("peak_rss_mb", "serving peak RSS (MB)", ".0f"),
    Row("answer_correct", "answers correct (sample)", ".2f", False),
)
ROW_BY_KEY = {r.key: r for r in ROWS}

# Absolute goals on our pipeline: metric -> upper bound.
GOALS = {
    "ingest_cold_s": 120.0,
    "ingest_noop_s": 3.0,
    "retrieval_p50_ms": 50.0,
    "ttft_p50_s": 5.0,
    "answer_p50_s": 15.0,
    "peak_rss_mb": 2.5 * 1024,
}


def dist(values: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/mean of a sample (None when empty)."""
    vals = [float(v) for v in values if v is not None]
    return {"n": len(vals), "p50": percentile(vals, 50), "p95": percentile(vals, 95),
            "mean": sum(vals) / len(vals) if vals else None}


def ratio(ours: float | None, baseline: float | None) -> float | None:
    if ours is None or baseline is None or baseline == 0:
        return None
    return ours / baseline


def serving_figures(probe: dict) -> dict[str, float | None]:
    """Flat figures of one serving probe (see probe.py for its output)."""
    answers = [a for a in probe["answers"] if not a.get("error")]
    retrieval, ttft, total = dist(probe["retrieval_ms"]), dist([a["ttft_s"] for a in answers]), \
        dist([a["total_s"] for a in answers])
    gen = sum(max(a["gen_tokens"] - a["llm_calls"], 0) for a in answers)  # first token of each call is not decode
    decode_s = sum(a["decode_s"] for a in answers)
    prompts = [a["prompt_tokens"] for a in answers if a["llm_calls"]]
    correct = [a["answer_correct"] for a in probe["answers"] if a.get("answer_correct") is not None]
    return {
        "load_s": probe["load_s"], "first_query_ms": probe["first_query_ms"],
        "retrieval_p50_ms": retrieval["p50"], "retrieval_p95_ms": retrieval["p95"],
        "ttft_p50_s": ttft["p50"], "ttft_p95_s": ttft["p95"],
        "answer_p50_s": total["p50"], "answer_p95_s": total["p95"],
        "prompt_tokens": sum(prompts) / len(prompts) if prompts else None,
        "decode_tok_s": gen / decode_s if decode_s > 0 else None,
        "peak_rss_mb": probe["peak_rss_mb"],
        "answer_correct": sum(correct) / len(correct) if correct else None,
    }


def goals(metrics: dict[str, dict]) -> list[dict]:
    """Each goal with its measured value and whether it is met (None when not measured)."""
    ours, base = metrics.get("ours", {}), metrics.get("baseline", {})
    out = []
    for key, bound in GOALS.items():
        value = ours.get(key)
        out.append({"goal": f"{ROW_BY_KEY[key].label} <= {bound:g}", "metric": key, "measured": value,
                    "met": None if value is None else value <= bound})
    faster = ratio(ours.get("ttft_p50_s"), base.get("ttft_p50_s"))
    out.append({"goal": "time to first token p50 below the baseline's", "metric": "ttft_p50_s", "measured": faster,
                "met": None if faster is None else faster < 1})
    acc, base_acc = ours.get("answer_correct"), base.get("answer_correct")
    out.append({"goal": "more answers correct than the baseline (sample)", "metric": "answer_correct",
                "measured": acc, "met": None if acc is None or base_acc is None else acc > base_acc})
    return out


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(metrics: dict[str, dict]) -> str:
    """Plain-text table: one row per metric, ours, baseline, ours/baseline."""
    header = ("metric", "ours", "baseline", "ours/baseline")
    rows = []
    for r in ROWS:
        ours, base = metrics.get("ours", {}).get(r.key), metrics.get("baseline", {}).get(r.key)
        if ours is None and base is None:
            continue
        q = ratio(ours, base)
        rows.append((r.label, _cell(ours, r.fmt), _cell(base, r.fmt), "-" if q is None else f"{q:.2f}x"))
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def goals_table(checked: list[dict]) -> str:
    mark = {True: "met", False: "MISSED", None: "not measured"}
    return "\n".join(f"{mark[g['met']]:>12}  {g['goal']}"
                     + ("" if g["measured"] is None else f"  (measured {g['measured']:.3g})") for g in checked)
