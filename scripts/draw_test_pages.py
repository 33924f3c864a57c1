"""Draw the pages the held-out `test` split of the QA set is written from (docs/qa-set.md, "The test split").

Stdlib only and deterministic: one `random.Random(2026)` shuffles each section's pages in outline order, and each
section gets a share of the draw in proportion to its length (largest remainder). Per section the script prints the
drawn pages and then the reserve, in draw order: a drawn page with no usable fact is replaced by the next reserve
page of the same section.

    python scripts/draw_test_pages.py [--pages 100]
"""

from __future__ import annotations

import argparse
import ast
import random
from pathlib import Path

SEED = 2026
QA_TEST = Path(__file__).resolve().parent.parent / "tests" / "test_qa_set.py"


def sections() -> dict[str, tuple[int, int]]:
    """The section page ranges, read from the QA-set test so the two cannot drift apart."""
    for node in ast.parse(QA_TEST.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SECTIONS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"no SECTIONS in {QA_TEST}")


def quotas(spans: dict[str, tuple[int, int]], total: int) -> dict[str, int]:
    """Hamilton apportionment: floor of each proportional share, then the largest remainders get the rest."""
    length = {name: hi - lo + 1 for name, (lo, hi) in spans.items()}
    size = sum(length.values())
    share = {name: total * n / size for name, n in length.items()}
    quota = {name: int(s) for name, s in share.items()}
    for name in sorted(share, key=lambda n: quota[n] - share[n])[: total - sum(quota.values())]:
        quota[name] += 1
    return quota


def draw(total: int) -> dict[str, tuple[list[int], list[int]]]:
    """Per section: (drawn pages, reserve pages in the order they replace skipped ones)."""
    rng = random.Random(SEED)
    spans = sections()
    quota = quotas(spans, total)
    out = {}
    for name, (lo, hi) in spans.items():
        order = list(range(lo, hi + 1))
        rng.shuffle(order)
        out[name] = (order[: quota[name]], order[quota[name]:])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=100, help="pages to draw over all sections (default 100)")
    args = parser.parse_args()
    if not 1 <= args.pages <= sum(hi - lo + 1 for lo, hi in sections().values()):
        parser.error("--pages must be between 1 and the number of pages in the sections")
    for name, (drawn, reserve) in draw(args.pages).items():
        print(f"{name}: drawn {' '.join(map(str, drawn))}")
        print(f"{name}: reserve {' '.join(map(str, reserve))}")


if __name__ == "__main__":
    main()
