"""The library of reports (index/library.py, `reportqa ingest FILE --name`, `reportqa reports`, `--report`): a real
PDF that a Debian package installs is added beside the bundled report and retrieved with its physical page numbers;
English-only and Chinese-only sources (text exports and PDFs, made here) load with the right pages and languages;
bad names and bad files are refused with one line and change nothing. Real embedder, temporary homes, no LLM."""

from __future__ import annotations

import json
import os
from pathlib import Path

import gradio as gr
import pytest
from fpdf import FPDF
from pypdf import PdfReader
from support import private_home

from reportqa.app.cli import main
from reportqa.app.ui import build_app
from reportqa.errors import UserError
from reportqa.index import library, open_retriever, store
from reportqa.ingest import load_pages
from reportqa.settings import load_settings

# shared-mime-info's specification: installed with the package, which chromium (a test prerequisite) depends on
# through GTK and gdk-pixbuf. Written by freedesktop.org, nobody here.
REAL_PDF = Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")
CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")

EN_PAGES = [
    "Annual Widget Market Review\nAcme Research, March 2024",
    "Global Widget Shipments\nShipments rose 12% to 4.2 billion units in 2023.\nSource: Acme estimates",
    "Widget Prices Keep Falling\nThe average selling price fell 8% to $3.10 per unit.\nSource: Acme price tracker",
    "Regional Demand Shifts\nAsia took 61% of widget demand, up from 55% in 2020.\nSource: Acme surveys",
]
ZH_PAGES = [
    "年度小部件市场回顾\n极点研究 2024年3月",
    "全球小部件出货量\n2023年出货量增长12%，达到42亿件。\n来源：极点估算",
    "小部件价格持续下降\n平均售价下降8%，至每件3.10美元。\n来源：极点价格跟踪",
    "区域需求变化\n亚洲占小部件需求的61%，高于2020年的55%。\n来源：极点调查",
]


def _text_export(pages: list[str], numbers: str) -> str:
    """A monolingual export: each page's number on its own line, before ("head") or after ("foot") its text."""
    out = []
    for n, text in enumerate(pages, 1):
        out += [str(n), text] if numbers == "head" else [text, str(n)]
    return "\n".join(out) + "\n"


def _pdf(pages: list[str], font: Path | None = None) -> bytes:
    pdf = FPDF()
    if font:
        assert font.exists(), f"{font} missing: run scripts/setup.sh --test (installs fonts-wqy-microhei)"
        pdf.add_font("wqy", fname=str(font), collection_font_number=0)
        pdf.set_font("wqy", size=12)
    else:
        pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sources")
    files = {
        "en-head.txt": _text_export(EN_PAGES, "head").encode(),
        "en-foot.txt": _text_export(EN_PAGES, "foot").encode(),
        "zh-head.txt": _text_export(ZH_PAGES, "head").encode(),
        "en.pdf": _pdf(EN_PAGES),
        "zh.pdf": _pdf(ZH_PAGES, CJK_FONT),
        "prose.txt": b"Plain prose without any page numbers.\nAnother line.\n",
        "empty.pdf": b"",
        "not-a-pdf.pdf": b"PK\x03\x04 a zip archive, not a PDF\n",
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    return {name: d / name for name in files}


@pytest.mark.parametrize("name", ["en-head.txt", "en-foot.txt", "zh-head.txt", "en.pdf", "zh.pdf"])
def test_monolingual_sources_load_page_by_page(sources, name):
    pages = load_pages(sources[name])
    expected = ZH_PAGES if name.startswith("zh") else EN_PAGES
    assert [p.page for p in pages] == [1, 2, 3, 4]
    for p, text in zip(pages, expected, strict=True):
        assert (p.zh if name.startswith("zh") else p.en).splitlines()[0] == text.splitlines()[0]
        assert not (p.en if name.startswith("zh") else p.zh)


def test_the_bundled_report_titles_itself(report_pages):
    assert library.title_of(list(report_pages.values())) == ("Trends – Artificial Intelligence", "BOND · May 2025")


def test_default_layout_is_unchanged(tmp_path):
    s = load_settings(home=tmp_path)
    assert s.index_dir == tmp_path / "index"
    assert s.replace(report_name="x").index_dir == tmp_path / "reports" / "x" / "index"
    assert library.slug("Shared MIME-info spec (v0.21).pdf") == "shared-mime-info-spec-v0-21-pdf"
    assert library.slug("年度报告") == "report"


# ------------------------------------------------------------------------------------------- a library home

@pytest.fixture(scope="module")
def home(tmp_path_factory, sources) -> Path:
    """A home with the real PDF (name from its file name) and the Chinese-only export added; the default report's
    index not built."""
    assert REAL_PDF.exists(), f"{REAL_PDF} missing: apt-get install shared-mime-info"
    home = tmp_path_factory.mktemp("library-home")
    s = load_settings(home=home)
    assert library.add_report(s, REAL_PDF)["name"] == "shared-mime-info-spec"
    library.add_report(s, sources["zh-head.txt"], "widgets-zh")
    return home


@pytest.fixture
def lib(tmp_path, home):
    return private_home(tmp_path, home)


def test_reports_lists_the_default_first_even_before_its_index(home, monkeypatch, capsys):
    monkeypatch.setenv("REPORTQA_HOME", str(home))
    assert main(["reports", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["trends-ai-2025", "shared-mime-info-spec", "widgets-zh"]
    default, spec, zh = rows
    assert default["default"] and default["built_at"] is None and default["pages"] == 339
    assert default["title"] == "Trends – Artificial Intelligence" and default["languages"] == ["en", "zh"]
    assert spec["title"] == "Shared MIME-info Database" and spec["pages"] == len(PdfReader(REAL_PDF).pages)
    assert spec["languages"] == ["en"] and spec["size_mb"] > 0 and spec["built_at"] and not spec["default"]
    assert zh["title"] == "年度小部件市场回顾" and zh["languages"] == ["zh"] and zh["pages"] == 4
    assert not (home / "index").exists()  # listing built nothing
    assert main(["reports"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("trends-ai-2025 (default)\tTrends – Artificial")


def _unique_line(reader: PdfReader, k: int) -> str:
    """The longest line of physical page k (1-based) that no other page prints, read with pypdf directly."""
    texts = [p.extract_text() for p in reader.pages]
    others = "\n".join(t for i, t in enumerate(texts) if i != k - 1)
    return max((x for x in texts[k - 1].splitlines() if x.strip() and x not in others), key=len)


@pytest.mark.parametrize("k", [2, 7, 11, 15])
def test_the_real_pdf_is_retrieved_by_physical_page(home, k):
    r = open_retriever(library.select(load_settings(home=home), "shared-mime-info-spec"))
    line = _unique_line(PdfReader(REAL_PDF), k)
    assert r.retrieve(line)[0].page == k, line
    assert r.page(k).en.splitlines()[0] == "Shared MIME-info Database"  # the running header, kept per page


def test_examples_come_from_the_report_and_are_answerable(home):
    for name in ("shared-mime-info-spec", "widgets-zh"):
        s = library.select(load_settings(home=home), name)
        card = library.card(s)
        assert card.examples, name
        r = open_retriever(s)
        for q in card.examples:
            page = next(h.page for h in r.retrieve(q, k=3) if library.answerable(r, q, h.page))
            assert page >= 2  # not the cover
    assert library.card(library.select(load_settings(home=home), "widgets-zh")).examples[0] == \
        "报告中关于“全球小部件出货量”说了什么？"


def test_answerable_needs_the_page_in_the_top_3_and_its_terms(home):
    r = open_retriever(library.select(load_settings(home=home), "widgets-zh"))
    q = "报告中关于“小部件价格持续下降”说了什么？"
    assert library.answerable(r, q, 3)
    assert not library.answerable(r, q, 1)  # the cover does not say it
    assert not library.answerable(r, "报告中关于“小部件价格持续下降和量子计算”说了什么？", 3)  # a term the page lacks


def test_the_chat_takes_its_title_and_examples_from_the_report(home):
    s = library.select(load_settings(home=home), "shared-mime-info-spec")
    card = library.card(s)
    app = build_app(s, engine=object())
    assert app.title == "Report Q&A · Shared MIME-info Database"
    chatbot = next(b for b in app.blocks.values() if isinstance(b, gr.Chatbot))
    assert [e["text"] for e in chatbot.examples] == list(card.examples)
    header = next(b for b in app.blocks.values() if isinstance(b, gr.HTML) and "rq-header" in str(b.value))
    assert "Trends" not in header.value and "Shared MIME-info Database" in header.value


# ------------------------------------------------------------------------------------------- choosing a report

def test_report_flag_picks_a_report_and_unknown_names_are_listed(lib, monkeypatch, capsys):
    assert library.select(lib, "widgets-zh").index_dir == lib.home / "reports" / "widgets-zh" / "index"
    assert library.select(lib, "trends-ai-2025") == lib
    monkeypatch.setenv("REPORTQA_HOME", str(lib.home))
    monkeypatch.setenv("REPORTQA_LLM", "fake")
    assert main(["ask", "--report", "nope", "What is it?"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["reportqa: no report named 'nope'; known reports: trends-ai-2025, shared-mime-info-spec, "
                   "widgets-zh"]
    assert main(["ask", "--json", "--report", "shared-mime-info-spec", "What is the glob file?"]) == 0
    assert 7 in [r["page"] for r in json.loads(capsys.readouterr().out)["retrieved"]]
    assert main(["eval", "--report", "widgets-zh", "--out", str(lib.home / "out")]) == 2
    assert "needs --qa FILE" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- refusals

def library_state(s) -> dict:
    """Every report's served build and fingerprint, and every folder of the library (no staging left behind)."""
    state = {"folders": sorted(p.name for p in (s.home / "reports").iterdir()), "default": (s.home / "index").exists()}
    for name in library.names(s)[1:]:
        chosen = library.select(s, name)
        build = store.current_build(chosen)
        state[name] = (os.readlink(chosen.index_dir), store.read_manifest(build)["fingerprint"],
                       (chosen.report.read_bytes()))
    return state


BAD = [  # (file or None for a missing one, --name, what the one line says)
    ("en.pdf", "Bad Name", "bad report name 'Bad Name'"),
    ("en.pdf", "../escape", "bad report name"),
    ("en.pdf", "trends-ai-2025", "the bundled report's"),
    ("en.pdf", "widgets-zh", "already exists"),
    (None, "missing", "no such file"),
    ("empty.pdf", "empty", "the file is empty"),
    ("not-a-pdf.pdf", "zip", "not a PDF"),
    ("prose.txt", "prose", "no page numbers"),
]


@pytest.mark.parametrize("file, name, message", BAD, ids=[b[1] for b in BAD])
def test_bad_input_is_one_line_and_changes_nothing(lib, sources, file, name, message, monkeypatch, capsys):
    before = library_state(lib)
    path = sources[file] if file else sources["en.pdf"].with_name("missing.pdf")
    with pytest.raises(UserError, match=message):
        library.add_report(lib, path, name)
    monkeypatch.setenv("REPORTQA_HOME", str(lib.home))
    assert main(["ingest", str(path), "--name", name]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reportqa: ") and message.split("'")[0] in err[0], err
    assert library_state(lib) == before


def test_a_new_file_replaces_a_report_only_with_rebuild(lib, sources):
    before = library_state(lib)
    stats = library.add_report(lib, sources["zh-head.txt"], "widgets-zh")  # the same file: up to date
    assert stats["noop"] and library_state(lib) == before
    stats = library.add_report(lib, sources["zh.pdf"], "widgets-zh", rebuild=True)
    assert not stats["noop"] and stats["pages"] == 4
    after = library_state(lib)
    assert after["folders"] == before["folders"] and after["widgets-zh"][0] != before["widgets-zh"][0]
    assert after["shared-mime-info-spec"] == before["shared-mime-info-spec"]
    s = library.select(lib, "widgets-zh")
    assert s.report.name == "source.pdf" and open_retriever(s).retrieve("亚洲需求占比")[0].page == 4
