"""What may enter a store from elsewhere: the rules ``evals import`` and ``evals store copy`` check every run
against before they write any of it.

A run's manifest and result rows are typed strictly (no text for a number, no boolean for a count) and hold
what the store can keep and every reader can read: run ids and tags that are names (``evals.names``), area
and suite names that are labels, a known status, times with their UTC offset, a number of samples from 1 to
``MAX_SAMPLES``, scores from 1 to 5, counts, latencies and call times from 0 to a bound the store and every
sum of them can hold (``MAX_COUNT``, ``MAX_LATENCY_MS``, ``MAX_UNIX_TIME``), samples the run asked, texts
no longer than a run keeps them (``answer_limit``, ``length_problems``), and no verdict with both a score and
an error. ``ManifestFields`` and ``ResultFields`` check an
export's JSON (``evals.store.transfer`` reads it); ``manifest_problems``, ``item_problems``,
``answer_problems`` and ``judgment_problems`` check records read from another store. Each problem is a
``(field, what is wrong)`` pair; the caller adds the file and line.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
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
from evals.records import (
    KINDS,
    MAX_ANSWER_CHARS,
    MAX_SAMPLES,
    SCHEMA_VERSION,
    Answer,
    Item,
    Judgment,
    RunManifest,
)

MAX_COUNT = 2**31 - 1
"""The largest count of tokens or characters a row may hold: far more than any call sends or gets, and a
sum over any run's rows stays a 64-bit integer (an answer's length is a 32-bit one in PostgreSQL)."""
MAX_LATENCY_MS = 365 * 24 * 3600 * 1000
"""The longest a call may have taken: a year (a batch judge's verdicts take a day at most)."""
MAX_UNIX_TIME = 253_402_300_799
"""The latest time a call may have ended, in seconds since 1970: the last second of the year 9999."""

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


# As ``datetime.isoformat`` writes a time with its offset (any ``timespec`` from seconds down): one spelling
# of each time, so that times compare and sort as text in SQL.
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3}|\.\d{6})?[+-]\d{2}:\d{2}")
_EXAMPLE = "e.g. 2026-11-01T00:00:00+00:00"


def _moment(value: str) -> datetime | None:
    """The time ``value`` spells as lookingglass writes times, or None."""
    if not _ISO_TIME.fullmatch(value):
        return None
    try:
        parsed = datetime.fromisoformat(value)
        parsed.astimezone(UTC)  # a time in the year 1 or 9999 whose offset takes it out of range
    except (ValueError, OverflowError):
        return None
    return parsed


def is_time(value: object) -> bool:
    """Whether ``value`` is a time as lookingglass writes times: ISO 8601 with its UTC offset."""
    return isinstance(value, str) and _moment(value) is not None


def _timestamp(value: str) -> str:
    if _moment(value) is None:
        raise ValueError(f"{describe(value)} is not an ISO 8601 time with its UTC offset ({_EXAMPLE})")
    return value


def _run_time(value: str) -> str:
    moment = _moment(value)
    if moment is None or moment.utcoffset() != timedelta(0):
        raise ValueError(
            f"{describe(value)} is not an ISO 8601 time with its UTC offset, in UTC as lookingglass writes a "
            f"run's times ({_EXAMPLE})"
        )
    return value


RunId = Annotated[str, AfterValidator(_run_id)]
Tag = Annotated[str, AfterValidator(_tag)]
Label = Annotated[str, AfterValidator(_label)]
Timestamp = Annotated[str, AfterValidator(_timestamp)]
RunTime = Annotated[str, AfterValidator(_run_time)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Latency = Annotated[float, Field(ge=0, le=MAX_LATENCY_MS, allow_inf_nan=False)]
UnixTime = Annotated[float, Field(ge=0, le=MAX_UNIX_TIME, allow_inf_nan=False)]


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
    started_at: RunTime
    tags: list[Tag] = []
    model_id: str | None = None
    status: Literal[RUN_STATUSES] = "running"  # type: ignore[valid-type]
    ended_at: RunTime | None = None
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
    answer_latency_ms: Latency | None = None
    answer_finished_at: UnixTime | None = None
    answer_model_id: str | None = None
    answer_length: Count | None = None
    flags: list[FlagFields] = []
    judge_tokens_in: Count | None = None
    judge_tokens_out: Count | None = None
    judge_latency_ms: Latency | None = None
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


_COUNT_FIELDS = (
    "answer_tokens_in",
    "answer_tokens_out",
    "answer_length",
    "judge_tokens_in",
    "judge_tokens_out",
)
"""The counts of a result row (``Count``: whole numbers from 0 to ``MAX_COUNT``)."""

RESULT_EXPECTED = {
    "run_id": "a string",
    "id": "a string",
    "sample": f"a whole number from 0 to {MAX_SAMPLES - 1}",
    "score": "a number from 1 to 5, or null",
    "truncated": "true, false or null",
    "cached": "true, false or null",
    "error_kind": "answer, judge or null",
    "flags": "a list of {kind, span} objects",
    **{name: "a whole number from 0 up, or null" for name in _COUNT_FIELDS},
    **{
        name: "a finite number from 0 up, or null"
        for name in ("answer_latency_ms", "answer_finished_at", "judge_latency_ms")
    },
}
"""What a field of a result row holds, as errors say it (any other: a string or null)."""

TOO_LARGE = {
    **{name: f"at most {MAX_COUNT}" for name in _COUNT_FIELDS},
    "answer_latency_ms": f"at most {MAX_LATENCY_MS} milliseconds (a year)",
    "judge_latency_ms": f"at most {MAX_LATENCY_MS} milliseconds (a year)",
    "answer_finished_at": f"at most {MAX_UNIX_TIME} seconds since 1970 (the end of the year 9999)",
}
"""What a bounded number of a result row may be at most, as errors say it when it is more."""


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
    if kind == "string_too_short" and expected is not None and len(loc) == 1:
        return loc, "is empty; re-export the run with lookingglass"
    if kind == "less_than_equal" and len(loc) == 1 and loc[0] in TOO_LARGE:
        return loc, f"expected {TOO_LARGE[str(loc[0])]}, got {describe(given)}"
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


_BOUNDS = {
    "tokens_in": (True, MAX_COUNT, "a whole number from 0 to"),
    "tokens_out": (True, MAX_COUNT, "a whole number from 0 to"),
    "length": (True, MAX_COUNT, "a whole number from 0 to"),
    "latency_ms": (False, MAX_LATENCY_MS, "a number of milliseconds from 0 to"),
    "finished_at": (False, MAX_UNIX_TIME, "a number of seconds since 1970 from 0 to"),
}
"""For each number of an answer or a verdict: whole or not, its largest value, and what errors call it."""


def _number_problems(record: Answer | Judgment, names: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    for name in names:
        value = getattr(record, name)
        if value is None:
            continue
        whole, largest, what = _BOUNDS[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (whole and not isinstance(value, int))
            or not (math.isfinite(value) and 0 <= value <= largest)
        ):
            yield name, f"expected {what} {largest}, got {describe(value)}"


def _sample_problems(sample: Any, samples: int) -> Iterator[tuple[str, str]]:
    if isinstance(sample, bool) or not isinstance(sample, int) or not 0 <= sample < samples:
        yield "sample", f"expected a sample the run asked (0 to {samples - 1}), got {describe(sample)}"


def answer_problems(answer: Answer, samples: int, limit: int = MAX_ANSWER_CHARS) -> Iterator[tuple[str, str]]:
    """What is wrong with an answer read from another store (of a run with ``samples`` samples, whose model
    keeps ``limit`` characters: ``answer_limit``)."""
    yield from _sample_problems(answer.sample, samples)
    yield from _number_problems(answer, ("tokens_in", "tokens_out", "latency_ms", "finished_at", "length"))
    yield from length_problems([("text", answer.text, limit), ("reasoning", answer.reasoning, limit)])


def judgment_problems(judgment: Judgment, samples: int) -> Iterator[tuple[str, str]]:
    """What is wrong with a verdict read from another store (of a run with ``samples`` samples)."""
    yield from _sample_problems(judgment.sample, samples)
    yield from _number_problems(judgment, ("tokens_in", "tokens_out", "latency_ms"))
    yield from length_problems(
        [("rationale", judgment.rationale, MAX_ANSWER_CHARS), ("raw", judgment.raw, MAX_ANSWER_CHARS)]
    )
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


def answer_limit(manifest: RunManifest) -> int:
    """The most characters of an answer the run's model kept: its recorded ``max_answer_chars``, else the
    default (``MAX_ANSWER_CHARS``)."""
    value = (manifest.config.model.model_extra or {}).get("max_answer_chars")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return MAX_ANSWER_CHARS


def length_problems(texts: Iterable[tuple[str, str | None, int]]) -> Iterator[tuple[str, str]]:
    """Each ``(field, text, limit)`` whose text is longer than a run keeps (answers and reasoning are cut to
    the model's ``max_answer_chars`` before they are stored, a judge's reply to ``MAX_ANSWER_CHARS``): a run
    brought in must not store, nor later send to a judge, what a run made here never would."""
    for name, text, limit in texts:
        if isinstance(text, str) and len(text) > limit:
            yield name, f"{len(text):,} characters, more than the {limit:,} a run keeps; cut it to {limit:,}"
