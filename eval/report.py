"""report.md and its plots from the metrics and graded records of one eval run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402

RETRIEVAL = ("hit@1", "hit@5", "mrr")
ANSWER = ("answer_correct", "context_recall", "citation_precision", "number_faithfulness", "refusal_accuracy",
          "false_refusal_rate", "language_match")
BY_FILE = ("hit@5", "answer_correct", "context_recall", "citation_precision", "refusal_accuracy", "false_refusal_rate")
LATENCY = ("first_token_p50", "first_token_p95", "latency_p50", "latency_p95")
# the table rows of a full run; the plots leave out what has no natural 0..1 "higher is better" reading
ROWS = (*RETRIEVAL, "hit@10", *ANSWER, "cited_rate", *LATENCY)
PLOTTED = (*RETRIEVAL, *[m for m in ANSWER if m != "false_refusal_rate"])
COLORS = {("ours", "en"): "#1f5fa8", ("ours", "zh"): "#6fa8e8", ("baseline", "en"): "#b35c1e",
          ("baseline", "zh"): "#f0a868"}


def _fmt(name: str, value) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} s" if name.endswith(("_p50", "_p95")) else f"{value:.3f}"


def _cell(text, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return (text[:limit] + "…" if len(text) > limit else text).replace("|", "\\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _rows(retrieval_only: bool) -> tuple[str, ...]:
    return (*RETRIEVAL, "hit@10") if retrieval_only else ROWS


def _plot_metrics(systems: dict, metric_names: Sequence[str], path: Path) -> None:
    series = [(s, lang) for s in systems for lang in sorted(systems[s]["by_lang"])]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(metric_names) * max(2, len(series)) / 2 + 2), 4.5))
    width = 0.8 / max(1, len(series))
    for i, (system, lang) in enumerate(series):
        group = systems[system]["by_lang"][lang]
        values = [group.get(m) or 0.0 for m in metric_names]
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(metric_names))]
        ax.bar(xs, values, width, label=f"{system} / {lang}", color=COLORS.get((system, lang)))
    ax.set_xticks(range(len(metric_names)), metric_names, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title("Metrics per language")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: bars reach the top
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_hit_curve(systems: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for system, m in systems.items():
        for lang, group in sorted(m["by_lang"].items()):
            curve = group["hit_curve"]
            if curve and curve[0] is not None:
                ax.plot(range(1, len(curve) + 1), curve, marker="o", ms=3, label=f"{system} / {lang}",
                        color=COLORS.get((system, lang)), linestyle="-" if system == "ours" else "--")
    ax.set_xlabel("k (pages)")
    ax.set_ylabel("hit@k")
    ax.set_ylim(0, 1.02)
    ax.set_title("Page hit@k")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_latency(records: dict[str, list[dict]], path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, field, title in zip(axes, ("first_token_s", "latency_s"), ("First token", "Total"), strict=True):
        values = {system: [r[field] for r in recs if r.get(field) is not None and not r.get("error")]
                  for system, recs in records.items()}
        top = max((v for vs in values.values() for v in vs), default=1.0)
        bins = [top * i / 20 for i in range(21)]  # shared, so the systems' bars line up
        for system, vs in values.items():
            if vs:
                ax.hist(vs, bins=bins, alpha=0.6, label=system, color=COLORS.get((system, "en")))
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set_title(f"{title} latency")
        ax.set_xlabel("seconds")
        ax.set_ylabel("questions")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _both(systems: dict, section: str, group: str, name: str) -> str:
    """One cell: the metric of every system, "ours / baseline"."""
    return " / ".join(_fmt(name, m[section].get(group, {}).get(name)) for m in systems.values())


def _groups_as_rows(systems: dict, section: str, names: Sequence[str]) -> list[str]:
    groups = sorted({g for m in systems.values() for g in m[section]})
    rows = []
    for g in groups:
        n = next(m[section][g]["n"] for m in systems.values() if g in m[section])
        rows.append([f"{g} (n={n})", *[_both(systems, section, g, name) for name in names]])
    return _table([section.removeprefix("by_").replace("_", " x "), *names], rows)


def _groups_as_columns(systems: dict, section: str, names: Sequence[str]) -> list[str]:
    groups = sorted({g for m in systems.values() for g in m[section]})
    header = ["metric", *[f"{g} (n={next(m[section][g]['n'] for m in systems.values() if g in m[section])})"
                          for g in groups]]
    return _table(header, [[name, *[_both(systems, section, g, name) for g in groups]] for name in names])


def _failures(recs: list[dict], retrieval_only: bool) -> list[str]:
    lines: list[str] = []
    misses = [r for r in recs if r["gold"] and not (r["grades"].get("rank") or 99) <= 5]
    lines += ["", f"### Retrieval misses (gold page not in the top 5): {len(misses)}", ""]
    if misses:
        lines += _table(["id", "lang/kind", "question", "gold", "retrieved (top 5)", "rank"], [
            [r["id"], f"{r['lang']}/{r['kind']}", _cell(r["question"], 90), ", ".join(map(str, r["gold"])),
             ", ".join(map(str, r["retrieved"][:5])), str(r["grades"].get("rank") or "–")] for r in misses])
    if retrieval_only:
        return lines
    checks = ("answer_correct", "refusal_correct", "number_faithful", "language_match")
    wrong = [r for r in recs if any(r["grades"].get(c) is False for c in checks)]
    lines += ["", f"### Answers with a failed check: {len(wrong)}", ""]
    if wrong:
        rows = []
        for r in wrong:
            g = r["grades"]
            why = []
            if r.get("error"):
                why.append(f"error: {r['error']}")
            if g.get("answer_correct") is False:
                why.append("refused" if r["refused"] else f"groups matched {g.get('groups_matched')}")
            if g.get("refusal_correct") is False:
                why.append("answered an unanswerable question")
            if g.get("number_faithful") is False:
                why.append(f"numbers not on cited pages: {', '.join(g['unsupported_numbers'])}")
            if g.get("language_match") is False:
                why.append(f"answered in {g.get('detected_lang')}")
            rows.append([r["id"], f"{r['lang']}/{r['kind']}", _cell(r["question"], 80), _cell(r["answer"] or "", 160),
                         ", ".join(map(str, r["citations"])) or "–", _cell("; ".join(why), 120)])
        lines += _table(["id", "lang/kind", "question", "answer", "cited", "why"], rows)
    return lines


def _pct(n: int, of: int) -> str:
    return f"{n} of {of}" + (f" ({n / of:.0%})" if of else "")


def _conversations(conv: dict) -> list[str]:
    """Follow-ups against their standalone twins, and what the rewrite made of them."""
    header = ["n pairs", *[f"{side} {m}" for m in ("answer_correct", "refusal_accuracy", "hit@5")
                           for side in ("follow-up", "twin")]]

    def row(label: str, c: dict) -> list[str]:
        return [label, str(c["n"]), *[_fmt(m, c[f"{side}_{m}"]) for m in ("answer_correct", "refusal_accuracy",
                                                                            "hit@5") for side in ("followup", "twin")]]

    lines = ["", "## Conversations"]
    if conv["by_pair"]:
        lines += ["", "Each conversation item (earlier turns asked first, the engine's answers as history) against "
                  "its standalone twin, by language pair (history → follow-up) and kind of follow-up; pairs whose "
                  "twin is in the run.", ""]
        lines += _table(["group", *header], [row("all", conv["overall"]),
                                             *[row(g, c) for g, c in conv["by_pair"].items()],
                                             *[row(g, c) for g, c in conv["by_followup"].items()]])
    statements = conv["statements"]
    lines += ["", f"Follow-up turns rewritten: {_pct(conv['rewritten'], conv['followup_turns'])}; rewrites that state "
                  f"instead of asking: {len(statements)}. Standalone questions (no history, or a new topic) "
                  f"rewritten: {_pct(len(conv['standalone_rewritten']), conv['standalone_items'])}."]
    probe = conv.get("after_another")
    if probe and probe["n"]:
        lines += ["", f"Standalone questions of the set, each asked after the one before it, that the engine would "
                      f"take for follow-ups (no model): {_pct(len(probe['flagged']), probe['n'])}."]
        if probe["flagged"]:
            lines += ["", *_table(["id", "asked", "after"], [[r["id"], _cell(r["asked"], 100), _cell(r["after"], 100)]
                                                          for r in probe["flagged"]])]
    turns = conv.get("turn_probes")
    if turns:
        lines += ["", f"Turn probes ({turns['file']}: pairs of turns labelled by whether the second needs the first; "
                      f"no model): standalone questions taken for follow-ups "
                      f"{_pct(len(turns['taken']), turns['standalone'])}, follow-ups missed "
                      f"{_pct(len(turns['missed']), turns['followups'])}. Taken: {', '.join(turns['taken']) or '–'}; "
                      f"missed: {', '.join(turns['missed']) or '–'}."]
    for title, rows in (("Rewrites that are statements", statements),
                        ("Standalone questions that were rewritten", conv["standalone_rewritten"])):
        if rows:
            lines += ["", f"### {title}", ""]
            lines += _table(["id", "asked", "rewritten to"],
                            [[r["id"], _cell(r["asked"], 100), _cell(r["standalone"], 140)] for r in rows])
    return lines


def _rules(rules: dict) -> list[str]:
    ablated = any("help" in r for r in rules.values())
    lines = ["", "## Rules", "",
             "fired: items on whose answers the rule acted or was recorded. Sentences left out (rules that drop "
             "sentences), by the item's gold: claims: items where one answered an unanswerable question or stated a "
             "figure no gold page prints (an unsupported claim removed); facts: items where one held a required fact "
             "the answer then lacked. "
             + ("help: items right with the rule (right answer, or an unanswerable question refused) and wrong with "
                "it advisory; harm: the reverse; model calls: prompts of the ablation not in the store."
                if ablated else "Help and harm come from `--replay DIR --ablate`."), ""]
    rows = []
    for rule, r in rules.items():
        verdicts = ", ".join(f"{v} {n}" for v, n in sorted(r["verdicts"].items()))
        removed = [str(len(r.get("claims_removed", []))), str(len(r.get("facts_removed", [])))]
        measured = [str(len(r["help"])), str(len(r["harm"])), str(r["model_calls"]),
                    _cell(" ".join([*(f"+{i}" for i in r["help"]), *(f"−{i}" for i in r["harm"])]), 200)] \
            if "help" in r else ["–"] * 4
        rows.append([rule, str(r["fired"]), verdicts, *removed, *measured])
    return lines + _table(["rule", "fired", "verdicts", "claims", "facts", "help", "harm", "model calls",
                           "items (+help −harm)"], rows)


def _replay(rp: dict) -> list[str]:
    lines = ["", "## Replay", "",
             f"Prompts answered from `{rp['from']}`'s store: {rp['prompts_replayed']}; sent to the model: "
             f"{rp['prompts_generated']}. Items graded differently from the stored run (both graded by today's "
             f"grader): {len(rp['changed'])} of {rp['compared']} compared. Latencies of a replay are not the "
             f"model's.", ""]
    if rp["changed"]:
        lines += _table(["id", "right before", "right now", "answer before", "answer now"], [
            [c["id"], str(c["was_right"]), str(c["is_right"]), _cell(c["was"] or "", 120), _cell(c["is"] or "", 120)]
            for c in rp["changed"]])
    return lines


def write_report(metrics: dict, records: dict[str, list[dict]], out: Path) -> Path:
    """out/report.md plus its PNG plots, side by side for every system in the run."""
    systems = metrics["systems"]
    meta = metrics["meta"]
    retrieval_only = meta["retrieval_only"]
    rows = _rows(retrieval_only)
    lines = ["# Eval report", "",
             f"{'Split ' + meta['split'] + ': ' if meta.get('split') else ''}QA file(s) `{meta['qa']}`, "
             f"{meta['n']} questions"
             f"{' (stratified subset)' if meta['stratified'] and meta['limit'] else ''}"
             f"{', retrieval only' if retrieval_only else ''}; systems: {', '.join(systems)}; finished "
             f"{meta['finished']}. Metric definitions: docs/eval.md.", ""]
    lines += ["## Bars (`--fail-under`)", ""]
    lines += _table(["bar", "value", "minimum", "result"], [
        [b["name"], _fmt(b["name"], b["value"]), f"{b['min']:.2f}",
         "skipped (no such questions)" if b["passed"] is None else "pass" if b["passed"] else "**FAIL**"]
        for b in metrics["bars"]])
    lines += ["", "## Overall", "", "`items`: how many questions the metric averages over (per system).", ""]
    lines += _table(["metric", *systems, "items"], [
        [name, *[_fmt(name, m["overall"].get(name)) for m in systems.values()], " / ".join(
            str(m["overall"]["support"].get(name, "–")) for m in systems.values())] for name in rows])
    cells = [f"Cells: {' / '.join(systems)}.", ""] if len(systems) > 1 else []
    lines += ["", "## By language", "", *cells]
    lines += _groups_as_columns(systems, "by_lang", rows)
    lines += ["", "## By kind", "", *cells]
    lines += _groups_as_rows(systems, "by_kind", (*RETRIEVAL, *(() if retrieval_only else ANSWER[:4])))
    lines += ["", "## By language x kind", "", *cells]
    lines += _groups_as_rows(systems, "by_lang_kind", ("hit@5", "mrr", *(() if retrieval_only else ANSWER[:1])))
    if any(m.get("by_tag") for m in systems.values()):
        lines += ["", "## By tag", "", "multi-fact: items marked `multi`; follow-up: the graded turns of "
                  "conversation items.", "", *cells]
        lines += _groups_as_rows(systems, "by_tag", (*RETRIEVAL, *(() if retrieval_only else (*ANSWER[:4],
                                                                                               "first_token_p50"))))
    if any(m.get("by_file") for m in systems.values()):
        lines += ["", "## By file", "", "The split's QA files one by one (a fresh file is the fairer measure of "
                  "a set that was tuned on).", "", *cells]
        lines += _groups_as_rows(systems, "by_file", BY_FILE)
    conv = metrics.get("conversations")
    if conv and (conv["followup_turns"] or conv["standalone_items"]):
        lines += _conversations(conv)
    if metrics.get("rules"):
        lines += _rules(metrics["rules"])
    if "replay" in metrics:
        lines += _replay(metrics["replay"])

    plots = [("metrics_by_lang.png", "Metrics per language")]
    _plot_metrics(systems, RETRIEVAL if retrieval_only else PLOTTED, out / plots[0][0])
    plots.append(("hit_at_k.png", "Page hit@k"))
    _plot_hit_curve(systems, out / plots[-1][0])
    if not retrieval_only:
        plots.append(("latency.png", "Latency"))
        _plot_latency(records, out / plots[-1][0])
    lines += ["", "## Plots", ""] + [f"![{title}]({name})" for name, title in plots]

    for system, recs in records.items():
        lines += ["", f"## Failures: {system}"] + _failures(recs, retrieval_only)
        errors = [r for r in recs if r.get("error")]
        if errors:
            lines += ["", f"### Errors: {len(errors)}", ""]
            lines += _table(["id", "error"], [[r["id"], _cell(r["error"], 200)] for r in errors])
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
