"""People's scores back: a filled review file (``evals review import``) into a labels file, into the store
with the run's answers, or both.

``import_review`` reads the file as a labels file (``evals.trust.labels``: every problem is a ``file:line``
error, rows without a score are skipped and counted) and checks everything before it writes anything:

- into a labels file (``--into``): rows the file holds already (same id, rater and score) are skipped and
  counted; a rater's different score of an answer it holds is an error;
- into the store (``--run RUN``): each row must be an answer of RUN (its ``id`` is ``RUN/ITEM/SAMPLE``, as
  ``evals review export`` writes it) and name its rater; a score is stored as part of a random sample only
  when the row's ``draw`` is a random draw of RUN kept in the store (``evals.trust.draw``), that draw picked
  the answer, and its ``reason`` is still ``random``. Scores the store holds already (same answer, rater and
  score) are skipped and counted; a rater's different score of one answer is an error naming both.

The store's scores are written in one transaction (the labels file is appended inside it, so a failure of
either writes neither), then the run's ``human_scores.jsonl`` beside its export is written again.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from evals.errors import LabelsError, Problem
from evals.store import Store
from evals.store.human import Draw, HumanScore, answered, draws, export_human, human_scores, insert_scores
from evals.trust.labels import COLUMNS, LabelRow, Labels, load_labels

RANDOM = "random"
"""The ``reason`` of a row a random draw picked."""


@dataclass(frozen=True)
class ReviewImport:
    """What ``import_review`` did."""

    appended: list[LabelRow]
    """The scored rows appended to the labels file."""
    blank: int
    """Rows without a score, skipped."""
    present: int
    """Rows the labels file held already (same id, rater and score), skipped: a file imported twice adds
    nothing the second time."""
    stored: list[HumanScore] = field(default_factory=list)
    """The scores stored with the run's answers (``--run``)."""
    stored_present: int = 0
    """Rows whose score the store held already (same answer, rater and score), skipped."""

    @property
    def random(self) -> int:
        """Scores stored as part of a random sample."""
        return sum(s.random for s in self.stored)


# -- into a labels file ------------------------------------------------------------------------------------


def _held_scores(into: Path) -> dict[tuple[str, str | None], dict[int, int]]:
    """The scores the labels file ``into`` holds, by (id, rater): score -> line. Empty when there is none."""
    if not into.exists() or into.stat().st_size == 0:
        return {}
    try:
        rows = load_labels(into, allow_blank=True).rows
    except LabelsError as exc:
        if [p.message for p in exc.problems] == ["no scored rows"]:  # a header, or only blank rows
            return {}
        raise
    held: dict[tuple[str, str | None], dict[int, int]] = defaultdict(dict)
    for row in rows:
        held[(row.id, row.rater)].setdefault(row.human_score, row.line)
    return held


def _labels_text(path: Path, labels: Labels, into: Path) -> tuple[list[LabelRow], str]:
    """The rows to append to ``into`` and the text that appends them (nothing written)."""
    suffix = into.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise LabelsError([Problem(str(into), None, None, "expected a .jsonl or .csv labels file")])
    held = _held_scores(into)
    rows: list[LabelRow] = []
    for row in labels.rows:
        scores = held.get((row.id, row.rater), {})
        if row.human_score in scores:
            continue
        if scores and row.rater is not None:
            score, line = next(iter(scores.items()))
            raise LabelsError(
                [Problem(str(path), row.line, "human_score", f"{row.rater!r} scored {row.id!r} {score} in "
                         f"{into}:{line}, and {row.human_score} here; correct one of them")]
            )  # fmt: skip
        rows.append(row)
    data = [r.model_dump(exclude_none=True) for r in rows]
    if suffix == ".jsonl":
        text = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in data)
    else:
        header = list(COLUMNS)
        existing = into.exists() and into.stat().st_size > 0
        if existing:
            with into.open(newline="", encoding="utf-8") as f:
                header = [name.strip() for name in next(csv.reader(f), [])]
            missing = sorted({k for d in data for k in d} - set(header))
            if missing:
                raise LabelsError([Problem(str(into), 1, None, f"the header lacks {', '.join(missing)}")])
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
        if not existing:
            writer.writeheader()
        writer.writerows(data)
        text = buffer.getvalue()
    if text and into.exists() and into.stat().st_size and not into.read_bytes().endswith(b"\n"):
        text = "\n" + text
    return rows, text


def _append(into: Path, text: str) -> None:
    into.parent.mkdir(parents=True, exist_ok=True)
    with into.open("a", encoding="utf-8", newline="") as f:
        f.write(text)


# -- into the store ----------------------------------------------------------------------------------------


def answer_key(row_id: str, run_id: str) -> tuple[str, int] | None:
    """The (item id, sample) a row id of ``review export RUN`` names (``RUN/ITEM/SAMPLE``), or None."""
    prefix = f"{run_id}/"
    if not row_id.startswith(prefix):
        return None
    item_id, _, sample = row_id[len(prefix) :].rpartition("/")
    if not item_id or not sample.isdigit() or not sample.isascii():
        return None
    return item_id, int(sample)


def _row_problem(
    row: LabelRow, key: tuple[str, int] | None, run_id: str, given: set[tuple[str, int]], draw: Draw | None,
    where: str,
) -> tuple[str, str] | None:  # fmt: skip
    """What keeps a scored row from being stored with ``run_id``'s answers, as (field, message), or None.
    ``draw``: the stored draw of the run the row names (None: none, or not one of this run's)."""
    if row.run_id is not None and row.run_id != run_id:
        return (
            "run_id",
            f"{row.run_id!r} is not the run {run_id!r} given with --run; import each run's file apart",
        )
    if key is None or key not in given:
        what = "names no answer" if key is None else "is not an answer the model gave"
        return "id", (
            f"{row.id!r} {what} of run {run_id} (ids are {run_id}/ITEM/SAMPLE, as evals review export writes "
            "them); remove the row, or import the file with --into only"
        )
    if row.rater is None:
        return (
            "rater",
            "required with --run: name who scored the answer (one score per rater and answer is kept)",
        )
    if row.draw is not None and draw is None:
        return "draw", (
            f"{row.draw!r} is not a random draw of run {run_id} in {where}; import with the store the draw "
            "was made in (EVALS_STORE), or clear the draw cell to store the score as not random"
        )
    if draw is not None and key not in draw.picked:
        return (
            "draw",
            f"draw {draw.draw_id!r} did not pick {row.id!r}; clear the draw cell of an answer added by hand",
        )
    return None


def _run_scores(
    store: Store, run_id: str, labels: Labels, path: Path, now: str
) -> tuple[list[HumanScore], int]:
    """The scores to store with ``run_id``'s answers and how many the store holds already; a
    ``LabelsError`` listing every row that cannot be stored (nothing written)."""
    store.run(run_id)  # an unknown run is one line, before any row is read
    areas = dict(store._execute("SELECT item_id, area FROM items WHERE run_id = ?", (run_id,)).fetchall())
    given = answered(store, run_id)
    run_draws = {d.draw_id: d for d in draws(store, run_id)}
    held = {(s.item_id, s.sample, s.rater): s for s in human_scores(store, run_id)}
    problems: list[Problem] = []
    scores: list[HumanScore] = []
    present = 0
    for row in labels.rows:
        key = answer_key(row.id, run_id)
        problem = _row_problem(row, key, run_id, given, run_draws.get(row.draw or ""), str(store.path))
        before = held.get((*key, row.rater)) if key is not None and row.rater is not None else None
        if problem is None and before is not None and before.score != row.human_score:
            said = f"{before.score} (stored, scored at {before.scored_at})"
            problem = (
                "human_score",
                f"{row.rater!r} scored {row.id!r} {said}, and {row.human_score} here; correct one of them",
            )
        if problem is not None:
            problems.append(Problem(str(path), row.line, *problem))
        elif before is not None:
            present += 1
        elif key is not None and row.rater is not None:
            random = row.draw is not None and row.reason == RANDOM  # a draw's pick, still marked as one
            scores.append(
                HumanScore(run_id, key[0], str(areas[key[0]]), key[1], row.rater, row.human_score,
                           row.scored_at or now, random, row.draw)
            )  # fmt: skip
    if problems:
        raise LabelsError(problems)
    return scores, present


def import_review(
    path: str | Path,
    into: Path | None = None,
    store: Store | None = None,
    run_id: str | None = None,
    now: str | None = None,
) -> ReviewImport:
    """Validate a filled review file and take its scored rows into the labels file ``into``, into the store
    with the answers of ``run_id``, or both; all or nothing (see the module's docstring).

    ``into`` is JSONL or CSV; a CSV that exists keeps its header, which must have every column the rows use.
    ``now`` (ISO 8601) is when a row without ``scored_at`` was scored: the import's time by default.
    """
    if (store is None) != (run_id is None):
        raise ValueError("store and run_id go together")
    labels = load_labels(path, allow_blank=True)
    appended, text = _labels_text(Path(path), labels, into) if into is not None else ([], "")
    stored: list[HumanScore] = []
    present = 0
    if store is not None and run_id is not None:
        store.check_key()
        moment = now or datetime.now(UTC).isoformat(timespec="seconds")
        stored, present = _run_scores(store, run_id, labels, Path(path), moment)
        with store.backend.transaction():
            insert_scores(store, stored)
            if into is not None and text:
                _append(into, text)
        if stored:
            export_human(store, run_id)
    elif into is not None and text:
        _append(into, text)
    skipped = len(labels.rows) - len(appended) if into is not None else 0
    return ReviewImport(appended, labels.blank, skipped, stored, present)
