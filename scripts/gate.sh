#!/usr/bin/env bash
# CI gate: run a suite against the candidate model, then decide whether it may replace the baseline.
#
#   scripts/gate.sh SUITE CANDIDATE_MODEL [BASELINE_NAME]     (baseline default: prod)
#
# Writes reports/gate-junit.xml; appends the verdict to $GITHUB_STEP_SUMMARY when set.
# Exit: 0 pass, 1 fail, 2 cannot decide (or the run failed).
set -uo pipefail
SUITE="$1"; MODEL="$2"; BASELINE="${3:-prod}"
# Run from the project folder (where evals.yaml is). The command: $EVALS, else `evals` on PATH, else this
# checkout's .venv.
EVALS="${EVALS:-$(command -v evals || echo "$(dirname "$0")/../.venv/bin/evals")}"
run_id="candidate-$(date -u +%Y%m%dT%H%M%SZ)"
"$EVALS" run --suite "$SUITE" --model "$MODEL" --run-id "$run_id" --tag candidate ${JUDGE:+--judge "$JUDGE"} || exit 2
"$EVALS" report "$run_id" --baseline "$BASELINE" || true
exec "$EVALS" gate --candidate "$run_id" --baseline "$BASELINE" --junit reports/gate-junit.xml ${POLICY:+--policy "$POLICY"}
