"""Profile one stage with pyinstrument (statistical, low overhead), on the settings' home and report:

    python -m reportqa.bench.profile ingest  [--out bench/out]   cold ingest into a temporary home
    python -m reportqa.bench.profile retrieve                     every QA-set question against the current index
    python -m reportqa.bench.profile answer [--questions 4]       the bench's sample questions, answered

Writes profile-<stage>.html (interactive call tree) and profile-<stage>.txt into --out and prints the text tree.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from reportqa.bench.probe import WARM_UP
from reportqa.settings import Settings, load_settings


def _ingest(settings: Settings, questions: int) -> Callable[[], object]:
    from reportqa.index import build_index

    def run():
        with tempfile.TemporaryDirectory(prefix="reportqa-profile-") as tmp:
            return build_index(settings.replace(home=Path(tmp)), settings.report)
    return run


def _retrieve(settings: Settings, questions: int) -> Callable[[], object]:
    from reportqa.eval.runner import DEFAULT_QA, load_qa
    from reportqa.index import open_retriever

    retriever = open_retriever(settings)
    retriever.retrieve(WARM_UP)
    items = load_qa(DEFAULT_QA)
    return lambda: [retriever.retrieve(it.question) for it in items]


def _answer(settings: Settings, questions: int) -> Callable[[], object]:
    from reportqa.answer import AnswerEngine
    from reportqa.bench.run import sample_questions
    from reportqa.eval.runner import DEFAULT_QA, load_qa

    engine = AnswerEngine(settings)
    engine.warm_up()  # model loading and the fixed system prompt stay outside the profile, as in serving
    sample = sample_questions(load_qa(DEFAULT_QA), questions)
    return lambda: [engine.ask(it.question) for it in sample]


STAGES = {"ingest": _ingest, "retrieve": _retrieve, "answer": _answer}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reportqa.bench.profile", description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=sorted(STAGES))
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    ap.add_argument("--questions", type=int, default=4, help="answers to profile (stage answer)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    from pyinstrument import Profiler

    run = STAGES[args.stage](load_settings(), args.questions)
    profiler = Profiler(interval=0.005)
    with profiler:
        run()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"profile-{args.stage}.html").write_text(profiler.output_html())
    text = profiler.output_text(unicode=True, show_all=False)
    (args.out / f"profile-{args.stage}.txt").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
