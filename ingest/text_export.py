"""Segment a bilingual text export into printed pages.

The export prints each page as: [title lines] N / English slide text (often twice) / N / Chinese translation.
Page numbers are bare-integer lines, but so are chart axis values, so the page markers are found as the
best-scoring monotone chain of candidate lines (dynamic programming over slots (2,A) < (2,B) < (3,A) < ...),
where a marker's score rewards the language switch around it: an "A" marker follows the previous page's
Chinese block, a "B" marker precedes the page's own Chinese block. A page whose number is printed only at the
end of a title line ("... Unprecedented 81") is found through weaker inline candidates.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from reportqa.ingest.clean import has_cjk, line_key, normalize
from reportqa.ingest.records import IngestError

log = logging.getLogger(__name__)

# The download-site banner that precedes the first page of the bundled export.
_BANNER = re.compile(r"PDF [Ff]ree [Dd]ownload|^\d+ / \d+$|^\d+ views\s*\d+ pages$|Think more deeply and widely\.?$")
_BARE = re.compile(r"\d{1,4}")
_INLINE = re.compile(r"\S\s+(\d{1,4})")  # a number printed at the end of a title line
_WORD = re.compile(r"[A-Za-z]{2}")

MIN_PAGES = 2  # numbered pages needed to call a text an export; one stray number is no evidence
MAX_GAP = 3  # pages a chain may skip between two found markers
GAP_PENALTY = 3.0  # per skipped page: more than one weak marker is worth
# Both markers of one page beat a single better-placed one: on outline-like pages the A marker follows a long
# English run, and the B marker after the Chinese block would otherwise be taken as the lone A.
PAIR_BONUS = 2.0
INLINE_SCORE = 0.5  # below any bare-line marker, so inline numbers only fill slots nothing else fills
A, B = 0, 1  # marker roles: A opens the page (before its English), B opens its Chinese block


@dataclass(frozen=True)
class _Cand:
    line: int
    value: int
    bare: bool  # the whole line is the number (dropped from the text); inline numbers keep their line
    score: tuple[float, float]  # (as A, as B)


@dataclass
class Segment:
    page: int
    lines: list[str]  # the page's lines in order, markers removed
    zh_start: int  # index into lines where the Chinese block starts (len(lines) if none)


def _strip_banner(lines: list[str]) -> int:
    i = 0
    while i < len(lines) and (not lines[i] or _BANNER.search(lines[i])):
        i += 1
    return i


def _candidates(lines: list[str], start: int) -> list[_Cand]:
    cjk = [has_cjk(x) for x in lines]
    nonempty = [i for i, x in enumerate(lines) if x]
    prev_of = {b: a for a, b in zip(nonempty, nonempty[1:], strict=False)}
    next_of = {a: b for a, b in zip(nonempty, nonempty[1:], strict=False)}
    out = []
    for i in range(start, len(lines)):
        text = lines[i]
        prev_cjk = i in prev_of and cjk[prev_of[i]]
        next_cjk = i in next_of and cjk[next_of[i]]
        if _BARE.fullmatch(text):
            # A: the previous page's Chinese block ends just before and the slide title follows; B: the page's
            # Chinese block starts just after (a few pages print B after their Chinese block, hence prev_cjk).
            next_words = i in next_of and not next_cjk and _WORD.search(lines[next_of[i]]) is not None
            score_a = 1.0 + 2.0 * prev_cjk + 1.0 * next_words
            score_b = 1.0 + 2.0 * next_cjk + 1.0 * prev_cjk
            out.append(_Cand(i, int(text), True, (score_a, score_b)))
        elif m := _INLINE.search(text):
            if text.endswith(m.group(0)):
                out.append(_Cand(i, int(m.group(1)), False, (INLINE_SCORE, INLINE_SCORE)))
    return out


def _start_penalty(c: _Cand, first_cjk: int) -> float | None:
    """Cost of a chain whose first marker is c. Page 1 (the cover) is usually unnumbered, so a chain may start
    at 2; it may start at 1 only if no Chinese text precedes it (else that text would be a page 0)."""
    if c.value == 1:
        return 0.0 if c.line < first_cjk else None
    return GAP_PENALTY * (c.value - 2)


def _marker_chain(cands: list[_Cand], first_cjk: int) -> dict[int, dict[int, _Cand]]:
    """Best chain of (candidate, role) with strictly increasing lines and slots; returns {page: {role: cand}}.
    Candidates come in line order, so the best chain ending in any earlier candidate of value u and role r is a
    running maximum: each candidate looks at O(MAX_GAP) predecessors."""
    best: dict[tuple[int, int], float] = {}  # (candidate index, role) -> score of the best chain ending there
    back: dict[tuple[int, int], tuple[int, int] | None] = {}
    running: dict[tuple[int, int], tuple[float, tuple[int, int]]] = {}  # (value, role) -> best so far
    for k, c in enumerate(cands):
        if c.value < 1:
            continue
        start_penalty = _start_penalty(c, first_cjk)
        for role in (A, B):
            score, prev = (float("-inf") if start_penalty is None else c.score[role] - start_penalty), None
            # Same page: only A -> B, with the pair bonus. Earlier pages: either role, minus skipped pages.
            steps = [((c.value, A), PAIR_BONUS)] if role == B else []
            steps += [((u, r), -GAP_PENALTY * (c.value - u - 1))
                      for u in range(max(1, c.value - MAX_GAP - 1), c.value) for r in (A, B)]
            for key, bonus in steps:
                if key in running and running[key][0] + c.score[role] + bonus > score:
                    score, prev = running[key][0] + c.score[role] + bonus, running[key][1]
            best[(k, role)], back[(k, role)] = score, prev
        for role in (A, B):
            key = (c.value, role)
            if key not in running or best[(k, role)] > running[key][0]:
                running[key] = (best[(k, role)], (k, role))
    if not best:
        return {}
    state: tuple[int, int] | None = max(best, key=best.__getitem__)
    chain: dict[int, dict[int, _Cand]] = {}
    while state is not None:
        c = cands[state[0]]
        chain.setdefault(c.value, {})[state[1]] = c
        state = back[state]
    return chain


def _last_cjk(lines: list[str], lo: int, hi: int) -> int | None:
    return next((i for i in range(hi - 1, lo - 1, -1) if has_cjk(lines[i])), None)


def _after_first_cjk_run(lines: list[str], lo: int, hi: int) -> int:
    """Start of a page with no marker at all: the first Latin line after the previous page's Chinese run."""
    i = lo
    while i < hi and not has_cjk(lines[i]):
        i += 1
    while i < hi and (has_cjk(lines[i]) or not lines[i]):
        i += 1
    return i


def segment(text: str) -> list[Segment]:
    lines = [normalize(x) for x in text.splitlines()]
    first_line = _strip_banner(lines)
    first_cjk = next((i for i in range(first_line, len(lines)) if has_cjk(lines[i])), len(lines))
    chain = _marker_chain(_candidates(lines, first_line), first_cjk)
    if len(chain) < MIN_PAGES:
        raise IngestError("no page numbers found: expected bare page-number lines (1, 2, 3, ...) in the text")
    first, last = min(chain), max(chain)
    markers = {c.line for roles in chain.values() for c in roles.values() if c.bare}

    def anchor(n: int) -> int | None:
        roles = chain.get(n, {})
        return roles[A].line if A in roles else roles[B].line if B in roles else None

    def last_marker(n: int) -> int | None:
        roles = chain.get(n, {})
        return max((c.line for c in roles.values()), default=None)

    # A text with no Chinese at all (an English-only export) has no language switch to cut at: its numbers either
    # head the pages (the text opens with one) or foot them (page n ends at its number).
    heads = first_cjk == len(lines) and anchor(first) == next(i for i in range(first_line, len(lines)) if lines[i])
    # start[n]: first line of page n; content before the first numbered page is the unnumbered cover.
    starts: dict[int, int] = {}
    if first > 1 and any(lines[first_line:anchor(first)]):
        starts[first - 1] = first_line
    prev_end = first_line - 1
    for n in range(first, last + 1):
        a = anchor(n)
        if a is None:
            log.warning("page %d has no page-number marker; cut at the Chinese-to-English switch", n)
            nxt = next(x for x in (anchor(m) for m in range(n + 1, last + 1)) if x is not None)
            starts[n] = _after_first_cjk_run(lines, prev_end + 1, nxt)
            prev_end = starts[n]
            continue
        cjk = _last_cjk(lines, prev_end + 1, a)
        if heads:
            starts[n] = a
        elif n == first and first - 1 in starts:
            starts[n] = a  # a cover's Chinese copy may have lost its CJK, so its end is not visible: cut at the number
        else:
            starts[n] = max(prev_end + 1, cjk + 1 if cjk is not None else 0)
        prev_end = last_marker(n)

    pages = sorted(starts)
    bounds = {n: (starts[n], starts[m] if m else len(lines)) for n, m in zip(pages, [*pages[1:], None], strict=True)}
    _move_back_repeats(lines, bounds, markers, anchor)
    segments = []
    for n in pages:
        lo, hi = bounds[n]
        b = chain.get(n, {}).get(B)
        keep = [i for i in range(lo, hi) if lines[i] and i not in markers]
        zh_from = b.line if b is not None and _last_cjk(lines, b.line, hi) is not None else lo
        zh_at = next((k for k, i in enumerate(keep) if i > zh_from and has_cjk(lines[i])), None)
        if zh_at is None:  # no Chinese on the page: a no-CJK divider repeats its English after marker B
            zh_at = sum(1 for i in keep if b is None or i < b.line)
        segments.append(Segment(n, [lines[i] for i in keep], zh_at))
    return segments


def _move_back_repeats(lines: list[str], bounds: dict[int, tuple[int, int]], markers: set[int], anchor) -> None:
    """Untranslated chart labels at the end of a Chinese block repeat that page's English; the cut after the
    last Chinese line puts them on the next page, so hand them back: the leading run of lines (before the next
    page's marker) found in the previous page's text, re-wrapped fragments included. A title printed above the
    next page's number stops the run, unless the previous page has the same title, in which case the next page
    still holds it after its marker whenever the slide repeats its English."""
    pages = sorted(bounds)
    for prev, n in zip(pages, pages[1:], strict=False):
        lo, hi = bounds[n]
        a = anchor(n)
        prev_text = "".join(line_key(lines[i]) for i in range(*bounds[prev]) if i not in markers)
        cut = lo
        for i in range(lo, a if a is not None else hi):
            if lines[i] and i not in markers:
                if line_key(lines[i]) not in prev_text:
                    break
                cut = i + 1
        if cut > lo:
            bounds[prev], bounds[n] = (bounds[prev][0], cut), (cut, hi)
