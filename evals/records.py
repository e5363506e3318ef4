"""The records that flow through the pipeline, each with one JSON wire form.

``Item`` is validated with pydantic because it comes from user files; the records the pipeline makes
itself (``Completion``, ``Answer``, ``Judgment``, ``RunManifest``) are frozen dataclasses, cheap to build on
the hot path. Every persisted record carries ``schema_version``; ``to_json``/``from_json`` round-trip equal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1
"""Version of every persisted record and of the JSONL exports; bumped on an incompatible change."""


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


class _Wire:
    """JSON wire form shared by the dataclass records."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        values = {k: v for k, v in data.items() if k in names}
        for key, value in list(values.items()):
            if isinstance(value, list):
                values[key] = tuple(value)
        return cls(**values)

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
    """With a schema: ``json_schema`` (enforced: OpenAI ``json_schema``, Anthropic tool use) or
    ``json_object`` (any JSON object; the schema is described in the prompt)."""


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


FlagKind = Literal[
    "score_instruction", "forged_verdict", "forged_marker", "role_tag", "reference_attack", "grader_address"
]
FLAG_KINDS: tuple[FlagKind, ...] = (
    "score_instruction", "forged_verdict", "forged_marker", "role_tag", "reference_attack", "grader_address",
)  # fmt: skip
"""Every kind of flag, in the order the scorecard lists them (``evals.judge.grader_attacks`` finds them)."""


@dataclass(frozen=True, slots=True)
class Flag:
    """One place where an answer addresses the grader (``evals.judge.grader_attacks.detect``)."""

    kind: FlagKind
    """What it does (one of ``FLAG_KINDS``)."""
    span: tuple[int, int]
    """Where, as ``[start, end)`` character offsets in the answer as stored (not the matched text itself,
    so that a purge of answer texts leaves nothing of them in the flags)."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "span": list(self.span)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Flag:
        start, end = data["span"]
        return cls(data["kind"], (int(start), int(end)))


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
    """The model id the judge's server reported for this verdict (for a reused one, the id of the call that
    made it; None for the offline judge)."""
    repeat: int = 0
    """Which asking of this judge about this answer (0: the first); a verdict is keyed by
    (run, item, sample, repeat, judge)."""
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
    config: dict[str, Any] = field(default_factory=dict)
    """Snapshot of the model and judge configuration, without secrets (only the names of key variables)."""
    tags: tuple[str, ...] = ()
    model_id: str | None = None
    """Model id the server reported on its first answer."""
    status: str = "running"
    """``running`` (or interrupted), ``finished``, ``failed``."""
    ended_at: str | None = None
    lookingglass_version: str = ""
    rubrics: tuple[str, ...] = ()
    """Every rubric the run's items are graded with, as ``name@hash``, sorted (``rubric_name`` and
    ``rubric_hash`` are only the first item's)."""
    schema_version: int = SCHEMA_VERSION

    def selection(self) -> Selection:
        """The subset of the suite this run asks (kept in the config snapshot under ``selection``)."""
        return Selection.from_dict(self.config.get("selection") or {})
