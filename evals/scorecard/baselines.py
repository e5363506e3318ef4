"""Which run a run is compared with, and why.

An approved baseline (``evals baseline set``) of the same suite wins, then the latest earlier run of the
suite tagged ``baseline``; otherwise the latest earlier *finished* run of the same suite and model name
whose error rate is within the gate policy's ``max_error_rate``. Interrupted, failed and mostly-error
runs are skipped and named, and runs tagged ``excluded`` (``evals runs exclude``) never count. A quick
subset run (``--area``, ``--item-tag``, ``--limit``) is no baseline for a run of the whole suite.
"""

from __future__ import annotations

from evals.errors import StoreError
from evals.records import RunManifest
from evals.scorecard.figures import health_of
from evals.scorecard.models import BaselineChoice, RunHealth, SkippedRun
from evals.store import Store
from evals.store.aggregates import OVERALL

EXCLUDED = "excluded"
"""The tag ``evals runs exclude`` sets: the run is left out of baseline choice and history."""
BASELINE_TAG = "baseline"
DEFAULT_MAX_ERROR_RATE = 0.05
"""The gate policy's default ``max_error_rate`` (``evals.scorecard.gate.Policy``)."""
MAX_SKIPPED = 10
"""At most this many skipped runs are named on the scorecard."""


def is_excluded(m: RunManifest) -> bool:
    """True when the run was excluded from baseline choice and history."""
    return EXCLUDED in m.tags


def run_health(store: Store, run_id: str) -> RunHealth:
    """Scored rows and errors of a stored run, from its whole-run aggregate (not its items)."""
    overall = next(a for a in store.aggregates([run_id], area=OVERALL)[run_id] if a.area == OVERALL)
    return health_of(overall)


def _earlier(store: Store, run: RunManifest) -> list[RunManifest]:
    """Runs of the same suite that started before ``run``, newest first, excluded ones left out."""
    return [
        m
        for m in reversed(store.runs(run.suite_name))
        if (m.started_at, m.run_id) < (run.started_at, run.run_id) and not is_excluded(m)
    ]


def _asked(store: Store, run: RunManifest, spec: str) -> RunManifest:
    try:
        return store.baseline(spec)  # a baseline name (evals baseline set) or a run id
    except StoreError:
        tagged = [m for m in store.runs() if spec in m.tags and m.run_id != run.run_id and not is_excluded(m)]
        if not tagged:
            raise StoreError(f"no run with id or tag {spec!r} to compare with") from None
        same_suite = [m for m in tagged if m.suite_name == run.suite_name]
        return (same_suite or tagged)[-1]


def unfit_reason(store: Store, m: RunManifest, max_error_rate: float) -> str | None:
    """Why a run cannot serve as a default baseline (unfinished, mostly errors), or None when it can."""
    if m.status != "finished":
        return f"status {m.status}, not finished"
    h = run_health(store, m.run_id)
    if h.scored == 0:
        return f"no answer of {h.rows} was scored"
    if h.error_rate > max_error_rate:
        return f"error rate {h.error_rate:.0%} above {max_error_rate:.0%}"
    return None


def choose_baseline(
    store: Store, run: RunManifest, spec: str | None = None, max_error_rate: float = DEFAULT_MAX_ERROR_RATE
) -> tuple[RunManifest | None, BaselineChoice]:
    """The baseline of ``run`` and the record of why it was chosen.

    ``spec`` (``--baseline``) is a baseline name, a run id or a tag and is taken as asked.
    """
    if spec is not None:
        m = _asked(store, run, spec)
        if m.run_id == run.run_id:  # every area "unchanged": a comparison that proves nothing
            raise StoreError(
                f"--baseline {spec} is the same run {run.run_id!r}; compare it with an earlier run"
            )
        return m, BaselineChoice(run_id=m.run_id, how="asked", reason=f"asked for with --baseline {spec}")
    earlier = _earlier(store, run)
    earlier_ids = {m.run_id for m in earlier}
    approved = [(set_at, name, rid) for name, rid, set_at, _ in store.baselines() if rid in earlier_ids]
    if approved:
        _, name, rid = max(approved)
        return store.run(rid), BaselineChoice(
            run_id=rid, how="approved", reason=f"the approved baseline {name!r} of suite {run.suite_name}"
        )
    tagged = [m for m in earlier if BASELINE_TAG in m.tags]
    if tagged:
        m = tagged[0]
        return m, BaselineChoice(
            run_id=m.run_id,
            how="tagged",
            reason=f"the latest earlier run of suite {run.suite_name} tagged baseline",
        )
    skipped: list[SkippedRun] = []
    for m in earlier:
        if m.model_name != run.model_name:
            continue  # another model's history: not skipped, simply not this one's
        if not (m.selection().whole or m.selection() == run.selection()):
            reason: str | None = f"asked a subset ({m.selection().describe()})"
        else:
            reason = unfit_reason(store, m, max_error_rate)
        if reason is None:
            return m, BaselineChoice(
                run_id=m.run_id,
                how="latest",
                reason=(
                    f"the latest earlier finished run of suite {run.suite_name} and model {run.model_name} "
                    f"with at most {max_error_rate:.0%} errors"
                ),
                skipped=skipped[:MAX_SKIPPED],
            )
        skipped.append(SkippedRun(run_id=m.run_id, reason=reason))
    return None, BaselineChoice(
        run_id=None,
        how="none",
        reason=(
            f"no earlier finished run of suite {run.suite_name} and model {run.model_name} "
            f"with at most {max_error_rate:.0%} errors"
        ),
        skipped=skipped[:MAX_SKIPPED],
    )


def resolve_baseline(
    store: Store, run: RunManifest, spec: str | None, max_error_rate: float = DEFAULT_MAX_ERROR_RATE
) -> RunManifest | None:
    """The baseline a run is compared with (see ``choose_baseline``)."""
    return choose_baseline(store, run, spec, max_error_rate)[0]
