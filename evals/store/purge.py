"""Retention: ``evals purge`` removes the text of runs older than a cutoff, keeping what history and gates
need (scores, errors, tokens, latencies, aggregates, content hashes, cache keys).

Which runs: those that ended (or, never ended, started) before the cutoff, not purged yet, and not approved
as a baseline (``evals baseline set``) unless baselines are included. Each is purged under its run lock (a
run another process is working is skipped), in one store transaction (``evals.store.retention``), then its
exports under ``reports/runs/<id>/`` are rewritten without text: ``results.jsonl`` and ``manifest.json``
from the purged store, the scorecards from their own ``scorecard.json`` with the text taken out (their
figures unchanged). A purge run twice does nothing the second time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from evals.errors import ConfigError, StoreError
from evals.names import run_folder
from evals.render import write_scorecard
from evals.scorecard.models import Scorecard
from evals.scorecard.textless import without_text
from evals.store import Store
from evals.store.retention import TextHeld, purge_text, purged_runs, text_held
from evals.store.rows import PURGED

_DURATION = re.compile(r"(\d+)\s*([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def cutoff_of(value: str, now: datetime) -> datetime:
    """The moment ``--older-than`` names: a duration before ``now`` (``30d``, ``12h``, ``2w``) or a date
    (``2026-10-31``, midnight UTC) or a timestamp (``2026-10-31T12:00:00+00:00``)."""
    text = value.strip()
    match = _DURATION.fullmatch(text)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        return _aware(datetime.fromisoformat(text))
    except ValueError:
        raise ConfigError(
            f"--older-than {value!r}: expected a duration (30d, 12h, 2w) or a date (2026-10-31)"
        ) from None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class PurgeTarget:
    """A run whose text a purge removes."""

    run_id: str
    ended_at: str
    """When it ended (its start, for a run that never ended)."""
    held: TextHeld


@dataclass
class PurgePlan:
    """What a purge does, or (``--dry-run``) would do."""

    cutoff: datetime | None
    """Runs that ended before this; None: the runs named with ``--run``, whatever their age."""
    targets: list[PurgeTarget] = field(default_factory=list)
    kept_baselines: list[str] = field(default_factory=list)
    """Runs old enough but approved as baselines, kept (``--include-baselines`` purges them)."""
    busy: list[str] = field(default_factory=list)
    """Runs another process was working, left for the next purge."""

    @property
    def rows(self) -> int:
        return sum(t.held.rows for t in self.targets)

    @property
    def bytes(self) -> int:
        return sum(t.held.bytes for t in self.targets)


def plan_purge(
    store: Store, cutoff: datetime | None, include_baselines: bool = False, runs: tuple[str, ...] = ()
) -> PurgePlan:
    """The runs a purge would take (changing nothing): ended before ``cutoff`` and among ``runs`` when given."""
    for run_id in runs:
        store.run(run_id)  # an unknown id is an error, not a silent no-op
    done = purged_runs(store)
    baselines = {run_id for _, run_id, _, _ in store.baselines()}
    plan = PurgePlan(cutoff)
    for m in store.runs():
        ended = m.ended_at or m.started_at
        if m.run_id in done or (runs and m.run_id not in runs):
            continue
        if cutoff is not None and _aware(datetime.fromisoformat(ended)) >= cutoff:
            continue
        if m.run_id in baselines and not include_baselines:
            plan.kept_baselines.append(m.run_id)
            continue
        plan.targets.append(PurgeTarget(m.run_id, ended, text_held(store, m.run_id)))
    return plan


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
    from evals.outbound.audit import record_event

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
