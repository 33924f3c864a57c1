"""Line-level cleaning shared by the text-export and PDF readers."""

from __future__ import annotations

import itertools
import re

# Han, CJK punctuation, kana, full-width forms: a line holding any of these belongs to the Chinese side.
_CJK = re.compile(r"[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
# Private-use U+E601 is used as a space in the export's Chinese blocks; U+2011 is a non-breaking hyphen.
# (str.replace: much faster than str.translate with a mapping, and this runs on every line.)
_CHAR_MAP = (("\ue601", " "), ("\u2011", "-"), ("\u00a0", " "))
MIN_VERTICAL_RUN = 3  # shorter runs of one-character lines are usually real (e.g. a lone "%" or "B")


def has_cjk(line: str) -> bool:
    return _CJK.search(line) is not None


def normalize(line: str) -> str:
    for old, new in _CHAR_MAP:
        line = line.replace(old, new)
    return " ".join(line.split())


def line_key(line: str) -> str:
    """Comparison key that survives the export's habit of dropping spaces next to stripped CJK text."""
    return "".join(line.split())


def join_vertical(lines: list[str]) -> list[str]:
    """Join runs of one-character lines (vertical chart labels printed a letter per line) into one line.
    All-digit runs are left alone: they are lists like the outline's section numbers 1..8."""
    out: list[str] = []
    for single, group in itertools.groupby(lines, key=lambda x: len(x) == 1):
        run = list(group)
        if single and len(run) >= MIN_VERTICAL_RUN and not "".join(run).isdigit():
            out.append("".join(run))
        else:
            out.extend(run)
    return out


def clean_lines(lines: list[str], seen: set[str]) -> list[str]:
    """Normalize, join vertical labels, drop empty lines and lines already in `seen` (shared across a page's
    blocks, so a line repeated anywhere on the page is kept once, at its first occurrence)."""
    out = []
    for line in join_vertical([n for n in map(normalize, lines) if n]):
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out
