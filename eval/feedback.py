"""`reportqa eval --from-feedback`: the chat's 👎 answers (app/feedback.py reads and documents the file) as draft
items of a QA file (the format of eval/qa.jsonl, docs/qa-set.md), for a human to complete.

A draft carries the QA fields; those only a human can fill in are null and listed in `needs`, and `"draft": true`
makes the QA loader refuse the item until it is deleted. `feedback` keeps what the chat answered and what the users
said, for context. Only the 👎 of the report being evaluated count (the default one, or --report NAME). One draft per
question (compared after NFKC, case folding and collapsing whitespace): the context is the latest 👎 of it, with the
comments of all of them."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import unicodedata
from pathlib import Path

from reportqa.answer.text import detect_lang
from reportqa.errors import UserError
from reportqa.settings import Settings

log = logging.getLogger(__name__)

NEEDS = ("answer", "must_include", "pages", "kind")  # the QA fields a human fills in (docs/qa-set.md)
CONTEXT = ("standalone_question", "answer", "lang", "cited", "retrieved", "refused", "unverified", "commit", "ts")


def _key(question: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", question).casefold().split())


def _draft(votes: list[dict]) -> dict:
    last = max(reversed(votes), key=lambda e: str(e.get("ts") or ""))  # the latest; of a tie, the later line
    question = last["question"]
    context = {("system_answer" if k == "answer" else k): last.get(k) for k in CONTEXT}
    return {"id": "fb-" + hashlib.sha256(_key(question).encode()).hexdigest()[:10], "draft": True,
            "needs": list(NEEDS), "lang": detect_lang(question), "question": question, **dict.fromkeys(NEEDS),
            "feedback": {"report": last.get("report"), "down_votes": len(votes),
                         "comments": [c for c in dict.fromkeys(e.get("comment") for e in votes) if c], **context}}


def drafts(entries: list[dict], report: str) -> tuple[list[dict], dict]:
    """Draft QA items from the 👎 entries of `report` among `entries` (as app.feedback.read returns them), and the
    counts: down (all 👎), drafts, duplicates (👎 of a question already drafted), other_reports (👎 left out)."""
    down = [e for e in entries if e["rating"] == "down"]
    by_question: dict[str, list[dict]] = {}
    for e in down:
        if e.get("report") == report:
            by_question.setdefault(_key(e["question"]), []).append(e)
    items = [_draft(votes) for votes in by_question.values()]
    kept = sum(map(len, by_question.values()))
    return items, {"down": len(down), "drafts": len(items), "duplicates": kept - len(items),
                   "other_reports": len(down) - kept}


def _write(out: Path, text: str) -> None:
    """Whole or not at all: a reader never sees half a file."""
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; with --from-feedback it names the JSONL file to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def from_feedback(settings: Settings, out: Path | None = None) -> int:
    """Print the drafts as JSONL (or write them to `out`) and a one-line summary on stderr."""
    from reportqa.app import feedback
    from reportqa.index import library

    report = settings.report_name or library.default_name(settings)
    items, n = drafts(feedback.read(settings), report)
    text = "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items)
    if out is None:
        sys.stdout.write(text)
    else:
        _write(out, text)
    others = f", {n['other_reports']} about other reports left out" if n["other_reports"] else ""
    print(f"{n['down']} down-votes -> {n['drafts']} drafts for {report}, {n['duplicates']} duplicates skipped"
          f"{others}" + (f"; written to {out}" if out else ""), file=sys.stderr)
    if not feedback.path(settings).exists():
        log.info("no feedback yet: the chat writes it to %s", feedback.path(settings))
    return 0
