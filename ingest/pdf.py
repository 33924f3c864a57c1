"""PDF pages via pypdf: one record per physical page, with the printed page label where the PDF defines one."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reportqa.ingest.clean import has_cjk
from reportqa.ingest.records import IngestError

PDF_MAGIC = b"%PDF-"
EOF_WINDOW = 1024  # a complete PDF ends with %%EOF within its last KiB (the same window pypdf checks)
PROGRESS_MIN_PAGES = 50

# pypdf narrates every repair of a damaged file as a warning, with binary dumps; the IngestError (or the pages read
# despite the damage) is what the user needs
logging.getLogger("pypdf").setLevel(logging.ERROR)


@dataclass(frozen=True)
class PdfPage:
    page: int  # 1-based physical page
    en: list[str]
    zh: list[str]
    label: str | None


def _open(path: Path, data: bytes):
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    encrypted = IngestError(f"{path.name}: the PDF is encrypted; remove the password and try again")
    if not data.startswith(PDF_MAGIC):
        raise IngestError(f"{path.name}: not a PDF file")
    if b"%%EOF" not in data[-EOF_WINDOW:]:
        raise IngestError(f"{path.name}: the PDF is truncated or damaged (no end-of-file marker)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):  # an empty user password opens many "protected" PDFs
            raise encrypted
        n = len(reader.pages)
    except (FileNotDecryptedError, NotImplementedError, DependencyError):  # the last two: unsupported ciphers
        raise encrypted from None
    except IngestError:
        raise
    except Exception as e:  # pypdf signals malformed input with many exception types
        raise IngestError(f"{path.name}: the PDF is damaged and cannot be read ({type(e).__name__})") from None
    if n == 0:
        raise IngestError(f"{path.name}: the PDF has no pages")
    return reader


def _lines(reader, path: Path) -> Iterator[list[str]]:
    from tqdm import tqdm

    pages = tqdm(reader.pages, desc="reading PDF", unit="page", file=sys.stderr,
                 disable=len(reader.pages) < PROGRESS_MIN_PAGES)
    for k, page in enumerate(pages, 1):
        try:
            yield page.extract_text().splitlines()
        except Exception as e:  # as above: a malformed content stream
            raise IngestError(f"{path.name}: page {k} of the PDF is damaged ({type(e).__name__})") from None


def read_pdf_pages(path: Path, data: bytes) -> list[PdfPage]:
    reader = _open(path, data)
    # pypdf invents "1", "2", ... when the PDF has no /PageLabels; only a real label tree says what is printed.
    labels = reader.page_labels if "/PageLabels" in reader.trailer["/Root"] else None
    out = []
    for k, lines in enumerate(_lines(reader, path), 1):
        zh = [x for x in lines if has_cjk(x)]
        en = [x for x in lines if x.strip() and not has_cjk(x)]
        out.append(PdfPage(k, en, zh, labels[k - 1] if labels else None))
    if not any(p.en or p.zh for p in out):
        raise IngestError(f"{path.name}: the PDF has no extractable text (a scanned image?)")
    return out
