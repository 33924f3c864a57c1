"""Plumbing of the load test (bench/load.py): what counts as lost, how queue fairness is scored, and that it only
ever talks to loopback. The load itself is a benchmark (figures in docs/reliability.md), not a test."""

from __future__ import annotations

import pytest

from reportqa.bench.load import Turn, overtakes, run_load, summarize
from reportqa.errors import UserError


def turn(k, submitted, started, ended, outcome="answered", n=0):
    return Turn(k, n, f"q{k}", "en", submitted, started, ended, outcome)


def test_fifo_queue_has_no_overtakes():
    turns = [turn(0, 0.0, 0.1, 10), turn(1, 0.2, 10, 20), turn(2, 0.4, 20, 30)]
    assert overtakes(turns) == 0
    turns[2].started = 5  # submitted last, served before session 1
    assert overtakes(turns) == 1


def test_lost_counts_failures_timeouts_and_questions_never_asked():
    turns = [turn(0, 0, 1, 2), turn(1, 0, 2, 3, "refused"), turn(2, 0, 3, 4, "busy"), turn(3, 0, None, None, "failed"),
             turn(4, 0, None, None, "timeout")]
    r = summarize(turns, sessions=6, per_session=1, wall=10, warm=None, rss_start=100, rss_samples=[(1, 120), (2, 110)],
                  timeout=60)
    assert r["outcomes"] == {"answered": 1, "refused": 1, "llm_error": 0, "busy": 1, "failed": 1, "timeout": 1,
                             "not_asked": 1}
    assert r["lost"] == 3  # busy and refused are clear answers, not losses
    assert r["latency_s"]["n"] == 3 and r["wait_s"]["p50"] == 2
    assert r["rss_mb"] == {"start": 100, "peak": 120, "end": 110, "samples": 2}


def test_refuses_a_non_loopback_app(settings):
    with pytest.raises(UserError, match="loopback"):
        run_load(settings, sessions=1, url="http://192.0.2.1:7860/")
