"""What the end of a run prints, for ``evals run`` and ``evals judge rerun`` alike: the per-area table, the
counts, cut-off answers, grader flags, the judge's drift canary, where the results are, the audit anchor."""

from __future__ import annotations

from rich.table import Table

from evals.cli.common import out, plain
from evals.cli.signals import flagged_line
from evals.outbound.audit import audit_line
from evals.results import summarize
from evals.runner import RunOutcome
from evals.scorecard.canary import canary_lines
from evals.store import Store


def print_outcome(store: Store, outcome: RunOutcome) -> None:
    """Print what a finished (or resumed) run did, to stdout."""
    m = outcome.manifest
    table = Table(
        title=plain(f"run {m.run_id}"),
        caption=plain(f"{m.suite_name} · {m.model_name} ({m.model_id or m.model}) · judge {m.judge_model}"),
    )
    for name in ("area", "n", "mean score", "errors"):
        table.add_column(name, justify="left" if name == "area" else "right")
    for row in summarize(outcome.rows):
        mean = "–" if row.mean is None else f"{row.mean:.2f}"
        table.add_row(plain(row.area), str(row.n), mean, str(row.errors))
    out.print(table)
    if m.judge_name == "offline":
        out.print(
            "scores by the offline reference judge (token overlap with the reference), not a frontier judge"
        )
    out.print(
        f"asked {outcome.asked}, judged {outcome.judged}, reused {outcome.reused} cached judgments, "
        f"{outcome.answer_errors} answer errors, {outcome.judge_errors} judge errors"
    )
    cut = sum(1 for row in outcome.rows if row.truncated)
    if cut:
        out.print(
            f"{cut} answer{'s' if cut != 1 else ''} cut off at max_tokens "
            f"({m.config.model.max_tokens}); the judge was told. Raise the model's "
            "max_tokens in evals.yaml if they should be whole"
        )
    if flagged := flagged_line(outcome.rows):
        out.print(plain(flagged), soft_wrap=True)
    for line in canary_lines(store, m.run_id):  # the judge's drift canary, loud when the judge moved
        out.print(plain(line), soft_wrap=True)
    out.print(plain(f"run id: {m.run_id}"), soft_wrap=True)
    out.print(plain(f"results: {store.reports_dir / 'runs' / m.run_id / 'results.jsonl'}"), soft_wrap=True)
    out.print(audit_line(store, m.run_id), soft_wrap=True)  # an anchor for CI logs (evals docs audit)
