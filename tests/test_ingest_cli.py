"""`reportqa pages` end to end, as a user runs it: the bundled report as JSONL, and every kind of bad input giving
exit code 2 and one short line on stderr, without a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_ingest_pdf import _bilingual_pdf, damaged_pdf, encrypted_pdf, truncated_pdf


def _pages(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reportqa.app.cli", "pages", *args],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_pages_jsonl_of_bundled_report():
    run = _pages("--jsonl")
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["page"] for r in records] == list(range(1, 340))
    r = records[80]
    assert r["page"] == 81 and r["en"].startswith("AI Usage ChatGPT =") and r["zh"]
    assert {"page", "en", "zh", "section", "kind", "label", "text"} <= set(r)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


BAD_INPUTS = {
    "missing file": (lambda tmp, pdf: tmp / "nope.txt", "no such file"),
    "directory": (lambda tmp, pdf: tmp, "is a directory"),
    "FIFO": (lambda tmp, pdf: _fifo(tmp / "pipe.txt"), "not a regular file"),  # reading it would block
    "empty file": (lambda tmp, pdf: _write(tmp, "empty.txt", b""), "empty"),
    "random bytes named .pdf": (lambda tmp, pdf: _write(tmp, "noise.pdf", bytes(range(256)) * 8), "not a PDF"),
    "encrypted PDF": (encrypted_pdf, "encrypted"),
    "truncated PDF": (truncated_pdf, "truncated"),
    "damaged PDF": (damaged_pdf, "damaged"),
    "text without page markers": (lambda tmp, pdf: _write(tmp, "notes.txt", b"Some notes\nno numbers\n"),
                                  "no page numbers"),
    "non-UTF-8 text": (lambda tmp, pdf: _write(tmp, "latin1.txt", "caf\xe9\n2\n3\n".encode("latin-1")), "UTF-8"),
}


@pytest.fixture(scope="module")
def pdf_bytes() -> bytes:
    return _bilingual_pdf()


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, pdf_bytes, case):
    make, expected = BAD_INPUTS[case]
    run = _pages(str(make(tmp_path, pdf_bytes)), "--jsonl")
    assert run.returncode == 2
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reportqa: ") and expected in lines[0], run.stderr
    assert "Traceback" not in run.stderr and len(lines[0]) < 160
