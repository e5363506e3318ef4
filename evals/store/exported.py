"""Reading a run as ``Store.export_jsonl`` wrote it (``manifest.json`` and ``results.jsonl``, and the
``human_scores.jsonl`` of ``evals.store.human`` beside them when people scored it), checking every piece
before ``evals import`` writes any of it.

The files are read as streams: ``manifest.json`` a member or an item at a time (``evals.store.jsonstream``),
``results.jsonl`` a line at a time, and the keys seen so far (item ids, item and sample of each row) are kept
in a scratch SQLite file on disk (``Scratch``), so reading holds no more memory at 100,000 items than at 10.
Each piece is checked as ``evals.store.checks`` says (strict types, names, ranges, duplicates); the first
problem found is a ``StoreError`` of one line, ``file:line: field: what is wrong``.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from evals.errors import StoreError
from evals.records import MAX_ANSWER_CHARS, Answer, Item, Judgment, RunConfig, RunManifest
from evals.store.checks import (
    MANIFEST_EXPECTED,
    RESULT_EXPECTED,
    ManifestFields,
    ResultFields,
    answer_limit,
    describe,
    item_problems,
    length_problems,
    location,
    problems_of,
)
from evals.store.human import HUMAN_FILE, Draw, DrawFields, HumanScore, ScoreFields
from evals.store.jsonstream import Piece, ShapeError, line_in, members
from evals.store.rows import records_of
from evals.userfiles import JsonProblem, UserFileError, parse_json, read_chunks, read_lines

NOT_A_ROW = "not a result row exported by lookingglass"
"""What a line of ``results.jsonl`` that is not a JSON object (or not JSON) is called in errors."""
NOT_A_HUMAN_LINE = "not a line of people's scores exported by lookingglass"
"""The same, for a line of ``human_scores.jsonl``."""
KNOWN = frozenset(ManifestFields.model_fields) | {"config", "items"}
"""The members of ``manifest.json`` that are read; any other (a later version's) is checked as JSON only."""


def _fail(path: Path | str, line: int | None, name: str, message: str) -> NoReturn:
    where = f"{path}:{line}" if line else str(path)
    raise StoreError(f"{where}: {name}: {message}")


class Scratch:
    """The keys one run's export has shown so far (item ids, rows), in a private temporary SQLite database
    that SQLite keeps on disk: checking for duplicates holds no more memory at 100,000 items than at 10."""

    def __init__(self) -> None:
        self.db = sqlite3.connect("", isolation_level=None)  # "": a temporary file, deleted on close
        self.db.execute("CREATE TABLE items (id TEXT PRIMARY KEY, line INTEGER NOT NULL, area TEXT)")
        self.db.execute(
            "CREATE TABLE results (id TEXT, sample INTEGER, line INTEGER NOT NULL, PRIMARY KEY (id, sample))"
        )
        self.db.execute("BEGIN")  # never committed: nothing is written to the file that is not needed

    def clear(self) -> None:
        self.db.execute("DELETE FROM items")
        self.db.execute("DELETE FROM results")

    def add_item(self, item_id: str, line: int, area: str | None = None) -> int | None:
        """Record an item id (and its area); the line it was first seen on if it was seen already."""
        seen = self.db.execute("SELECT line FROM items WHERE id = ?", (item_id,)).fetchone()
        if seen is None:
            self.db.execute("INSERT INTO items VALUES (?, ?, ?)", (item_id, line, area))
        return None if seen is None else int(seen[0])

    def has_item(self, item_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone() is not None

    def area_of(self, item_id: str) -> str | None:
        """The area of an item seen, or None."""
        row = self.db.execute("SELECT area FROM items WHERE id = ?", (item_id,)).fetchone()
        return None if row is None else row[0]

    def has_result(self, item_id: str, sample: int) -> bool:
        """Whether a result row of this item and sample was seen."""
        found = self.db.execute("SELECT 1 FROM results WHERE id = ? AND sample = ?", (item_id, sample))
        return found.fetchone() is not None

    def add_result(self, item_id: str, sample: int, line: int) -> int | None:
        """Record a result row's key; the line it was first seen on if it was seen already."""
        seen = self.db.execute(
            "SELECT line FROM results WHERE id = ? AND sample = ?", (item_id, sample)
        ).fetchone()
        if seen is None:
            self.db.execute("INSERT INTO results VALUES (?, ?, ?)", (item_id, sample, line))
        return None if seen is None else int(seen[0])

    def close(self) -> None:
        self.db.close()


# -- reading an export -------------------------------------------------------------------------------------


def find_exports(path: Path) -> list[Path]:
    """The run folders under ``path`` (itself, or any folder below it) holding a ``manifest.json``."""
    if (path / "manifest.json").is_file():
        return [path]
    if not path.is_dir():
        raise StoreError(f"{path}: not a folder; give a run's folder (with manifest.json and results.jsonl)")
    found = sorted(p.parent for p in path.rglob("manifest.json"))
    if not found:
        raise StoreError(
            f"{path}: no manifest.json found; give a run folder exported by lookingglass "
            "(reports/runs/<run_id>/, holding manifest.json and results.jsonl)"
        )
    return found


def _unreadable(exc: UserFileError) -> NoReturn:
    if exc.line is not None:  # bytes that are not UTF-8
        _fail(exc.path, exc.line, "encoding", f"{exc.reason} (lookingglass exports UTF-8; re-export the run)")
    raise StoreError(str(exc)) from None


def _pieces(path: Path) -> Iterator[Piece]:
    """The members of ``manifest.json`` and the elements of its ``items``, read a chunk at a time."""
    try:
        yield from members(read_chunks(path), "items")
    except ShapeError as exc:
        _fail(path, exc.line, exc.field or "not a run manifest exported by lookingglass", exc.message)
    except UserFileError as exc:
        _unreadable(exc)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """The lines of ``results.jsonl``, one at a time."""
    try:
        yield from read_lines(path)
    except UserFileError as exc:
        _unreadable(exc)


def _nonfinite(text: str) -> tuple[str | int, ...] | None:
    """Where JSON text holds NaN or an infinite number (Python's json reads them), to name the field."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        loc, node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return loc
        if isinstance(node, dict):
            stack.extend(((*loc, k), v) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend(((*loc, i), v) for i, v in reversed(list(enumerate(node))))
    return None


def _parse(text: str, path: Path, line: int, name: str) -> Any:
    """``parse_json`` of one piece; its problem as one line naming ``name`` (or the field holding a NaN)."""
    try:
        return parse_json(text)
    except JsonProblem as exc:
        where = _nonfinite(text) if "finite" in str(exc) else None
        if where:
            fieldname = location(where) if name == NOT_A_ROW else f"{name}.{location(where)}".rstrip(".")
            _fail(path, line + line_in(text, where), fieldname, str(exc))
        _fail(path, line, name, str(exc))


def _pydantic_problem(exc: ValidationError, path: Path, piece: Piece, prefix: str) -> NoReturn:
    loc, message = problems_of(exc.errors()[0])
    name = f"{prefix}.{location(loc)}".strip(".") if loc else prefix
    _fail(path, piece.value_line + line_in(piece.text, loc), name, message)


def read_manifest(folder: Path) -> RunManifest:
    """The run ``folder/manifest.json`` describes (its items are only counted here: ``read_items``)."""
    path = folder / "manifest.json"
    seen: dict[str, Piece] = {}
    data: dict[str, Any] = {}
    items = 0
    for piece in _pieces(path):
        if piece.index is not None:
            items += 1
            continue
        if piece.key in seen:
            _fail(
                path, piece.line, piece.key, f"given twice (first on line {seen[piece.key].line}); keep one"
            )
        value = _parse(piece.text, path, piece.value_line, piece.key) if piece.key != "config" else None
        if piece.key not in KNOWN:
            continue  # a later version's: checked as JSON, not kept
        seen[piece.key] = piece
        if piece.key == "items" and value != []:  # a member, not a list (a list comes as its items)
            _fail(path, piece.line, "items", f"expected a list of items, got {describe(value)}")
        if piece.key not in ("config", "items"):
            data[piece.key] = value
    try:
        fields = ManifestFields.model_validate(data)
    except ValidationError as exc:
        loc, message = problems_of(exc.errors()[0], MANIFEST_EXPECTED, "a string")
        found = seen.get(str(loc[0])) if loc else None
        line = found.value_line + line_in(found.text, loc[1:]) if found else 1
        _fail(path, line, location(loc) or "manifest", message)
    config = RunConfig()
    if "config" in seen:
        piece = seen["config"]
        value = _parse(piece.text, path, piece.value_line, "config")
        if not isinstance(value, dict):
            _fail(path, piece.line, "config", f"expected an object, got {describe(value)}")
        try:
            config = RunConfig.model_validate_json(piece.text, strict=True)
        except ValidationError as exc:
            _pydantic_problem(exc, path, piece, "config")
    if not items:
        line = seen["items"].line if "items" in seen else 1
        _fail(path, line, "items", "lists no items; re-export the run with this version of lookingglass")
    values = fields.model_dump()
    return RunManifest(
        **{**values, "tags": tuple(values["tags"]), "rubrics": tuple(values["rubrics"])}, config=config
    )


def read_items(
    folder: Path, scratch: Scratch, held: Callable[[str], str | None] | None = None
) -> Iterator[Item]:
    """The items of ``folder/manifest.json``, each checked as a suite would, their ids kept in ``scratch``.

    ``held``: for a run the store has already, what is wrong with an item id it does not hold (None if held)."""
    path = folder / "manifest.json"
    for piece in _pieces(path):
        if piece.index is None:
            continue
        name = f"items[{piece.index}]"
        value = _parse(piece.text, path, piece.value_line, name)
        if not isinstance(value, dict):
            _fail(path, piece.line, name, f"expected an item (an object), got {describe(value)}")
        try:
            item = Item.model_validate_json(piece.text, strict=True)
        except ValidationError as exc:
            _pydantic_problem(exc, path, piece, name)
        for key, message in item_problems(item):
            _fail(path, piece.value_line + line_in(piece.text, (key,)), f"{name}.{key}", message)
        id_line = piece.value_line + line_in(piece.text, ("id",))
        first = scratch.add_item(item.id, id_line, item.area)
        if first is not None:
            _fail(path, id_line, f"{name}.id", f"duplicate id {item.id!r} (first on line {first}); keep one")
        missing = held(item.id) if held is not None else None
        if missing is not None:
            _fail(path, id_line, f"{name}.id", missing)
        yield item


def read_results(
    folder: Path, manifest: RunManifest, scratch: Scratch
) -> Iterator[tuple[Answer | None, Judgment | None]]:
    """The answer and the verdict of each line of ``folder/results.jsonl``, checked against ``manifest`` and
    the items in ``scratch`` (``read_items`` first)."""
    path = folder / "results.jsonl"
    if not path.exists() and not path.is_symlink():
        raise StoreError(
            f"{path}: missing; a run's export is its whole folder (reports/runs/<run_id>/, manifest.json and "
            "results.jsonl): copy all of it"
        )
    context, limit = {"samples": manifest.samples}, answer_limit(manifest)
    for number, text in _lines(path):
        if not text.strip():
            continue
        row = _parse(text, path, number, NOT_A_ROW)
        if not isinstance(row, dict):
            _fail(path, number, NOT_A_ROW, f"expected a JSON object, got {describe(row)}")
        try:
            checked = ResultFields.model_validate(row, context=context)
        except ValidationError as exc:
            loc, message = problems_of(exc.errors()[0], RESULT_EXPECTED, "a string or null")
            _fail(path, number, location(loc) or "score", message)
        if checked.run_id != manifest.run_id:
            _fail(
                path,
                number,
                "run_id",
                f"{describe(checked.run_id)} is not the manifest's {manifest.run_id!r}",
            )
        if not scratch.has_item(checked.id):
            _fail(path, number, "id", f"item {describe(checked.id)} is not among the manifest's items")
        first = scratch.add_result(checked.id, checked.sample, number)
        if first is not None:
            _fail(
                path, number, "sample",
                f"a second row for item {checked.id!r} sample {checked.sample} (first on line {first}); keep one",
            )  # fmt: skip
        for name, message in length_problems(
            [("answer", checked.answer, limit), ("reasoning", checked.reasoning, limit),
             ("rationale", checked.rationale, MAX_ANSWER_CHARS), ("raw", checked.raw, MAX_ANSWER_CHARS)]
        ):  # fmt: skip
            _fail(path, number, name, message)
        yield records_of(row)


def read_human(folder: Path, manifest: RunManifest, scratch: Scratch) -> tuple[list[Draw], list[HumanScore]]:
    """The random draws and people's scores of ``folder/human_scores.jsonl`` (none without the file), checked
    against ``manifest`` and the items and result rows in ``scratch`` (``read_results`` first)."""
    path = folder / HUMAN_FILE
    if not path.is_file():
        return [], []
    run_draws: dict[str, Draw] = {}
    scores: list[HumanScore] = []
    seen: dict[tuple[str, int, str], int] = {}
    for number, text in _lines(path):
        if not text.strip():
            continue
        line = _parse(text, path, number, NOT_A_HUMAN_LINE)
        if not isinstance(line, dict):
            _fail(path, number, NOT_A_HUMAN_LINE, f"expected a JSON object, got {describe(line)}")
        kind = line.get("kind")
        models: dict[str, type[DrawFields] | type[ScoreFields]] = {"draw": DrawFields, "score": ScoreFields}
        model = models.get(kind) if isinstance(kind, str) else None
        if model is None:
            _fail(path, number, "kind", f"expected a draw or a score line, got {describe(kind)}")
        try:
            checked = model.model_validate(line)
        except ValidationError as exc:
            loc, message = problems_of(exc.errors()[0])
            _fail(path, number, location(loc) or str(kind), message)
        if checked.run_id != manifest.run_id:
            _fail(
                path,
                number,
                "run_id",
                f"{describe(checked.run_id)} is not the manifest's {manifest.run_id!r}",
            )
        if isinstance(checked, DrawFields):
            if checked.draw_id in run_draws:
                _fail(path, number, "draw_id", f"draw {checked.draw_id!r} is given twice; keep one")
            for pick in checked.picked:
                if not scratch.has_result(pick.item_id, pick.sample):
                    _fail(
                        path,
                        number,
                        "picked",
                        f"{pick.item_id!r} sample {pick.sample} is not a result row of the run",
                    )
            run_draws[checked.draw_id] = checked.record()
            continue
        assert isinstance(checked, ScoreFields)
        key = (checked.item_id, checked.sample)
        if not scratch.has_result(*key):
            _fail(
                path,
                number,
                "item_id",
                f"{checked.item_id!r} sample {checked.sample} is not a result row of the run",
            )
        first = seen.setdefault((*key, checked.rater), number)
        if first != number:
            _fail(
                path, number, "rater", f"{checked.rater!r} scored this answer on line {first} too; keep one"
            )
        draw = run_draws.get(checked.draw_id) if checked.draw_id is not None else None
        if checked.draw_id is not None and draw is None:
            _fail(path, number, "draw_id", f"{checked.draw_id!r} is not a draw given above in this file")
        if checked.random and draw is not None and key not in draw.picked:
            _fail(path, number, "random", f"true, but draw {draw.draw_id!r} did not pick this answer")
        scores.append(checked.record(scratch.area_of(checked.item_id) or ""))
    return list(run_draws.values()), scores
