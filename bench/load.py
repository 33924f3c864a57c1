"""Load test: N concurrent chat sessions against the running app through gradio_client, on loopback only.

    python -m reportqa.bench.load [--sessions 20] [--turns 1] [--url http://127.0.0.1:7860/] [--timeout 1800]

Without --url it starts `reportqa serve` itself (settings from the REPORTQA_* environment, bound to 127.0.0.1, with
a queue long enough for every session) and stops it at the end. Each session is its own gradio_client Client asking
`turns` questions from the QA set through the `ask` API, a follow-up carrying the session's history. Sessions start
`--stagger` seconds apart, so the order they join the queue is known and fairness can be checked: generations run
one at a time, and a fair (first come, first served) queue starts them in joining order.

Recorded per question: the wait in the queue (submit -> processing starts), the service time, the end-to-end
latency and the outcome (answered, refused, LLM error, busy, failed, timed out). "Lost" counts the questions that got
neither an answer nor a clear message. The server's resident memory (with its children) is sampled throughout.
Everything stops by itself: at the end of the last session, or at --timeout, when outstanding questions are
cancelled and counted as timed out. Figures go to stdout and <out>/load.json; method and latest figures:
docs/reliability.md."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

from reportqa.bench import stats
from reportqa.errors import UserError
from reportqa.settings import Settings, load_settings

log = logging.getLogger("reportqa.bench.load")
POLL_S = 0.05  # how often a session looks at its job's status
RSS_EVERY_S = 0.25


@dataclass
class Turn:
    session: int
    turn: int
    question: str
    lang: str
    submitted: float  # seconds since the run started
    started: float | None = None  # processing began on the server
    ended: float | None = None
    outcome: str = "timeout"  # answered | refused | llm_error | busy | failed | timeout
    pages: int = 0  # cited pages
    message: str = ""  # the error or busy message, when there is one

    @property
    def wait_s(self) -> float | None:
        return None if self.started is None else self.started - self.submitted

    @property
    def latency_s(self) -> float | None:
        return None if self.ended is None else self.ended - self.submitted


class RssSampler:
    """Peak and last resident memory of a process and its children, sampled in a thread."""

    def __init__(self, pid: int):
        import psutil

        self._proc = psutil.Process(pid)
        self.samples: list[tuple[float, float]] = []  # (time, MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def mb(self) -> float:
        import psutil

        procs = [self._proc, *self._proc.children(recursive=True)]
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:  # a child that just ended
                pass
        return total / 2**20

    def _run(self):
        t0 = time.monotonic()
        while not self._stop.wait(RSS_EVERY_S):
            try:
                self.samples.append((time.monotonic() - t0, self.mb()))
            except Exception:  # the server went away; the run reports it
                return

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Server:
    """`reportqa serve` on a free loopback port, started and stopped by the load test."""

    def __init__(self, settings: Settings, ready_timeout: float, log_path: Path):
        from reportqa.bench.run import settings_env

        port = _free_port()
        self.url = f"http://127.0.0.1:{port}/"
        with open(log_path, "w") as server_log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "reportqa.app.cli", "serve", "--port", str(port)],
                                         env=settings_env(settings.replace(host="127.0.0.1", port=port)),
                                         stdout=server_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_timeout
        log.info("starting the app on %s (pid %d, log in %s); the first start builds the index", self.url,
                 self.proc.pid, log_path)
        while not _responds(self.url):
            if self.proc.poll() is not None:
                raise UserError(f"the app exited with code {self.proc.returncode} before serving (see {log_path})")
            if time.monotonic() > deadline:
                self.stop()
                raise UserError(f"the app did not come up within {ready_timeout:.0f} s")
            time.sleep(0.5)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _responds(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def pick_questions(n: int) -> list[tuple[str, str]]:
    """(question, lang) for n sessions: the bench's deterministic sample of the QA set, half Chinese, answerable
    ones first, repeated when n is larger than the set."""
    from reportqa.bench.run import sample_questions
    from reportqa.eval.runner import DEFAULT_QA, load_qa

    items = [it for it in load_qa(DEFAULT_QA) if it.kind != "unanswerable"]
    picked = sample_questions(items, min(n, len(items)))
    return [(picked[i % len(picked)].question, picked[i % len(picked)].lang) for i in range(n)]


FOLLOW_UP = {"en": "And what does the report say about its trend?", "zh": "报告里它的趋势如何？"}


@dataclass
class Run:
    """What the sessions share: the clock, the deadline, the joining schedule and the results."""

    t0: float
    deadline: float
    stagger: float
    stop: threading.Event
    out: list[Turn]


def _session(k: int, client, question: tuple[str, str], turns: int, run: Run) -> None:
    from gradio_client.utils import Status

    t0, deadline, out, stop = run.t0, run.deadline, run.out, run.stop
    time.sleep(max(0.0, t0 + k * run.stagger - time.monotonic()))  # join in session order
    history: list[list[str]] = []
    for n in range(turns):
        text, lang = question if n == 0 else (FOLLOW_UP[question[1]], question[1])
        turn = Turn(k, n, text, lang, time.monotonic() - t0)
        out.append(turn)
        job = client.submit(question=text, lang="auto", history=history, api_name="/ask")
        while not job.done():
            if stop.is_set() or time.monotonic() > deadline:
                job.cancel()
                return
            status = job.status()
            if turn.started is None and status.code in (Status.PROCESSING, Status.ITERATING, Status.FINISHED):
                turn.started = time.monotonic() - t0
            if status.code == Status.QUEUE_FULL:
                break
            time.sleep(POLL_S)
        turn.ended = time.monotonic() - t0
        try:
            result = job.result(timeout=max(1.0, deadline - time.monotonic()))
        except Exception as e:  # the app's short messages arrive as AppError; busy as a queue-full error
            turn.message = str(e)[:200]
            full = job.status().code == Status.QUEUE_FULL or re.search(r"queue is full|busy", turn.message, re.I)
            turn.outcome = "busy" if full else "failed"
            return
        if turn.started is None:
            turn.started = turn.ended  # finished between two polls
        turn.pages = len({c["page"] for c in result["citations"]})
        turn.outcome = "llm_error" if result["error"] else "refused" if result["refused"] else "answered"
        turn.message = result["error"] or ""
        history.append([text, result["answer"]])


def overtakes(turns: list[Turn]) -> int:
    """Pairs of first questions where the later-submitted one started processing first: 0 in a FIFO queue."""
    firsts = sorted((t for t in turns if t.turn == 0 and t.started is not None), key=lambda t: t.submitted)
    return sum(1 for i, a in enumerate(firsts) for b in firsts[i + 1:] if b.started < a.started)


def run_load(settings: Settings, sessions: int = 20, turns: int = 1, url: str | None = None, pid: int | None = None,
             timeout: float = 1800.0, stagger: float = 0.25, warmup: bool = True, queue_size: int | None = None,
             server_log: Path = Path(os.devnull)) -> dict:
    from gradio_client import Client

    if sessions < 1 or turns < 1:
        raise UserError("--sessions and --turns must be at least 1")
    server = None
    if url is None:
        queue_size = queue_size or max(settings.queue_size, sessions)  # by default every session finds a place
        server = Server(settings.replace(queue_size=queue_size), timeout, server_log)
        url, pid = server.url, server.proc.pid
    elif not _loopback(url):
        raise UserError(f"{url}: the load test only runs against a loopback address")
    client_args = {"src": url, "verbose": False, "download_files": False, "analytics_enabled": False}
    if settings.auth_user:
        client_args["auth"] = (settings.auth_user, settings.auth_password)
    rss = RssSampler(pid) if pid else None
    try:
        warm = None
        if warmup:  # loads the model and warms the caches, so the sessions measure serving, not start-up
            log.info("warm-up question")
            t = time.monotonic()
            Client(**client_args).predict(question="What is this report about?", api_name="/ask")
            warm = time.monotonic() - t
        rss_start = rss.mb() if rss else None
        if rss:
            rss.start()
        questions = pick_questions(sessions)
        log.info("connecting %d sessions", sessions)
        clients = [Client(**client_args) for _ in range(sessions)]  # each its own gradio session
        t0 = time.monotonic()
        run = Run(t0, t0 + timeout, stagger, threading.Event(), [])
        threads = [threading.Thread(target=_session, args=(k, clients[k], questions[k], turns, run), daemon=True)
                   for k in range(sessions)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(max(0.0, run.deadline - time.monotonic()) + 5)
        run.stop.set()
        out = run.out
        wall = time.monotonic() - t0
        if rss:
            rss.stop()
    finally:
        if server:
            server.stop()
    return summarize(out, sessions, turns, wall, warm, rss_start, rss.samples if rss else [], timeout)


def summarize(turns: list[Turn], sessions: int, per_session: int, wall: float, warm: float | None,
              rss_start: float | None, rss_samples: list[tuple[float, float]], timeout: float) -> dict:
    asked = sessions * per_session
    outcomes = {k: sum(t.outcome == k for t in turns)
                for k in ("answered", "refused", "llm_error", "busy", "failed", "timeout")}
    outcomes["not_asked"] = asked - len(turns)  # follow-ups after a failure or past the deadline
    done = [t for t in turns if t.ended is not None and t.outcome not in ("failed", "timeout")]
    service = [t.ended - t.started for t in done if t.started is not None]
    peak = max((mb for _, mb in rss_samples), default=None)
    return {
        "sessions": sessions, "turns_per_session": per_session, "questions": asked, "timeout_s": timeout,
        "wall_s": round(wall, 1), "warmup_s": None if warm is None else round(warm, 1),
        "outcomes": outcomes,
        "lost": outcomes["failed"] + outcomes["timeout"] + outcomes["not_asked"],
        "latency_s": _rounded(stats.dist([t.latency_s for t in done])),
        "wait_s": _rounded(stats.dist([t.wait_s for t in done])),
        "service_s": _rounded(stats.dist(service)),
        "throughput_per_min": round(60 * len(done) / wall, 2) if wall else None,
        "fifo_overtakes": overtakes(turns),
        "rss_mb": {"start": _r(rss_start), "peak": _r(peak), "end": _r(rss_samples[-1][1] if rss_samples else None),
                   "samples": len(rss_samples)},
        "turns": [{**asdict(t), "wait_s": _r(t.wait_s), "latency_s": _r(t.latency_s)} for t in
                  sorted(turns, key=lambda t: (t.session, t.turn))],
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _rounded(d: dict) -> dict:
    return {k: (v if k == "n" else _r(v)) for k, v in d.items()}


def render(r: dict) -> str:
    o = r["outcomes"]
    lines = [
        f"{r['sessions']} sessions x {r['turns_per_session']} question(s) in {r['wall_s']} s "
        f"(warm-up {r['warmup_s']} s), {r['throughput_per_min']} answers/min",
        "outcomes: " + ", ".join(f"{k} {v}" for k, v in o.items()) + f"  ->  lost {r['lost']}",
        f"latency  p50 {r['latency_s']['p50']} s  p95 {r['latency_s']['p95']} s",
        f"wait     p50 {r['wait_s']['p50']} s  p95 {r['wait_s']['p95']} s  (queue, before processing)",
        f"service  p50 {r['service_s']['p50']} s  p95 {r['service_s']['p95']} s  (one generation)",
        f"fairness {r['fifo_overtakes']} overtakes in the queue (0 = first come, first served)",
        f"server RSS  start {r['rss_mb']['start']} MB  peak {r['rss_mb']['peak']} MB  end {r['rss_mb']['end']} MB",
        "per session (submitted -> wait / latency, outcome):",
    ]
    lines += [f"  #{t['session']:<3d}{t['turn']}  {t['submitted']:6.1f}s  wait {t['wait_s']}  latency {t['latency_s']}"
              f"  {t['outcome']}{' ' + t['message'][:60] if t['message'] else ''}" for t in r["turns"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reportqa.bench.load", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--turns", type=int, default=1, help="questions per session (the later ones are follow-ups)")
    ap.add_argument("--url", help="a running app on loopback (default: start one)")
    ap.add_argument("--pid", type=int, help="with --url: the server's pid, for its memory")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds for the whole run")
    ap.add_argument("--stagger", type=float, default=0.25, help="seconds between session starts")
    ap.add_argument("--no-warmup", action="store_true")
    ap.add_argument("--queue-size", type=int, help="the started app's queue (default: one place per session); "
                                                     "smaller shows the busy message")
    ap.add_argument("--out", default="bench/out")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        result = run_load(load_settings(), args.sessions, args.turns, args.url, args.pid, args.timeout,
                          args.stagger, not args.no_warmup, args.queue_size, out / "load-server.log")
    except UserError as e:
        print(f"load: {e}", file=sys.stderr)
        return 2
    (out / "load.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print(render(result))
    return 0 if result["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
