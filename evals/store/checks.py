"""What may enter a store from elsewhere: the rules ``evals import`` and ``evals store copy`` check every run
against before they write any of it.

A run's manifest and result rows are typed strictly (no text for a number, no boolean for a count) and hold
what the store can keep and every reader can read: run ids and tags that are names (``evals.names``), area
and suite names that are labels, a known status, times with their UTC offset, a number of samples from 1 to
``MAX_SAMPLES``, scores from 1 to 5, finite counts and latencies that are not negative, samples the run
asked, and no verdict with both a score and an error. ``ManifestFields`` and ``ResultFields`` check an
export's JSON (``evals.store.transfer`` reads it); ``manifest_problems``, ``item_problems``,
``answer_problems`` and ``judgment_problems`` check records read from another store. Each problem is a
``(field, what is wrong)`` pair; the caller adds the file and line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from evals.names import NAME_RULE, InvalidName, check_label, is_name
from evals.records import KINDS, MAX_SAMPLES, SCHEMA_VERSION, Answer, Item, Judgment, RunManifest

RUN_STATUSES = ("running", "interrupted", "finished", "failed", "pending", "planned")
"""Every status a run can have (``RunManifest.status``)."""


def _run_id(value: str) -> str:
    if not is_name(value):
        raise ValueError(f"{describe(value)} is not a valid run id: {NAME_RULE}")
    return value


def _tag(value: str) -> str:
    if not is_name(value):
        raise ValueError(f"{describe(value)} is not a valid tag: {NAME_RULE}")
    return value


def _label(value: str) -> str:
    try:
        return check_label(value, "suite name")
    except InvalidName as exc:
        raise ValueError(str(exc)) from None


def _timestamp(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValueError(
            f"{describe(value)} is not an ISO 8601 time with its UTC offset (e.g. 2026-11-01T00:00:00+00:00)"
        )
    return value


RunId = Annotated[str, AfterValidator(_run_id)]
Tag = Annotated[str, AfterValidator(_tag)]
Label = Annotated[str, AfterValidator(_label)]
Timestamp = Annotated[str, AfterValidator(_timestamp)]
Count = Annotated[int, Field(ge=0)]
Number = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class ManifestFields(BaseModel):
    """The fields of ``manifest.json`` besides ``config`` (``RunConfig``) and ``items`` (``Item``)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    run_id: RunId
    suite_name: Label
    suite_path: str
    suite_hash: str = Field(min_length=1)
    model_name: str = Field(min_length=1)
    model: str | None
    judge_name: str = Field(min_length=1)
    judge_model: str
    rubric_name: str
    rubric_hash: str
    samples: int = Field(ge=1, le=MAX_SAMPLES)
    started_at: Timestamp
    tags: list[Tag] = []
    model_id: str | None = None
    status: Literal[RUN_STATUSES] = "running"  # type: ignore[valid-type]
    ended_at: Timestamp | None = None
    lookingglass_version: str = ""
    rubrics: list[str] = []
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)


MANIFEST_EXPECTED = {
    "run_id": "a run id (" + NAME_RULE + ")",
    "samples": f"a whole number from 1 to {MAX_SAMPLES}",
    "status": "one of " + ", ".join(RUN_STATUSES),
    "started_at": "an ISO 8601 time with its UTC offset",
    "ended_at": "an ISO 8601 time with its UTC offset, or null",
    "tags": "a list of tags",
    "rubrics": "a list of rubric names",
    "model": "a string or null",
    "model_id": "a string or null",
    "schema_version": f"a whole number from 1 to {SCHEMA_VERSION} (re-export with this version)",
}
"""What a field of ``manifest.json`` holds, as errors say it (any other: a string)."""


class FlagFields(BaseModel):
    """One grader-addressing flag of an answer: its kind and character span."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    kind: Literal[KINDS]  # type: ignore[valid-type]
    span: list[Count] = Field(min_length=2, max_length=2)

    @field_validator("span")
    @classmethod
    def _ordered(cls, span: list[int]) -> list[int]:
        if span[0] > span[1]:
            raise ValueError("the span's start is after its end")
        return span


class ResultFields(BaseModel):
    """The fields of a ``results.jsonl`` row that ``evals import`` stores (the item's text comes from the
    manifest); validated with ``context={"samples": n}``, the run's number of samples."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    run_id: str
    id: str
    sample: int = Field(ge=0, lt=MAX_SAMPLES)
    answer: str | None = None
    finish_reason: str | None = None
    truncated: bool | None = None
    reasoning: str | None = None
    score: float | None = Field(default=None, ge=1, le=5, allow_inf_nan=False)
    rationale: str | None = None
    raw: str | None = None
    error: str | None = None
    error_kind: Literal["answer", "judge"] | None = None
    answer_error: str | None = None
    judge_error: str | None = None
    judge: str | None = None
    cached: bool | None = None
    cache_key: str | None = None
    answer_tokens_in: Count | None = None
    answer_tokens_out: Count | None = None
    answer_latency_ms: Number | None = None
    answer_finished_at: Number | None = None
    answer_model_id: str | None = None
    answer_length: Count | None = None
    flags: list[FlagFields] = []
    judge_tokens_in: Count | None = None
    judge_tokens_out: Count | None = None
    judge_latency_ms: Number | None = None
    judge_model_id: str | None = None
    rubric_hash: str | None = None
    judge_fingerprint: str | None = None

    @field_validator("sample")
    @classmethod
    def _asked(cls, sample: int, info: ValidationInfo) -> int:
        samples = (info.context or {}).get("samples")
        if samples is not None and sample >= samples:
            raise ValueError(f"sample {sample} is not one the run asked (samples 0 to {samples - 1})")
        return sample

    @model_validator(mode="after")
    def _score_or_error(self) -> Self:
        if self.score is not None:
            error = self.error or self.judge_error or self.answer_error
            if error is not None:
                raise ValueError(
                    f"has both a score ({self.score:g}) and an error ({describe(error)}); a verdict with an "
                    "error has no score: set one of them to null"
                )
            if self.judge is None:
                raise ValueError(f"has a score ({self.score:g}) but no judge; name the judge that gave it")
        return self


RESULT_EXPECTED = {
    "run_id": "a string",
    "id": "a string",
    "sample": f"a whole number from 0 to {MAX_SAMPLES - 1}",
    "score": "a number from 1 to 5, or null",
    "truncated": "true, false or null",
    "cached": "true, false or null",
    "error_kind": "answer, judge or null",
    "flags": "a list of {kind, span} objects",
    **{
        name: "a whole number from 0 up, or null"
        for name in (
            "answer_tokens_in",
            "answer_tokens_out",
            "answer_length",
            "judge_tokens_in",
            "judge_tokens_out",
        )
    },
    **{
        name: "a finite number from 0 up, or null"
        for name in ("answer_latency_ms", "answer_finished_at", "judge_latency_ms")
    },
}
"""What a field of a result row holds, as errors say it (any other: a string or null)."""


def problems_of(
    error: Any, expected: dict[str, str] | None = None, default: str = ""
) -> tuple[tuple[str | int, ...], str]:
    """A pydantic error as ``(location, what is wrong)``; ``expected`` says what a top-level field holds (any
    other: ``default``); without it, pydantic's words say what was expected."""
    loc = tuple(error["loc"])
    kind, given = error["type"], error.get("input")
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "missing":
        return loc, "required; re-export the run with lookingglass"
    if kind == "value_error":
        return loc, message
    if expected is not None and len(loc) == 1 and isinstance(loc[0], str) and kind != "extra_forbidden":
        return loc, f"expected {expected.get(loc[0], default)}, got {describe(given)}"
    if message.startswith("Input should be "):
        message = "expected " + message.removeprefix("Input should be ")
        return loc, f"{message}, got {describe(given)}"
    if kind == "extra_forbidden":
        return loc, "unknown field"
    return loc, message


def describe(value: Any) -> str:
    """A value as a message shows it: JSON, cut at 40 characters."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def location(loc: tuple[str | int, ...]) -> str:
    """``config.model.temperature``, ``items[3].area``."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


# -- records (what another store holds) -------------------------------------------------------------------


def manifest_problems(manifest: RunManifest) -> Iterator[tuple[str, str]]:
    """What is wrong with a run's manifest read from another store (its config already read as a RunConfig)."""
    data = {**manifest.to_dict(), "tags": list(manifest.tags), "rubrics": list(manifest.rubrics)}
    try:
        ManifestFields.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc, message = problems_of(error, MANIFEST_EXPECTED, "a string")
            yield location(loc), message


def item_problems(item: Item) -> Iterator[tuple[str, str]]:
    """What a suite would have refused in an item: blank or control characters in its id, area or tags."""
    for name, value in (("id", item.id), ("area", item.area), *(("tags", tag) for tag in item.tags)):
        try:
            check_label(value, "tag" if name == "tags" else name)
        except InvalidName as exc:
            yield name, str(exc)


def _number_problems(record: Answer | Judgment, names: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    for name in names:
        value = getattr(record, name)
        if value is None:
            continue
        whole = name.startswith("tokens") or name == "length"
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (whole and not isinstance(value, int))
        ):
            yield name, f"expected a {'whole ' if whole else ''}number, got {describe(value)}"
        elif not math.isfinite(value) or value < 0:
            yield name, f"expected a finite number from 0 up, got {describe(value)}"


def _sample_problems(sample: Any, samples: int) -> Iterator[tuple[str, str]]:
    if isinstance(sample, bool) or not isinstance(sample, int) or not 0 <= sample < samples:
        yield "sample", f"expected a sample the run asked (0 to {samples - 1}), got {describe(sample)}"


def answer_problems(answer: Answer, samples: int) -> Iterator[tuple[str, str]]:
    """What is wrong with an answer read from another store (of a run with ``samples`` samples)."""
    yield from _sample_problems(answer.sample, samples)
    yield from _number_problems(answer, ("tokens_in", "tokens_out", "latency_ms", "finished_at", "length"))


def judgment_problems(judgment: Judgment, samples: int) -> Iterator[tuple[str, str]]:
    """What is wrong with a verdict read from another store (of a run with ``samples`` samples)."""
    yield from _sample_problems(judgment.sample, samples)
    yield from _number_problems(judgment, ("tokens_in", "tokens_out", "latency_ms"))
    score = judgment.score
    if score is not None:
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not (math.isfinite(score) and 1 <= score <= 5)
        ):
            yield "score", f"expected a number from 1 to 5, or null, got {describe(score)}"
        elif judgment.error is not None:
            yield "score", f"has both a score ({score:g}) and an error ({describe(judgment.error)})"
    if isinstance(judgment.repeat, bool) or not isinstance(judgment.repeat, int) or judgment.repeat < 0:
        yield "repeat", f"expected a whole number from 0 up, got {describe(judgment.repeat)}"
