"""Feedback on the chat's answers: 👍/👎 and an optional comment, one JSON line each in `path(settings)`
(<home>/feedback/feedback.jsonl). It stays on this machine. `reportqa eval --from-feedback` (eval/feedback.py) turns the
👎 answers into draft QA items.

The file is append-only. A line is one rating of one answer:

    id                   the answer's feedback id: a later line with the same id supersedes the earlier ones
                         (the user changed the rating, took it back, or added a comment)
    ts                   UTC, ISO 8601
    rating               "up", "down", or null (the rating was taken back)
    comment              the user's words (control characters dropped, at most Settings.feedback_comment_chars) or null
    report               the report's name (as `reportqa reports` lists it)
    question             as asked
    standalone_question  after follow-up rewriting (what was answered)
    answer, lang         the checked answer as shown, and its language
    cited, retrieved     page numbers: cited in the answer; retrieved for it, best first
    refused, unverified  the engine refused; ... because its answer did not hold up on the pages
    commit, version      the git commit of the running code (the package version outside a checkout), the app version
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from reportqa.answer.types import Answer
from reportqa.app.render import drop_controls
from reportqa.settings import Settings
from reportqa.version import code_version, package_version

log = logging.getLogger(__name__)

RATINGS = ("up", "down", None)


def path(settings: Settings) -> Path:
    return settings.home / "feedback" / "feedback.jsonl"


def from_answer(answer: Answer, question: str, report: str) -> dict:
    """The fields of an entry that describe the answer, with a new feedback id; kept by the chat until it is rated."""
    return {"id": uuid.uuid4().hex, "report": report, "question": question,
            "standalone_question": answer.standalone_question, "answer": answer.answer, "lang": answer.lang,
            "cited": list(dict.fromkeys(c.page for c in answer.citations)),
            "retrieved": [p for p, _ in answer.retrieved], "refused": answer.refused, "unverified": answer.unverified}


def clean_comment(text: str | None, limit: int) -> str | None:
    text = drop_controls(text or "").strip()
    return (text[:limit].rstrip() + "…" if len(text) > limit else text) or None


def record(settings: Settings, entry: dict) -> Path:
    """Append `entry` (the fields of `from_answer`, `rating` and optionally `comment`) as one line, stamped with the
    time and the code's version. Whole lines only, one writer at a time: safe across sessions and processes."""
    if entry.get("rating") not in RATINGS:
        raise ValueError(f"rating must be one of {RATINGS}, got {entry.get('rating')!r}")
    line = {"id": entry["id"], "ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "rating": entry["rating"],
            "comment": clean_comment(entry.get("comment"), settings.feedback_comment_chars),
            **{k: v for k, v in entry.items() if k not in ("id", "rating", "comment")},
            "commit": code_version(), "version": package_version()}
    data = (json.dumps(line, ensure_ascii=False) + "\n").encode()
    file = path(settings)
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)  # questions can be private: owner only
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        end = os.lseek(fd, 0, os.SEEK_END)
        if end and os.pread(fd, 1, end - 1) != b"\n":  # a crash cut the last line short:
            data = b"\n" + data  # start on a line of our own so only that one stays broken
        os.write(fd, data)
    finally:
        os.close(fd)  # also releases the lock
    return file


def _valid(obj) -> bool:
    return (isinstance(obj, dict) and isinstance(obj.get("id"), str) and obj.get("rating") in RATINGS
            and isinstance(obj.get("question"), str))


def read(settings: Settings) -> list[dict]:
    """The current rating of every rated answer (the last line of each id; taken-back ratings left out), in the order
    they were first rated. Broken lines are skipped and counted in a warning."""
    try:
        lines = path(settings).read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    latest: dict[str, dict] = {}
    broken = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if not _valid(obj):
            broken += 1
            continue
        latest[obj["id"]] = obj  # a dict keeps the position of the first insertion
    if broken:
        log.warning("%s: skipped %d broken line%s", path(settings), broken, "" if broken == 1 else "s")
    return [e for e in latest.values() if e["rating"] is not None]
