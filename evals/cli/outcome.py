"""What the end of a run prints and leaves, for ``evals run``, ``evals demo`` and ``evals judge rerun``
alike: the per-area table, the counts, cut-off answers, grader flags, the judge's drift canary, where the
results are, the audit anchor; the run's page (its scorecard, and the index linking it); and ``NoScore``
(exit 2) for a run that ended without a single score. A run left pending (``--detach``) says what it waits
for instead."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.table import Table

from evals.cli.common import err, flush_warnings, out, plain
from evals.cli.signals import flagged_line
from evals.errors import EvalsError
from evals.names import run_folder
from evals.outbound.audit import audit_line
from evals.records import RunManifest, is_truncated
from evals.results import ErrorKind, ResultRow, group_errors, summarize
from evals.runner import RunOutcome
from evals.scorecard.canary import canary_lines
from evals.store import Store
from evals.store.batches import batches

if TYPE_CHECKING:
    from evals.config import Config
    from evals.scorecard import Scorecard


class NoScore(EvalsError):
    """A run ended without a single score: nothing it measured can be used, so it is no success (exit 2).
    The run is kept and can be resumed once the cause is fixed."""


def print_outcome(store: Store, outcome: RunOutcome, *, check: bool = True, again: str | None = None) -> None:
    """Print what a finished (or resumed) run did, to stdout; then, unless ``check`` is False, raise
    ``NoScore`` when the run holds no score at all (``again`` replaces its ``--resume`` hint)."""
    flush_warnings()  # the count of repeated warnings goes above the summary, not under it
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
    for kind in ("answer", "judge"):
        for line in error_lines(outcome, kind):
            out.print(plain(line), soft_wrap=True)
    cut = sum(1 for row in outcome.rows if row.truncated and is_truncated(row.finish_reason))
    if cut:
        out.print(
            f"{cut} answer{'s' if cut != 1 else ''} cut off at max_tokens "
            f"({m.config.model.max_tokens}); the judge was told. Raise the model's "
            "max_tokens in evals.yaml if they should be whole"
        )
    capped = sum(1 for row in outcome.rows if row.truncated and not is_truncated(row.finish_reason))
    if capped:
        out.print(
            f"{capped} answer{'s' if capped != 1 else ''} longer than max_answer_chars, cut to it before "
            "they were stored and judged; the judge was told"
        )
    if flagged := flagged_line(outcome.rows):
        out.print(plain(flagged), soft_wrap=True)
    for line in canary_lines(store, m.run_id):  # the judge's drift canary, loud when the judge moved
        out.print(plain(line), soft_wrap=True)
    out.print(plain(f"run id: {m.run_id}"), soft_wrap=True)
    out.print(plain(f"results: {store.reports_dir / 'runs' / m.run_id / 'results.jsonl'}"), soft_wrap=True)
    out.print(audit_line(store, m.run_id), soft_wrap=True)  # an anchor for CI logs (evals docs audit)
    if check:
        check_scored(outcome, again)


def print_pending(store: Store, outcome: RunOutcome) -> None:
    """What a run left pending (``--detach``) says: its open batches, and how to collect them."""
    flush_warnings()
    run_id = outcome.manifest.run_id
    waiting = [b for b in batches(store, run_id) if b.collected_at is None]
    verdicts = sum(b.requests for b in waiting)
    out.print(
        plain(
            f"pending: run {run_id} waits for {len(waiting)} batch(es) of its judge ({verdicts} verdicts); "
            f"collect them with: evals run --resume {run_id}"
        ),
        soft_wrap=True,
    )
    out.print(audit_line(store, run_id), soft_wrap=True)


def check_scored(outcome: RunOutcome, again: str | None = None) -> None:
    """``NoScore`` saying why, when the run's rows hold no score at all; ``again`` replaces the hint to
    resume (the demo's bundled server stops with the demo)."""
    check_rows_scored(outcome.manifest, outcome.rows, again)


def check_rows_scored(m: RunManifest, rows: Sequence[ResultRow], again: str | None = None) -> None:
    """``check_scored`` for the rows of run ``m`` (``evals worker`` reads them from the store)."""
    if any(row.score is not None for row in rows):
        return
    resume = again or f"Fix it and continue with: evals run --resume {m.run_id}"
    reason = no_score_reason(rows, m.judge_name)
    end = "" if reason.endswith(("?", ".")) else "."
    raise NoScore(f"run {m.run_id} ended with no score: {reason}{end} The run is kept. {resume}")


def no_score_reason(rows: Sequence[ResultRow], judge: str) -> str:
    """Why rows without a score have none, and what to change: nothing answered, every judge call failed,
    every verdict unparseable, or a count of each."""
    answered = [row for row in rows if row.error_kind != "answer"]
    if not answered:
        return (
            "nothing was answered (every model call failed; see the errors in the results): is the model's "
            "server up and serving its model?"
            if rows
            else "it holds no item"
        )
    errors = [row.judge_error or row.error or "" for row in answered]
    failed = sum(1 for e in errors if "judge call failed" in e)
    unreadable = sum(1 for e in errors if "unparseable verdict" in e)
    n = len(answered)
    other = [e for e in errors if "judge call failed" not in e and "unparseable verdict" not in e]
    example = " ".join((other or errors)[0].split())  # one line, whatever a stored error holds
    example = example if len(example) <= 160 else example[:160] + "…"
    if failed == n:
        return (
            f"every judge call failed ({n} answer{'s' if n != 1 else ''}; the first: {example}): is judge "
            f"{judge!r} up, and its base_url, model and key in evals.yaml right?"
        )
    if unreadable == n:
        return (
            f"every verdict was unparseable ({n} answer{'s' if n != 1 else ''}): judge {judge!r} does not "
            "follow the verdict format; change its 'structured:' setting in evals.yaml or name a model "
            "that follows it"
        )
    counts = [
        (failed, "judge calls failed"),
        (unreadable, "verdicts unparseable"),
        (len(other), "not graded"),
    ]
    return (
        f"none of {n} answers was scored ({', '.join(f'{k} {what}' for k, what in counts if k)}; e.g. "
        f"{example}): check judge {judge!r} in evals.yaml"
    )


def error_lines(outcome: RunOutcome, kind: ErrorKind, example_length: int = 140) -> list[str]:
    """The run's answer or judge errors by kind, most frequent first, each with one example:
    ``judge errors by kind:`` then ``  9 unparseable verdict, e.g. item geo-3: no score in the reply``."""
    groups = group_errors(outcome.rows, kind)
    if not groups:
        return []
    lines = [f"{kind} errors by kind:"]
    for g in groups:
        example = g.example if len(g.example) <= example_length else g.example[: example_length - 1] + "…"
        lines.append(f"  {g.count} {g.kind}, e.g. item {g.item}: {example}")
    return lines


def write_run_page(store: Store, run_id: str | None, config: Config) -> Scorecard | None:
    """Write the run's scorecard (HTML, JSON, Markdown) into ``runs/<run_id>/`` and refresh the index, as
    ``evals report`` does, and print its decision and where; None, writing nothing, when the run stored no
    answer (it stopped before its first, or never started). When it knows its baseline and the decision
    fails an area, ``gate: {confirm_repeats}`` confirms it first, as ``evals gate`` does."""
    from evals.render.pages import write_index, write_scorecard  # the renderers load when a page is written
    from evals.scorecard import build_scorecard

    if run_id is None or not store.has_run(run_id) or not store.answers(run_id):
        return None
    card = build_scorecard(store, run_id, None, config.scorecard, config.gate)
    if config.gate.confirm_repeats and card.baseline and card.decision and card.decision.outcome == "fail":
        from evals.cli.confirm import confirm_failing
        from evals.scorecard.decision import decide, failing_areas

        verdict = decide(store, run_id, card.baseline.run_id, config.gate)
        if failing_areas(verdict):
            confirm_failing(config, store, verdict, allow_judge_change=False)
            card = build_scorecard(store, run_id, card.baseline.run_id, config.scorecard, config.gate)
    paths = write_scorecard(card, run_folder(store.reports_dir, run_id))
    write_index(store)
    if card.decision is not None:
        out.print(plain(card.decision.headline), soft_wrap=True)
    out.print(plain(f"scorecard: {paths['html']}"), soft_wrap=True)
    return card


def write_stopped_page(store: Store, run_id: str | None, config: Config) -> None:
    """``write_run_page`` for a run that stopped early (exit 2): a failure to write it is said on stderr,
    never put in place of what stopped the run."""
    try:
        write_run_page(store, run_id, config)
    except EvalsError as exc:
        err.print(plain(f"the run's scorecard was not written: {exc}"), soft_wrap=True)
