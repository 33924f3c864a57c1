"""Small helpers shared by tests (importable because pytest puts tests/ on sys.path for its conftest)."""

import socket
import subprocess


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
