"""Labels files: answers that people scored 1-5, the ground truth a judge is calibrated against.

One row per (answer, rater), in JSONL or CSV (header row), read through ``evals.userfiles`` and validated
like a suite: every problem is collected and reported as ``file:line: field: what is wrong``.

Fields: ``question``, ``reference`` (may be empty when the rubric grades without one), ``answer``,
``human_score`` (an integer 1-5), and optionally ``rater`` (who scored), ``area`` (for per-area figures;
default ``general``), ``id`` (rows sharing an ``id`` are several raters of the same answer; default: the
row's own line), ``reason`` (why ``evals review export`` chose the answer; not used by calibration), and
``draw`` and ``scored_at`` (the random draw a row came from, and when it was scored, which ``evals review
import --run`` stores with the run's answers).
``--labels demo`` names the shipped set for the demo suite.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evals.defaults import ROOT
from evals.errors import LabelsError, Problem
from evals.records import Sensitivity
from evals.userfiles import parse_jsonl, read_text

SHIPPED_LABELS = ROOT / "labels"
"""The shipped labelled sets (``demo``) and the labelling guide."""
DEFAULT_AREA = "general"
COLUMNS = (
    "id", "area", "question", "reference", "answer", "human_score", "rater", "reason", "sensitivity", "run_id",
    "draw", "scored_at",
)  # fmt: skip
"""Every column a labels file may have, in the order ``evals review export`` writes them."""


class LabelRow(BaseModel):
    """One person's score of one answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    """The answer's id: rows sharing it are several raters of the same answer."""
    area: str = Field(default=DEFAULT_AREA, min_length=1)
    question: str = Field(min_length=1)
    reference: str | None = None
    answer: str
    human_score: int = Field(ge=1, le=5, strict=True)
    """The person's score, 1 to 5, per the labelling guide (``evals/defaults/labels/GUIDE.md``)."""
    rater: str | None = None
    reason: str | None = None
    """Why ``evals review export`` chose this answer (kept, not used by calibration)."""
    sensitivity: Sensitivity | None = None
    """How far the row's text may travel (``review export`` writes the item's level); none given: the level
    of the stored item with the same question, else the config's ``default_sensitivity``."""
    run_id: str | None = None
    """The run the answer came from (``review export``): its suite's redaction patterns follow the row."""
    draw: str | None = None
    """The random draw the row came from (``review export --random``); kept with the score by ``--run``."""
    scored_at: str | None = None
    """When the person scored it: an ISO 8601 time with its UTC offset, or a date (midnight UTC)."""
    line: int = Field(default=0, exclude=True)
    """Where the row starts in its file (1-based), for messages."""

    @field_validator("scored_at")
    @classmethod
    def _moment(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip()
        try:
            if len(text) == 10:
                return datetime.combine(date.fromisoformat(text), time(), UTC).isoformat()
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise ValueError(
                f"expected a time with its UTC offset (2026-11-01T09:30:00+00:00) or a date (2026-11-01), "
                f"got {json.dumps(value)[:40]}"
            )
        return moment.isoformat()


class Labels(BaseModel):
    """A labels file, read and validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    """The file as given (``demo`` for the shipped set)."""
    rows: list[LabelRow]
    blank: int = 0
    """Rows without a score (skipped; counted when ``allow_blank``)."""
    defaulted: tuple[str, ...] = ()
    """Ids of the rows whose level is the config's ``default_sensitivity`` (no level of their own, no stored
    question: ``evals.trust.calibration.with_levels``)."""


def labels_path(spec: str | Path) -> Path:
    """The file ``spec`` names: a path, or the name of a shipped set (``demo``)."""
    path = Path(spec)
    shipped = SHIPPED_LABELS / f"{spec}.jsonl"
    if not path.exists() and "/" not in str(spec) and shipped.is_file():
        return shipped
    return path


def load_labels(spec: str | Path, *, allow_blank: bool = False) -> Labels:
    """Read and validate a labels file (``.jsonl`` or ``.csv``); ``LabelsError`` lists every problem.

    ``allow_blank``: rows whose ``human_score`` is empty or null are skipped and counted (a review file
    people filled in part), instead of being errors.
    """
    path = labels_path(spec)
    shown = str(path)
    problems: list[Problem] = []
    if path.suffix.lower() not in (".jsonl", ".csv"):
        raise LabelsError([Problem(shown, None, None, "expected a .jsonl or .csv labels file")])
    text = read_text(path)
    records = (
        _csv_records(shown, text, problems)
        if path.suffix.lower() == ".csv"
        else _jsonl(shown, text, problems)
    )
    rows: list[LabelRow] = []
    blank = 0
    for line, data in records:
        score = data.get("human_score")
        if allow_blank and (score is None or (isinstance(score, str) and not score.strip())):
            blank += 1
            continue
        data.setdefault("id", f"line-{line}")
        try:
            rows.append(LabelRow.model_validate({**data, "line": line}))
        except ValidationError as exc:
            for error in exc.errors():
                name = ".".join(str(p) for p in error["loc"]) or None
                problems.append(Problem(shown, line, name, _message(error)))
    problems += _conflicts(shown, rows)
    if problems:
        raise LabelsError(problems)
    if not rows:
        raise LabelsError([Problem(shown, None, None, "no scored rows")])
    return Labels(path=str(spec), rows=rows, blank=blank)


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown column; expected " + ", ".join(COLUMNS)
    if error["type"] == "missing":
        return "required"
    if error["loc"] and error["loc"][0] == "human_score":
        return f"expected an integer from 1 to 5, got {json.dumps(error.get('input'))[:40]}"
    return str(error["msg"]).removeprefix("Value error, ")


def _jsonl(path: str, text: str, problems: list[Problem]) -> Iterator[tuple[int, dict[str, Any]]]:
    for line in parse_jsonl(text):
        if line.problem is not None:
            problems.append(Problem(path, line.line, None, line.problem))
        elif not isinstance(line.value, dict):
            problems.append(
                Problem(path, line.line, None, "expected a JSON object (one labelled answer per line)")
            )
        else:
            yield line.line, dict(line.value)


def _csv_records(path: str, text: str, problems: list[Problem]) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader, [])]
        end = reader.line_num
        for row in reader:
            start, end = end + 1, reader.line_num  # a quoted cell may span lines
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                problems.append(
                    Problem(path, start, None, f"{len(row)} cells but the header has {len(header)}")
                )
                continue
            data: dict[str, Any] = {}
            for name, cell in zip(header, row, strict=False):
                if (
                    name
                    in (
                        "reference",
                        "rater",
                        "reason",
                        "area",
                        "id",
                        "sensitivity",
                        "run_id",
                        "draw",
                        "scored_at",
                    )
                    and not cell.strip()
                ):
                    continue  # an empty optional cell is no value
                data[name] = cell
            score = data.get("human_score")
            if isinstance(score, str) and score.strip().lstrip("+-").isdigit():
                data["human_score"] = int(score)  # CSV cells are text; JSON must give a real integer
            yield start, data
    except csv.Error as exc:
        problems.append(Problem(path, reader.line_num, None, f"CSV error: {exc}"))


def _conflicts(path: str, rows: list[LabelRow]) -> list[Problem]:
    """Rows sharing an id must be the same answer (question, reference, answer, area), by other raters."""
    first: dict[str, LabelRow] = {}
    raters: dict[tuple[str, str], int] = {}
    problems = []
    for row in rows:
        held = first.setdefault(row.id, row)
        same = (held.question, held.reference, held.answer, held.area) == (
            row.question,
            row.reference,
            row.answer,
            row.area,
        )
        if not same:
            problems.append(
                Problem(path, row.line, "id", f"{row.id!r} is another answer than on line {held.line}; "
                        "rows sharing an id must repeat the same question, reference, answer and area")
            )  # fmt: skip
        if row.rater is not None:
            seen = raters.setdefault((row.id, row.rater), row.line)
            if seen != row.line:
                problems.append(
                    Problem(
                        path, row.line, "rater", f"{row.rater!r} already scored {row.id!r} on line {seen}"
                    )
                )
    return problems
