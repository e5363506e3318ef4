"""``evals export weak``: the items a run scored low, as training data (never a frontier model's text as target)."""

from __future__ import annotations

from pathlib import Path

import click
import jsonlines

from evals.cli.common import EXIT_CODES_HELP, config_option, out, plain, reports_option, reports_path
from evals.cli.store import export
from evals.config import load_config
from evals.files import atomic_path
from evals.names import RUN_ID
from evals.store import open_store
from evals.store.retention import check_text


@export.command("weak", epilog=EXIT_CODES_HELP)
@click.argument("run_id", type=RUN_ID)
@click.option(
    "--format", "fmt", type=click.Choice(["sft", "preference"]), default="sft", show_default=True,
    help="sft: chat messages ending with the reference; preference: prompt, chosen (reference), rejected (answer).",
)  # fmt: skip
@click.option(
    "--below", type=click.FloatRange(1, 5.01), default=None,
    help="Answers scored under this are weak (default: the scorecard's pass_score).",
)  # fmt: skip
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="JSONL file to write.",
)
@click.option(
    "--skip-model-references", is_flag=True,
    help="Leave out items whose reference a closed model wrote, instead of refusing the export.",
)  # fmt: skip
@reports_option
@config_option
def export_weak(
    run_id: str,
    fmt: str,
    below: float | None,
    out_path: Path,
    skip_model_references: bool,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """Write RUN_ID's weak answers (question, reference, answer, the judge's reasons) as JSONL for training.

    A reference written by a frontier model is never written as a training target: their terms forbid
    training other models on their outputs. Such references (marked reference_source by evals suite
    references / generate) are refused unless the model named there is marked open_weights: true in
    evals.yaml today, for the same model (a suite's own claim does not count). With --format preference,
    the run's answers are the rejected side: a run of a frontier vendor's model is refused. The judge's
    rationale goes in each record's metadata, as evaluation data.
    """
    from evals.authoring.weak import check_rejected, check_targets, closed_targets, records, weak_items

    config = load_config(config_path)
    threshold = below if below is not None else config.gate.pass_score
    with open_store(config, reports_path(config, reports_dir), readonly=True) as store:
        run = store.run(run_id)
        check_text(store, run_id, "export its answers", "exported as training data")
        weak = weak_items(list(store.results(run_id)), store.items(run_id), threshold)
    if fmt == "preference":
        check_rejected(run)
    skipped = 0
    if skip_model_references:
        closed = closed_targets(weak, config)
        kept = [w for w in weak if w.item.id not in closed]
        skipped, weak = len(weak) - len(kept), kept
    check_targets(weak, config)
    with atomic_path(out_path) as tmp, jsonlines.open(tmp, mode="w") as writer:
        writer.write_all(records(weak, fmt))  # type: ignore[arg-type]
    note = f"; {skipped} left out (reference by a closed model)" if skipped else ""
    out.print(
        plain(f"{len(weak)} weak answer(s) (score < {threshold:g}) → {out_path} ({fmt}){note}"),
        soft_wrap=True,
    )
