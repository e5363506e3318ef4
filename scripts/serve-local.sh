#!/usr/bin/env bash
# Serve the bundled SmolLM2-135M-Instruct on llama.cpp at http://127.0.0.1:${PORT:-8000}/v1 (foreground),
# with ${PARALLEL:-8} slots; set max_concurrency to match in evals.yaml (model name: smollm2-135m-instruct).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${EVALS:-.venv/bin/evals}" serve-local --port "${PORT:-8000}" --parallel "${PARALLEL:-8}"
