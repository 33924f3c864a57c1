"""Draw the pages the held-out `test` split of the QA set is written from (docs/qa-set.md, "The test split"), or,
with another seed and the gold pages of the other files excluded, the pages of the dev2 questions ("The dev2
questions").

Stdlib only and deterministic: one `random.Random(seed)` shuffles each section's pages in outline order, and each
section gets a share of the draw in proportion to its length (largest remainder). Per section the script prints the
drawn pages and then the reserve, in draw order: a drawn page with no usable fact is replaced by the next reserve
page of the same section. `--exclude` files remove their items' gold pages (`pages` fields) before the draw, and the
shares are then proportional to the pages left.

    python scripts/draw_test_pages.py [--pages 100] [--seed 2026] [--exclude eval/qa.jsonl ...]
"""

from __future__ import annotations

import argparse
import ast
import json
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


def quotas(pages: dict[str, list[int]], total: int) -> dict[str, int]:
    """Hamilton apportionment: floor of each proportional share, then the largest remainders get the rest."""
    length = {name: len(p) for name, p in pages.items()}
    size = sum(length.values())
    share = {name: total * n / size for name, n in length.items()}
    quota = {name: int(s) for name, s in share.items()}
    for name in sorted(share, key=lambda n: quota[n] - share[n])[: total - sum(quota.values())]:
        quota[name] += 1
    return quota


def gold_pages(paths: list[Path]) -> set[int]:
    """The gold pages of the items in these QA files; only the `pages` field is read."""
    return {p for path in paths for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
            for p in json.loads(line)["pages"]}


def draw(total: int, seed: int = SEED, exclude: set[int] = frozenset()) -> dict[str, tuple[list[int], list[int]]]:
    """Per section: (drawn pages, reserve pages in the order they replace skipped ones)."""
    rng = random.Random(seed)
    pages = {name: [p for p in range(lo, hi + 1) if p not in exclude] for name, (lo, hi) in sections().items()}
    quota = quotas(pages, total)
    out = {}
    for name, order in pages.items():
        rng.shuffle(order)
        out[name] = (order[: quota[name]], order[quota[name]:])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=100, help="pages to draw over all sections (default 100)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the shuffle (default {SEED}, the test draw)")
    parser.add_argument("--exclude", type=Path, nargs="*", default=[], metavar="QA_JSONL",
                        help="QA files whose gold pages are not drawn")
    args = parser.parse_args()
    missing = [str(p) for p in args.exclude if not p.is_file()]
    if missing:
        parser.error(f"no such QA file: {', '.join(missing)}")
    exclude = gold_pages(args.exclude)
    if not 1 <= args.pages <= sum(hi - lo + 1 for lo, hi in sections().values()) - len(exclude):
        parser.error("--pages must be between 1 and the number of pages left in the sections")
    for name, (drawn, reserve) in draw(args.pages, args.seed, exclude).items():
        print(f"{name}: drawn {' '.join(map(str, drawn))}")
        print(f"{name}: reserve {' '.join(map(str, reserve))}")


if __name__ == "__main__":
    main()
