"""Sections and page kinds, read from the report itself: the outline page lists section titles and page ranges
("9-51", "52-128", ...); section title pages repeat that outline; dividers are short title-only pages."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from reportqa.ingest.records import PageKind

_RANGE = re.compile(r"(\d{1,4})\s*[-–]\s*(\d{1,4})")
_NOT_TITLE = re.compile(r"[\d\s#.\-–]*")  # digits, ranges and the "#" column header
_CONTINUES = ("=", "?", "+", ",", "&", "/", "-", "–", ":")
MIN_SECTIONS = 3
OUTLINE_SHARE = 0.75  # a page repeating this share of the outline's title lines is an outline page
DIVIDER_MAX_CHARS = 160  # English chars of a title-only page (titles may break over several short lines)
_CITES = re.compile(r"^(Source|Note)s?\b|^\*", re.M | re.I)  # a chart or quote cites its source: not a divider


@dataclass(frozen=True)
class Outline:
    page: int
    ranges: list[tuple[int, int]]
    titles: list[str]  # one per range, "" when the titles could not be read
    title_lines: frozenset[str]

    def section_of(self, page: int) -> str:
        for k, ((lo, hi), title) in enumerate(zip(self.ranges, self.titles, strict=True), 1):
            if lo <= page <= hi:
                return f"{k}. {title}" if title else f"Section {k}"
        return "Front matter" if page < self.ranges[0][0] else "Back matter"


def _ranges(en_lines: Sequence[str]) -> list[tuple[int, int]]:
    """The longest run of consecutive page ranges (each starting right after the previous one ends)."""
    found = sorted({(int(m[1]), int(m[2])) for x in en_lines if (m := _RANGE.fullmatch(x)) and int(m[1]) < int(m[2])})
    best: list[tuple[int, int]] = []
    for k, r in enumerate(found):
        run = [r]
        for s in found[k + 1:]:
            if s[0] == run[-1][1] + 1:
                run.append(s)
        best = max(best, run, key=len)
    return best


def _titles(en_lines: Sequence[str], n: int) -> tuple[list[str], frozenset[str]]:
    """The first n titles on the outline page; a title continues onto the next line after "=", "?", "+", ..."""
    lines = [x for x in en_lines if not _NOT_TITLE.fullmatch(x)]
    titles, used, current = [], [], ""
    for x in lines:
        current = f"{current} {x}".strip()
        used.append(x)
        if not x.endswith(_CONTINUES):
            titles.append(current)
            current = ""
            if len(titles) == n:
                return titles, frozenset(used)
    return [""] * n, frozenset()


def find_outline(pages: Sequence[tuple[int, list[str]]]) -> Outline | None:
    """pages: (page number, English lines). The outline is the first page with a run of >= 3 page ranges."""
    for page, en in pages:
        ranges = _ranges(en)
        if len(ranges) >= MIN_SECTIONS:
            titles, title_lines = _titles(en, len(ranges))
            return Outline(page, ranges, titles, title_lines)
    return None


def page_kind(en_lines: Sequence[str], outline: Outline | None) -> PageKind:
    if outline and outline.title_lines:
        if len(outline.title_lines.intersection(en_lines)) >= OUTLINE_SHARE * len(outline.title_lines):
            return "outline"
    text = "\n".join(en_lines)
    if 0 < len(text) <= DIVIDER_MAX_CHARS and not _CITES.search(text):
        return "divider"
    return "content"
