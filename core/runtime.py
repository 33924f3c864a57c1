"""The llama.cpp runtime: built for the CPU it runs on, and checked to really run there before anyone depends on it.

PyPI carries only llama-cpp-python's sdist, so scripts/setup.sh compiles it. Machines of one kind here do not share a
CPU (an AVX-512 Xeon, an AVX2-only EPYC), so the build uses the host's own instruction set (-march=native) with AMX
kept off (AMX tiles die with SIGILL on some hosts that advertise them), and the wheel cache is keyed on the CPU's
feature flags: a wheel built on another CPU is never picked up. A crash of native code cannot be caught in-process,
so the check loads the model and generates a few tokens in a subprocess and reports how it died.

Standard library only, and outside the stages' packages, so that scripts/setup.sh can call
`python -m reportqa.runtime {key,wheel-dir,build-env}` in a fraction of a second; `reportqa check-runtime` runs the
check."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from reportqa.errors import UserError

LLAMA_VERSION = "0.3.36"  # keep in step with pyproject.toml's llm extra
BUILDS = ("native", "portable")
_NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
# x86 instruction sets that ggml enables by default when GGML_NATIVE is off; all off is the baseline x86-64 level.
_X86_ISA_OPTIONS = ("SSE42", "AVX", "AVX2", "AVX_VNNI", "FMA", "F16C", "BMI2", "AVX512", "AVX512_VBMI",
                    "AVX512_VNNI", "AVX512_BF16", "AMX_TILE", "AMX_INT8", "AMX_BF16")
CHECK_TIMEOUT_S = 300


class RuntimeBroken(UserError):
    """The installed llama.cpp runtime does not run on this machine."""


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags ('flags' on x86, 'Features' on arm64) from /proc/cpuinfo."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in {"flags", "features"}:
            return frozenset(value.split())
    return frozenset()


def cpu_key(machine: str | None = None, flags: frozenset[str] | None = None) -> str:
    """Names the instruction sets a build may use: the machine type and a hash of every feature flag. Any difference
    in flags gives another key; a spurious miss costs one 5-minute build, a spurious hit a crash."""
    machine = machine or platform.machine()
    flags = cpu_flags() if flags is None else flags
    digest = hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:16]
    return f"{machine}-{digest}"


def wheel_dir(cache: Path, build: str = "native", key: str | None = None, version: str = LLAMA_VERSION) -> Path:
    """Where the wheel of one build for one CPU is cached. Wheels of the flat layout used before (cache/*.whl, built
    with AVX-512 forced on) are never looked at."""
    if build not in BUILDS:
        raise ValueError(f"build must be one of {BUILDS}")
    return cache / f"llama-cpp-python-{version}" / f"{key or cpu_key()}-{build}"


def build_env(build: str, machine: str | None = None) -> dict[str, str]:
    """The environment for `pip wheel llama-cpp-python`: CMAKE_ARGS, and on x86 the compiler flags that keep AMX off
    (GCC's explicit -mno-* win over what -march=native implies, whatever their order)."""
    machine = (machine or platform.machine()).lower()
    x86 = machine in {"x86_64", "amd64", "i686", "i386"}
    if build == "native":
        env = {"CMAKE_ARGS": "-DGGML_NATIVE=ON"}
        if x86:
            env["CFLAGS"] = env["CXXFLAGS"] = _NO_AMX
        return env
    if build == "portable":
        args = ["-DGGML_NATIVE=OFF"] + ([f"-DGGML_{o}=OFF" for o in _X86_ISA_OPTIONS] if x86 else [])
        return {"CMAKE_ARGS": " ".join(args)}
    raise ValueError(f"build must be one of {BUILDS}")


# ---------------------------------------------------------------- self-check

# Runs in the subprocess: load, generate a few tokens, report what llama.cpp was compiled with.
_PROBE = """
import json, sys
from llama_cpp import Llama, llama_print_system_info
llm = Llama(model_path=sys.argv[1], n_ctx=256, n_threads=2, verbose=False)
out = llm.create_completion("1, 2, 3,", max_tokens=4, temperature=0)
print(json.dumps({"text": out["choices"][0]["text"], "system_info": llama_print_system_info().decode()}))
"""


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str  # one plain line for the user
    system_info: str = ""


def _death(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        what = {"SIGILL": "Illegal instruction", "SIGSEGV": "Segmentation fault", "SIGBUS": "Bus error",
                "SIGKILL": "killed (out of memory?)"}.get(name, name)
        return f"{what} ({name})"
    return f"exit code {returncode}"


def self_check(model: Path, python: str = sys.executable, probe: str | None = None,
               timeout: float = CHECK_TIMEOUT_S) -> CheckResult:
    """Load `model` and generate a few tokens in a subprocess (`probe`: the code it runs, default _PROBE); say in one
    line how it went."""
    try:
        run = subprocess.run([python, "-c", probe or _PROBE, str(model)], capture_output=True, text=True,
                             timeout=timeout, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    except subprocess.TimeoutExpired:
        return CheckResult(False, f"the llama.cpp runtime did not generate 4 tokens in {timeout:.0f} s")
    if run.returncode == 0:
        try:
            info = json.loads(run.stdout.strip().splitlines()[-1])
            return CheckResult(True, "the llama.cpp runtime loads the model and generates", info["system_info"])
        except (ValueError, IndexError, KeyError):
            return CheckResult(False, "the llama.cpp runtime check printed no result")
    last = next((ln.strip() for ln in reversed(run.stderr.splitlines()) if ln.strip()), "")
    why = _death(run.returncode)
    hint = ("it was built for instructions this CPU does not have; run `make setup` (scripts/setup.sh) to rebuild "
            "it for this CPU" if run.returncode == -signal.SIGILL else
            "run `make setup` (scripts/setup.sh) to reinstall it" + (f"; it said: {last[:160]}" if last else ""))
    return CheckResult(False, f"the llama.cpp runtime crashed while generating: {why}; {hint}")


def _library_stamp() -> str:
    """Identifies the installed llama.cpp build without importing it (an import alone can crash on a foreign CPU)."""
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeBroken("llama-cpp-python is not installed; run `make setup` (scripts/setup.sh)")
    root = Path(next(iter(spec.submodule_search_locations)))
    libs = sorted((root / "lib").glob("*.so*")) or sorted(root.glob("*.so*"))
    return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in libs)


def ensure_runs(model: Path, state_dir: Path, probe: str | None = None) -> str:
    """Raise RuntimeBroken unless the installed runtime was seen to generate with `model` on this CPU. The verdict
    is remembered per (library build, CPU, model), so only the first start after an install pays for the check.
    Returns llama.cpp's system info when the check ran ("" when a remembered verdict was used)."""
    key = {"library": _library_stamp(), "cpu": cpu_key(), "model": f"{model}:{model.stat().st_size}"}
    stamp = state_dir / "runtime-check.json"
    try:
        if json.loads(stamp.read_text()) == key:
            return ""
    except (OSError, ValueError):
        pass
    result = self_check(model, probe=probe)
    if not result.ok:
        raise RuntimeBroken(result.message)
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(json.dumps(key))
    os.replace(tmp, stamp)
    return result.system_info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reportqa.runtime", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("key", help="print this CPU's build key")
    wd = sub.add_parser("wheel-dir", help="print the cache folder of a build for this CPU")
    wd.add_argument("cache", type=Path)
    wd.add_argument("--build", choices=BUILDS, default="native")
    env = sub.add_parser("build-env", help="print the build environment as shell assignments")
    env.add_argument("--build", choices=BUILDS, default="native")
    args = p.parse_args(argv)
    if args.cmd == "key":
        print(cpu_key())
    elif args.cmd == "wheel-dir":
        print(wheel_dir(args.cache, args.build))
    else:
        print("\n".join(f"export {k}={shlex.quote(v)}" for k, v in build_env(args.build).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
