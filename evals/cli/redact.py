"""``evals redact SUITE``: a dry run of redaction; what an external endpoint would be sent, nothing called."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import click
from rich.table import Table

from evals.cli.common import EXIT_CODES_HELP, config_option, out, plain
from evals.cli.local_judge import add_local_judge
from evals.config import load_config
from evals.outbound.redaction import Redactor, combined_patterns
from evals.suites import load_suite


@click.command("redact", epilog=EXIT_CODES_HELP)
@click.argument("suite_path", metavar="SUITE")
@click.option(
    "--judge", "judge_name", help="Judge name from evals.yaml, or 'local' (default: as evals run chooses)."
)
@click.option("--model", "model_name", help="Model name from evals.yaml (default: the first).")
@click.option(
    "--show",
    type=click.Choice(["all", "redacted"]),
    default="redacted",
    show_default=True,
    help="Items to print: every item, or only those with something redacted (and restricted ones).",
)
@config_option
def redact(
    suite_path: str, judge_name: str | None, model_name: str | None, show: str, config_path: Path | None
) -> None:
    """Show what redaction would send for each item of SUITE, and count identifiers per area and kind.

    Calls nothing. Each item's question and reference are shown as an external endpoint would get them,
    with the placeholder kinds and counts; restricted items are shown as not sent (when an endpoint is
    external); answers are not known before a run, and are redacted the same way with their item.
    """
    config = add_local_judge(load_config(config_path), judge_name)
    suite = load_suite(suite_path, config.default_sensitivity)
    judge_name, judge = config.judge(judge_name)
    model_name, model = config.model(model_name)
    external = [f"{role} {name}" for role, name, e in (("model", model_name, model), ("judge", judge_name, judge))
                if e.is_external()]  # fmt: skip
    redactor = Redactor(
        combined_patterns(config.redaction.patterns, suite.patterns), config.redaction.ner_model
    )
    out.print(plain(f"redaction dry run: suite {suite.name} ({len(suite.items)} items); nothing is called"))
    if not external:
        out.print(
            plain(f"no external endpoint (model {model_name}, judge {judge_name}): text would go as written")
        )
    elif not config.redaction.enabled:
        out.print(plain(f"redaction is disabled: {', '.join(external)} would get text as written"))
    else:
        out.print(plain(f"external: {', '.join(external)}; redaction {redactor.version}"))
    out.print(plain(f"NER: {config.redaction.ner_model} (names and places detected)" if redactor.ner_active
                    else f"NER: none; {redactor.note}"))  # fmt: skip
    per_area: dict[str, Counter[str]] = defaultdict(Counter)
    for item in suite.items:
        if item.sensitivity == "restricted" and external:
            out.print(plain(f"{item.id} ({item.area}): not sent (restricted)"), soft_wrap=True)
            continue
        sent = redactor.redact_item(item)
        per_area[item.area].update(sent.counts)
        if show == "redacted" and not sent.counts:
            continue
        kinds = ", ".join(f"{n} {kind}" for kind, n in sent.counts.items()) or "nothing redacted"
        out.print(plain(f"{item.id} ({item.area}): {kinds}"), soft_wrap=True)
        out.print(plain(f"  question: {sent.item.prompt_text()}", newlines=False), soft_wrap=True)
        if sent.item.reference is not None:
            out.print(plain(f"  reference: {sent.item.reference}", newlines=False), soft_wrap=True)
    columns = sorted({kind for counts in per_area.values() for kind in counts})
    table = Table(title="identifiers per area")
    for name in ("area", *columns, "total"):
        table.add_column(plain(name), justify="left" if name == "area" else "right")
    for area in sorted(per_area):
        counts = per_area[area]
        table.add_row(plain(area), *(str(counts[k]) for k in columns), str(sum(counts.values())))
    out.print(table)
