"""Page segmentation of the bundled report, checked against evidence inside the report itself: its own
cross-references, its outline, and hand-checked slide titles."""

from __future__ import annotations

import re

import pytest

from reportqa.ingest import load_pages
from reportqa.settings import DEFAULT_REPORT


@pytest.fixture(scope="module")
def pages():
    return load_pages(DEFAULT_REPORT)


@pytest.fixture(scope="module")
def by_page(pages):
    return {p.page: p for p in pages}


def test_every_printed_page_once_in_order(pages):
    # The export holds printed pages 1..339 (the 340th, a blank back cover, is not in the text).
    assert [p.page for p in pages] == list(range(1, 340))
    assert all(p.en or p.zh for p in pages)


# For each "Details on Page N" link on the summary charts (pp. 4-6): words printed on the summary chart next to
# the link that also appear on the detail page (checked by reading both pages).
SUMMARY_LINK_EVIDENCE = {
    38: "6MM",  # developers in the leading chipmaker's ecosystem
    55: "800MM",  # ChatGPT weekly active users
    56: "Share of Total Current Users",
    97: "Capital IQ (3/25)",  # Big Six CapEx
    138: "Richard Hirsh",  # cost of key technologies relative to launch year
    173: "Compute Expense",
    289: "Industrial Robots Installed",
    293: "Desktop User Share",
    302: "San Francisco",  # autonomous taxi share
    315: "Monthly Active Users, MM",  # ChatGPT mobile app
    332: "UMD-LinkUp AIMaps",  # AI vs non-AI IT job postings
}


def test_summary_chart_links_land_on_their_charts(by_page):
    summary = "\n".join(by_page[n].text for n in (4, 5, 6))
    links = {int(m[1]) for n in (4, 5, 6) for m in re.finditer(r"^Page (\d+)$", by_page[n].en, re.M)}
    assert links == set(SUMMARY_LINK_EVIDENCE)
    for target, words in SUMMARY_LINK_EVIDENCE.items():
        assert words in summary
        assert words in by_page[target].text, f"link to page {target}: {words!r} not on that page"


# In-text references ("As noted on page 122, ...") and a fact the reference points to.
IN_TEXT_REFERENCES = [
    (118, "As noted on page 122", 122, "750,000"),  # square feet of xAI's Colossus
    (134, "As noted on page 136", 136, "105,000"),  # times less energy, Blackwell vs Kepler
    (271, "As noted on page 8", 8, "Bosworth"),
    (245, "Pages 246-247", 246, "Protein"),
    (245, "Pages 246-247", 247, "Protein"),
]


@pytest.mark.parametrize(("source", "phrase", "target", "fact"), IN_TEXT_REFERENCES)
def test_in_text_references_resolve(by_page, source, phrase, target, fact):
    assert phrase in by_page[source].en
    assert fact in by_page[target].text


def test_no_other_page_claims_the_referenced_facts(by_page):
    # A boundary off by one would put the fact on a neighbour instead.
    for target, fact in ((122, "750,000"), (8, "Bosworth")):
        assert fact not in by_page[target - 1].text and fact not in by_page[target + 1].text


def test_outline_ranges_and_section_title_pages(pages, by_page):
    ranges = [tuple(map(int, r)) for r in re.findall(r"^(\d+)-(\d+)$", by_page[3].en, re.M)]
    assert len(ranges) == 8 and ranges[0] == (9, 51) and ranges[-1] == (323, 336)
    # Each section opens with a page repeating the outline; nothing else is an outline page.
    assert [p.page for p in pages if p.kind == "outline"] == [3] + [lo for lo, _ in ranges]
    for k, (lo, hi) in enumerate(ranges, 1):
        sections = {by_page[n].section for n in range(lo, hi + 1)}
        assert len(sections) == 1 and sections.pop().startswith(f"{k}. ")
    assert by_page[9].section == "1. Seem Like Change Happening Faster Than Ever? Yes, It Is"
    assert by_page[250].section == ("5. AI Monetization Threats = Rising Competition + Open-Source Momentum"
                                    " + China’s Rise")
    assert by_page[2].section == "Front matter" and by_page[339].section == "Back matter"


def test_dividers_are_short_title_pages(pages, by_page):
    dividers = [p for p in pages if p.kind == "divider"]
    assert 30 <= len(dividers) <= 80
    assert all(len(p.en) <= 160 and not re.search(r"^Source", p.en, re.M) for p in dividers)
    # Title-only pages, including ones whose "Chinese" copy is English (13, 88, 270) and titles broken over
    # short lines (131, 249).
    for n in (10, 13, 88, 108, 131, 249, 270, 280):
        assert by_page[n].kind == "divider", n
    # Short pages that cite a source are charts, not dividers.
    for n in (23, 31, 38, 261):
        assert by_page[n].kind == "content", n


# First English line of a page, read off the text export by hand.
TITLES = {
    2: "Context",
    7: "Overview…",
    38: "AI Developer Growth (NVIDIA Ecosystem as Proxy) =",
    81: "AI Usage ChatGPT =",
    82: "Minutes per Day that USA Active Users Spend on ChatGPT App",
    122: "Data Center Build Time (xAI Colossus as Proxy) =",
    261: "AI Monetization Threats = Rising Competition + Open-Source Momentum",
    293: "LLM User Share Desktop Users =",
    302: "Physical World AI Fully-Autonomous Vehicles (Waymo) =",
    332: "Employment Evolution 1/18-4/25 =",
    339: "BOND is a global technology investment firm",
}


@pytest.mark.parametrize(("page", "title"), TITLES.items())
def test_page_starts_with_its_title(by_page, page, title):
    assert by_page[page].en.splitlines()[0].startswith(title)


def test_page_81_without_standalone_number(by_page):
    # p. 81 prints its number only at the end of a title line; its slide must still be its own page.
    p81 = by_page[81]
    assert "Rising Rapidly Across Age Groups in USA" in p81.en and "Sam Altman" in p81.en
    assert "在美国各年龄段人群中迅速增长" in p81.zh
    assert "Rising Rapidly Across Age Groups" not in by_page[80].text + by_page[82].text
    assert "Minutes per Day" not in p81.text


def test_cover_page(by_page):
    assert "Mary Meeker" in by_page[1].text and "Context" not in by_page[1].text


def test_cleaning_rules(pages, by_page):
    for p in pages:
        lines = p.text.splitlines()
        assert "\ue601" not in p.text and "\u2011" not in p.text
        assert len(lines) == len(set(lines)), f"page {p.page} repeats a line"
        # No run of three one-character lines survives (vertical axis labels are joined); digit lists may stay.
        for a, b, c in zip(lines, lines[1:], lines[2:], strict=False):
            assert not (len(a) == len(b) == len(c) == 1 and not (a + b + c).isdigit()), p.page
    assert "WeeklyActiveUsers,MM" in by_page[4].en
    assert "Trends – Artificial Intelligence PDF Free Download" not in by_page[1].text


def test_english_and_chinese_split(pages, by_page):
    cjk = re.compile(r"[\u4e00-\u9fff]")
    assert not any(cjk.search(p.en) for p in pages)
    with_zh = [p for p in pages if cjk.search(p.zh)]
    assert len(with_zh) >= 330
    assert by_page[2].zh.startswith("背景") and by_page[2].en.startswith("Context")
