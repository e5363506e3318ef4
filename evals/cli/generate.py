"""``evals suite generate`` (a draft suite from a team's documents) and ``evals suite review`` (people accept,
edit or reject what a model wrote)."""

from __future__ import annotations

import getpass
from pathlib import Path

import click

from evals.cli.common import EXIT_CODES_HELP, config_option, err, out, plain, reports_path
from evals.cli.examples import with_examples
from evals.cli.run import suite
from evals.config import load_config
from evals.outbound import audit
from evals.outbound.gateway import Gateway
from evals.store import open_store


@suite.command("generate", epilog=with_examples(EXIT_CODES_HELP, "suite generate"))
@click.option(
    "--from", "sources", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
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
    help="Suite file (JSONL) to write.",
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
    "--judge", "judge_name", default=None, help="The judge of the trial answers (default: the default judge)."
)
@click.option("--dry-run", is_flag=True, help="Count the chunks and estimate the cost; call nothing.")
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
    dry_run: bool,
    config_path: Path | None,
) -> None:
    """Write a draft suite of --area from documents: question, reference and the quote that supports it.

    Each reference must be supported by its quote (checked; unsupported items are dropped and counted),
    near-duplicate questions are dropped, and with --local each item gets a difficulty from a trial answer.
    Every item records its generator, document, quote and prompt hash, and review: pending: check them
    with evals suite review. Interrupted, the same command resumes from <out>.progress.jsonl.
    """
    from evals.authoring.generate import PROMPT, document_chunks, estimate_difficulty, generate
    from evals.outbound.budget import estimate_tokens

    config = load_config(config_path)
    name, endpoint = config.model(generator_name)
    if dry_run:
        pieces = document_chunks(sources, chunk_chars)
        tokens_in = sum(estimate_tokens(PROMPT) + estimate_tokens(c.text) for c in pieces)
        tokens_out = len(pieces) * endpoint.max_tokens
        priced = endpoint.price_in_per_mtok is not None or endpoint.price_out_per_mtok is not None
        cost = tokens_in / 1e6 * (endpoint.price_in_per_mtok or 0) + tokens_out / 1e6 * (
            endpoint.price_out_per_mtok or 0
        )
        out.print(
            plain(
                f"dry run: {len(pieces)} chunk(s) → {len(pieces)} call(s) to {name}; ≈ {tokens_in} tokens in, ≤ {tokens_out} out"
            )
        )
        out.print(
            f"estimated cost: ≈ ${cost:.4f}"
            if priced
            else "estimated cost: unknown (set the generator's prices)"
        )
        return
    gateway = Gateway(config.redaction, (), None, config.default_sensitivity)
    # Each call goes on the audit trail of the store beside the config, as a run's do.
    with open_store(config, reports_path(config, None)) as store, audit.recording(store):
        items, report = generate(sources, name, endpoint, area, count, out_path, gateway, chunk_chars)
        if local_name is not None and items:
            from evals.authoring.references import write_suite
            from evals.judge.judging import build_judge
            from evals.judge.rubrics import rubric_search

            local, local_endpoint = config.model(local_name)
            jname, jendpoint = config.judge(judge_name)
            judge = build_judge(jname, jendpoint, rubric_search(config), gateway)
            items = estimate_difficulty(items, gateway.door(local, local_endpoint), judge)
            write_suite(out_path, items)
    out.print(
        plain(
            f"{report.kept} item(s) → {out_path} (review: pending) · {report.chunks} chunk(s), "
            f"{report.chunks_done_before} done before · proposed {report.proposed}, dropped {report.unsupported} "
            f"unsupported by their quote and {report.duplicates} near-duplicate(s)"
        ),
        soft_wrap=True,
    )
    if endpoint.price_in_per_mtok is not None or endpoint.price_out_per_mtok is not None:
        cost = report.tokens_in / 1e6 * (endpoint.price_in_per_mtok or 0) + report.tokens_out / 1e6 * (
            endpoint.price_out_per_mtok or 0
        )
        out.print(f"cost: ${cost:.4f} ({report.tokens_in} tokens in, {report.tokens_out} out)")
    if report.failed:
        err.print(
            plain(f"{len(report.failed)} chunk(s) failed; run the same command again to ask them once more")
        )
    if local_name is not None:
        levels = [i.metadata.get("difficulty") for i in items]
        out.print(
            ", ".join(
                f"{levels.count(d)} {d}" for d in ("easy", "medium", "hard", "unknown") if levels.count(d)
            )
        )


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
