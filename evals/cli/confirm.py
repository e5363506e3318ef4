"""What re-grading stored answers needs on the command line: a rerun's perimeter (the suite's marking as its
file says today), and confirming a failing decision before it stands (``gate: {confirm_repeats}``), shared
by ``evals gate``, ``evals run`` and ``evals judge rerun``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evals.cli.common import err, plain
from evals.config import Config
from evals.errors import EvalsError
from evals.records import RunManifest
from evals.store import Store
from evals.suites import load_suite
from evals.trust import rerun as reruns

if TYPE_CHECKING:
    from evals.scorecard.decision import Verdict


def perimeter(config: Config, manifest: RunManifest, fail_after: int) -> reruns.Perimeter:
    """A rerun's perimeter: the config's redaction and default level, and the marking of the run's suite as
    its file says today (when the file is gone, the levels stored with the run stand, and that is said)."""
    marking = None
    if manifest.suite_path.startswith("hf:"):  # never fetched at run time: the stored levels stand
        return reruns.Perimeter(config.redaction, config.default_sensitivity, None, fail_after)
    try:
        marking = load_suite(manifest.suite_path, config.default_sensitivity).levels()
    except (EvalsError, OSError) as exc:
        err.print(
            plain(
                f"suite {manifest.suite_path} cannot be read ({exc}); its items keep the levels stored with the run"
            )
        )
    return reruns.Perimeter(config.redaction, config.default_sensitivity, marking, fail_after)


def confirm_failing(config: Config, store: Store, verdict: Verdict, allow_judge_change: bool) -> Verdict:
    """``gate: {confirm_repeats: K}``: the failing areas' answers of both runs graded again by their judge
    (through the gateway, on each run's audit chain) until each has K verdicts; then decided again."""
    from evals.judge.rubrics import rubric_search
    from evals.outbound.gateway import FAIL_AFTER
    from evals.outbound.telemetry import tracing
    from evals.scorecard import decision as deciding
    from evals.trust.confirm import confirm

    areas = deciding.failing_areas(verdict)
    repeats = verdict.settings.confirm_repeats or 1
    assert verdict.baseline is not None
    for m in (verdict.candidate, verdict.baseline):
        name, endpoint = config.judge(m.judge_name)
        with tracing(config):  # spans to the collector, when telemetry: is set
            done = confirm(
                store,
                m,
                areas,
                repeats,
                name,
                endpoint,
                rubric_search(config),
                perimeter(config, m, FAIL_AFTER),
            )
        what = done.skipped or (
            f"{done.answers} answers in {', '.join(areas)} have {repeats} verdicts each ({done.asked} asked now"
            + (f"; {done.kept} restricted kept their first" if done.kept else "") + ")"
        )  # fmt: skip
        err.print(plain(f"confirming before failing, run {m.run_id}: {what}"), soft_wrap=True)
    return deciding.decide(
        store, verdict.candidate.run_id, verdict.baseline.run_id, verdict.settings, allow_judge_change
    )
