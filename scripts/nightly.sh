#!/usr/bin/env bash
# Nightly drift check: run every suite of a folder against the configured model and judge, report each
# against its baseline, write reports/index.html, and exit non-zero when anything regressed.
#
#   scripts/nightly.sh [SUITES_DIR]          (default: suites)
#   MODEL=vllm-qwen JUDGE=claude scripts/nightly.sh suites/
#
# Environment: MODEL, JUDGE (names in evals.yaml; defaults from the config), EVALS (the command, default
# `evals`, or .venv/bin/evals when present), REPORTS (reports folder), CONFIG (config file).
# FRONTIER (a model in evals.yaml, e.g. claude): also answer each suite with it, judged the same way, and
# write the routing table (`evals route`, evals docs routing) beside the local run's scorecard as route.md;
# each night's table says which areas changed recommendation. Restricted items stay home (never sent).
# A batch judge (`judging: batch`, evals docs batch) needs no flag: `evals run` waits for its batches. DETACH=1
# submits tonight's batches and collects them the next night instead: the runs last night left pending are
# resumed first (`evals run --resume ID --detach`) and reported once collected; tonight's runs start with
# --detach and are reported the night they are collected (a pending run's routing table is not written).
# After the runs, `evals purge --if-configured` removes the text of runs older than `retention.text_days`
# of evals.yaml (nothing when it is not set); see evals docs retention.
# Exit: 0 no regression, 1 a regression was found, 2 a suite could not be run (or the purge failed).
set -uo pipefail
SUITES_DIR="${1:-suites}"
# Run from the project folder (where evals.yaml is). The command: $EVALS, else `evals` on PATH, else this
# checkout's .venv.
EVALS="${EVALS:-$(command -v evals || echo "$(dirname "$0")/../.venv/bin/evals")}"
common=()
[ -n "${REPORTS:-}" ] && common+=(--reports "$REPORTS")
[ -n "${CONFIG:-}" ] && common+=(--config "$CONFIG")
run_opts=(--tag nightly)
[ -n "${MODEL:-}" ] && run_opts+=(--model "$MODEL")
[ -n "${JUDGE:-}" ] && run_opts+=(--judge "$JUDGE")
[ -n "${DETACH:-}" ] && run_opts+=(--detach)

status=0
# The status of a run (`evals runs list --json` writes one JSON object a line; run ids are plain names).
run_status() {
  "$EVALS" runs list --json "${common[@]}" | grep -F "\"run_id\": \"$1\"," | sed -E 's/.*"status": "([a-z]+)".*/\1/'
}
report() {
  "$EVALS" report "$1" --fail-on-regression "${common[@]}"
  case $? in
    0) ;;
    1) [ "$status" -eq 0 ] && status=1 ;;
    *) status=2 ;;
  esac
}
if [ -n "${DETACH:-}" ]; then
  # Last night's runs still waiting for their batches: collect what ended, report what finished.
  for run_id in $("$EVALS" runs list --json "${common[@]}" | grep '"status": "pending"' | grep '"nightly"' \
      | sed -E 's/.*"run_id": "([^"]+)".*/\1/'); do
    echo "== collect $run_id"
    if ! "$EVALS" run --resume "$run_id" --detach "${common[@]}"; then
      echo "!! $run_id could not be collected" >&2
      status=2
    elif [ "$(run_status "$run_id")" = finished ]; then
      report "$run_id"
    fi
  done
fi
shopt -s nullglob
for suite in "$SUITES_DIR"/*/ "$SUITES_DIR"/*.yaml "$SUITES_DIR"/*.yml "$SUITES_DIR"/*.jsonl "$SUITES_DIR"/*.csv; do
  case "$suite" in *.rejected.jsonl) continue ;; esac  # what suite review rejected is not a suite
  suite="${suite%/}"
  # Unique across machines sharing one store: suite, model, time and 32 random bits.
  run_id="nightly-$(printf '%s-%s' "$(basename "$suite")" "${MODEL:-default}" | tr -c 'A-Za-z0-9_-' '-' | cut -c1-80)-$(date -u +%Y%m%dT%H%M%SZ)-$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
  echo "== $suite → $run_id"
  if ! "$EVALS" run --suite "$suite" --run-id "$run_id" "${run_opts[@]}" "${common[@]}"; then
    echo "!! $suite could not be run" >&2
    status=2
    continue
  fi
  if [ -n "${DETACH:-}" ] && [ "$(run_status "$run_id")" = pending ]; then
    echo "== $run_id is pending: its batches are collected the next night"
    continue
  fi
  report "$run_id"
  if [ -n "${FRONTIER:-}" ]; then
    frontier_opts=(--tag nightly-frontier --model "$FRONTIER")
    [ -n "${JUDGE:-}" ] && frontier_opts+=(--judge "$JUDGE")
    if ! "$EVALS" run --suite "$suite" --run-id "$run_id-frontier" "${frontier_opts[@]}" "${common[@]}" \
      || ! "$EVALS" route --local "$run_id" --frontier "$run_id-frontier" --format md \
        --out "${REPORTS:-reports}/runs/$run_id/route.md" "${common[@]}"; then
      echo "!! $suite could not be routed against $FRONTIER" >&2
      status=2
    fi
  fi
done
"$EVALS" purge --if-configured "${common[@]}" || status=2
"$EVALS" index "${common[@]}"
exit "$status"
