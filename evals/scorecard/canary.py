"""The canary's shift: how far the judge's scores of the frozen anchor answers moved between two runs.

Computed here once (``report_of``); the scorecard, its HTML, Markdown and terminal views, the gate and
``evals judge drift`` all read the ``CanaryReport`` it returns.

The shift is the paired mean difference of anchor scores (this observation minus the previous one of the
same anchor set), with a 95 % paired t interval from ``evals.stats.paired_delta`` (the scorecard's own
paired test, checked against scipy). With 20 anchors and integer scores a percentile bootstrap is too
narrow: most differences are 0, and a resample that happens to miss the few non-zero ones says "no
spread"; the t interval is wider there and collapses only when every anchor moved by the same amount,
which is exactly a judge that moved as a whole. The canary moved when that interval excludes 0 and the
shift is at least ``min_shift`` points.
"""

from __future__ import annotations

from evals import stats
from evals.scorecard.sections import CanaryReport, CanaryReset
from evals.store import Store
from evals.store import canary as rows


def _scores(store: Store, observation: rows.Observation) -> list[rows.AnchorScore]:
    return rows.scores(store, observation.set_id, observation.run_id)


def _previous(store: Store, observation: rows.Observation, against: str | None) -> rows.Observation | None:
    """The observation compared with: ``against``'s in the same set when it has one, else the latest of
    an earlier run that has scores."""
    earlier = [
        o
        for o in rows.observations(store, set_id=observation.set_id)
        if o.error is None and (o.run_started_at, o.run_id) < (observation.run_started_at, observation.run_id)
    ]
    if against is not None:
        chosen = [o for o in earlier if o.run_id == against]
        if chosen:
            return chosen[0]
    return earlier[-1] if earlier else None


def report_of(store: Store, observation: rows.Observation, against: str | None = None) -> CanaryReport:
    """The canary figures of one observation, against the previous one of its set (or ``against``'s)."""
    anchor_set = rows.anchor_set(store, observation.set_id)
    now_scores = _scores(store, observation)
    scored = [s.score for s in now_scores if s.score is not None]
    report = CanaryReport(
        run_id=observation.run_id,
        set_id=anchor_set.set_id,
        judge_name=anchor_set.judge_name,
        suite_name=anchor_set.suite_name,
        anchors=len(rows.anchors(store, anchor_set.set_id)),
        source_run=anchor_set.source_run,
        created_at=anchor_set.created_at,
        observed_at=observation.observed_at,
        scored=len(scored),
        mean=sum(scored) / len(scored) if scored else None,
        min_shift=observation.min_shift,
        model_ids=list(observation.model_ids),
        error=observation.error,
        rubric_changed=observation.rubric_hash != anchor_set.rubric_hash,
        resets=[
            CanaryReset(at=e.at, who=e.who, reason=e.reason)
            for e in rows.events(store, anchor_set.judge_name, anchor_set.suite_name)
            if e.at <= observation.observed_at
        ],
        calls=sum(1 for s in now_scores if s.tokens_in is not None or s.error is not None),
        tokens_in=sum(s.tokens_in or 0 for s in now_scores),
        tokens_out=sum(s.tokens_out or 0 for s in now_scores),
    )
    previous = None if observation.error else _previous(store, observation, against)
    if previous is None:
        return report
    before = {s.item_id: [s.score] for s in _scores(store, previous) if s.score is not None}
    after = {s.item_id: [s.score] for s in now_scores if s.score is not None}
    delta = stats.paired_delta(before, after)
    low, high = delta.ci_low, delta.ci_high
    moved = (
        delta.delta is not None
        and low is not None
        and high is not None
        and (low > 0 or high < 0)
        and abs(delta.delta) >= observation.min_shift
    )
    return report.model_copy(
        update={
            "previous_run": previous.run_id,
            "n_pairs": delta.n_pairs,
            "shift": delta.delta,
            "ci_low": low,
            "ci_high": high,
            "moved": moved,
        }
    )


def canary_report(store: Store, run_id: str, against: str | None = None) -> CanaryReport | None:
    """The canary of a run (its first observation), or None when the run has none."""
    found = rows.observations(store, run_id=run_id)
    return report_of(store, found[0], against) if found else None


def canary_lines(store: Store, run_id: str) -> list[str]:
    """What the end of ``evals run`` says about the run's canary (nothing when it has none)."""
    report = canary_report(store, run_id)
    return report.lines() if report is not None else []


def canary_history(
    store: Store, judge_name: str | None = None, suite_name: str | None = None
) -> list[CanaryReport]:
    """Every observation of the judge's (and suite's) anchor sets, in run order: ``evals judge drift``."""
    wanted = {s.set_id for s in rows.sets(store, judge_name, suite_name)}
    return [report_of(store, o) for o in rows.observations(store) if o.set_id in wanted]


def gate_reason(store: Store, candidate: str, baseline: str) -> str | None:
    """Why the gate cannot decide because of the judge's canary, or None: the candidate's anchor scores
    moved against the baseline's (same anchor set), else against the previous observation; or the canary
    was re-anchored after the baseline ran and the baseline is not in the new anchor set (a judge change
    people accepted: the two runs were still graded by different judges)."""
    report = canary_report(store, candidate, against=baseline)
    if report is None:
        return None
    if report.moved:
        return (
            report.moved_message("a drop may be the judge's, not the model's")
            + "; after a deliberate judge change re-anchor with evals judge canary reset, or pass "
            "--allow-judge-change"
        )
    since = [r for r in report.resets if r.at > store.run(baseline).started_at]
    anchored_with = {o.run_id for o in rows.observations(store, set_id=report.set_id)}
    if since and baseline not in anchored_with:  # a baseline the new anchors came from is the new judge's
        last = since[-1]
        return (
            f"the judge's canary was re-anchored on {last.at} ({last.reason or 'no reason given'}) after the "
            f"baseline {baseline} ran: the two runs were graded by a judge that changed in between; gate "
            "against a baseline run since, or pass --allow-judge-change"
        )
    return None
