"""What a run is before it runs: its id, its manifest (what is asked of whom, with a config snapshot free of
secrets), whether a stored run can be resumed or an id is free, what it would cost (``--dry-run``), and
opening it: the run created or locked, every endpoint checked and its client built (``open_run``)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import secrets
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from evals import __version__
from evals.config import OFFLINE, Endpoint, JudgeEndpoint, RedactionSettings
from evals.errors import StoreError
from evals.judge import reference as reference_judge
from evals.judge.judging import Judge, LLMJudge, build_judge, build_judge_messages
from evals.judge.panel import build_judges, check_same_panel, for_panel, member_modes, members, watch_modes
from evals.judge.provenance import rubrics_hash
from evals.judge.rubrics import RubricBook, RubricSearch
from evals.outbound.budget import CHARS_PER_TOKEN, Budget, Price, estimate_tokens, prompt_text
from evals.outbound.fleet import Limits
from evals.outbound.gateway import FAIL_AFTER, Door, Gateway
from evals.outbound.sensitivity import Destination, Marking, check_restricted
from evals.records import MAX_SAMPLES as MAX_SAMPLES  # where it has always been imported from
from evals.records import CustomPattern, Item, RunConfig, RunManifest, Selection, Sensitivity, content_hash
from evals.store import Store
from evals.store.retention import check_workable, warn_if_written_in_clear
from evals.suites import Suite


class Observer(Protocol):
    """Work done after a run's last verdict, in its event loop and on its audit trail (the judge's canary,
    ``evals.trust.canary``): it calls out through the run's gateway."""

    def missed(self, store: Store, manifest: RunManifest, judge: JudgeEndpoint) -> bool:
        """True when a run resumed with nothing left to do still owes this observation."""
        ...

    async def observe(self, store: Store, manifest: RunManifest, judge: Judge) -> None:
        """Observe once the run finished; never raises but on an interrupt."""
        ...


@dataclass(frozen=True)
class RunSpec:
    """What to run: a new run of ``suite``, or (``resume``) the rest of a stored one."""

    model_name: str
    model: Endpoint
    judge_name: str
    judge: JudgeEndpoint
    rubrics: RubricSearch | Path
    suite: Suite | None = None
    """The suite (a new run needs one; a resume checks it has not changed)."""
    samples: int = 1
    judge_repeats: int = 1
    """How many times the judge grades each answer (the first may come from the judgment cache, the others
    are fresh askings): the scorecard measures the judge's own noise from them."""
    tags: tuple[str, ...] = ()
    run_id: str | None = None
    resume: str | None = None
    selection: Selection | None = None
    """What part of the suite a new run asks, recorded in the manifest."""
    max_cost: float | None = None
    """The most this invocation may spend (``Budget``); needs the endpoints' token prices."""
    fail_after: int = FAIL_AFTER
    """Stop when this many first calls to an endpoint all fail with the same error (0: never)."""
    redaction: RedactionSettings | None = None
    """How text bound for an external endpoint is redacted (``evals.outbound.gateway``)."""
    default_sensitivity: Sensitivity = "internal"
    observer: Observer | None = None
    """The judge's drift canary, observed once the run finished (None: none)."""
    inhouse: tuple[str, JudgeEndpoint] | None = None
    """The judge's ``restricted_judge`` (name, endpoint): it alone grades the restricted items."""
    detach: bool = False
    """A batch judge's batches are submitted and not waited for: the run is left ``pending`` (``--detach``)."""
    plan_only: bool = False
    """Create the run (status ``planned``) and ask nothing: ``evals worker`` processes work it."""

    def endpoints(self) -> dict[str, tuple[str, Endpoint]]:
        """Every endpoint the run calls, by name: the model, and the judge or each member of its panel."""
        found: dict[str, tuple[str, Endpoint]] = {self.model_name: ("model", self.model)}
        for name, endpoint in members(self.judge_name, self.judge):
            found[name] = ("judge", endpoint)
        if self.inhouse is not None:
            found[self.inhouse[0]] = ("judge", self.inhouse[1])
        return found


def check_perimeter(spec: RunSpec, items: Sequence[Item]) -> None:
    """Refuse, before the run exists, restricted items bound for an external endpoint: the model reads them
    all; the judge (external when any member of a panel is) reads them unless an in-house judge does."""
    judges = [e for _, e in members(spec.judge_name, spec.judge)]
    model = Destination("model", spec.model_name, spec.model.is_external())
    judge = Destination("judge", spec.judge_name, any(e.is_external() for e in judges))
    if spec.inhouse is None:
        check_restricted(items, [model, judge])
        return
    check_restricted(items, [model])
    check_restricted([i for i in items if i.sensitivity != "restricted"], [judge])


def check_same_endpoints(manifest: RunManifest, spec: RunSpec) -> None:
    """StoreError when a resume names other endpoints than the run started with."""
    if (spec.model_name, spec.judge_name) != (manifest.model_name, manifest.judge_name):
        raise StoreError(
            f"run {manifest.run_id} used model {manifest.model_name!r} and judge {manifest.judge_name!r}; "
            "resume it with those (or leave --model and --judge out)"
        )
    inhouse = spec.inhouse[0] if spec.inhouse else None
    if inhouse != manifest.config.judge.restricted_judge:
        raise StoreError(
            f"run {manifest.run_id} graded its restricted items with "
            f"{manifest.config.judge.restricted_judge or 'no in-house judge'}, the config now names "
            f"{inhouse or 'none'} (restricted_judge): resume it with the same judges, or start a new run"
        )
    check_same_panel(manifest, spec.judge_name, spec.judge)


def stored_patterns(manifest: RunManifest | None) -> list[CustomPattern]:
    """The suite's own redaction patterns (``redact:``), as kept with the run when it started."""
    return list(manifest.config.patterns) if manifest is not None else []


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
        "patterns": patterns,  # a resume and a rerun redact with the suite's own patterns too
    }
    if judge_repeats != 1:
        config["judging"] = {"repeats": judge_repeats}
    if isinstance(judge, LLMJudge):
        config["structured"] = judge.mode  # the output mode in effect; updated if ``auto`` steps down
    if selection is not None and not selection.whole:
        config["selection"] = selection
    return RunConfig.model_validate(config)


def start_run(
    store: Store,
    spec: RunSpec,
    suite: Suite,
    run_id: str,
    judges: list[Judge],
    gateway: Gateway,
    held: ExitStack,
) -> RunManifest:
    """Plan, lock and store a new run (its manifest records where its text went and how it was redacted)."""
    manifest = plan_run(
        suite, spec.model_name, spec.model, judges[0], spec.judge, spec.samples, spec.tags, run_id,
        spec.selection, spec.judge_repeats,
    )  # fmt: skip
    manifest = for_panel(manifest, spec.judge_name, spec.judge, judges)
    redaction = gateway.snapshot((n, e) for n, (_, e) in spec.endpoints().items())
    judge_external = any(e.is_external() for _, e in members(spec.judge_name, spec.judge))
    redaction.update(model_external=spec.model.is_external(), judge_external=judge_external)
    config = manifest.config.updated(redaction=redaction)
    if spec.inhouse is not None:  # the in-house judge of the restricted items, beside the judge
        config = config.updated(judge={**config.judge.model_dump(), "inhouse": spec.inhouse[1].snapshot()})
    manifest = dataclasses.replace(manifest, config=config, status="planned" if spec.plan_only else "running")
    held.enter_context(store.lock_run(manifest.run_id))
    check_free(store, manifest.run_id)  # again: another process may have taken it meanwhile
    warn_if_written_in_clear(store)
    store.create_run(manifest, list(suite.items))
    return manifest


@dataclass
class OpenRun:
    """A stored run ready to be worked: its manifest, and the gateway's doors to its model and judges."""

    manifest: RunManifest
    gateway: Gateway
    model: Door
    judges: list[Judge]
    inhouse: Judge | None
    marking: Marking | None


def lock_resumed(store: Store, spec: RunSpec, held: ExitStack, shared: bool = False) -> RunManifest:
    """Lock the stored run ``spec.resume`` (on ``held``; ``shared``: among ``evals worker`` processes) and
    check it may go on as ``spec`` says: its manifest."""
    assert spec.resume is not None
    store.run(spec.resume)  # an unknown id fails before the lock makes a folder for it
    held.enter_context(store.lock_run(spec.resume, shared))
    manifest = check_resumable(store, spec.resume, spec.suite)
    check_same_endpoints(manifest, spec)
    return manifest


def open_run(
    store: Store,
    spec: RunSpec,
    held: ExitStack,
    manifest: RunManifest | None = None,
    budget: Budget | None = None,
    limits: Limits | None = None,
    concurrency: int | None = None,
) -> OpenRun:
    """Check every endpoint and build its client, then create the run ``spec`` names (its lock on
    ``held``), or go on with the resumed run ``manifest`` (``lock_resumed``), all before a call: a bad config
    leaves no run. ``budget``, ``limits`` and ``concurrency`` go to its gateway (``Gateway``)."""
    suite, run_id = spec.suite, spec.run_id
    if manifest is None:
        if suite is None:
            raise ValueError("a new run needs a suite")
        run_id = run_id or new_run_id(spec.model_name)
        check_free(store, run_id)
    mode = structured_mode(manifest) if manifest is not None else None
    marking = suite.levels() if suite is not None else None
    if manifest is None or marking is None:
        items = list(suite.items) if suite is not None else store.items(manifest.run_id if manifest else "")
    else:  # a resumed run's stored items, at the stricter of their stored level and the suite's today
        items = [marking.apply(item) for item in store.items(manifest.run_id)]
    check_perimeter(spec, items)
    gateway = run_gateway(spec, manifest, budget, limits, concurrency)
    try:
        # One judge, or each member of a panel, with the output mode it settled on when resumed.
        modes = (
            member_modes(manifest)
            if spec.judge.panel and manifest
            else {spec.judge_name: mode}
            if mode
            else {}
        )
        judges = build_judges(spec.judge_name, spec.judge, spec.rubrics, gateway, modes)
        inhouse = build_judge(*spec.inhouse, spec.rubrics, gateway) if spec.inhouse else None
        for item in suite.items if suite else ():
            for member in [*judges, *([inhouse] if inhouse else [])]:  # a missing or broken rubric
                member.rubric_for(item)  # fails here, before any call is paid for
        model = gateway.door(spec.model_name, spec.model)
        resumed = manifest is not None
        if manifest is None:
            assert suite is not None and run_id is not None  # a new run: checked above
            manifest = start_run(store, spec, suite, run_id, judges, gateway, held)
    except BaseException:
        asyncio.run(gateway.aclose())
        raise
    _watch_modes(store, manifest, spec, judges, resumed_mode=mode if resumed else None)
    return OpenRun(manifest, gateway, model, judges, inhouse, marking)


def run_gateway(
    spec: RunSpec,
    manifest: RunManifest | None,
    budget: Budget | None,
    limits: Limits | None = None,
    concurrency: int | None = None,
) -> Gateway:
    """The run's gateway: the suite's own redaction patterns (kept with the run, for a resume), the config's."""
    patterns = spec.suite.patterns if spec.suite is not None else stored_patterns(manifest)
    return Gateway(
        spec.redaction, patterns, budget, spec.default_sensitivity, spec.fail_after, limits, concurrency
    )


def _watch_modes(
    store: Store, manifest: RunManifest, spec: RunSpec, judges: list[Judge], resumed_mode: str | None
) -> None:
    """Keep in the run's config the output mode each judge settles on, so a resumed run starts there."""
    if spec.judge.panel is not None:
        watch_modes(store, manifest.run_id, judges)
        return
    judge = judges[0]
    if isinstance(judge, LLMJudge):
        if resumed_mode is not None and judge.mode != resumed_mode:  # the config's mode changed since
            record_mode(store, manifest.run_id, judge.mode)
        judge.on_fallback = lambda new_mode: record_mode(store, manifest.run_id, new_mode)


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


ESTIMATE_NOTE = (
    f"estimate, not a quote: prompt tokens ≈ characters/{CHARS_PER_TOKEN}; completion tokens counted at "
    "max_tokens (and judged answers at the model's max_tokens), so usage is an upper bound unless prompts "
    "tokenize worse than that; an unparseable verdict asked again and judgments reused from the cache "
    "are not counted"
)
"""What ``evals run --dry-run`` says of its estimate."""


@dataclass
class EndpointPlan:
    """The calls a run would make to one endpoint, with their estimated tokens and cost."""

    role: str
    """``model`` or ``judge``."""
    name: str
    """The endpoint's name in evals.yaml."""
    model: str
    calls: int = 0
    tokens_in: int = 0
    """Estimated prompt tokens, summed."""
    tokens_out: int = 0
    """Completion tokens at ``max_tokens``, summed (an upper bound)."""
    price: Price | None = None
    offline: bool = False
    """The offline reference judge: gradings, but no calls and no cost."""

    @property
    def cost(self) -> float | None:
        """Estimated cost, or None when the endpoint has no prices."""
        if self.offline:
            return 0.0
        return None if self.price is None else self.price.cost(self.tokens_in, self.tokens_out)


@dataclass
class Plan:
    """What a run would do, per endpoint (``evals run --dry-run``)."""

    endpoints: list[EndpointPlan] = field(default_factory=list)

    @property
    def cost(self) -> float | None:
        """The estimated total; None when an endpoint that makes calls has no prices."""
        costs = [e.cost for e in self.endpoints if e.calls or e.offline]
        return None if any(c is None for c in costs) else sum(c for c in costs if c is not None)


def plan_calls(
    to_answer: list[Item],
    to_judge: list[tuple[Item, str, bool]],
    model_name: str,
    model: Endpoint,
    judge_name: str,
    judge: JudgeEndpoint,
    rubrics_dir: RubricSearch | Path,
    judge_repeats: int = 1,
) -> Plan:
    """The calls a run would make: one model call per item and sample in ``to_answer``, ``judge_repeats``
    judge calls for each of those, and one for each stored ``(item, answer, truncated)`` in ``to_judge``
    (one entry per verdict still wanted). Calls nothing."""
    asked = EndpointPlan("model", model_name, model.model or "", price=Price.of(model))
    for item in to_answer:
        asked.calls += 1
        asked.tokens_in += estimate_tokens(prompt_text(m.model_dump() for m in item.prompt()))
        asked.tokens_out += model.max_tokens
    offline = judge.provider == OFFLINE
    graded = EndpointPlan("judge", judge_name, judge.model or "", price=Price.of(judge), offline=offline)
    book = RubricBook(rubrics_dir, judge.rubric)
    longest = "x" * (model.max_tokens * CHARS_PER_TOKEN)  # an answer as long as the model may write
    work = [(item, longest, False) for item in to_answer for _ in range(judge_repeats)] + to_judge
    for item, answer, truncated in work:
        rubric = book.for_item(item)  # a missing rubric fails the dry run as it would fail the run
        graded.calls += 1
        if not offline:
            messages = build_judge_messages(rubric, item, answer, truncated=truncated)
            graded.tokens_in += estimate_tokens(prompt_text(messages))
            graded.tokens_out += judge.max_tokens
    return Plan([asked, graded])


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
    """``plan_calls`` for a panel: the model's calls, then each member's, priced at its own
    rates. ``to_judge``: per member (panel order), the stored answers it has still to grade (a resume)."""
    plans = [
        plan_calls(
            to_answer, to_judge[m] if to_judge else [], model_name, model, member, configured, rubrics_dir,
            judge_repeats,
        )
        for m, (member, configured) in enumerate(members(name, endpoint))
    ]  # fmt: skip
    return Plan([plans[0].endpoints[0], *(p.endpoints[1] for p in plans)])
