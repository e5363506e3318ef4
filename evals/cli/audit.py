"""``evals audit verify`` and ``evals audit show``: prove the audit trail intact; say what went where."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evals.cli.common import EXIT_NO, config_option, out, plain, reports_option, reports_path
from evals.config import load_config
from evals.store import open_store

AUDIT_EXIT_HELP = (
    "\b\nExit codes:\n  0  intact\n  1  tampered or missing records or chains (a decided no)\n"
    "  2  could not check: bad arguments, unknown run, unreadable or damaged store"
)
SHOW_EXIT_HELP = "\b\nExit codes:\n  0  done\n  2  could not show: bad arguments, unreadable store"


@click.group()
def audit() -> None:
    """The audit trail of outbound calls: verify its hash chains, show what went where for an item."""


def _anchor(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, set[str]]:
    anchors: dict[str, set[str]] = {}
    for value in values:
        chain, sep, digest = value.partition("=")
        digest = digest.strip().lower()
        if not sep or not chain or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise click.BadParameter(
                f"{value!r}: expected RUN=HASH, HASH being 64 hex characters", ctx, param
            )
        anchors.setdefault(chain.strip(), set()).add(digest)
    return anchors


@audit.command("verify", epilog=AUDIT_EXIT_HELP)
@click.option("--run", "run_id", help="Only this run's chain (or another chain id: events, calibrate-...).")
@click.option(
    "--anchor", "anchors", multiple=True, callback=_anchor, metavar="RUN=HASH",
    help="A head the run printed ('audit head: HASH'), kept outside the store: it must be one of the run's "
    "sealed heads; repeatable.",
)  # fmt: skip
@reports_option
@config_option
def audit_verify(
    run_id: str | None, anchors: dict[str, set[str]], reports_dir: Path | None, config_path: Path | None
) -> None:
    """Recompute every hash chain of the audit trail (or one run's) and the chain of their heads, and check
    that every run's calls are on it.

    Reports the first tampered record of each chain (altered, relinked), missing records (a gap, fewer
    records than a head counted, a head that no longer matches its run's records), runs whose answers and
    verdicts came back from calls in this store but whose chain is gone or short (a deleted newest chain
    with its head, emptied audit tables), and anchors that are not one of the run's sealed heads. Noted,
    not failed: records after a chain's last head (a run still running, or killed), runs brought by
    `evals import` or `evals store copy`, runs older than the store's audit trail.
    """
    from evals.outbound.audit import run_of
    from evals.outbound.audit_verify import verify

    if run_id is not None:
        others = sorted(chain for chain in anchors if run_of(chain) != run_id)
        if others:  # checked nowhere else: an anchor left out would pass for one that held
            raise click.BadParameter(
                f"{others[0]}: --run {run_id} checks only that run's chain; anchor it, or drop --run",
                param_hint="'--anchor'",
            )
    config = load_config(config_path)
    with open_store(config, reports_path(config, reports_dir), readonly=True) as store:
        result = verify(store, run_id, anchors)
    for note in result.notes:
        out.print(plain(f"note: {note}"), soft_wrap=True)
    for problem in result.problems:
        out.print(plain(f"TAMPERED: {problem}"), soft_wrap=True)
    summary = f"{result.records} records in {result.chains} chain(s), {result.heads} head(s)"
    if result.imported:
        summary += f"; {len(result.imported)} run(s) imported"
    if result.before_trail:
        summary += f"; {len(result.before_trail)} run(s) before the audit trail"
    if result.intact:
        out.print(plain(f"audit trail intact: {summary}"), soft_wrap=True)
        return
    out.print(plain(f"audit trail NOT intact: {len(result.problems)} problem(s); {summary}"), soft_wrap=True)
    raise SystemExit(EXIT_NO)


@audit.command("show", epilog=SHOW_EXIT_HELP)
@click.option("--item", "item_id", required=True, help="The item id.")
@click.option("--run", "run_id", help="Only calls of this run (default: every run that asked the item).")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="text: one line per call; json: one JSON object per call and line.",
)  # fmt: skip
@reports_option
@config_option
def audit_show(
    item_id: str, run_id: str | None, fmt: str, reports_dir: Path | None, config_path: Path | None
) -> None:
    """What went where for one item: each outbound call in the order sent, with its run, role, endpoint,
    URL, model, SHA-256 of the body sent, redaction counts, status and attempt."""
    from evals.store.audit import item_records

    config = load_config(config_path)
    with open_store(config, reports_path(config, reports_dir), readonly=True) as store:
        rows = item_records(store, item_id, run_id)
    if fmt == "json":
        for r in rows:
            line = {
                "at": r.at, "chain_id": r.chain_id, "seq": r.seq, "run_id": r.run_id, "item_id": r.item_id,
                "sample": r.sample, "role": r.role, "endpoint": r.endpoint, "url": r.url, "model": r.model,
                "sha256": r.sha256, "redactions": r.redactions, "status": r.status, "attempt": r.attempt,
                "hash": r.hash,
            }  # fmt: skip
            click.echo(json.dumps(line))  # ASCII: escapes every control character a store could hold
        return
    if not rows:
        out.print(plain(f"no recorded calls for item {item_id}" + (f" in run {run_id}" if run_id else "")))
        return
    for r in rows:
        redacted = ", ".join(f"{k} {v}" for k, v in sorted(r.redactions.items())) or "none"
        text = (
            f"{r.at}  run {r.run_id or r.chain_id} sample {r.sample}  {r.role} -> {r.endpoint} ({r.model}) "
            f"{r.url}  attempt {r.attempt}: {r.status}  sha256 {r.sha256}  redacted: {redacted}"
        )
        out.print(plain(text), soft_wrap=True)
