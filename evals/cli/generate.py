"""``evals suite generate`` (a draft suite from a team's documents) and ``evals suite review`` (people accept,
edit or reject what a model wrote)."""

from __future__ import annotations

import getpass
import math
from contextlib import ExitStack
from pathlib import Path

import click

from evals.cli.common import EXIT_CODES_HELP, config_option, err, out, plain, reports_option, reports_path
from evals.cli.examples import with_examples
from evals.cli.local_judge import serve_local_judge
from evals.cli.run import suite
from evals.config import load_config
from evals.errors import EvalsError
from evals.outbound import audit
from evals.outbound.gateway import Gateway
from evals.outbound.telemetry import tracing
from evals.store import open_store

SHOWN_FAILURES = 10
"""Failed chunks listed one a line; the rest are counted."""


@suite.command("generate", epilog=with_examples(EXIT_CODES_HELP, "suite generate"))
@click.option(
    "--from", "sources", multiple=True, required=True, type=click.Path(exists=True, path_type=Path),
    help="A document to write questions from (Markdown, text, HTML, PDF); repeat for several.",
)  # fmt: skip
@click.option(
    "--generator", "generator_name", required=True, help="The model (in evals.yaml) that writes the items."
)
@click.option("--area", required=True, help="The area the items belong to.")
@click.option(
    "--n", "count", default=20, show_default=True, type=click.IntRange(1, 10000), help="Items wanted."
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Suite file to write (JSONL: its name ends in .jsonl).",
)
@click.option(
    "--chunk-chars",
    default=4000,
    show_default=True,
    type=click.IntRange(200, 200000),
    help="Characters per chunk read at once.",
)
@click.option(
    "--local",
    "local_name",
    default=None,
    help="Estimate each item's difficulty with a trial answer of this model.",
)
@click.option(
    "--judge",
    "judge_name",
    default=None,
    help="The judge of the trial answers, or 'local' (the bundled model) (default: the default judge).",
)
@click.option(
    "--max-cost",
    type=click.FloatRange(0, min_open=True),
    callback=lambda ctx, param, value: _finite(param, value),
    metavar="USD",
    help="Stop (exit 2; the same command continues) before this invocation could spend more; needs token "
    "prices in evals.yaml for the generator (and --local, --judge).",
)
@click.option("--dry-run", is_flag=True, help="Count the chunks and estimate the cost; call nothing.")
@reports_option
@config_option
def suite_generate(
    sources: tuple[Path, ...],
    generator_name: str,
    area: str,
    count: int,
    out_path: Path,
    chunk_chars: int,
    local_name: str | None,
    judge_name: str | None,
    max_cost: float | None,
    dry_run: bool,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """Write a draft suite of --area from documents: question, reference and the quote that supports it.

    Each reference must be supported by its quote (checked; unsupported items are dropped and counted),
    near-duplicate questions are dropped, no call starts once --n items are kept, and with --local each
    item gets a difficulty from a trial answer. Every item records its generator, document, quote and
    prompt hash, and review: pending: check them with evals suite review. It prints what it asked, kept
    and dropped (and why), and the chunks that failed with their reason; it exits 2 and writes no suite
    when it kept nothing. Interrupted, failed or stopped by --max-cost, the same command resumes from its
    progress file under <reports>/generate/ (never among the suites). A document that cannot be read,
    holds no text, is not what its name says, or passes the reader's limits (100 MiB, 5,000,000
    characters, 2,000 PDF pages), is one error naming it, before anything is sent.
    """
    from evals.authoring.generate import (
        PROMPT,
        estimate_difficulty,
        generate,
        progress_path,
    )
    from evals.authoring.references import write_suite
    from evals.outbound.budget import Budget, BudgetExceeded, Price, estimate_tokens

    if out_path.suffix.lower() != ".jsonl":  # a .yaml or .csv of JSONL would break the suite folder it is in
        raise EvalsError(f"{out_path}: the suite is written as JSONL; give --out a path ending in .jsonl")
    config = load_config(config_path)
    name, endpoint = config.model(generator_name)
    if not dry_run and not out_path.parent.is_dir():  # found out now, not after paying for the items
        raise EvalsError(
            f"{out_path}: the folder {out_path.parent} does not exist; create it or choose another --out"
        )
    if dry_run:
        from evals.authoring.documents import document_chunks

        pieces = document_chunks(sources, chunk_chars)
        tokens_in = sum(estimate_tokens(PROMPT) + estimate_tokens(c.text) for c in pieces)
        tokens_out = len(pieces) * endpoint.max_tokens
        price = Price.of(endpoint)
        out.print(
            plain(
                f"dry run: {len(pieces)} chunk(s) → at most {len(pieces)} call(s) to {name}; ≈ {tokens_in} tokens in, ≤ {tokens_out} out"
            )
        )
        if price is None:
            out.print("estimated cost: unknown (set the generator's prices)")
        else:
            cost = price.cost(tokens_in, tokens_out)
            out.print(f"estimated cost: ≈ ${cost:.4f}")
            if max_cost is not None and cost > max_cost:
                out.print(
                    f"the estimate exceeds --max-cost {max_cost:g}: generation may stop early (then resume it)"
                )
        return
    endpoints = {name: ("generator", endpoint)}
    held = ExitStack()
    if local_name is not None:
        local, local_endpoint = config.model(local_name)
        # the judge of trial answers: --judge local is served while they are graded
        config = held.enter_context(serve_local_judge(config, judge_name))
        jname, jendpoint = config.judge(judge_name)
        endpoints |= {local: ("model", local_endpoint), jname: ("judge", jendpoint)}
    try:
        budget = Budget.of(max_cost, endpoints) if max_cost is not None else None
    except BaseException:
        held.close()
        raise
    gateway = Gateway(config.redaction, (), budget, config.default_sensitivity)
    reports = reports_path(config, reports_dir)
    # Each call goes on the audit trail of the store beside the config, as a run's do.
    with held, open_store(config, reports) as store, tracing(config), audit.recording(store):
        items, report = generate(
            sources, name, endpoint, area, count, gateway, progress_path(reports, out_path), chunk_chars
        )
        if local_name is not None and items and report.stopped != "--max-cost":
            from evals.judge.judging import build_judge
            from evals.judge.rubrics import rubric_search

            judge = build_judge(jname, jendpoint, rubric_search(config), gateway)
            items = estimate_difficulty(items, gateway.door(local, local_endpoint), judge)
    if items:
        write_suite(out_path, items)  # only now, in one step: a failed run leaves no suite file behind
    done = f"{report.chunks_done_before} done before"
    asked = f"{report.chunks_asked} asked now"
    skipped = report.chunks - report.chunks_done_before - report.chunks_asked
    chunks = f"{report.chunks} chunk(s): {asked}, {done}"
    if skipped:
        why = (
            "not needed, --n reached"
            if report.stopped == "--n reached"
            else "not asked, stopped by --max-cost"
        )
        chunks += f", {skipped} {why}"
    written = f"{report.kept} item(s) → {out_path} (review: pending)" if items else "no suite written"
    out.print(plain(f"{written} · {chunks}"), soft_wrap=True)
    out.print(plain(report.summary()), soft_wrap=True)
    price = Price.of(endpoint)
    if price is not None:
        cost = price.cost(report.tokens_in, report.tokens_out)
        out.print(f"cost: ${cost:.4f} ({report.tokens_in} tokens in, {report.tokens_out} out)")
    if local_name is not None and items:
        levels = [i.metadata.get("difficulty") for i in items]
        out.print(
            ", ".join(
                f"{levels.count(d)} {d}" for d in ("easy", "medium", "hard", "unknown") if levels.count(d)
            )
        )
    for where, why in list(report.failed.items())[:SHOWN_FAILURES]:
        err.print(plain(f"failed: {where}: {why}"), soft_wrap=True)
    if len(report.failed) > SHOWN_FAILURES:
        err.print(f"failed: … and {len(report.failed) - SHOWN_FAILURES} more chunk(s)")
    if report.failed:
        err.print(
            plain(f"{len(report.failed)} chunk(s) failed; run the same command again to ask them once more")
        )
    if budget is not None and budget.stopped:
        raise BudgetExceeded(
            f"stopped by --max-cost {budget.limit:g}: this invocation spent ${budget.spent:.4f} and the next "
            f"call could cost up to ${budget.refused or 0:.4f}; "
            + (f"{len(items)} item(s) written to {out_path}. " if items else "no suite written. ")
            + "Run the same command with a higher --max-cost to continue (chunks done are not asked again)"
        )
    if not items:
        raise EvalsError(
            f"nothing kept from {report.chunks} chunk(s), so no suite was written to {out_path}: "
            + (
                "every chunk asked failed (above)"
                if report.failed and not report.got
                else "see what was dropped and why above; check the documents hold answers for --area"
            )
        )


def _finite(param: click.Parameter, value: float | None) -> float | None:
    # nan passes FloatRange (every comparison with it is false), and would then never stop anything.
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite amount of dollars", param=param)
    return value


@suite.command("review", epilog=EXIT_CODES_HELP)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--accept", "accepted", multiple=True, help="Accept this item id (repeat); no prompts.")
@click.option("--reject", "rejected", multiple=True, help="Reject this item id (repeat); no prompts.")
@click.option("--list", "list_only", is_flag=True, help="List the pending items and stop.")
@click.option("--reviewer", default=None, help="Who reviews (default: the login name).")
def suite_review(
    path: Path, accepted: tuple[str, ...], rejected: tuple[str, ...], list_only: bool, reviewer: str | None
) -> None:
    """Show a generated suite's pending items and record accept, edit or reject for each.

    Interactive unless --accept/--reject/--list are given. Each decision is written at once (metadata
    review: accepted | edited, with reviewer and time); rejected items leave the suite for
    <file>.rejected.jsonl. Quit at any time: the next review starts with what is still pending.
    """
    from evals.authoring.review import Review

    review = Review(path, reviewer or _login())
    pending = review.pending()
    if list_only:
        for item in pending:
            out.print(plain(f"{item.id} · {item.area} · {item.question}"), soft_wrap=True)
        out.print(f"{len(pending)} pending")
        return
    if accepted or rejected:
        for item_id in accepted:
            review.decide(item_id, "accepted")
        for item_id in rejected:
            review.decide(item_id, "rejected")
    else:
        for item in pending:
            source = item.metadata.get("source") or {}
            out.print(
                plain(f"\n{item.id} · {item.area} · from {source.get('document', '?')}"), soft_wrap=True
            )
            out.print(plain(f"Q: {item.question}"), soft_wrap=True)
            out.print(plain(f"A: {item.reference}"), soft_wrap=True)
            out.print(plain(f"quote: {source.get('quote', '')}"), soft_wrap=True)
            choice = click.prompt(
                "[a]ccept, [e]dit, [r]eject, [s]kip, [q]uit", type=click.Choice(list("aersq")), default="s"
            )
            if choice == "q":
                break
            if choice == "a":
                review.decide(item.id, "accepted")
            elif choice == "r":
                review.decide(item.id, "rejected")
            elif choice == "e":
                question = click.prompt("question", default=item.question)
                reference = click.prompt("reference", default=item.reference)
                review.decide(item.id, "edited", question=question, reference=reference)
    out.print(plain(f"{review.counts()} · {len(review.pending())} still pending · {path}"), soft_wrap=True)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
