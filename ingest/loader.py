"""`load_pages`: read a source (text export or PDF) into cleaned, bilingual page records."""

from __future__ import annotations

from pathlib import Path

from reportqa.ingest.clean import clean_lines, has_cjk, normalize
from reportqa.ingest.pdf import PDF_MAGIC, read_pdf_pages
from reportqa.ingest.records import IngestError, PageRecord
from reportqa.ingest.structure import find_outline, page_kind
from reportqa.ingest.text_export import segment


def _records(raw: list[tuple[int, list[str], list[str], str | None]]) -> list[PageRecord]:
    """raw: (page, English-block lines, Chinese-block lines, label). Cleans, splits by script, adds section + kind."""
    cleaned = []
    for page, en_block, zh_block, label in raw:
        seen: set[str] = set()
        en_lines = clean_lines(en_block, seen)
        zh = clean_lines(zh_block, seen)
        # A CJK line inside the English block (e.g. a Chinese app name on a chart) still reads as Chinese.
        en = [x for x in en_lines if not has_cjk(x)]
        zh = [x for x in en_lines if has_cjk(x)] + zh
        cleaned.append((page, en, zh, label))
    # The outline is read before de-duplication: two section titles may share a line ("Unprecedented").
    outline = find_outline([(page, [n for x in en_block if (n := normalize(x))]) for page, en_block, _, _ in raw])
    return [
        PageRecord(page=page, en="\n".join(en), zh="\n".join(zh),
                   section=outline.section_of(page) if outline else "",
                   kind=page_kind(en, outline), label=label)
        for page, en, zh, label in cleaned
    ]


def _read_text(path: Path, data: bytes) -> list[PageRecord]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise IngestError(f"{path.name}: not UTF-8 text (byte {e.start}); save the export as UTF-8") from None
    if not text.strip():
        raise IngestError(f"{path.name}: the file is empty")
    try:
        segments = segment(text)
    except IngestError as e:
        raise IngestError(f"{path.name}: {e}") from None
    return _records([(s.page, s.lines[:s.zh_start], s.lines[s.zh_start:], None) for s in segments])


def _read_pdf(path: Path, data: bytes) -> list[PageRecord]:
    return _records([(p.page, p.en, p.zh, p.label) for p in read_pdf_pages(path, data)])


def load_pages(path: str | Path) -> list[PageRecord]:
    """Pages of a text export (bare page-number lines) or a PDF (one record per physical page)."""
    path = Path(path)
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    if path.is_dir():
        raise IngestError(f"{path}: is a directory, expected a .txt export or a .pdf")
    if not path.is_file():  # a FIFO or device would block or never end
        raise IngestError(f"{path}: not a regular file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IngestError(f"{path}: cannot read ({e.strerror})") from None
    if not data:
        raise IngestError(f"{path.name}: the file is empty")
    if data.startswith(PDF_MAGIC) or path.suffix.lower() == ".pdf":
        return _read_pdf(path, data)
    return _read_text(path, data)
