"""Page-bound chunks: a chunk never crosses a page, so every retrieved passage cites exactly one page.

A page that fits in `chunk_chars` is one chunk. A longer page is cut into n pieces, and each language is cut
into the same n shares: piece i holds the i-th share of the English block and the i-th share of the Chinese
block. The Chinese block is a translation of the English in the same order, so proportional shares keep a
passage next to its translation well enough, and every chunk of a bilingual page stays bilingual, which lets
one query language match either side. Consecutive pieces overlap by about `chunk_overlap` characters (split
between the languages in proportion to their length), cut on line, then sentence, then word boundaries.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

from reportqa.ingest.records import Chunk, PageRecord

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|(?<=[。！？；])\s*")
_WORD_END = re.compile(r"\s+")


@dataclass(frozen=True)
class _Unit:
    text: str
    joiner: str  # what separates it from the unit before it in the source


def _pieces(text: str, limit: int, pattern: re.Pattern) -> list[_Unit]:
    """Cut `text` at `pattern` (sentence, then word boundaries) into units of at most `limit` chars; each unit
    remembers the separator it had in the source ("" after CJK punctuation, " " after a space)."""
    out: list[_Unit] = []
    pos, sep = 0, ""
    for m in [*pattern.finditer(text), None]:
        part = text[pos:m.start() if m else len(text)]
        if len(part) <= limit:
            out.append(_Unit(part, sep))
        elif pattern is _SENTENCE_END:
            first, *rest = _pieces(part, limit, _WORD_END)
            out += [_Unit(first.text, sep), *rest]
        else:  # one word longer than the limit (or CJK text without spaces): hard cut
            out += [_Unit(part[i:i + limit], sep if i == 0 else "") for i in range(0, len(part), limit)]
        if m:
            pos, sep = m.end(), " " if m.group() else ""
    return [u for u in out if u.text]


def _units(text: str, limit: int) -> list[_Unit]:
    """Lines, with lines longer than `limit` cut at sentence, then word boundaries."""
    out: list[_Unit] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        first, *rest = _pieces(line.strip(), limit, _SENTENCE_END)
        out += [_Unit(first.text, "\n" if out else ""), *rest]
    return out


def _join(units: list[_Unit]) -> str:
    return "".join((u.joiner if k else "") + u.text for k, u in enumerate(units))


def _shares(units: list[_Unit], n: int) -> list[list[_Unit]]:
    """n contiguous groups of about equal length (a group may be empty when the text is short)."""
    weight = [len(u.text) + 1 for u in units]  # + its joiner
    total = sum(weight) or 1
    groups: list[list[_Unit]] = [[] for _ in range(n)]
    done = 0
    for u, w in zip(units, weight, strict=True):
        groups[min(n - 1, int((done + w / 2) * n / total))].append(u)
        done += w
    return groups


def _tail(units: list[_Unit], budget: int) -> list[_Unit]:
    """The last units of a group that fit in `budget` chars; else the end of its last unit, from a word start."""
    out: list[_Unit] = []
    used = 0
    for u in reversed(units):
        if used + len(u.text) + 1 > budget:
            break
        out.insert(0, u)
        used += len(u.text) + 1
    if out or not units or budget <= 0:
        return out
    text = units[-1].text[-budget:]
    cut = text.find(" ")
    return [_Unit(text[cut + 1:] if 0 <= cut < len(text) - 1 else text, "")]


def _split_page(en: str, zh: str, size: int, overlap: int) -> list[tuple[str, str]]:
    total = len(en) + len(zh) + (1 if en and zh else 0)
    if total <= size:
        return [(en, zh)]
    unit_limit = max(1, (size - overlap) // 4)  # small units keep every piece within size (see the loop bound)
    units = {"en": _units(en, unit_limit), "zh": _units(zh, unit_limit)}
    budget = {lang: overlap * len(text) // total for lang, text in (("en", en), ("zh", zh))}
    # Terminates: once n exceeds the total length, every group holds at most one unit, and two units plus the
    # overlap budget fit in `size` because unit_limit <= (size - overlap) / 4.
    for n in itertools.count(math.ceil(total / (size - overlap))):
        shares = {lang: _shares(u, n) for lang, u in units.items()}
        pieces = []
        for i in range(n):
            parts = {}
            for lang, groups in shares.items():
                lead = _tail(groups[i - 1], budget[lang]) if i and groups[i] else []
                parts[lang] = _join([*lead, *groups[i]])
            if parts["en"] or parts["zh"]:
                pieces.append((parts["en"], parts["zh"]))
        if all(len(e) + len(z) + (1 if e and z else 0) <= size for e, z in pieces):
            return pieces
    raise AssertionError("unreachable")


def chunk_pages(pages: list[PageRecord], settings) -> list[Chunk]:
    if not 0 <= settings.chunk_overlap < settings.chunk_chars // 2:
        raise ValueError("chunk_overlap must be >= 0 and less than half of chunk_chars")
    return [
        Chunk(f"p{p.page}-c{n}", p.page, p.section, p.kind, en, zh)
        for p in pages
        for n, (en, zh) in enumerate(_split_page(p.en, p.zh, settings.chunk_chars, settings.chunk_overlap))
    ]
