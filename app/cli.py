"""`reportqa` command line: one subcommand per stage, each a thin call into that stage's public function."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from reportqa.errors import UserError
from reportqa.settings import load_settings


def _pages(args, settings) -> int:
    from reportqa.ingest import load_pages

    pages = load_pages(Path(args.source) if args.source else settings.report)
    for p in pages:
        if args.jsonl:
            print(json.dumps(p.to_json(), ensure_ascii=False))
        else:
            first = (p.en or p.zh).splitlines()[0][:70] if (p.en or p.zh) else ""
            print(f"{p.page:4d}  {p.kind:8s} {p.section[:28]:28s} {first}")
    return 0


def _ingest(args, settings) -> int:
    from reportqa.index import build_index, library

    if args.name is not None:  # a report of the library; without --name, the default report's index as always
        if not args.source:
            raise UserError("--name needs the FILE to add: reportqa ingest FILE --name [NAME]")
        stats = library.add_report(settings, Path(args.source), args.name or None, rebuild=args.rebuild)
    else:
        stats = build_index(settings, Path(args.source) if args.source else settings.report, rebuild=args.rebuild)
    print(json.dumps(stats, ensure_ascii=False) if args.json else "\n".join(f"{k}: {v}" for k, v in stats.items()))
    return 0


def _reports(args, settings) -> int:
    from reportqa.index import library

    rows = library.list_reports(settings)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    for r in rows:
        size = f"{r['size_mb']} MB" if r["size_mb"] is not None else "-"
        print(f"{r['name'] + (' (default)' if r['default'] else '')}\t{r['title']}\t{r['pages']} pages\t"
              f"{'+'.join(r['languages']) or '-'}\t{size}\t{r['built_at'] or 'not built yet'}")
    return 0


def _remove(args, settings) -> int:
    from reportqa.index import library

    library.remove_report(settings, args.name)
    print(json.dumps({"removed": args.name}) if args.json else f"removed {args.name}")
    return 0


def _ask(args, settings) -> int:
    from reportqa.answer import AnswerEngine
    from reportqa.app import render

    # the chat's rules (empty, too long, control characters), checked before the engine loads
    question = render.check_question(args.question, settings.max_question_chars,
                                     render.ui_lang(args.question, args.lang))
    engine = AnswerEngine(settings)
    # Load the model now (the local one is first checked to run on this CPU): a runtime that cannot run here is an
    # error with its own message, not a reply that apologises. Its system prompt would be read for any answer anyway.
    engine.warm_up()
    lang = None if args.lang == "auto" else args.lang
    if args.json:
        print(json.dumps(engine.ask(question, lang=lang).to_json(), ensure_ascii=False))
        return 0
    from reportqa.answer.types import Evidence, Final, Token

    for ev in engine.stream(question, lang=lang):
        if isinstance(ev, Evidence):
            print(f"[pages: {', '.join(map(str, ev.pages))}]", file=sys.stderr)
        elif isinstance(ev, Token):
            print(ev.text, end="", flush=True, file=sys.stderr)
        elif isinstance(ev, Final):
            print(file=sys.stderr)
            print(ev.answer.answer)  # the checked answer (citations repaired) is the one on stdout
    return 0


def _eval(args, settings) -> int:
    if args.from_feedback:
        from reportqa.eval.feedback import from_feedback

        extra = [f"--{k.replace('_', '-')}" for k, v in vars(args).items()
                 if k not in ("cmd", "fn", "verbose", "report", "out", "from_feedback") and v not in (None, False)]
        if extra:
            raise UserError(f"--from-feedback takes only --out FILE and --report, not {', '.join(extra)}")
        return from_feedback(settings, Path(args.out) if args.out else None)
    from reportqa.eval.runner import run_eval

    if settings.report_name and not args.qa:
        raise UserError(f"eval --report {settings.report_name} needs --qa FILE: the bundled QA sets are about the "
                        "default report only")

    return run_eval(settings, qa=args.qa, out=Path(args.out or "eval/out"), retrieval_only=args.retrieval_only,
                    limit=args.limit, baseline=args.baseline, stratified=args.stratified, fail_under=args.fail_under,
                    fresh=args.fresh, split=args.split, replay=args.replay, ablate=args.ablate)


def _check_runtime(args, settings) -> int:
    from reportqa.answer.llm import ensure_model
    from reportqa.runtime import cpu_key, ensure_runs

    info = ensure_runs(ensure_model(settings), settings.model_dir)
    print(f"llama.cpp generates on this CPU ({cpu_key()})" + (f": {info.strip()}" if info else ", as checked before"),
          file=sys.stderr)
    return 0


def _serve(args, settings) -> int:
    from reportqa.app.ui import serve

    serve(settings.replace(host=args.host, port=args.port))
    return 0


def _bench(args, settings) -> int:
    from reportqa.bench.run import run_bench

    return run_bench(settings, as_json=args.json, out=Path(args.out), questions=args.questions,
                     scaling=not args.skip_scaling)


def _report_flag(p: argparse.ArgumentParser, note: str = "") -> None:
    p.add_argument("--report", default=None, metavar="NAME",
                   help=f"the report to use, as `reportqa reports` lists it (default: the bundled one){note}")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="reportqa", description="Page-cited bilingual Q&A over a report.")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("pages", help="print the cleaned page records of a source (.txt export or .pdf)")
    p.add_argument("source", nargs="?")
    p.add_argument("--jsonl", action="store_true", help="one JSON object per page")
    p.set_defaults(fn=_pages)

    p = sub.add_parser("ingest", help="build the vector + keyword index of a source, or add a report (--name)")
    p.add_argument("source", nargs="?")
    p.add_argument("--name", nargs="?", const="", default=None, metavar="NAME",
                   help="add SOURCE to the library of reports as NAME (--name alone: a slug of the file name)")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if the source and embedder are unchanged")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_ingest)

    p = sub.add_parser("reports", help="list the reports: the bundled default and those added with ingest --name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_reports)

    p = sub.add_parser("remove", help="remove a report added with ingest --name (its index and its copy of the file)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_remove)

    p = sub.add_parser("ask", help="answer one question with page citations")
    p.add_argument("question")
    _report_flag(p)
    p.add_argument("--lang", choices=["auto", "en", "zh"], default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_ask)

    p = sub.add_parser("eval", help="run the QA eval suite")
    p.add_argument("--split", choices=["dev", "test"], default=None,
                   help="the bundled QA files of a split (default dev; tune on dev, report test)")
    p.add_argument("--qa", default=None, help="a QA file (JSONL) instead of a split")
    _report_flag(p, " (another report than the default needs its own --qa FILE)")
    p.add_argument("--out", default=None,
                   help="output folder (default eval/out); with --from-feedback the JSONL file (default stdout)")
    p.add_argument("--retrieval-only", action="store_true")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--stratified", action="store_true", help="with --limit: spread the subset over lang x kind")
    p.add_argument("--baseline", action="store_true", help="also run the naive llama-index pipeline")
    p.add_argument("--fresh", action="store_true",
                   help="grade everything again (by default an unfinished run resumes and baseline answers are reused)")
    p.add_argument("--fail-under", action="store_true",
                   help="exit 1 when page hit@5, MRR or zh cross-lingual hit@5 is under its bar (Settings.eval_min_*)")
    p.add_argument("--replay", default=None, metavar="DIR",
                   help="answer each prompt from DIR's stored model outputs; only changed prompts go to the model")
    p.add_argument("--ablate", action="store_true",
                   help="with --replay: replay each rule's items with that rule advisory, and report its help and harm")
    p.add_argument("--from-feedback", action="store_true",
                   help="print the chat's 👎 answers as draft QA items to complete (JSONL; see docs/eval.md)")
    p.set_defaults(fn=_eval)

    p = sub.add_parser("check-runtime", help="check in a subprocess that the local LLM runtime generates on this CPU")
    p.set_defaults(fn=_check_runtime)

    p = sub.add_parser("serve", help="start the web chat and its OpenAI-compatible endpoint (/v1)")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=None)
    _report_flag(p)
    p.set_defaults(fn=_serve)

    p = sub.add_parser("bench", help="speed and memory figures, ours vs the naive pipeline")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default="bench/out")
    p.add_argument("--questions", type=int, default=8, help="answers per pipeline (mixed en/zh, deterministic)")
    p.add_argument("--skip-scaling", action="store_true", help="leave out the 1x/4x/16x scaling part")
    p.set_defaults(fn=_bench)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        if getattr(args, "report", None) is not None or settings.report_name:
            from reportqa.index.library import select

            settings = select(settings, args.report if getattr(args, "report", None) is not None
                              else settings.report_name)
        if getattr(args, "host", None) is None and args.cmd == "serve":
            args.host = settings.host
        if getattr(args, "port", None) is None and args.cmd == "serve":
            args.port = settings.port
        return args.fn(args, settings)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # user-facing errors carry a short message; anything else still gets one line
        from reportqa.errors import is_user_error

        if args.verbose or not is_user_error(e):
            logging.getLogger("reportqa").debug("failure", exc_info=True)
        print(f"reportqa: {e}" if is_user_error(e) else f"reportqa: unexpected error: {type(e).__name__}: {e}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
