"""One line of ``results.jsonl`` as a typed record, and what the end of a run prints from them: the per-area
figures and the errors grouped by kind.

``Store.results`` yields one record per item and sample (its answer and the aggregate of its verdicts,
built by ``evals.store.rows.result_row``), so every reader (the run table, the scorecard, the index, the
gate) reads fields mypy checks; ``ResultRow.from_row`` only reads ``results.jsonl`` lines back. A score is
a float: the mean of the item and sample's scored verdicts (a panel of judges, or repeats of one).
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self

from evals import stats
from evals.records import Flag

RESULT_SCHEMA_VERSION = 1
"""Version of the results row (``results.jsonl``); bumped on an incompatible change."""

ErrorKind = Literal["answer", "judge"]


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One item and sample of a run: the question, the model's answer and the judge's verdict."""

    run_id: str
    id: str
    """The item id; pairs the item across runs."""
    sample: int
    """0-based sample index (an item is asked ``--samples`` times)."""
    area: str
    question: str
    """The question as one string (a conversation is flattened, one turn a paragraph)."""
    reference: str | None
    answer: str | None
    """The model's answer; None when the call failed or was never made."""
    finish_reason: str | None
    truncated: bool
    """The answer was cut off at ``max_tokens``."""
    reasoning: str | None
    """Reasoning kept apart from the graded answer."""
    score: float | None
    """The grade, 1 to 5; None whenever ``error`` is set. Fractional when it is a panel's mean."""
    rationale: str | None
    error: str | None
    """Why there is no score: the answer's error, the judge's, or ``not answered``/``not judged``."""
    error_kind: ErrorKind | None
    """``answer`` (no answer to grade) or ``judge`` (an answer the judge did not grade); None when scored."""
    judge: str | None
    """The judge that graded it: ``name (model)``."""
    cached: bool | None
    """The verdict was reused from an identical earlier judgment."""
    answer_tokens_in: int | None
    answer_tokens_out: int | None
    answer_latency_ms: float | None
    judge_tokens_in: int | None
    judge_tokens_out: int | None
    judge_latency_ms: float | None
    item_hash: str
    """Hash of what the item asks; an item whose hash changed is not compared with its older self."""
    tags: tuple[str, ...] = ()
    answer_model_id: str | None = None
    """The model id the server reported with the answer."""
    judge_model_id: str | None = None
    """The model id the judge's API reported with its verdict."""
    rubric_hash: str | None = None
    """The version of the rubric that graded it."""
    judge_fingerprint: str | None = None
    """The judge's configured identity (the digest that keys the judgment cache)."""
    cache_key: str | None = None
    raw: str | None = None
    """The judge's reply as received."""
    answer_error: str | None = None
    judge_error: str | None = None
    answer_finished_at: float | None = None
    """When the model's answer came back (seconds since the epoch); with the latency, its busy interval."""
    member_scores: dict[str, float] | None = None
    """A panel's run: the score of each member that graded it (the mean of its repeats), by member name; how
    many there are says how many members the ``score`` aggregates. None for a run with one judge."""
    schema_version: int = RESULT_SCHEMA_VERSION
    flags: tuple[Flag, ...] = ()
    """Where the answer addresses the grader (``evals.judge.grader_attacks``): kind and character span."""
    answer_length: int | None = None
    """The answer's length in characters (kept when its text is purged)."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        """The record of one ``results.jsonl`` line; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in row.items() if k in names}
        values["tags"] = tuple(values.get("tags") or ())
        values["truncated"] = bool(values.get("truncated"))
        values["flags"] = tuple(Flag.from_dict(f) for f in values.get("flags") or ())
        if values.get("score") is not None:
            values["score"] = float(values["score"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of one ``results.jsonl`` line (what ``dataclasses.asdict`` gives, a tenth of its
        cost: every field is a plain value but these three)."""
        data = {name: getattr(self, name) for name in _FIELDS}
        data["tags"] = list(self.tags)
        data["flags"] = [f.to_dict() for f in self.flags]
        if self.member_scores is not None:
            data["member_scores"] = dict(self.member_scores)
        return data


_FIELDS = tuple(f.name for f in dataclasses.fields(ResultRow))


def result_rows(rows: Iterable[ResultRow]) -> list[ResultRow]:
    """The rows as a list (``Store.results`` yields them one by one)."""
    return list(rows)


def scores_by_item(rows: Iterable[ResultRow]) -> dict[str, list[float]]:
    """The scores of each item id (several with samples); rows with an error add none."""
    by_item: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row.score is not None:
            by_item[row.id].append(row.score)
    return dict(by_item)


def by_area(rows: Iterable[ResultRow]) -> dict[str, list[ResultRow]]:
    """The rows of each area, areas sorted by name."""
    areas: dict[str, list[ResultRow]] = defaultdict(list)
    for row in rows:
        areas[row.area].append(row)
    return dict(sorted(areas.items()))


@dataclass(frozen=True)
class AreaSummary:
    """One line of the end-of-run table."""

    area: str
    n: int
    """Items with at least one scored sample (the scorecard's n)."""
    mean: float | None
    """Mean of the item means: the scorecard's figure."""
    errors: int
    """Answers (item and sample) without a score."""


def summarize(rows: Iterable[ResultRow]) -> list[AreaSummary]:
    """Per area of a run's result rows: items scored, mean score, errors; the same mean as the scorecard."""
    out = []
    for area, area_rows in by_area(rows).items():
        by_item = scores_by_item(area_rows)
        errors = sum(1 for r in area_rows if r.score is None)
        out.append(AreaSummary(area, len(by_item), stats.mean_of_items(by_item), errors))
    return out


_ENDPOINT = re.compile(r"""^(?:model|judge) (?:'[^']*'|"[^"]*"): """)
"""How a failed call names its endpoint (``judge 'claude': ``), left out of the kind."""
_ATTEMPTS = re.compile(r" after \d+ attempts?$")
_STATUS = re.compile(r"^(?:HTTP )?(\d{3})\b([^(]*)")
"""``429 Too Many Requests (rate_limit_error: ...)``: the status and its phrase, not the server's detail."""
_KIND_LENGTH = 60
_JUDGE_CALL = "judge call failed: "


@dataclass(frozen=True)
class ErrorGroup:
    """The errors of a run that share a kind: how many, and the first as an example."""

    kind: str
    count: int
    item: str
    """The item id of the example."""
    example: str
    """The example's text, without the kind's own prefix when it starts with it."""


def error_kind(text: str) -> str:
    """The stable part of an error text, so that errors of one kind group: ``unparseable verdict``,
    ``judge call failed: 429 Too Many Requests``, ``judge call failed: timeout``, ``could not connect or the
    connection was dropped``. Endpoint names, attempt counts, the server's detail and the specifics after the
    first ``: `` are left out."""
    text = " ".join(text.split())
    lead = _JUDGE_CALL if text.startswith(_JUDGE_CALL) else ""  # a failed judge call: its cause is the kind
    cause = _ATTEMPTS.sub("", _ENDPOINT.sub("", text.removeprefix(lead)))
    if status := _STATUS.match(cause):
        kind = f"{status[1]} {status[2].strip()}".strip()
    elif "(timeout)" in cause or "timed out" in cause:
        kind = "timeout"
    else:
        kind = cause.partition(": ")[0].partition(" (")[0]
    kind = lead + kind
    return kind if len(kind) <= _KIND_LENGTH else kind[: _KIND_LENGTH - 1] + "…"


def group_errors(rows: Iterable[ResultRow], kind: ErrorKind) -> list[ErrorGroup]:
    """The ``answer`` or ``judge`` errors of ``rows`` by ``error_kind``, the most frequent first."""
    groups: dict[str, list[ResultRow]] = defaultdict(list)
    for row in rows:
        if row.error_kind == kind and row.error:
            groups[error_kind(row.error)].append(row)
    out = []
    for name, members in groups.items():
        first = members[0]
        text = " ".join((first.error or "").split())
        for prefix in (f"{name}: ", _JUDGE_CALL):
            text = text.removeprefix(prefix)
        out.append(ErrorGroup(name, len(members), first.id, text))
    return sorted(out, key=lambda g: -g.count)
