"""The bench's figures (matplotlib, Agg backend): ours vs the baseline, and the scaling runs."""

from __future__ import annotations

from pathlib import Path

from reportqa.bench.stats import SYSTEMS

COLORS = {"ours": "C0", "baseline": "C3"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def comparison(result: dict, path: Path) -> Path:
    """Per-question time to first token and full answer time of both pipelines (the sample, side by side), and
    their prompt sizes."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 1]})
    answers = result["answers"]
    ids = result["meta"]["questions"]
    width = 0.4
    for i, system in enumerate(s for s in SYSTEMS if s in answers):
        by_id = {a["id"]: a for a in answers[system]}
        x = [k + (i - 0.5) * width for k in range(len(ids))]
        ttft = [by_id[q]["ttft_s"] if q in by_id else 0 for q in ids]
        total = [by_id[q]["total_s"] or 0 if q in by_id else 0 for q in ids]
        axes[0].bar(x, total, width, color=COLORS[system], alpha=0.35, label=f"{system}: full answer")
        axes[0].bar(x, ttft, width, color=COLORS[system], label=f"{system}: first token")
        axes[1].bar([i], [sum(a["prompt_tokens"] for a in answers[system]) / max(len(answers[system]), 1)],
                    color=COLORS[system], label=system)
    axes[0].set_xticks(range(len(ids)), [f"{q}\n({a})" for q, a in zip(ids, _langs(answers, ids), strict=True)],
                       fontsize=7)
    axes[0].set(title="time per question (sample)", ylabel="s")
    axes[0].legend(fontsize=7)
    present = [s for s in SYSTEMS if s in answers]
    axes[1].set_xticks(range(len(present)), present)
    axes[1].set(title="prompt tokens per answer (mean)", ylabel="tokens")
    for ax in axes:
        ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def _langs(answers: dict, ids: list[str]) -> list[str]:
    lang = {a["id"]: a["lang"] for rows in answers.values() for a in rows}
    return [lang.get(q, "?") for q in ids]


def scaling(result: dict, path: Path) -> Path:
    """Three panels against the number of copies: ingest time, index size, retrieval latency p50/p95."""
    plt = _pyplot()
    modes = [(m, result[m]) for m in ("embedded", "http") if isinstance(result.get(m), list) and result[m]]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for mode, rows in modes:
        label, color = ("embedded Chroma", "C0") if mode == "embedded" else ("Chroma server (loopback)", "C1")
        x = [r["pages"] for r in rows]
        axes[0].plot(x, [r["ingest_s"] for r in rows], "o-", color=color, label=f"{label}: ingest")
        axes[0].plot(x, [r["measured_s"] for r in rows], "s--", color=color, label=f"{label}: ingest w/o embedding")
        axes[0].plot(x, [r["open_s"] for r in rows], "^:", color=color, label=f"{label}: open retriever")
        axes[1].plot(x, [r["size_mb"] for r in rows], "o-", color=color, label=label)
        axes[2].plot(x, [r["retrieval_ms"]["p50"] for r in rows], "o-", color=color, label=f"{label} p50")
        axes[2].plot(x, [r["retrieval_ms"]["p95"] for r in rows], "s--", color=color, label=f"{label} p95")
    ticks = [r["pages"] for r in modes[0][1]] if modes else []
    for ax, title, unit, log_y in zip(
            axes, ("ingest / open time (embedding extrapolated)", "index size on disk",
                   "retrieval latency (hybrid, top-5 pages)"), ("s", "MB", "ms"), (True, False, False), strict=True):
        ax.set(title=title, xlabel="pages in the corpus (report x 1, 4, 16)", ylabel=unit, xscale="log")
        if log_y:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)
