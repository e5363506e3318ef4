"""A purge carried out: each run of a ``PurgePlan`` loses its text in the store, then its exports under
``reports/runs/<id>/`` are written again without it, and the purge is recorded in the audit trail.

Each run is purged under its run lock (a run another process is working is skipped), in one store
transaction (``evals.store.retention``), then its exports are rewritten: ``results.jsonl`` and
``manifest.json`` from the purged store, the scorecards from their own ``scorecard.json`` with the text
taken out (their figures unchanged). A purge run twice does nothing the second time. Which runs a purge
takes is ``evals.store.purge.plan_purge``'s to say.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from evals.errors import StoreError
from evals.names import run_folder
from evals.outbound.audit import record_event
from evals.render.pages import write_scorecard
from evals.scorecard.models import Scorecard
from evals.scorecard.textless import without_text
from evals.store import Store
from evals.store.purge import PurgePlan
from evals.store.retention import purge_text
from evals.store.rows import PURGED


def purge(store: Store, plan: PurgePlan, when: datetime) -> PurgePlan:
    """Purge every run of ``plan`` and rewrite its exports; the plan as done (busy runs moved aside)."""
    done = PurgePlan(plan.cutoff, kept_baselines=list(plan.kept_baselines))
    for target in plan.targets:
        try:
            with store.lock_run(target.run_id):
                purge_text(store, target.run_id, when.isoformat(timespec="seconds"))
                rewrite_exports(store, target.run_id)
        except StoreError as exc:
            # Store.lock_run's refusal (its only StoreError besides an uncreatable lock file): skip that run.
            if "being worked by another" not in str(exc):
                raise
            done.busy.append(target.run_id)
            continue
        done.targets.append(target)
    _record_purge(store, done)
    return done


def rewrite_exports(store: Store, run_id: str) -> list[Path]:
    """Rewrite the exports a purged run has under ``reports/runs/<id>/`` without its text; the files
    written or removed.

    ``results.jsonl`` and ``manifest.json`` are written again from the purged store. Scorecards are made
    from their ``scorecard.json`` with the text replaced by ``(purged)`` (the figures as they were); a
    scorecard that cannot be read is removed (``evals report RUN`` writes a new one from the store).
    """
    folder = run_folder(store.reports_dir, run_id)
    touched: list[Path] = []
    if (folder / "results.jsonl").exists() or (folder / "manifest.json").exists():
        touched += [store.export_jsonl(run_id), folder / "manifest.json"]
    card_path = folder / "scorecard.json"
    if card_path.exists():
        try:
            card = Scorecard.model_validate_json(card_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValidationError, ValueError):
            card = None
        if card is not None:
            touched += write_scorecard(without_text(card, PURGED), folder).values()
            return touched
    for name in ("scorecard.json", "scorecard.html", "scorecard.md"):
        if (folder / name).exists():
            (folder / name).unlink()
            touched.append(folder / name)
    return touched


def _record_purge(store: Store, summary: PurgePlan) -> None:
    """The audit record of a purge (``evals.outbound.audit.record_event``, the ``events`` chain): which runs lost
    their text, when, under which cutoff, and which were kept. A purge that took nothing records nothing."""
    if not summary.targets:
        return
    record_event(
        store,
        "purge",
        {
            "cutoff": summary.cutoff.isoformat() if summary.cutoff else None,
            "runs": [t.run_id for t in summary.targets],
            "rows": summary.rows,
            "kept_baselines": summary.kept_baselines,
            "busy": summary.busy,
        },
    )
