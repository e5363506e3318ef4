"""Panels of judges: one judge entry naming several judges, each of which grades every answer.

A panel (``judges: {both: {panel: [claude, gpt]}}`` in evals.yaml) is built into its members' ``Judge``s
(``build_judges``); the runner asks each of them for every answer, with its own queue, concurrency, cache
key and prices, and stores every verdict under the member's ``describe()``. The run's manifest names the
panel (``judge_name``), lists its members (``judge_model`` is ``panel(claude-x, gpt-y)``; the config
snapshot holds each member's configuration and the aggregation), so a resume asks the same panel and the
provenance covers every member. An answer's score is made from the members' scores in one place,
``evals.store.rows.aggregate_score``, by the method the manifest records (``panel_aggregation``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evals.config import OFFLINE, Endpoint, JudgeEndpoint
from evals.errors import StoreError
from evals.judge.cost import plan_calls
from evals.judge.judging import Judge, LLMJudge, build_judge
from evals.judge.reference import MODEL as OFFLINE_MODEL
from evals.judge.rubrics import RubricBook, RubricSearch
from evals.outbound.budget import Plan
from evals.outbound.providers.health import FAIL_AFTER
from evals.outbound.redaction import Redactor
from evals.records import Item, RunManifest
from evals.store import Store


def members(name: str, endpoint: JudgeEndpoint) -> list[tuple[str, JudgeEndpoint]]:
    """The judges an entry stands for, by name: the panel's members, or the judge itself."""
    if endpoint.panel is None:
        return [(name, endpoint)]
    return list(endpoint.panel.endpoints().items())


def build_judges(
    name: str,
    endpoint: JudgeEndpoint,
    rubrics_dir: RubricSearch | Path,
    modes: dict[str, str] | None = None,
    fail_after: int = FAIL_AFTER,
    redactor_for: Callable[[JudgeEndpoint], Redactor | None] | None = None,
) -> list[Judge]:
    """The ``Judge`` of each member (one for a single judge), each client built and its key checked.

    ``modes``: the output mode each member settled on earlier in this run (a resumed run), by name;
    ``redactor_for``: the redactor of a member's endpoint (None: text goes as written).
    """
    built: list[Judge] = []
    try:
        for member, configured in members(name, endpoint):
            redactor = redactor_for(configured) if redactor_for else None
            mode = (modes or {}).get(member)
            built.append(
                build_judge(
                    member, configured, rubrics_dir, mode=mode, fail_after=fail_after, redactor=redactor
                )
            )
    except BaseException:
        for judge in built:  # a later member's bad key must not leak the earlier members' connections
            _close_quietly(judge)
        raise
    return built


def _close_quietly(judge: Judge) -> None:
    asyncio.run(judge.aclose())


def stored_labels(name: str, endpoint: JudgeEndpoint, rubrics_dir: RubricSearch | Path) -> list[str]:
    """What each member's verdicts are stored under (``Judge.describe()``), without building a client."""
    labels = []
    for member, configured in members(name, endpoint):
        model = OFFLINE_MODEL if configured.provider == OFFLINE else (configured.model or member)
        book = RubricBook(rubrics_dir, configured.rubric)
        labels.append(f"{member} ({model}), rubric {book.get(book.default).label}")
    return labels


def check_same_panel(manifest: RunManifest, name: str, endpoint: JudgeEndpoint) -> None:
    """StoreError when resuming a run with other judges than it started with (members added or removed,
    a panel for a single judge or the reverse): its verdicts would not be one panel's."""
    before = sorted(snapshot_members(manifest))
    now = sorted(m for m, _ in members(name, endpoint)) if endpoint.panel is not None else []
    if before != now:
        said = ", ".join(before) or "a single judge"
        raise StoreError(
            f"run {manifest.run_id} was judged by {said}, but judge {name!r} is now "
            f"{', '.join(now) or 'a single judge'}; resume it with the same judges, or start a new run"
        )


def panel_model(judges: list[Judge]) -> str:
    """A panel's ``judge_model``: ``panel(claude-x, gpt-y)``, its members' models in panel order."""
    return f"panel({', '.join(j.model for j in judges)})"


def for_panel(manifest: RunManifest, name: str, endpoint: JudgeEndpoint, judges: list[Judge]) -> RunManifest:
    """A new run's manifest made for a panel: its name, its members' models, every member's configuration
    and output mode, and the aggregation in the config snapshot. A single judge's manifest is returned as is."""
    if endpoint.panel is None:
        return manifest
    config = dict(manifest.config)
    config["judge"] = {
        "panel": endpoint.panel.model_dump(mode="json"),
        "members": {member: configured.snapshot() for member, configured in members(name, endpoint)},
    }
    modes = {j.name: j.mode for j in judges if isinstance(j, LLMJudge)}
    config.pop("structured", None)
    if modes:
        config["panel_modes"] = modes
        config["structured"] = _modes_text(modes)
    return dataclasses.replace(manifest, judge_name=name, judge_model=panel_model(judges), config=config)


def _modes_text(modes: dict[str, str]) -> str:
    # One string, as a single judge's mode is: what the scorecard shows and provenance compares.
    return ", ".join(f"{name} {mode}" for name, mode in modes.items())


def member_modes(manifest: RunManifest) -> dict[str, str]:
    """The output mode each member of the run's panel settled on, by name (empty for a single judge)."""
    modes = manifest.config.get("panel_modes")
    return {str(k): str(v) for k, v in modes.items()} if isinstance(modes, dict) else {}


def watch_modes(store: Store, run_id: str, judges: list[Judge]) -> None:
    """Record in the run's config each member's output mode as it is now, and whenever ``structured: auto``
    steps one down, so that a resumed run starts each member where it was."""

    def record(member: str, mode: str) -> None:
        config = dict(store.run(run_id).config)
        modes = {**member_modes(store.run(run_id)), member: mode}
        config["panel_modes"], config["structured"] = modes, _modes_text(modes)
        store.set_config(run_id, config)

    for judge in judges:
        if isinstance(judge, LLMJudge):
            if member_modes(store.run(run_id)).get(judge.name) != judge.mode:
                record(judge.name, judge.mode)
            judge.on_fallback = lambda mode, member=judge.name: record(member, mode)


def member_name(label: str) -> str:
    """The member's name in a verdict's ``judge`` label (``claude (claude-x), rubric ...`` gives ``claude``)."""
    return label.partition(" (")[0]


def snapshot_members(manifest: RunManifest) -> dict[str, Any]:
    """The configuration of each member of the run's panel, by name, as stored with the run (empty for one judge)."""
    found = (manifest.config.get("judge") or {}).get("members")
    return dict(found) if isinstance(found, dict) else {}


def plan_panel(
    to_answer: list[Item],
    to_judge: list[list[tuple[Item, str, bool]]] | None,
    model_name: str,
    model: Endpoint,
    name: str,
    endpoint: JudgeEndpoint,
    rubrics_dir: RubricSearch | Path,
    judge_repeats: int = 1,
) -> Plan:
    """``evals.outbound.budget.plan_calls`` for a panel: the model's calls, then each member's, priced at its own
    rates. ``to_judge``: per member (panel order), the stored answers it has still to grade (a resume)."""
    plans = [
        plan_calls(
            to_answer, to_judge[m] if to_judge else [], model_name, model, member, configured, rubrics_dir,
            judge_repeats,
        )
        for m, (member, configured) in enumerate(members(name, endpoint))
    ]  # fmt: skip
    return Plan([plans[0].endpoints[0], *(p.endpoints[1] for p in plans)])
