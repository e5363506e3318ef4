"""Which run a run is compared with, and why; and which runs are of its kind.

By default a run is compared only with a run of its kind (``unlike``): the same suite, model name, judge
(name and model) and rubrics. Of those, an approved baseline (``evals baseline set``) wins, then the
latest earlier run tagged ``baseline``; otherwise the latest earlier *finished* run whose error rate is
within the gate's ``max_error_rate``. An approved or tagged baseline of another kind (a frontier
model's run against the local model's baseline) is not taken: it is skipped and named with why and what
to pass instead. Interrupted, failed and mostly-error runs are skipped and named, and runs tagged
``excluded`` (``evals runs exclude``) never count. A quick subset run (``--area``, ``--item-tag``,
``--limit``) is no baseline for a run of the whole suite. ``--baseline`` compares with any run, as asked.
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
"""The gate's default ``max_error_rate`` (``evals.config.GateSettings``)."""
MAX_SKIPPED = 10
"""At most this many skipped runs are named on the scorecard."""


def is_excluded(m: RunManifest) -> bool:
    """True when the run was excluded from baseline choice and history."""
    return EXCLUDED in m.tags


def rubric_versions(m: RunManifest) -> dict[str, str]:
    """The rubrics a run graded with, name to hash (a run stored before ``rubrics`` was kept: its one)."""
    labels = [label.rpartition("@") for label in m.rubrics]
    return {name: digest for name, _, digest in labels} if labels else {m.rubric_name: m.rubric_hash}


def unlike(run: RunManifest, other: RunManifest) -> tuple[str, str] | None:
    """How ``other``'s scores cannot be compared with ``run``'s: (what differs, how ``other`` and ``run``
    differ in it), for another model name, judge (name or model) or rubric (one both grade with, changed;
    or none in common). None when the two are of one kind: only such runs are default baselines and
    share a history line."""
    if other.model_name != run.model_name:
        return "models", f"is model {other.model_name}, this run is model {run.model_name}"
    if (other.judge_name, other.judge_model) != (run.judge_name, run.judge_model):
        return "judges", (
            f"is judged by {other.judge_name} ({other.judge_model}), this run by {run.judge_name} "
            f"({run.judge_model})"
        )
    theirs, ours = rubric_versions(other), rubric_versions(run)
    shared = theirs.keys() & ours.keys()
    changed = sorted(name for name in shared if theirs[name] != ours[name])

    def labels(versions: dict[str, str]) -> str:
        return ", ".join(f"{name}@{versions[name]}" for name in (changed or sorted(versions)))

    if changed or not shared:
        return "rubrics", f"was graded with rubric {labels(theirs)}, this run with {labels(ours)}"
    return None


def _other_kind(run: RunManifest, m: RunManifest, what: str, spec: str) -> SkippedRun | None:
    """The record naming a baseline of another kind that is not taken by default, or None when it is like."""
    differs = unlike(run, m)
    if differs is None:
        return None
    across, how = differs
    return SkippedRun(
        run_id=m.run_id, reason=f"{what} {how}: pass --baseline {spec} to compare across {across}"
    )


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


def _kind(run: RunManifest) -> str:
    return (
        f"suite {run.suite_name} and model {run.model_name}, judge {run.judge_name} ({run.judge_model}) "
        f"and rubric {run.rubric_name}"
    )


def choose_baseline(
    store: Store, run: RunManifest, spec: str | None = None, max_error_rate: float = DEFAULT_MAX_ERROR_RATE
) -> tuple[RunManifest | None, BaselineChoice]:
    """The baseline of ``run`` and the record of why it was chosen.

    ``spec`` (``--baseline``) is a baseline name, a run id or a tag and is taken as asked, whatever its
    kind. By default only a run of ``run``'s kind is taken (``unlike``).
    """
    if spec is not None:
        m = _asked(store, run, spec)
        if m.run_id == run.run_id:  # every area "unchanged": a comparison that proves nothing
            raise StoreError(
                f"--baseline {spec} is the same run {run.run_id!r}; compare it with an earlier run"
            )
        return m, BaselineChoice(run_id=m.run_id, how="asked", reason=f"asked for with --baseline {spec}")
    earlier = _earlier(store, run)
    by_id = {m.run_id: m for m in earlier}
    skipped: list[SkippedRun] = []
    # Newest approval first; one of another kind is named (it would have won before) and passed over.
    approved = sorted(
        ((set_at, name, rid) for name, rid, set_at, _ in store.baselines() if rid in by_id), reverse=True
    )
    for _, name, rid in approved:
        other = _other_kind(run, by_id[rid], f"approved baseline {name}", name)
        if other is None:
            return by_id[rid], BaselineChoice(
                run_id=rid,
                how="approved",
                reason=f"the approved baseline {name!r} of suite {run.suite_name}",
                skipped=skipped[:MAX_SKIPPED],
            )
        skipped.append(other)
    for m in (m for m in earlier if BASELINE_TAG in m.tags):
        other = _other_kind(run, m, f"run {m.run_id} tagged baseline", m.run_id)
        if other is None:
            return m, BaselineChoice(
                run_id=m.run_id,
                how="tagged",
                reason=f"the latest earlier run of suite {run.suite_name} tagged baseline",
                skipped=skipped[:MAX_SKIPPED],
            )
        if all(s.run_id != m.run_id for s in skipped):  # named once, as the approved baseline it is
            skipped.append(other)
    for m in earlier:
        if unlike(run, m) is not None:
            continue  # another model's, judge's or rubric's history: not skipped, simply not this one's
        if not (m.selection().whole or m.selection() == run.selection()):
            reason: str | None = f"asked a subset ({m.selection().describe()})"
        else:
            reason = unfit_reason(store, m, max_error_rate)
        if reason is None:
            return m, BaselineChoice(
                run_id=m.run_id,
                how="latest",
                reason=f"the latest earlier finished run of {_kind(run)}, with at most {max_error_rate:.0%} errors",
                skipped=skipped[:MAX_SKIPPED],
            )
        skipped.append(SkippedRun(run_id=m.run_id, reason=reason))
    return None, BaselineChoice(
        run_id=None,
        how="none",
        reason=f"no earlier finished run of {_kind(run)}, with at most {max_error_rate:.0%} errors",
        skipped=skipped[:MAX_SKIPPED],
    )


def resolve_baseline(
    store: Store, run: RunManifest, spec: str | None, max_error_rate: float = DEFAULT_MAX_ERROR_RATE
) -> RunManifest | None:
    """The baseline a run is compared with (see ``choose_baseline``)."""
    return choose_baseline(store, run, spec, max_error_rate)[0]
