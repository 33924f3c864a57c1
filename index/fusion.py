"""Pure ranking arithmetic: fuse chunk rankings of the dense and keyword retrievers, then roll chunks up to pages."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence


def rrf(rankings: Sequence[Sequence[Hashable]], k: int = 60) -> dict[Hashable, float]:
    """Reciprocal rank fusion: sum of 1/(k + rank) over the rankings an item appears in (rank 1 = best)."""
    out: dict[Hashable, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            out[item] = out.get(item, 0.0) + 1.0 / (k + rank)
    return out


def weighted(scores: Sequence[Mapping[Hashable, float]], weights: Sequence[float]) -> dict[Hashable, float]:
    """Weighted sum of per-retriever scores, each min-max normalised over its own candidates (so a cosine in
    0.8..0.9 and a BM25 score in 0..30 become comparable); an item a retriever did not return counts 0 there."""
    out: dict[Hashable, float] = {}
    for per_item, weight in zip(scores, weights, strict=True):
        if not per_item:
            continue
        lo, hi = min(per_item.values()), max(per_item.values())
        span = hi - lo
        for item, s in per_item.items():
            norm = (s - lo) / span if span > 0 else 1.0
            out[item] = out.get(item, 0.0) + weight * norm
    return out


def pages_from_chunks(
    chunk_scores: Mapping[Hashable, float],
    page_of: Callable[[Hashable], int],
    page_weight: Callable[[int], float] = lambda _page: 1.0,
    same_as: Callable[[int], Hashable] = lambda page: page,
) -> list[tuple[int, float, list[tuple[Hashable, float]]]]:
    """Pages ranked by their best chunk times `page_weight(page)` (to push divider and outline pages down); the
    page's other matching chunks come along as further passages. (Adding a share of the second-best chunk's score
    did not help on the dev and eval sets, see docs/index.md.) Pages with the same `same_as` key (verbatim repeats,
    such as the outline printed before each section) collapse into the best-scoring one.
    Returns (page, score, [(chunk, chunk score) best first]) best first."""
    by_page: dict[int, list[tuple[Hashable, float]]] = {}
    for chunk, score in chunk_scores.items():
        by_page.setdefault(page_of(chunk), []).append((chunk, score))
    ranked = []
    for page, chunks in by_page.items():
        chunks.sort(key=lambda cs: -cs[1])
        ranked.append((page, chunks[0][1] * page_weight(page), chunks))
    ranked.sort(key=lambda r: (-r[1], r[0]))
    seen: set[Hashable] = set()
    out = []
    for page, score, chunks in ranked:
        key = same_as(page)
        if key not in seen:
            seen.add(key)
            out.append((page, score, chunks))
    return out


def with_continuation(ranked: Sequence[tuple[int, float, list]], k: int,
                      partner: Mapping[int, int]) -> list[tuple[int, float, list]]:
    """The `k` best of `ranked` (pages_from_chunks' output), with the best page's `partner` (the other half of a slide
    continued over two pages) second when it is not among them: one chart's title and values can sit on either half.
    A partner that matched nothing comes with the best page's score and no passages."""
    top = list(ranked[:k])
    other = partner.get(top[0][0]) if top else None
    if other is None or any(page == other for page, _, _ in top):
        return top
    entry = next((r for r in ranked if r[0] == other), (other, top[0][1], []))
    return [top[0], entry, *top[1:]][:k]
