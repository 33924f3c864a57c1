"""Bad files given to `reportqa ingest`: each is refused with one short line naming the file, and the index that was
being served stays exactly as it was (same build, same fingerprint, same retrieval result).

The files are generated here: fpdf2 writes the PDFs, pypdf encrypts one, the rest are byte strings."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from reportqa.app.cli import main
from reportqa.index import build_index, open_retriever
from reportqa.ingest import IngestError, chunk_pages, load_pages

PROBE = "ChatGPT weekly active users"  # any question; only "same pages before and after" matters


def _pdf(pages: list[str]) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def _encrypted(data: bytes) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password="secret", owner_password="owner")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


SMALL_PDF = _pdf([f"Page {i}: synthetic text about compute costs." for i in range(1, 4)])
RANDOM = bytes((i * 7919 + 13) % 256 for i in range(8192))  # fixed "random" bytes: deterministic, not UTF-8

# file name -> (content, fragment of the expected message)
BAD_FILES = {
    "empty.txt": (b"", "the file is empty"),
    "empty.pdf": (b"", "the file is empty"),
    "random.bin": (RANDOM, "not UTF-8"),
    "random.pdf": (RANDOM, "not a PDF"),
    "pdf-header-only.pdf": (b"%PDF-1.7\n" + RANDOM + b"\n%%EOF\n", "damaged"),
    "truncated.pdf": (SMALL_PDF[: len(SMALL_PDF) // 2], "truncated"),
    "mangled.pdf": (SMALL_PDF[:200] + RANDOM[: len(SMALL_PDF) // 2] + SMALL_PDF[200 + len(SMALL_PDF) // 2:],
                    "damaged|no pages"),
    "encrypted.pdf": (_encrypted(SMALL_PDF), "encrypted"),
    "no-text.pdf": (_pdf([""]), "no extractable text"),
    "latin1.txt": ("Résumé du rapport\n1\nCafé\n2\n".encode("latin-1"), "not UTF-8"),
    "gbk.txt": ("人工智能报告\n1\n中文内容\n2\n".encode("gbk"), "not UTF-8"),
    "utf16.txt": ("Report\n1\ntext\n2\n".encode("utf-16"), "not UTF-8"),
    "prose.txt": (b"Plain prose without any page numbers.\nAnother line.\n", "no page numbers"),
    "archive.docx": (b"PK\x03\x04" + RANDOM, "not UTF-8"),
}


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad-sources")
    for name, (data, _) in BAD_FILES.items():
        (d / name).write_bytes(data)
    (d / "a-directory").mkdir()
    os.mkfifo(d / "fifo.txt")  # reading it would block forever
    return d


def index_state(settings) -> tuple:
    """What is being served: the build the index link points at, its fingerprint, and a retrieval result."""
    link = settings.index_dir
    r = open_retriever(settings)
    return os.readlink(link), r.manifest["fingerprint"], [(h.page, round(h.score, 6)) for h in r.retrieve(PROBE)]


CASES = [(name, fragment) for name, (_, fragment) in BAD_FILES.items()] + [
    ("a-directory", "is a directory"),
    ("fifo.txt", "not a regular file"),
    ("missing.pdf", "no such file"),
]


@pytest.mark.parametrize("name, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_source_is_refused_and_index_unchanged(built_index, bad_dir, name, fragment):
    before = index_state(built_index)
    with pytest.raises(IngestError, match=fragment) as e:
        build_index(built_index, bad_dir / name)
    assert name in str(e.value) and "\n" not in str(e.value)
    assert index_state(built_index) == before


@pytest.mark.parametrize("name", ["truncated.pdf", "mangled.pdf", "a-directory", "gbk.txt"])
def test_cli_ingest_bad_source_prints_one_line(built_index, bad_dir, name, monkeypatch, capsys):
    """One line, and only one: no traceback, no parser chatter about the damage."""
    monkeypatch.setenv("REPORTQA_HOME", str(built_index.home))
    assert main(["ingest", str(bad_dir / name)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("reportqa: ") and name in err[0] and "unexpected error" not in err[0]


@pytest.mark.parametrize("name, message", [("encrypted.pdf", "the PDF is encrypted"), ("mangled.pdf", "the PDF")])
def test_cli_ingest_bad_source_exit_code(built_index, bad_dir, name, message):
    """The real entry point, as a user runs it (logging configured as in production): exit status 2 and exactly one
    line on stderr, even for a PDF whose parser complains at length about the damage."""
    env = {**os.environ, "REPORTQA_HOME": str(built_index.home)}
    r = subprocess.run([sys.executable, "-m", "reportqa.app.cli", "ingest", str(bad_dir / name)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith(f"reportqa: {name}: {message}") and r.stderr.count("\n") == 1, r.stderr


def test_2000_page_pdf_loads_and_chunks_in_bounded_memory(tmp_path, settings):
    """A long PDF is not refused: every page becomes a record and chunks stay page-bound. Peak Python memory stays
    a small multiple of the file (tracemalloc; the bar is generous, it guards against whole-document copies)."""
    pages = [f"Page {i}. Revenue of segment {i % 37} grew {i % 90} percent in year {2000 + i % 25}." for i in
             range(1, 2001)]
    path = tmp_path / "long.pdf"
    path.write_bytes(_pdf(pages))
    tracemalloc.start()
    try:
        records = load_pages(path)
        chunks = chunk_pages(records, settings)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.page for r in records] == list(range(1, 2001))
    assert "Page 1234." in records[1233].en
    assert {c.page for c in chunks} == set(range(1, 2001))
    assert all(len(c.text) <= settings.chunk_chars for c in chunks)
    assert peak < 100 * path.stat().st_size

