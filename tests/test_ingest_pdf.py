"""PDF ingestion on real PDFs generated here: fpdf2 writes bilingual pages with a CJK TrueType font from Debian
(fonts-wqy-microhei, installed by scripts/setup.sh --test), pypdf adds page labels or encryption."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from reportqa.ingest import IngestError, load_pages

CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
PAGES = [  # (English title, English label, Chinese title, Chinese label)
    ("AI User Growth = Unprecedented", "ChatGPT Weekly Active Users, MM",
     "人工智能用户增长 = 前所未有", "每周活跃用户"),
    ("CapEx Spend @ Big Six Tech Companies", "Source: Capital IQ (3/25)",
     "六大科技公司的资本支出", "来源:Capital IQ"),
    ("Inference Costs Per Token Falling", "Note: per-token costs shown.",
     "每个 Token 的推理成本下降", "注:显示每个 Token 的成本"),
]


def _bilingual_pdf(pages=PAGES) -> bytes:
    assert CJK_FONT.exists(), f"{CJK_FONT} missing: run scripts/setup.sh --test (installs fonts-wqy-microhei)"
    pdf = FPDF()
    pdf.add_font("wqy", fname=str(CJK_FONT), collection_font_number=0)
    pdf.set_font("wqy", size=12)
    for lines in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, "\n".join(lines))
    return bytes(pdf.output())


def _rewrite(data: bytes, edit) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    edit(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def pdf_bytes() -> bytes:
    return _bilingual_pdf()


def test_bilingual_pdf_pages_and_split(tmp_path, pdf_bytes):
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf_bytes)
    pages = load_pages(path)
    assert [p.page for p in pages] == [1, 2, 3]
    for p, (en1, en2, zh1, zh2) in zip(pages, PAGES, strict=True):
        assert p.en.splitlines() == [en1, en2]
        assert p.zh.splitlines() == [zh1, zh2]
        assert p.label is None  # no /PageLabels in this PDF: no invented labels
        assert p.kind in ("content", "divider")


def test_pdf_page_labels(tmp_path, pdf_bytes):
    def label(w):  # a roman-numbered front page, then arabic numbering from 1
        w.set_page_label(0, 0, "/r")
        w.set_page_label(1, 2, "/D", start=1)

    path = tmp_path / "labelled.pdf"
    path.write_bytes(_rewrite(pdf_bytes, label))
    pages = load_pages(path)
    assert [(p.page, p.label) for p in pages] == [(1, "i"), (2, "1"), (3, "2")]


def test_pdf_dispatch_is_by_content(tmp_path, pdf_bytes):
    path = tmp_path / "report.txt"  # a PDF with the wrong suffix is still read as a PDF
    path.write_bytes(pdf_bytes)
    assert len(load_pages(path)) == 3


def test_pdf_with_owner_password_only_opens(tmp_path, pdf_bytes):
    path = tmp_path / "owner.pdf"
    path.write_bytes(_rewrite(pdf_bytes, lambda w: w.encrypt(user_password="", owner_password="owner")))
    assert len(load_pages(path)) == 3


def encrypted_pdf(tmp_path: Path, pdf_bytes: bytes) -> Path:
    path = tmp_path / "locked.pdf"
    path.write_bytes(_rewrite(pdf_bytes, lambda w: w.encrypt("secret")))
    return path


def truncated_pdf(tmp_path: Path, pdf_bytes: bytes) -> Path:
    path = tmp_path / "truncated.pdf"
    path.write_bytes(pdf_bytes[: len(pdf_bytes) // 2])
    return path


def damaged_pdf(tmp_path: Path, pdf_bytes: bytes) -> Path:
    """Complete-looking (header and %%EOF) but with its cross-reference data overwritten."""
    path = tmp_path / "damaged.pdf"
    body = bytearray(pdf_bytes)
    start = pdf_bytes.rindex(b"startxref")
    body[start - 400:start] = b"\x00" * 400
    path.write_bytes(bytes(body))
    return path


@pytest.mark.parametrize(("make", "message"), [
    (encrypted_pdf, "encrypted"),
    (truncated_pdf, "truncated"),
    (damaged_pdf, "damaged"),
])
def test_bad_pdfs(tmp_path, pdf_bytes, make, message):
    with pytest.raises(IngestError, match=message):
        load_pages(make(tmp_path, pdf_bytes))


def test_random_bytes_named_pdf(tmp_path):
    path = tmp_path / "noise.pdf"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(IngestError, match="not a PDF"):
        load_pages(path)


def test_two_thousand_page_pdf(tmp_path, pdf_bytes):
    reader = PdfReader(io.BytesIO(pdf_bytes))
    writer = PdfWriter()
    for k in range(2000):
        writer.add_page(reader.pages[k % 3])
    path = tmp_path / "long.pdf"
    with path.open("wb") as f:
        writer.write(f)
    pages = load_pages(path)
    assert len(pages) == 2000 and pages[-1].page == 2000
    assert pages[1999].en.splitlines()[0] == PAGES[1999 % 3][0]
