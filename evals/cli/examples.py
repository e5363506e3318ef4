"""The examples that end the ``--help`` of the main commands, so a reader sees a working line first."""

from __future__ import annotations

EXAMPLES: dict[str, tuple[str, ...]] = {
    "init": (
        "evals init                          # scaffold a project here (never overwrites a file)",
        "evals init my-evals                 # or in a new folder",
    ),
    "demo": (
        "evals demo                          # the bundled model on the demo suite, offline judge",
        "evals demo --judge local            # the bundled model grades its own answers",
    ),
    "run": (
        "evals run --suite suites/mydomain --model vllm-qwen --judge claude --tag nightly",
        "evals run --suite suites/mydomain --judge claude --dry-run     # calls and cost, nothing sent",
        "evals run --suite suites/mydomain --area billing --limit 20   # a subset",
        "evals run --resume RUN_ID                                      # continue an interrupted run",
        "evals run --suite suites/mydomain --plan-only                  # create it for evals worker",
    ),
    "worker": (
        "evals worker RUN_ID                          # on each machine sharing the PostgreSQL store",
        "evals worker RUN_ID --workers-concurrency 4  # at most 4 calls in flight from this worker",
    ),
    "report": (
        "evals report                        # the latest run, against its baseline",
        "evals report RUN_ID --baseline prod # against a named baseline",
        "evals report --fail-on-regression   # exit 1 when an area regressed (for CI)",
    ),
    "compare": ("evals compare RUN_A RUN_B           # the paired analysis per area, no verdict",),
    "gate": (
        "evals baseline set RUN_ID --name prod                          # approve a run first",
        "evals gate --candidate RUN_ID --baseline prod --junit gate.xml",
    ),
    "route": (
        "evals route --local local-1 --frontier claude-1",
        "evals route --local local-1 --frontier claude-1 --format md > decision.md",
    ),
    "judge calibrate": (
        "evals judge calibrate --labels demo --judge claude   # the hand-labelled demo set",
        "evals judge calibrate --labels labels.jsonl --judge claude --min-kappa 0.6",
    ),
    "suite generate": (
        "evals suite generate --from docs/refunds.md --generator claude --area billing --n 30 --out suites/billing.jsonl",
        "evals suite generate --from docs/refunds.md --generator claude --area billing --out b.jsonl --dry-run",
    ),
    "docs": (
        "evals docs                          # the topics",
        "evals docs redaction                # one topic",
        "evals docs redaction > redaction.md # as Markdown",
    ),
}
"""Example lines per command path (``judge calibrate``), each a line a user can type."""


def with_examples(epilog: str, command: str) -> str:
    """``epilog`` (the exit codes) followed by the command's examples, kept unwrapped by click (``\\b``)."""
    lines = "\n".join(f"  {line}" for line in EXAMPLES[command])
    return f"{epilog}\n\n\b\nExamples:\n{lines}"
