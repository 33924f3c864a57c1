"""Small helpers shared by tests (importable because pytest puts tests/ on sys.path for its conftest)."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    """A loopback port nobody listens on right now (also used as a 'closed port' for backend-down tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Terminate a server the test started; kill it if it does not exit in time."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def serving(home: Path, log: Path) -> Iterator[str]:
    """`reportqa serve` on `home` in a subprocess (output in `log`); yields its URL (with a trailing /) once the chat
    answers."""
    port = free_port()
    env = {**os.environ, "REPORTQA_HOME": str(home), "REPORTQA_HOST": "127.0.0.1", "REPORTQA_PORT": str(port)}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "reportqa.app.cli", "serve"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                pytest.fail(f"reportqa serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"reportqa serve did not start:\n{log.read_text()[-3000:]}")
                time.sleep(1)
        yield url
    finally:
        stop(proc, timeout=60)


def private_home(tmp_path: Path, home: Path):
    """Settings on a private copy of a prepared home, so a test may change its library."""
    import shutil

    from reportqa.settings import load_settings

    copy = tmp_path / "home"
    shutil.copytree(home, copy, symlinks=True)
    return load_settings(home=copy)
