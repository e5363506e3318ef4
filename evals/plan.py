"""What a run is before it runs: its id, its manifest (what is asked of whom, with a config snapshot free of
secrets), and whether a stored run can be resumed or an id is free."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

from evals import __version__
from evals.config import Endpoint, JudgeEndpoint
from evals.errors import StoreError
from evals.judge import reference as reference_judge
from evals.judge.judging import Judge, LLMJudge
from evals.judge.provenance import rubrics_hash
from evals.records import CustomPattern, RunConfig, RunManifest, Selection, content_hash
from evals.store import Store
from evals.store.retention import check_workable
from evals.suites import Suite

MAX_SAMPLES = 100
"""Largest ``--samples``: more answers per item than this is a mistake, not a measurement."""


def now() -> str:
    """The current time, ISO 8601 with its UTC offset."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id(model_name: str | None = None) -> str:
    """Sortable by start time and unique across machines sharing a store: ``20261122T231500Z-qwen-3f9a0c1e``.

    The model's name (made safe for a run id) tells runs of one night apart at a glance; 32 random bits
    keep two machines starting the same model in the same second from colliding.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    model = re.sub(r"[^A-Za-z0-9._-]+", "-", model_name or "").strip("-._")[:40]
    return "-".join(part for part in (stamp, model, secrets.token_hex(4)) if part)


def judge_fingerprint(judge: Judge) -> str:
    """The judge's configured identity as one hash: ``JudgeIdentity.digest`` for a frontier judge; the
    offline judge's algorithm version (what its cache key holds in the judge's place) for it."""
    if isinstance(judge, LLMJudge):
        return judge.identity.digest
    return content_hash({"judge_model": f"{reference_judge.MODEL}/v{reference_judge.ALGORITHM}"})


def plan_run(
    suite: Suite,
    model_name: str,
    model: Endpoint,
    judge: Judge,
    judge_endpoint: JudgeEndpoint,
    samples: int = 1,
    tags: tuple[str, ...] = (),
    run_id: str | None = None,
    selection: Selection | None = None,
    judge_repeats: int = 1,
) -> RunManifest:
    """The manifest of a new run: what will be asked of whom, with a config snapshot free of secrets.

    A ``selection`` that is not the whole suite is kept in the snapshot: resume, scorecard and gate know the
    run covered a subset. So are the suite's own redaction patterns, for what later re-sends the run's text.
    """
    used = {judge.rubric_for(item).label: judge.rubric_for(item).name for item in suite.items}
    rubrics = sorted(used)
    return RunManifest(
        run_id=run_id or new_run_id(model_name),
        suite_name=suite.name,
        suite_path=str(suite.path),
        suite_hash=suite.hash,
        model_name=model_name,
        model=model.model,
        judge_name=judge.name,
        judge_model=judge.model,
        # One rubric: its name and hash; several: all their names, and a hash of the whole set.
        rubric_name="+".join(sorted(set(used.values()))),
        rubric_hash=rubrics_hash(rubrics),
        samples=samples,
        started_at=now(),
        config=_config(model, judge, judge_endpoint, selection, judge_repeats, suite.patterns),
        tags=tuple(tags),
        lookingglass_version=__version__,
        rubrics=tuple(rubrics),
    )


def _config(
    model: Endpoint,
    judge: Judge,
    judge_endpoint: JudgeEndpoint,
    selection: Selection | None,
    judge_repeats: int = 1,
    patterns: tuple[CustomPattern, ...] = (),
) -> RunConfig:
    config: dict[str, Any] = {
        "model": model.snapshot(),
        "judge": judge_endpoint.snapshot(),
        "patterns": patterns,
    }
    if judge_repeats != 1:
        config["judging"] = {"repeats": judge_repeats}
    if isinstance(judge, LLMJudge):
        config["structured"] = judge.mode  # the output mode in effect; updated if ``auto`` steps down
    if selection is not None and not selection.whole:
        config["selection"] = selection
    return RunConfig.model_validate(config)


def structured_mode(manifest: RunManifest) -> str | None:
    """The judge's output mode the run settled on (``json_schema``, ``json_object``, ``text``); None if none."""
    return manifest.config.structured


def check_resumable(store: Store, run_id: str, suite: Suite | None) -> RunManifest:
    """The manifest of a run to resume; StoreError when the suite changed since it started."""
    manifest = store.run(run_id)
    check_workable(store, run_id)  # a purged run, or an encrypted one without its key, has no text to work
    if suite is not None and suite.hash != manifest.suite_hash:
        raise StoreError(
            f"run {run_id} was started on suite {manifest.suite_name!r} with hash {manifest.suite_hash}, "
            f"but {suite.path} now has hash {suite.hash}; start a new run instead of resuming"
        )
    return manifest


def check_free(store: Store, run_id: str) -> None:
    if store.has_run(run_id):
        raise StoreError(
            f"run id {run_id!r} is taken in {store.path}: choose another --run-id, "
            f"or continue that run with --resume {run_id}"
        )


def record_mode(store: Store, run_id: str, mode: str) -> None:
    """Keep the judge's new output mode in the run's config, so a resumed run starts there."""
    store.set_config(run_id, store.run(run_id).config.updated(structured=mode))
