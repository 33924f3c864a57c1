"""Time to first token and total answer time of the answer engine, question by question, then the medians.

    python -m reportqa.answer.measure [--json] [--follow-ups] [questions ...]

With --follow-ups, each follow-up of FOLLOW_UPS is timed after its earlier question was answered (untimed), as in a
chat: a follow-up may cost a longer prompt (the earlier turn shown to the model).

Runs against the index and model of the current settings (REPORTQA_HOME, REPORTQA_LLM). The model is loaded and
the system prompt read before the clock starts, as in a running server. Prints figures; asserts nothing."""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from reportqa.answer.engine import AnswerEngine
from reportqa.answer.types import Token
from reportqa.settings import load_settings

QUESTIONS = [
    "What was global internet penetration according to the ITU?",
    "How many monthly active users did the DeepSeek mobile app reach in four months?",
    "How much did NVIDIA's quarterly revenue grow year over year?",
    "What does the report say about the cost of AI inference per token?",
    "How many weekly active users did ChatGPT reach?",
    "CoreWeave 2024年的营收是多少？",
    "DeepSeek移动应用在四个月内的月活跃用户达到多少？",
    "全球有多少人还没有上网？",
    "特斯拉的完全自动驾驶里程增长了多少？",
    "美国六大科技公司的资本支出占收入的比例是多少？",
]

# (earlier question, follow-up): written out by rule, appended in Chinese, answered after the earlier turn
FOLLOW_UPS = [
    ("How many days did ChatGPT take to reach 1 million users?", "And the iPhone?"),
    ("How many weekly active users did ChatGPT have in April 2025?", "Over how many months?"),
    ("What share of the world's electricity did data centres consume in 2024?", "How fast has it grown?"),
    ("NVIDIA生态系统中有多少开发者？", "AI初创公司呢？"),
    ("CoreWeave 2024年的营收是多少？", "同比增长多少？"),
    ("美国六大科技公司2024年的资本支出是多少？", "那2023年呢？"),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reportqa.answer.measure", description=__doc__.split("\n")[0])
    ap.add_argument("questions", nargs="*", default=QUESTIONS)
    ap.add_argument("--follow-ups", action="store_true", help="time the follow-ups of FOLLOW_UPS instead")
    ap.add_argument("--json", action="store_true", help="one JSON object per question, then the summary")
    args = ap.parse_args(argv)
    engine = AnswerEngine(load_settings())
    engine.warm_up()
    rows = []
    asked = [(q, []) for q in args.questions] if not args.follow_ups else [
        (f, [(e, engine.ask(e).answer)]) for e, f in FOLLOW_UPS]
    for q, history in asked:
        events = list(engine.stream(q, history))
        a = events[-1].answer
        streamed = "".join(e.text for e in events if isinstance(e, Token))
        rows.append({"question": q, "standalone": a.standalone_question, "lang": a.lang,
                     "first_token_s": round(a.first_token_s, 2),
                     "total_s": round(a.total_s, 2), "chunks": sum(isinstance(e, Token) for e in events),
                     "refused": a.refused, "error": a.error, "pages": [c.page for c in a.citations],
                     "streamed": streamed, "answer": a.answer})
        print(json.dumps(rows[-1], ensure_ascii=False) if args.json else
              f"{a.first_token_s:6.1f}s {a.total_s:6.1f}s {rows[-1]['chunks']:4d} chunks  {q[:60]}\n"
              f"        streamed: {streamed[:150]!r}\n        -> {a.answer[:150]}", flush=True)
    summary = {"n": len(rows), "first_token_p50_s": round(statistics.median(r["first_token_s"] for r in rows), 2),
               "total_p50_s": round(statistics.median(r["total_s"] for r in rows), 2),
               "first_token_max_s": max(r["first_token_s"] for r in rows),
               "total_max_s": max(r["total_s"] for r in rows)}
    print(json.dumps(summary) if args.json else "  ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
