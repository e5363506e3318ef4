"""``evals suite references``: fill in a suite's missing reference answers with a model's answers."""

from __future__ import annotations

from pathlib import Path

import click

from evals.cli.common import EXIT_CODES_HELP, config_option, err, out, plain, reports_path
from evals.cli.run import suite
from evals.config import load_config
from evals.outbound import audit
from evals.outbound.gateway import Gateway
from evals.outbound.telemetry import tracing
from evals.store import open_store


@suite.command("references", epilog=EXIT_CODES_HELP)
@click.argument("suite_path", metavar="SUITE")
@click.option(
    "--model", "model_name", required=True, help="The model (in evals.yaml) that writes the references."
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Suite file (JSONL) to write.",
)
@config_option
def suite_references(suite_path: str, model_name: str, out_path: Path, config_path: Path | None) -> None:
    """Write SUITE to --out with every missing reference answered by --model, marked as such in metadata.

    For suites that have questions only. Items with a reference keep it. Each reference a model wrote
    carries reference_source in its metadata (model, reported id, open_weights, time): scorecards show it
    and evals export weak refuses a closed model's text as a training target. Restricted items are not
    sent to the model. Interrupted, it resumes from --out without asking again.
    """
    from evals.authoring.references import fill_references
    from evals.suites import load_suite

    config = load_config(config_path)
    name, endpoint = config.model(model_name)
    source = load_suite(suite_path, config.default_sensitivity)
    gateway = Gateway(config.redaction, source.patterns, None, config.default_sensitivity)
    # Each call goes on the audit trail of the store beside the config, as a run's do.
    with open_store(config, reports_path(config, None)) as store, tracing(config), audit.recording(store):
        report = fill_references(source, name, endpoint, out_path, gateway)
    out.print(
        plain(
            f"{report.filled} reference(s) written by {name}, {report.kept} kept, "
            f"{len(report.failed)} failed, {len(report.restricted)} restricted left out → {out_path}"
        ),
        soft_wrap=True,
    )
    price_in, price_out = endpoint.price_in_per_mtok, endpoint.price_out_per_mtok
    if price_in is not None or price_out is not None:
        cost = report.tokens_in / 1e6 * (price_in or 0) + report.tokens_out / 1e6 * (price_out or 0)
        out.print(f"cost: ${cost:.4f} ({report.tokens_in} tokens in, {report.tokens_out} out)")
    for item_id, why in sorted(report.failed.items()):
        err.print(plain(f"{item_id}: {why}"), soft_wrap=True)
    if report.failed:
        err.print(
            plain(f"run the same command again to ask the {len(report.failed)} failed item(s) once more")
        )
