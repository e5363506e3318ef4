"""Retention: which runs ``evals purge`` takes, those older than a cutoff, whose text goes while what history
and gates need stays (scores, errors, tokens, latencies, aggregates, content hashes, cache keys).

Which runs: those that ended (or, never ended, started) before the cutoff, not purged yet, and not approved
as a baseline (``evals baseline set``) unless baselines are included. ``plan_purge`` lists them and changes
nothing; ``evals.render.purge.purge`` purges each (``evals.store.retention``) and rewrites its exports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from evals.errors import ConfigError
from evals.store import Store
from evals.store.retention import TextHeld, purged_runs, text_held

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
