"""The text-export segmenter on synthetic exports that follow the same convention as the bundled one, and the
page-bound chunker."""

from __future__ import annotations

import pytest

from reportqa.ingest import IngestError, chunk_pages, load_pages
from reportqa.ingest.records import PageRecord
from reportqa.settings import DEFAULT_REPORT, load_settings

N = 24
NO_MARKER = 9  # printed neither as a bare line nor inline
INLINE_ONLY = 15  # printed only at the end of its title line
TITLE_ABOVE = 18  # its title is printed before its number


def _page(n: int) -> list[str]:
    title = f"Slide {n} about widgets" + (f" {n}" if n == INLINE_ONLY else "")
    # Axis values collide with page numbers (10, 20 and 15 are pages too).
    en = [title, f"Widget sales rose {n}% in the quarter.", "Sales, $B", "0", "10", "15", "20",
          f"Source: Widget Census ({n}/25)"]
    zh = [f"第{n}页 关于小部件", f"小部件销量增长了{n}%。", "Widget Census"]  # ends with an untranslated label
    marker = [] if n in (NO_MARKER, INLINE_ONLY) else [str(n)]
    if n == TITLE_ABOVE:
        return [title, *marker, *en[1:], *en[:3], *marker, *zh]
    return [*marker, *en, *en[:3], *marker, *zh]  # the English block repeats in part, like the export


def _export(pages: int = N) -> str:
    cover = ["Widget Report", "May 2025", "小部件报告", "2025 年 5 月"]
    banner = ["Widget Report PDF Free Download", "", "1 / 24", "0 views24 pages", ""]
    return "\n".join(banner + cover + [x for n in range(2, pages + 1) for x in _page(n)]) + "\n"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "widgets.txt"
    path.write_text(_export(), encoding="utf-8")
    return load_pages(path)


def test_generic_export_segments_exactly(synthetic):
    assert [p.page for p in synthetic] == list(range(1, N + 1))
    assert synthetic[0].en.splitlines()[:2] == ["Widget Report", "May 2025"]
    for p in synthetic[1:]:
        n = p.page
        assert p.en.splitlines()[0].startswith(f"Slide {n} about widgets"), p.en
        assert f"Widget Census ({n}/25)" in p.en
        assert p.zh.splitlines()[0] == f"第{n}页 关于小部件"
        assert f"Slide {n + 1} " not in p.text and f"第{n - 1}页" not in p.text


def test_trailing_untranslated_labels_stay_with_their_page(synthetic):
    for p in synthetic[1:]:
        assert p.zh.splitlines()[-1] == "Widget Census"


def test_axis_values_kept_and_page_markers_dropped(synthetic):
    p = synthetic[20 - 1]
    lines = p.en.splitlines()
    assert ["0", "10", "15", "20"] == [x for x in lines if x.isdigit()]
    assert lines.count("20") == 1


def test_plain_text_without_markers(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("Just some notes\nabout AI.\n人工智能笔记\n", encoding="utf-8")
    with pytest.raises(IngestError, match="no page numbers"):
        load_pages(path)


def test_one_stray_number_is_not_an_export(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("Shopping list\n2\napples\n", encoding="utf-8")
    with pytest.raises(IngestError, match="no page numbers"):
        load_pages(path)


# --- chunks ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def report_pages():
    return load_pages(DEFAULT_REPORT)


@pytest.mark.parametrize(("size", "overlap"), [(900, 150), (400, 80), (2000, 0)])
def test_chunks_stay_in_page_and_size(report_pages, size, overlap):
    settings = load_settings(chunk_chars=size, chunk_overlap=overlap)
    chunks = chunk_pages(report_pages, settings)
    by_page = {p.page: p for p in report_pages}
    assert {c.page for c in chunks} == set(by_page)
    assert len({c.id for c in chunks}) == len(chunks)
    for c in chunks:
        page = by_page[c.page]
        assert len(c.text) <= size
        assert (c.section, c.kind) == (page.section, page.kind)
        # Every line of a chunk comes from its own page (a line may be cut at a sentence or word boundary).
        for line in c.text.splitlines():
            assert line in page.text, (c.id, line)
    for n, page in by_page.items():
        ids = [c.id for c in chunks if c.page == n]
        assert ids == [f"p{n}-c{k}" for k in range(len(ids))]
        if len(page.text) <= size:
            assert len(ids) == 1


def test_long_page_split_with_overlap_and_both_languages(report_pages):
    settings = load_settings(chunk_chars=900, chunk_overlap=150)
    page = next(p for p in report_pages if p.page == 261)  # the open- vs closed-source essay, ~3,600 chars
    chunks = chunk_pages([page], settings)
    assert len(chunks) >= 4
    assert all(c.en and c.zh for c in chunks)  # each piece carries its share of the translation
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.en[-40:] in b.en  # consecutive pieces overlap
    # Nothing is lost: every line of the page is in some chunk.
    joined = "\n".join(c.text for c in chunks)
    assert all(line[:40] in joined for line in page.text.splitlines())


def test_chunking_cuts_long_lines_and_cjk_runs():
    page = PageRecord(page=7, en="word " * 400, zh="汉" * 1500, section="S", kind="content")
    chunks = chunk_pages([page], load_settings(chunk_chars=300, chunk_overlap=40))
    assert all(len(c.text) <= 300 for c in chunks)
    assert sum(c.zh.count("汉") for c in chunks) >= 1500
    assert all(c.id.startswith("p7-c") for c in chunks)


def test_chunk_settings_validated(report_pages):
    with pytest.raises(ValueError, match="chunk_overlap"):
        chunk_pages(report_pages[:1], load_settings(chunk_chars=100, chunk_overlap=60))
