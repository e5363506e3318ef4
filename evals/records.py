"""The records that flow through the pipeline, each with one JSON wire form.

``Item`` and ``CustomPattern`` are validated with pydantic because they come from user files; the records
the pipeline makes itself (``Completion``, ``Answer``, ``Judgment``, ``RunManifest``) are frozen dataclasses,
cheap to build on the hot path. A run's config snapshot (``RunConfig``) is pydantic too: it is read back from
stores written by every earlier version. Every persisted record carries ``schema_version``;
``to_json``/``from_json`` round-trip equal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

SCHEMA_VERSION = 1
"""Version of every persisted record and of the JSONL exports; bumped on an incompatible change."""
MAX_SAMPLES = 100
"""Largest ``--samples``: more answers per item than this is a mistake, not a measurement."""


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the form that content hashes are taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value: Any) -> str:
    """A short, stable SHA-256 of a JSON-able value (16 hex digits)."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:16]


class Message(BaseModel):
    """One chat turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"]
    """Who speaks."""
    content: str
    """What is said."""


Sensitivity = Literal["public", "internal", "restricted"]
"""How far an item's text may travel: ``restricted`` text goes to no external endpoint, redacted or not."""


class Item(BaseModel):
    """One question of a suite, as written by the suite's author."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    id: str = Field(min_length=1)
    """Unique within the suite; pairs the item across runs."""
    area: str = Field(min_length=1)
    """The area of the domain the item belongs to; scorecards group by it."""
    question: str | None = None
    """The question, sent as a single user turn. Either this or ``messages``."""
    messages: tuple[Message, ...] | None = None
    """A whole conversation (system prompt, several turns) ending with a user turn. Either this or ``question``."""
    reference: str | None = None
    """A reference answer shown to the judge (when the rubric says so) and used by the offline judge."""
    rubric: str | None = None
    """Name of a rubric in ``judges/`` overriding the judge's default for this item."""
    tags: tuple[str, ...] = ()
    """Free labels for filtering."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Anything else the author wants to keep with the item; never sent to the model."""
    sensitivity: Sensitivity | None = None
    """``public``, ``internal`` or ``restricted``; None takes the area's, then the suite's, then ``internal``."""

    @model_validator(mode="after")
    def _question_or_messages(self) -> Self:
        if self.question is None and not self.messages:
            raise ValueError("needs a 'question' (or 'messages' for a conversation)")
        if self.question is not None and self.messages:
            raise ValueError("has both 'question' and 'messages'; give one")
        if self.question is not None and not self.question.strip():
            raise ValueError("'question' is empty")
        if self.messages and self.messages[-1].role != "user":
            raise ValueError("'messages' must end with a user turn")
        return self

    def prompt(self) -> list[Message]:
        """The conversation sent to the model."""
        if self.messages:
            return list(self.messages)
        return [Message(role="user", content=self.question or "")]

    def prompt_text(self) -> str:
        """The question as one string, for judges and reports (the last user turn, with context)."""
        if self.question is not None:
            return self.question
        return "\n\n".join(f"[{m.role}] {m.content}" for m in self.messages or ())

    def content_hash(self) -> str:
        """Hash of everything that changes what the item asks; scorecards use it to spot changed items."""
        return content_hash(self.model_dump(mode="json", exclude={"tags", "metadata", "sensitivity"}))


KIND_PATTERN = re.compile(r"[A-Z][A-Z0-9_]{0,39}")
"""What a placeholder kind looks like (``EMAIL``, ``EMPLOYEE_ID``)."""


class CustomPattern(BaseModel):
    """A team's own identifier: a name, a regular expression, context words. A suite declares them under
    ``redact:``, evals.yaml under ``redaction: {patterns: [...]}`` (for every call).

    Used by ``evals.outbound.redaction`` and kept in a run's config snapshot (``RunConfig.patterns``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """The placeholder kind: capitals, digits and ``_`` (``EMPLOYEE_ID`` gives ``<EMPLOYEE_ID_1>``)."""
    regex: str
    """A Python regular expression matching the identifier."""
    context: tuple[str, ...] = ()
    """Words that, near a match, make it more certain (they raise its score by 0.35)."""
    score: float = Field(default=0.6, ge=0, le=1)
    """How certain a match is on its own; below 0.4 (e.g. 0.1), a match needs a context word to count."""

    @field_validator("name")
    @classmethod
    def _kind(cls, name: str) -> str:
        if not KIND_PATTERN.fullmatch(name):
            raise ValueError("expected capitals, digits and '_' starting with a capital, e.g. EMPLOYEE_ID")
        return name

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str) -> str:
        try:
            compiled = re.compile(regex)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if compiled.match(""):
            raise ValueError("the regular expression matches empty text; it would match everywhere")
        return regex


class _Wire:
    """JSON wire form shared by the dataclass records."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, text: str) -> Self:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True, slots=True)
class CompletionRequest(_Wire):
    """What the runner asks of a provider: one chat completion."""

    messages: tuple[dict[str, str], ...]
    """Chat turns as ``{"role": ..., "content": ...}``."""
    output_schema: dict[str, Any] | None = None
    """A JSON schema the reply must follow (structured output), or None for free text."""
    output_name: str = "verdict"
    """Name of the structured output (the tool name for Anthropic, the schema name for OpenAI)."""
    output_mode: str = "json_schema"
    """With a schema: ``json_schema`` (enforced: OpenAI json_schema, Anthropic tool use) or ``json_object``
    (any JSON object; the schema is described in the prompt)."""
    sensitivity: Sensitivity | None = None
    """How far its text may travel (the strictest level of what it holds; None: ``default_sensitivity``).
    The gateway refuses ``restricted`` requests to external endpoints."""


# -- where an answer addresses the grader (found by ``evals.judge.grader_attacks.detect``) --------------

FlagKind = Literal[
    "score_instruction", "forged_verdict", "forged_marker", "role_tag", "reference_attack", "grader_address"
]
KINDS: tuple[FlagKind, ...] = (
    "score_instruction", "forged_verdict", "forged_marker", "role_tag", "reference_attack", "grader_address",
)  # fmt: skip
"""Every kind of flag, in the order the scorecard lists them."""


@dataclass(frozen=True, slots=True)
class Flag:
    """One place where an answer addresses the grader."""

    kind: FlagKind
    """What it does (one of ``KINDS``)."""
    span: tuple[int, int]
    """Where, as ``[start, end)`` character offsets in the answer as stored (not the matched text itself, so that a purge of answer texts leaves nothing of them in the flags)."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "span": list(self.span)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Flag:
        start, end = data["span"]
        return cls(data["kind"], (int(start), int(end)))


def kinds_of(flags: Iterable[Flag]) -> list[str]:
    """The distinct kinds of some flags, in ``KINDS`` order (what the item list shows)."""
    present = {f.kind for f in flags}
    return [k for k in KINDS if k in present]


def flags_json(flags: Sequence[Flag]) -> str:
    """The store's form of an answer's flags: a JSON list of ``{"kind", "span"}``."""
    return json.dumps([f.to_dict() for f in flags])


def flags_of_json(text: str | None) -> tuple[Flag, ...]:
    """Flags back from the store's JSON (an older row without any: none)."""
    return tuple(Flag.from_dict(d) for d in json.loads(text)) if text else ()


@dataclass(frozen=True, slots=True)
class Completion(_Wire):
    """What a provider returns for one call."""

    text: str
    """The reply as text (for structured output: the JSON text of the object)."""
    data: dict[str, Any] | None = None
    """The structured object, when the provider returned one (tool input, json_schema reply)."""
    tokens_in: int | None = None
    """Prompt tokens, as the server counted them."""
    tokens_out: int | None = None
    """Completion tokens, as the server counted them."""
    latency_ms: float = 0.0
    """Wall time of the successful call, retries excluded."""
    model_id: str | None = None
    """The model the server says answered (``model`` field of the response)."""
    finish_reason: str | None = None
    """Why the server stopped: OpenAI ``finish_reason`` (``stop``, ``length``...) or Anthropic ``stop_reason``."""
    reasoning: str | None = None
    """Reasoning the API returned apart from the text (``reasoning_content``/``reasoning``, ``thinking`` blocks)."""


TRUNCATED_REASONS = frozenset({"length", "max_tokens"})
"""Finish reasons meaning the reply hit ``max_tokens``: OpenAI-compatible ``length``, Anthropic ``max_tokens``."""


def is_truncated(finish_reason: str | None) -> bool:
    """True when a finish reason says the reply was cut off at the token limit."""
    return finish_reason in TRUNCATED_REASONS


MAX_ANSWER_CHARS = 20_000
"""Characters of an answer kept, stored and graded unless the model sets ``max_answer_chars``."""


def capped(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to its first ``limit`` characters, and whether anything was cut off."""
    return (text, False) if len(text) <= limit else (text[:limit], True)


@dataclass(frozen=True, slots=True)
class Answer(_Wire):
    """The local model's answer to one item (one sample of it)."""

    run_id: str
    item_id: str
    sample: int
    """0-based sample index; an item is asked ``--samples`` times."""
    text: str | None
    """The answer; None when the call failed."""
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_ms: float | None = None
    model_id: str | None = None
    """Model id reported by the server."""
    error: str | None = None
    """Why there is no answer (after retries); None on success."""
    finish_reason: str | None = None
    """Why the server stopped, as it said (``stop``, ``length``, ``end_turn``, ``max_tokens``...)."""
    truncated: bool = False
    """True when the answer was cut off at ``max_tokens``: the judge is told, the scorecard counts it."""
    reasoning: str | None = None
    """Reasoning kept apart from the graded ``text`` (``<think>`` blocks, the APIs' reasoning fields)."""
    finished_at: float | None = None
    """When the successful call returned (seconds since the epoch): with ``latency_ms``, the interval the
    server was busy with it; the union of a run's intervals is the busy time its self-hosted cost is
    allocated by."""
    flags: tuple[Flag, ...] = ()
    """Where the answer addresses the grader (``evals.judge.grader_attacks.detect``), found when it was given."""
    length: int | None = None
    """The answer's length in characters (``len(text)`` when not given); kept when a purge removes the text."""
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.length is None and self.text is not None:
            object.__setattr__(self, "length", len(self.text))
        if any(isinstance(f, dict) for f in self.flags):  # read back from JSON
            flags = tuple(f if isinstance(f, Flag) else Flag.from_dict(f) for f in self.flags)
            object.__setattr__(self, "flags", flags)


@dataclass(frozen=True, slots=True)
class Verdict(_Wire):
    """A judge's grade of one answer, before it is tied to a run."""

    score: int | None
    """1..5, or None when the judge failed (``error`` says why)."""
    rationale: str | None
    """The judge's reasons, written before the score."""
    raw: str | None = None
    """The judge's reply as received (kept for audit, also on parse failures)."""
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    """Why there is no score: outage, unparseable verdict, score out of range."""
    model_id: str | None = None
    """The model id the judge's server reported: recorded, never part of the cache key."""
    batch_id: str | None = None
    """The vendor's batch that answered (``judging: batch``); None: an online call."""


@dataclass(frozen=True, slots=True)
class Judgment(_Wire):
    """A verdict on one answer of one run, as stored."""

    run_id: str
    item_id: str
    sample: int
    score: float | None
    """1 to 5 (a real number: a judge's grade, or a panel's aggregate), None when the judge failed."""
    rationale: str | None
    raw: str | None
    judge: str
    """The judge that produced it: ``name (model)``; with ``repeat``, part of the verdict's key."""
    cache_key: str
    """Hash of (judge identity, rubric hash, question, reference, answer, truncation): equal keys are judged once."""
    cached: bool = False
    """True when the verdict was reused from an earlier identical judgment."""
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    rubric_hash: str | None = None
    """Hash of the rubric that graded the answer (None in runs stored before provenance was kept)."""
    judge_fingerprint: str | None = None
    """The judge's configured identity: ``JudgeIdentity.digest`` for a frontier judge, the offline judge's
    fixed identity for it; the same fingerprint and rubric hash mean the same grading."""
    model_id: str | None = None
    """The model id the judge's server reported (a reused verdict's: its call's; None for the offline judge)."""
    repeat: int = 0
    """Which asking of this judge about this answer (0: the first); keys a verdict with run, item, sample, judge."""
    batch_id: str | None = None
    """The vendor's batch that answered it, priced at the judge's ``batch_discount``; None: an online call."""
    schema_version: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class JudgingProvenance:
    """Who graded a run's scored answers, read from its verdicts: the judges' configured fingerprints,
    the model ids their APIs reported, and the rubric versions (empty sets where older runs kept none)."""

    fingerprints: frozenset[str] = frozenset()
    model_ids: frozenset[str] = frozenset()
    rubric_hashes: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Selection(_Wire):
    """The part of a suite a run asks (``--area``, ``--item-tag``, ``--limit``); empty means all of it."""

    areas: tuple[str, ...] = ()
    """Only items of these areas (any of them); empty: every area."""
    item_tags: tuple[str, ...] = ()
    """Only items carrying at least one of these tags; empty: any item."""
    limit: int | None = None
    """At most this many of the matching items, in suite order; None: all."""

    @property
    def whole(self) -> bool:
        """True when nothing is filtered out."""
        return not self.areas and not self.item_tags and self.limit is None

    def describe(self) -> str:
        """``areas geo, math · item tags easy · first 10``, or ``whole suite``."""
        parts = []
        if self.areas:
            parts.append("areas " + ", ".join(self.areas))
        if self.item_tags:
            parts.append("item tags " + ", ".join(self.item_tags))
        if self.limit is not None:
            parts.append(f"first {self.limit}")
        return " · ".join(parts) or "whole suite"


class _Snapshot(BaseModel):
    """A part of a run's config snapshot, read back from stores written by every version.

    Keys an older version did not write take the defaults below; keys this version does not know are kept
    (``extra="allow"``). Only the keys that were set are written back, so a stored snapshot round-trips
    unchanged. Change one with ``RunConfig.updated``, never with ``model_copy`` (which skips validation).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        return {k: v for k, v in data.items() if k in self.model_fields_set}

    def recorded(self, key: str) -> bool:
        """True when the snapshot holds ``key`` (runs stored by earlier versions lack newer keys)."""
        return key in self.model_fields_set


class EndpointSnapshot(_Snapshot):
    """An endpoint as ``evals.config.Endpoint.snapshot`` recorded it: the key variable's name, never a key.

    The fields mean what ``Endpoint``'s do; None where the run did not record one."""

    provider: str | None = None
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: list[str] | None = None
    extra_body: dict[str, Any] | None = None
    max_concurrency: int | None = None
    timeout_s: float | None = None
    max_retries: int | None = None
    reasoning: Literal["separate", "keep"] = "separate"
    fingerprint: str | None = None
    price_in_per_mtok: float | None = None
    price_out_per_mtok: float | None = None
    open_weights: bool | None = None
    price_per_hour: float | None = None
    external: bool | None = None


class PanelSnapshot(_Snapshot):
    """A panel's settings (``evals.config.PanelSettings``)."""

    members: list[str] = Field(default_factory=list)
    """The members' names, in panel order."""
    aggregate: str = "mean"
    """``mean`` or ``median`` of the members' scores."""


class JudgeSnapshot(EndpointSnapshot):
    """The judge of a run: one judge's endpoint, or a panel with each member's (``evals.judge.panel``)."""

    rubric: str | None = None
    """The judge's default rubric."""
    structured: str | None = None
    """The judge's configured output mode (``auto``...); the mode in effect is ``RunConfig.structured``."""
    panel: PanelSnapshot | None = None
    """The panel's members and aggregation; None for a single judge."""
    members: dict[str, JudgeSnapshot] | None = None
    """Each panel member's endpoint, by name; None for a single judge."""
    restricted_judge: str | None = None
    """The name of the in-house judge of the restricted items (``restricted_judge``), as configured."""
    inhouse: JudgeSnapshot | None = None
    """That in-house judge's endpoint, as the run used it; None when no in-house judge graded."""
    judging: str | None = None
    """``batch`` when verdicts went through the vendor's batch API; None (not recorded): ``online``."""
    batch_discount: float | None = None
    """A batched verdict's share of the token prices (recorded with ``judging: batch``)."""


class JudgingSnapshot(_Snapshot):
    """How the answers were judged (``judging``)."""

    repeats: int = 1
    """Verdicts per answer from each judge (``--judge-repeats``, ``evals judge rerun --repeats``)."""
    fresh: bool = False
    """No verdict may come from the judgment cache (a rerun)."""
    rubric: str | None = None
    """The rubric a rerun graded with in place of the judge's default (``--rubric``)."""


class RedactionSnapshot(_Snapshot):
    """Where a run's text went and how it was redacted (``evals.outbound.gateway.Gateway.snapshot``)."""

    model_config = ConfigDict(protected_namespaces=())

    model_external: bool = False
    """The model is outside the perimeter."""
    judge_external: bool = False
    """The judge (or a panel member) is outside the perimeter."""
    enabled: bool = True
    """``redaction.enabled`` in evals.yaml."""
    status: Literal["redacted", "not redacted", "not needed"] = "not needed"
    """``redacted``, ``not redacted`` (disabled) or ``not needed`` (nothing external)."""
    version: str | None = None
    """The redactor's version (``presidio-<version>+<hash>``), when it redacted."""
    ner: str | None = None
    """The NER model that found names and places, if one was installed."""
    note: str | None = None
    """What was not detected and why."""


class RunConfig(_Snapshot):
    """A run's configuration snapshot (``RunManifest.config``): what was asked of whom and how, no secrets.

    Written by ``evals.plan.plan_run`` (with ``evals.judge.panel.for_panel`` and the runner's redaction) or
    ``evals.trust.rerun.plan_rerun``; ``structured`` and ``panel_modes`` are updated as output modes settle.
    """

    model: EndpointSnapshot = Field(default_factory=EndpointSnapshot)
    """The model's endpoint."""
    judge: JudgeSnapshot = Field(default_factory=JudgeSnapshot)
    """The judge's endpoint, or the panel's."""
    judging: JudgingSnapshot = Field(default_factory=JudgingSnapshot)
    """Repeats, freshness and a rerun's rubric."""
    structured: str | None = None
    """The judge's output mode in effect (``json_schema``, ``json_object``, ``text``; for a panel each
    member's, as ``claude json_schema, gpt text``); None for the offline judge."""
    panel_modes: dict[str, str] = Field(default_factory=dict)
    """Each panel member's output mode in effect, by name."""
    selection: Selection = Selection()
    """The part of the suite the run asks (written when it is not the whole suite)."""
    redaction: RedactionSnapshot | None = None
    """How the run's text was redacted; None for runs from before redaction."""
    rerun_of: str | None = None
    """The run whose frozen answers this run re-judged (``evals.trust.rerun``); None for a run that asked."""
    patterns: tuple[CustomPattern, ...] = ()
    """The suite's own redaction patterns (``redact:``) when the run started; ``recorded("patterns")`` is
    False for runs from before they were kept."""

    def updated(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` (models or their JSON form) validated and recorded as set."""
        unknown = sorted(set(changes) - set(type(self).model_fields))
        if unknown:
            raise TypeError(f"RunConfig has no field {', '.join(unknown)}")
        return type(self).model_validate({**self.model_dump(), **changes})


@dataclass(frozen=True, slots=True)
class RunManifest(_Wire):
    """What a run was: enough to reproduce it and to know what its numbers can be compared with."""

    run_id: str
    suite_name: str
    suite_path: str
    suite_hash: str
    model_name: str
    """Name of the model in the config."""
    model: str | None
    """Model the config asks for."""
    judge_name: str
    judge_model: str
    """The judge's model (``offline-reference`` for the offline judge)."""
    rubric_name: str
    rubric_hash: str
    samples: int
    started_at: str
    """ISO 8601, timezone-aware."""
    config: RunConfig = field(default_factory=RunConfig)
    """Snapshot of the model and judge configuration, without secrets (only the names of key variables); its
    JSON form (a dict read back from a store or an export) is validated into a ``RunConfig``."""
    tags: tuple[str, ...] = ()
    model_id: str | None = None
    """Model id the server reported on its first answer."""
    status: str = "running"
    """``running``, ``interrupted``, ``pending`` (its batches submitted, not yet collected), ``finished``, ``failed``."""
    ended_at: str | None = None
    lookingglass_version: str = ""
    rubrics: tuple[str, ...] = ()
    """Every rubric the run's items are graded with, as ``name@hash``, sorted (``rubric_name`` and
    ``rubric_hash`` are only the first item's)."""
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.config, RunConfig):  # read back from JSON
            object.__setattr__(self, "config", RunConfig.model_validate(self.config))

    def to_dict(self) -> dict[str, Any]:
        return {**_Wire.to_dict(self), "config": self.config.model_dump(mode="json")}

    def selection(self) -> Selection:
        """The subset of the suite this run asks (kept in the config snapshot under ``selection``)."""
        return self.config.selection
