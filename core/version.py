"""What code is running: the git commit of a source checkout, and the installed package's version. Standard library
only. Results, benchmarks and feedback record these so a line can be traced back to the code that produced it."""

from __future__ import annotations

import functools
import importlib.metadata
import subprocess
from pathlib import Path

# The repository root of a source checkout (core/ is the `reportqa` package); site-packages for an installed wheel.
ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def git_commit() -> str | None:
    """The short commit of the checkout this code runs from; None for an installed package or without git. The
    checkout must be this repository itself, not some other repository that happens to contain site-packages."""
    try:
        top, commit = subprocess.run(["git", "rev-parse", "--show-toplevel", "--short", "HEAD"], cwd=ROOT,
                                     capture_output=True, text=True, timeout=10, check=True).stdout.splitlines()
    except (OSError, subprocess.SubprocessError, ValueError):  # no git, not a checkout, or odd output
        return None
    return commit if Path(top).resolve() == ROOT else None


@functools.cache
def package_version() -> str:
    try:
        return importlib.metadata.version("reportqa")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def code_version() -> str:
    """The commit of a checkout, else the package version."""
    return git_commit() or package_version()
