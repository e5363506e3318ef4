"""People's scores stored with a run: the random draws of its answers and the scores people gave them.

``review_draws`` keeps each random draw ``evals review export --random`` made (seed, size, each area's
answers and picks, the answers picked); ``human_scores`` keeps one score per (answer, rater): an integer
1-5, when it was given, and whether it is part of a random sample (``random``: the row came from a stored
draw of the same run, picked by it, with the reason ``random``). Only a random sample may feed a
correction of the judge's figures; answers picked for being urgent or doubtful never do.

Nothing here holds text a model, a judge or a suite brought: a score points at the stored answer by (run,
item, sample). Rater names are identifiers, kept in clear like a baseline's note or a canary reset's
``who`` (``evals.store.crypto`` seals only the text of questions, answers and verdicts); scores are numbers.
So an encrypted store's people's scores read without its key, as its judges' scores do, and ``evals purge``
keeps them (they are figures, not text).

A run's draws and scores are also written beside its export, as ``human_scores.jsonl`` in
``runs/<run_id>/`` (one JSON object per line: the draws, then the scores), which ``evals import`` reads
(``evals.store.exported.read_human``) so that a run exported and imported keeps them; ``evals store copy``
copies them with the run (``evals.store.transfer``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evals.files import write_atomic
from evals.names import InvalidName, check_label, is_name, run_folder
from evals.records import MAX_SAMPLES
from evals.store.checks import MAX_COUNT, Timestamp, describe, location, problems_of
from evals.store.core import Store
from evals.store.rows import upsert_sql

HUMAN_FILE = "human_scores.jsonl"
"""The file beside a run's export (``runs/<run_id>/``) holding its draws and people's scores."""
MAX_SEED = 2**63 - 1
"""The largest seed a store keeps (a signed 64-bit integer in both dialects)."""

_DRAW_COLS = ("draw_id", "run_id", "seed", "asked", "drawn_at", "areas_json", "picked_json")
_SCORE_COLS = ("run_id", "item_id", "sample", "rater", "score", "scored_at", "at_random", "draw_id")
_SCORE_KEY = ("run_id", "item_id", "sample", "rater")


@dataclass(frozen=True, slots=True)
class AreaDraw:
    """One area of a random draw: how many answers it had, and how many the draw picked."""

    area: str
    answers: int
    """The area's answers the draw picked from (every answer with text)."""
    drawn: int


@dataclass(frozen=True, slots=True)
class Draw:
    """A uniform random sample of a run's answers, stratified by area (``evals review export --random``)."""

    draw_id: str
    run_id: str
    seed: int
    """The seed of the draw: the same run, size and seed pick the same answers."""
    asked: int
    """The number of answers asked for (``--random N``); fewer are drawn when the run has fewer."""
    drawn_at: str
    areas: tuple[AreaDraw, ...]
    """Each area with answers, in suite order: its answers and picks (proportional, at least 1 when the
    size allows), the weights a stratified estimate needs."""
    picked: tuple[tuple[str, int], ...]
    """The (item id, sample) of every answer picked, in suite order."""


@dataclass(frozen=True, slots=True)
class HumanScore:
    """One person's score of one answer of a run, as the store keeps it."""

    run_id: str
    item_id: str
    area: str
    """The item's area (the stored item's, whatever the scored file said)."""
    sample: int
    rater: str
    score: int
    """1 to 5, per the labelling guide (``evals/defaults/labels/GUIDE.md``)."""
    scored_at: str
    """When it was given (the file's ``scored_at``), else when it was imported; ISO 8601 with offset."""
    random: bool
    """Part of a random sample: its row came from a stored random draw of this run that picked this answer,
    with the reason ``random``. Only such scores may feed a correction."""
    draw_id: str | None = None
    """The draw the row came from (also when ``random`` is false: a row whose reason was changed)."""


# -- the store ---------------------------------------------------------------------------------------------


def _areas(draw: Draw) -> list[dict[str, Any]]:
    return [{"area": a.area, "answers": a.answers, "drawn": a.drawn} for a in draw.areas]


def _picks(draw: Draw) -> list[dict[str, Any]]:
    return [{"item_id": item_id, "sample": sample} for item_id, sample in draw.picked]


def _draw_values(draw: Draw) -> tuple[object, ...]:
    return (
        draw.draw_id, draw.run_id, draw.seed, draw.asked, draw.drawn_at,
        json.dumps(_areas(draw), ensure_ascii=False), json.dumps(_picks(draw), ensure_ascii=False),
    )  # fmt: skip


def _draw_of(row: tuple[Any, ...]) -> Draw:
    areas = tuple(AreaDraw(a["area"], int(a["answers"]), int(a["drawn"])) for a in json.loads(row[5]))
    picked = tuple((str(p["item_id"]), int(p["sample"])) for p in json.loads(row[6]))
    return Draw(str(row[0]), str(row[1]), int(row[2]), int(row[3]), str(row[4]), areas, picked)


def _score_values(score: HumanScore) -> tuple[object, ...]:
    # A flag is stored as 0/1: PostgreSQL will not put a boolean into an integer column.
    s = score
    return (s.run_id, s.item_id, s.sample, s.rater, s.score, s.scored_at, int(s.random), s.draw_id)


def save_draw(store: Store, draw: Draw) -> None:
    """Keep a random draw of a run."""
    store._execute(
        f"INSERT INTO review_draws ({','.join(_DRAW_COLS)}) VALUES (?,?,?,?,?,?,?)", _draw_values(draw)
    )


def draws(store: Store, run_id: str) -> list[Draw]:
    """The random draws of a run, oldest first."""
    rows = store._execute(
        f"SELECT {','.join(_DRAW_COLS)} FROM review_draws WHERE run_id = ? ORDER BY drawn_at, draw_id",
        (run_id,),
    ).fetchall()
    return [_draw_of(tuple(r)) for r in rows]


def answered(store: Store, run_id: str) -> set[tuple[str, int]]:
    """The (item id, sample) of every answer of a run the model gave (no answer error), text read or not."""
    rows = store._execute("SELECT item_id, sample FROM answers WHERE run_id = ? AND error IS NULL", (run_id,))
    return {(str(r[0]), int(r[1])) for r in rows.fetchall()}


def human_scores(store: Store, run_id: str) -> list[HumanScore]:
    """People's scores of a run's answers, in suite order, then sample, then rater."""
    rows = store._execute(
        "SELECT h.run_id, h.item_id, i.area, h.sample, h.rater, h.score, h.scored_at, h.at_random, h.draw_id "
        "FROM human_scores h JOIN items i ON i.run_id = h.run_id AND i.item_id = h.item_id "
        "WHERE h.run_id = ? ORDER BY i.position, h.sample, h.rater",
        (run_id,),
    ).fetchall()
    return [
        HumanScore(
            str(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4]), int(r[5]), str(r[6]), bool(r[7]), r[8]
        )
        for r in rows
    ]


def insert_scores(store: Store, scores: Iterable[HumanScore]) -> None:
    """Add scores (inside the caller's transaction); one a rater gave the same answer before is refused by
    the key, so two imports racing cannot both store a score."""
    insert = f"INSERT INTO human_scores ({','.join(_SCORE_COLS)}) VALUES ({','.join('?' * len(_SCORE_COLS))})"
    values = [_score_values(s) for s in scores]
    if values:
        store.backend.executemany(insert, values)


def bring_over(store: Store, run_draws: Iterable[Draw], scores: Iterable[HumanScore]) -> None:
    """A run's draws and scores from another store or an export (inside the caller's transaction): a draw
    held already stays as it is (a draw never changes), a rater's score held already is brought up to date."""
    draw_values = [_draw_values(d) for d in run_draws]
    if draw_values:
        store.backend.executemany(
            f"INSERT INTO review_draws ({','.join(_DRAW_COLS)}) VALUES (?,?,?,?,?,?,?) "
            "ON CONFLICT (draw_id) DO NOTHING",
            draw_values,
        )
    score_values = [_score_values(s) for s in scores]
    if score_values:
        store.backend.executemany(upsert_sql("human_scores", _SCORE_COLS, _SCORE_KEY), score_values)


# -- beside the run's export -------------------------------------------------------------------------------


def draw_line(draw: Draw) -> dict[str, Any]:
    """A draw as a line of ``human_scores.jsonl``."""
    d = draw
    return {
        "kind": "draw", "draw_id": d.draw_id, "run_id": d.run_id, "seed": d.seed, "asked": d.asked,
        "drawn_at": d.drawn_at, "areas": _areas(d), "picked": _picks(d),
    }  # fmt: skip


def score_line(score: HumanScore) -> dict[str, Any]:
    """A score as a line of ``human_scores.jsonl`` (the area is the item's, in the manifest)."""
    s = score
    return {
        "kind": "score", "run_id": s.run_id, "item_id": s.item_id, "sample": s.sample, "rater": s.rater,
        "score": s.score, "scored_at": s.scored_at, "random": s.random, "draw_id": s.draw_id,
    }  # fmt: skip


def export_human(store: Store, run_id: str) -> Path | None:
    """Write ``runs/<run_id>/human_scores.jsonl`` (draws, then scores) if the run has any; its path."""
    run_draws, scores = draws(store, run_id), human_scores(store, run_id)
    if not run_draws and not scores:
        return None
    folder = run_folder(store.reports_dir, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [draw_line(d) for d in run_draws] + [score_line(s) for s in scores]
    return write_atomic(
        folder / HUMAN_FILE, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    )


# -- what may enter from elsewhere (``evals.store.checks``' rules, for these rows) -------------------------


def _rater_problem(rater: object) -> str | None:
    if not isinstance(rater, str):
        return f"expected a rater's name, got {describe(rater)}"
    try:
        check_label(rater, "rater")
    except InvalidName as exc:
        return str(exc)
    return None


class AreaFields(BaseModel):
    """One area of a draw line."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    area: str = Field(min_length=1)
    answers: int = Field(ge=0, le=MAX_COUNT)
    drawn: int = Field(ge=0, le=MAX_COUNT)


class PickFields(BaseModel):
    """One answer a draw picked."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    item_id: str = Field(min_length=1)
    sample: int = Field(ge=0, lt=MAX_SAMPLES)


class DrawFields(BaseModel):
    """A ``draw`` line of ``human_scores.jsonl``."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    kind: Literal["draw"]
    draw_id: str
    run_id: str
    seed: int = Field(ge=0, le=MAX_SEED)
    asked: int = Field(ge=1, le=MAX_COUNT)
    drawn_at: Timestamp
    areas: list[AreaFields]
    picked: list[PickFields]

    @field_validator("draw_id")
    @classmethod
    def _named(cls, draw_id: str) -> str:
        if not is_name(draw_id):
            raise ValueError(f"draw_id {describe(draw_id)} is not a draw id this version writes")
        return draw_id

    def record(self) -> Draw:
        return Draw(
            self.draw_id, self.run_id, self.seed, self.asked, self.drawn_at,
            tuple(AreaDraw(a.area, a.answers, a.drawn) for a in self.areas),
            tuple((p.item_id, p.sample) for p in self.picked),
        )  # fmt: skip


class ScoreFields(BaseModel):
    """A ``score`` line of ``human_scores.jsonl``."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    kind: Literal["score"]
    run_id: str
    item_id: str = Field(min_length=1)
    sample: int = Field(ge=0, lt=MAX_SAMPLES)
    rater: str
    score: int = Field(ge=1, le=5)
    scored_at: Timestamp
    random: bool = False
    draw_id: str | None = None

    @field_validator("rater")
    @classmethod
    def _rater(cls, rater: str) -> str:
        problem = _rater_problem(rater)
        if problem:
            raise ValueError(problem)
        return rater

    @model_validator(mode="after")
    def _consistent(self) -> ScoreFields:
        if self.random and self.draw_id is None:
            raise ValueError("random is true but no draw_id names the draw; a random score comes from a draw")
        return self

    def record(self, area: str) -> HumanScore:
        return HumanScore(
            self.run_id, self.item_id, area, self.sample, self.rater, self.score, self.scored_at, self.random,
            self.draw_id,
        )  # fmt: skip


def draw_problems(draw: Draw) -> Iterator[tuple[str, str]]:
    """What is wrong with a random draw read from another store: what a ``draw`` line may not hold."""
    try:
        DrawFields.model_validate(draw_line(draw))
    except ValidationError as exc:
        for error in exc.errors():
            loc, message = problems_of(error)
            yield location(loc) or "draw", message


def score_problems(score: HumanScore, samples: int, draw_ids: set[str]) -> Iterator[tuple[str, str]]:
    """What is wrong with a person's score read from another store (of a run with ``samples`` samples whose
    draws are ``draw_ids``)."""
    if isinstance(score.sample, bool) or not 0 <= score.sample < samples:
        yield "sample", f"expected a sample the run asked (0 to {samples - 1}), got {describe(score.sample)}"
    if isinstance(score.score, bool) or not isinstance(score.score, int) or not 1 <= score.score <= 5:
        yield "score", f"expected a whole number from 1 to 5, got {describe(score.score)}"
    problem = _rater_problem(score.rater)
    if problem:
        yield "rater", problem
    if score.draw_id is not None and score.draw_id not in draw_ids:
        yield "draw_id", f"{describe(score.draw_id)} is not a draw of the run"
    if score.random and score.draw_id is None:
        yield "random", "true, but no draw names it"
