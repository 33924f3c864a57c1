"""Security properties of a served app and of the package: loopback by default, optional password, uploads only
within the size limit (and none beyond loopback without the password), no file served from outside gradio's own
cache, no secrets in logs, dependencies pinned to the tested versions.

The served-app tests run the real `reportqa serve` in a subprocess (real index, scripted LLM or a loopback
OpenAI-compatible stand-in); route tests run the same app in-process."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest
from gradio_client import Client
from gradio_client.exceptions import AuthenticationError
from support import free_port

from reportqa.app.cli import main
from reportqa.app.ui import Chat, build_app, launch
from reportqa.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = ["core", "ingest", "index", "answer", "app", "eval", "bench"]
OWN_ENV = {"REPORTQA_HOST", "REPORTQA_PORT", "REPORTQA_AUTH_USER", "REPORTQA_AUTH_PASSWORD"}  # the test decides these
STARTUP_S = 600  # a cold start may build the index; a hang becomes a failure after this long, not a speed bar


def http(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Server:
    """`reportqa serve` in a subprocess, its output collected for the log checks."""

    def __init__(self, home: Path, *args: str, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reportqa.app.cli", *args, "serve", "--port", str(self.port)],
            env={**{k: v for k, v in os.environ.items() if k not in OWN_ENV}, "REPORTQA_HOME": str(home),
                 "REPORTQA_LLM": "fake", **env},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()
        deadline = time.monotonic() + STARTUP_S
        while not self._up():
            assert self.proc.poll() is None, "serve exited:\n" + "".join(self.lines)
            assert time.monotonic() < deadline, "serve never came up:\n" + "".join(self.lines)
            time.sleep(0.2)

    def _up(self) -> bool:
        try:
            return http(self.url)[0] == 200
        except OSError:
            return False

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        time.sleep(0.2)  # the reader thread drains the pipe
        return "".join(self.lines)


# ---------------------------------------------------------------- binding and authentication

def test_serve_defaults_to_loopback(monkeypatch):
    monkeypatch.delenv("REPORTQA_HOST", raising=False)
    assert load_settings().host == "127.0.0.1"
    seen = []
    monkeypatch.setattr("reportqa.app.ui.serve", seen.append)
    assert main(["serve"]) == 0
    assert seen[0].host == "127.0.0.1"
    assert main(["serve", "--host", "0.0.0.0"]) == 0  # only when told
    assert seen[1].host == "0.0.0.0"


@pytest.fixture(scope="module")
def server(built_index):
    s = Server(built_index.home)
    yield s
    s.stop()


def test_served_app_listens_on_loopback_only(server):
    listening = [c.laddr for c in psutil.Process(server.proc.pid).net_connections("inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and {a.ip for a in listening} == {"127.0.0.1"} and {a.port for a in listening} == {server.port}
    outward = [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
               if a.family == socket.AF_INET and not a.address.startswith("127.")]
    for ip in outward:  # the machine's other addresses do not reach it
        with socket.socket() as s, pytest.raises(OSError):
            s.settimeout(5)
            s.connect((ip, server.port))


def test_auth_refuses_unauthenticated_requests(built_index):
    user, password = "reader", "pw-" + os.urandom(8).hex()
    s = Server(built_index.home, REPORTQA_AUTH_USER=user, REPORTQA_AUTH_PASSWORD=password)
    try:
        for path in ["config", "gradio_api/info", "gradio_api/openapi.json"]:
            assert http(s.url + path)[0] == 401
        join = json.dumps({"data": ["ChatGPT users?", "auto", []], "fn_index": 0, "session_hash": "x"}).encode()
        assert http(s.url + "gradio_api/queue/join", join, {"Content-Type": "application/json"})[0] == 401
        assert http(s.url + "gradio_api/call/ask", b'{"data": ["q"]}', {"Content-Type": "application/json"})[0] == 401
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert http(s.url + "login", f"username={user}&password=wrong".encode(), form)[0] != 200
        with pytest.raises(AuthenticationError, match="credentials were not provided"):
            Client(s.url, verbose=False)
        with pytest.raises(ValueError, match="Could not login"):  # gradio answers 400, gradio_client says this
            Client(s.url, auth=(user, "wrong"), verbose=False)
        out = Client(s.url, auth=(user, password), verbose=False).predict(
            question="How many weekly active users did ChatGPT reach?", api_name="/ask")
        assert out["answer"] and out["retrieved"]
    finally:
        log = s.stop()
    assert password not in log


# ---------------------------------------------------------------- uploads and files

@pytest.fixture(scope="module")
def app_url(built_index):
    settings = built_index.replace(llm="fake", port=free_port(), max_upload_mb=1)
    app = build_app(settings)
    launch(app, settings, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{settings.port}/"
    app.close()


def _multipart(name: str, data: bytes) -> tuple[bytes, dict]:
    b = "reportqa-test-boundary"
    body = (f'--{b}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={b}"}


UPLOAD_KINDS = {"File", "UploadButton", "Image", "Audio", "Video", "MultimodalTextbox", "Gallery", "Model3D"}


def test_with_uploads_off_the_app_takes_no_file(built_index):
    """Exposed without a password (or upload=off) the chat takes no files, so gradio's generic upload route must not
    store any: otherwise anyone who can reach the app can fill the disk."""
    settings = built_index.replace(llm="fake", port=free_port(), upload="off")
    app = build_app(settings)
    assert not {type(b).__name__ for b in app.blocks.values()} & UPLOAD_KINDS
    launch(app, settings, prevent_thread_lock=True, quiet=True)
    try:
        status, body = http(f"http://127.0.0.1:{settings.port}/gradio_api/upload",
                            *_multipart("evil.html", b"<script>alert(1)</script>"))
    finally:
        app.close()
    assert status == 413, body


def test_with_uploads_on_the_route_takes_nothing_over_the_limit(app_url):
    """On loopback the chat's upload button is there, and gradio's route refuses anything over max_upload_mb."""
    status, body = http(app_url + "gradio_api/upload", *_multipart("big.pdf", b"%PDF-1.7\n" + b"0" * 2**20))
    assert status == 413, body
    status, body = http(app_url + "gradio_api/upload", *_multipart("small.pdf", b"%PDF-1.7\n"))
    assert status == 200, body


TRAVERSALS = [
    "gradio_api/file={report}",
    "gradio_api/file={home}/index/manifest.json",
    "gradio_api/file=/etc/passwd",
    "gradio_api/file=../../../../../../etc/passwd",
    "gradio_api/file=%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "gradio_api/file=..%2f..%2f..%2f..%2fetc%2fpasswd",
    "file=/etc/passwd",
    "static/../../../../etc/passwd",
    "assets/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "gradio_api/file=~/.ssh/id_rsa",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_file_outside_the_app_is_served(built_index, app_url, path):
    url = app_url + path.format(report=built_index.report, home=built_index.home)
    status, body = http(url)
    assert status in (400, 403, 404), (status, body[:200])
    assert b"root:" not in body and b"fingerprint" not in body and b"BOND" not in body


@pytest.mark.parametrize("n", ["../../etc/passwd", "/etc/passwd", "1/../../2", "-1", "99999999999999999999", "nan",
                               "1e9", "<img src=x>", ""])
def test_page_viewer_takes_numbers_only(built_index, retriever, n):
    """The page viewer reads pages from the index by number; no input names a file or shows unescaped text."""
    from reportqa.answer import AnswerEngine

    chat = Chat(built_index, AnswerEngine(built_index.replace(llm="fake"), retriever=retriever))
    shown = chat.open_page(n, {})[-1]
    assert "root:" not in shown and "<img" not in shown


# ---------------------------------------------------------------- secrets in logs

class _KeyCheckingOpenAI(BaseHTTPRequestHandler):
    """An OpenAI-compatible stand-in that records the bearer token and streams one grounded-looking sentence."""

    seen_keys: list[str] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.seen_keys.append(self.headers.get("Authorization", ""))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": "NOT IN REPORT"}, "finish_reason": None}]}
        self.wfile.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())


def test_secrets_never_reach_the_logs(built_index):
    """Debug logging on, the API key in use (the backend receives it) and the password used, right and wrong:
    neither appears in anything the server prints."""
    key, password = "sk-test-" + os.urandom(12).hex(), "pw-" + os.urandom(12).hex()
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _KeyCheckingOpenAI)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    s = Server(built_index.home, "--verbose", REPORTQA_LLM="openai", REPORTQA_OPENAI_API_KEY=key,
               REPORTQA_OPENAI_BASE_URL=f"http://127.0.0.1:{backend.server_address[1]}/v1",
               REPORTQA_AUTH_USER="reader", REPORTQA_AUTH_PASSWORD=password)
    try:
        with pytest.raises(ValueError, match="Could not login"):
            Client(s.url, auth=("reader", password + "x"), verbose=False)
        out = Client(s.url, auth=("reader", password), verbose=False).predict(
            question="How many weekly active users did ChatGPT reach?", api_name="/ask")
        assert out["answer"]
    finally:
        log = s.stop()
        backend.shutdown()
        backend.server_close()
    assert f"Bearer {key}" in _KeyCheckingOpenAI.seen_keys  # the key was really in use...
    assert key not in log and password not in log  # ...and never printed
    assert "DEBUG" in log  # debug logging was on


def test_settings_repr_hides_secrets():
    """Settings objects end up in logs and test reports (pytest prints fixture values on failure)."""
    s = load_settings(openai_api_key="sk-hidden-1", auth_password="pw-hidden-2")
    assert "sk-hidden-1" not in repr(s) and "pw-hidden-2" not in repr(s)


# ---------------------------------------------------------------- dependencies

def _declared() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + [d for group in project["optional-dependencies"].values() for d in group]


def _name(requirement: str) -> str:
    return re.split(r"[\s=<>!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_dependencies_are_pinned_to_the_tested_versions():
    for req in _declared():
        assert re.fullmatch(r"[A-Za-z0-9._-]+(\[[a-z0-9,_-]+\])?==[0-9][A-Za-z0-9.+-]*", req), f"not pinned: {req}"
        name, version = req.split("==")
        try:
            installed = importlib.metadata.version(name.split("[")[0])
        except importlib.metadata.PackageNotFoundError:
            continue  # an extra that this environment did not install
        assert installed.split("+")[0] == version, f"{name}: pinned {version}, tested with {installed}"


def test_every_imported_package_is_declared():
    """A package the code imports directly must be pinned, not merely present as someone else's dependency."""
    declared = {_name(r) for r in _declared()}
    providers = importlib.metadata.packages_distributions()
    missing = set()
    for folder in [*PACKAGE_DIRS, "tests"]:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    tops = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    tops = [node.module.split(".")[0]]
                else:
                    continue
                for top in tops:
                    if top in sys.stdlib_module_names or top == "reportqa" or (REPO / "tests" / f"{top}.py").exists():
                        continue
                    dists = {_name(d) for d in providers.get(top, [top])}
                    if not dists & declared:
                        missing.add(f"{top} ({path.relative_to(REPO)})")
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"
