"""Moving history between stores: ``evals store copy`` (store to store) and ``evals import`` (run exports).
A run moves with its people's scores and random draws (``evals.store.human``).

Both are all or nothing. A first pass checks everything that would be written (``evals.store.checks``: types,
names, ranges, duplicates, and that a run here under the same id is the same run); the first problem found
is one ``file:line: field: what is wrong`` error and nothing is written. A second pass writes every run in
ONE transaction, checking again as it goes, so a file changed in between rolls the whole import back. An
import streams its files (``evals.store.exported``): neither pass holds a run's items or rows whole. A copy
reads one run of the source at a time.

Both are idempotent: a run already in the target is brought up to date, never duplicated, so a copy or an
import interrupted half-way is simply run again. Each run brought over is entered in the target's
``audit_imports`` (unless the target has its chain: it was made there), so ``evals audit verify`` lists it as
imported: its calls are on the trail of the store that made them. The runs' per-area aggregates are computed
once the transaction has committed, one run at a time, from the run's results read whole
(``Store.save_aggregates``, as a run's end does; a run without them gets them on first read anyway).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.errors import StoreError
from evals.names import is_name
from evals.records import Answer, Item, Judgment, RunManifest
from evals.store.audit import mark_imported
from evals.store.checks import (
    answer_limit,
    answer_problems,
    describe,
    is_time,
    item_problems,
    judgment_problems,
    manifest_problems,
)
from evals.store.core import Store
from evals.store.exported import Scratch, find_exports, read_human, read_items, read_manifest, read_results
from evals.store.human import Draw, HumanScore, bring_over, draw_problems, draws, human_scores, score_problems
from evals.store.rows import (
    ANSWER_COLS,
    BASELINE_COLS,
    ITEM_COLS,
    JUDGMENT_COLS,
    JUDGMENT_KEY,
    KEY,
    RUN_COLS,
    answer_values,
    config_json,
    item_values,
    judgment_values,
    manifest_of,
    run_values,
    upsert_sql,
)

__all__ = ["TransferReport", "copy_store", "find_exports", "import_runs"]

BATCH = 500
"""Rows written per statement."""

Records = Iterable[tuple[Answer | None, Judgment | None]]
"""A run's answers and verdicts, as an export's rows give them (either may be None)."""


@dataclass
class TransferReport:
    """What a copy or an import did."""

    added: list[str] = field(default_factory=list)
    """Runs new to the target."""
    updated: list[str] = field(default_factory=list)
    """Runs the target had already, brought up to date."""
    baselines: int = 0
    """Baseline approvals added."""


# -- writing -----------------------------------------------------------------------------------------------


def _batches(rows: Iterable[Sequence[Any]], size: int = BATCH) -> Iterator[list[Sequence[Any]]]:
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _held(target: Store, manifest: RunManifest, where: str) -> bool:
    """Whether ``target`` holds this run already; StoreError when it holds another run under its id."""
    row = target._execute(
        "SELECT suite_hash, started_at FROM runs WHERE run_id = ?", (manifest.run_id,)
    ).fetchone()
    if row is not None and tuple(row) != (manifest.suite_hash, manifest.started_at):
        raise StoreError(
            f"{where}: run_id: run {manifest.run_id} in {target.path} is another run (suite hash {row[0]}, "
            f"started {row[1]}) than this one (suite hash {manifest.suite_hash}, started "
            f"{manifest.started_at}); nothing was written"
        )
    return row is not None


def _item_check(target: Store, run_id: str) -> Callable[[str], str | None]:
    """For a run ``target`` holds: what is wrong with an item id the stored run lacks."""

    def missing(item_id: str) -> str | None:
        row = target._execute(
            "SELECT 1 FROM items WHERE run_id = ? AND item_id = ?", (run_id, item_id)
        ).fetchone()
        if row is not None:
            return None
        return f"run {run_id} in {target.path} has no item {describe(item_id)}: this is another run"

    return missing


def _write_run(
    target: Store, manifest: RunManifest, items: Iterable[Item], records: Records, where: str
) -> bool:
    """Write one run inside the caller's transaction; True when it was new. A run already here gets its
    status, config, answers and verdicts brought up to date (its items are read, and checked, all the same)."""
    held = _held(target, manifest, where)
    target._execute("DELETE FROM run_areas WHERE run_id = ?", (manifest.run_id,))
    if held:
        target._execute(
            "UPDATE runs SET status = ?, ended_at = ?, model_id = ?, config_json = ? WHERE run_id = ?",
            (manifest.status, manifest.ended_at, manifest.model_id, config_json(manifest.config), manifest.run_id),
        )  # fmt: skip
        for _ in items:
            pass
    else:
        target._execute(
            f"INSERT INTO runs ({','.join(RUN_COLS)}) VALUES ({','.join('?' * len(RUN_COLS))})",
            run_values(manifest),
        )
        insert = f"INSERT INTO items ({','.join(ITEM_COLS)}) VALUES ({','.join('?' * len(ITEM_COLS))})"
        for batch in _batches(item_values(manifest.run_id, pos, it) for pos, it in enumerate(items)):
            target.backend.executemany(insert, batch)
    answers: list[Sequence[Any]] = []
    judgments: list[Sequence[Any]] = []
    for answer, judgment in records:
        if answer is not None:
            answers.append(answer_values(answer))
        if judgment is not None:
            judgments.append(judgment_values(judgment))
        if len(answers) >= BATCH or len(judgments) >= BATCH:
            _flush(target, answers, judgments)
    _flush(target, answers, judgments)
    return not held


def _flush(target: Store, answers: list[Sequence[Any]], judgments: list[Sequence[Any]]) -> None:
    if answers:
        target.backend.executemany(upsert_sql("answers", ANSWER_COLS, KEY), answers)
        answers.clear()
    if judgments:
        target.backend.executemany(upsert_sql("judgments", JUDGMENT_COLS, JUDGMENT_KEY), judgments)
        judgments.clear()


def _save_aggregates(target: Store, manifests: Iterable[RunManifest]) -> None:
    """Each ended run's per-area aggregates, once its rows are committed (a running run has none stored)."""
    for manifest in manifests:
        if manifest.status != "running":
            target.save_aggregates(manifest.run_id)


# -- evals import ------------------------------------------------------------------------------------------


def import_runs(path: Path, target: Store) -> TransferReport:
    """Load every run exported under ``path`` into ``target``: all are checked before any is written, and
    all are written in one transaction."""
    folders = find_exports(path)
    scratch = Scratch()
    try:
        runs: list[tuple[Path, RunManifest]] = []
        first_of: dict[str, Path] = {}
        for folder in folders:  # first pass: check everything, write nothing
            manifest = read_manifest(folder)
            where = str(folder / "manifest.json")
            if manifest.run_id in first_of:
                raise StoreError(
                    f"{where}: run_id: run {manifest.run_id} is also exported in {first_of[manifest.run_id]}; "
                    "import one of them"
                )
            first_of[manifest.run_id] = folder
            scratch.clear()
            held = _item_check(target, manifest.run_id) if _held(target, manifest, where) else None
            for _ in read_items(folder, scratch, held):
                pass
            for _ in read_results(folder, manifest, scratch):
                pass
            read_human(folder, manifest, scratch)
            runs.append((folder, manifest))
        report = TransferReport()
        target.check_key()  # a wrong EVALS_STORE_KEY writes nothing
        with target.backend.transaction():  # second pass: everything or nothing
            for folder, checked in runs:
                where = str(folder / "manifest.json")
                manifest = read_manifest(folder)
                if manifest != checked:
                    raise StoreError(f"{where}: changed while it was being imported; import it again")
                scratch.clear()
                held = _item_check(target, manifest.run_id) if _held(target, manifest, where) else None
                # Generators: the results are read (and checked against the items) once the items have been.
                items, records = read_items(folder, scratch, held), read_results(folder, manifest, scratch)
                new = _write_run(target, manifest, items, records, where)
                bring_over(target, *read_human(folder, manifest, scratch))
                mark_imported(target, manifest.run_id, "import", str(folder.resolve()))
                (report.added if new else report.updated).append(manifest.run_id)
    finally:
        scratch.close()
    _save_aggregates(target, (m for _, m in runs))
    return report


# -- evals store copy --------------------------------------------------------------------------------------


def _source_problem(source: Store, run_id: str, name: str, message: str) -> StoreError:
    return StoreError(f"{source.path}: run {run_id}: {name}: {message}; nothing was copied")


def _source_runs(source: Store) -> list[RunManifest]:
    """Every run of ``source``, each manifest readable and checked."""
    manifests = []
    for row in source._execute(
        f"SELECT {','.join(RUN_COLS)} FROM runs ORDER BY started_at, run_id"
    ).fetchall():
        run_id = str(row[0])
        if not is_name(run_id):
            raise _source_problem(source, describe(run_id), "run_id", "not a valid run id")
        for name, message in _json_problems(dict(zip(RUN_COLS, row, strict=True))):
            raise _source_problem(source, run_id, name, message)
        try:
            manifest = manifest_of(row)
        except (ValueError, TypeError, KeyError) as exc:  # a config or a list that is not what it should be
            raise _source_problem(source, run_id, "config", _reason(exc)) from None
        for name, message in manifest_problems(manifest):
            raise _source_problem(source, run_id, name, message)
        manifests.append(manifest)
    return manifests


_JSON_COLUMNS = (
    ("config_json", "config", dict),
    ("tags_json", "tags", list),
    ("rubrics_json", "rubrics", list),
)
"""The JSON columns of a stored run: each one's field and the JSON type it holds."""


def _json_problems(run: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """What is wrong with a stored run's JSON columns: text that is not JSON, or JSON of another type."""
    for column, name, kind in _JSON_COLUMNS:
        try:
            value = json.loads(run[column])
        except (TypeError, ValueError, RecursionError) as exc:
            yield name, f"is not JSON ({_reason(exc)})"
            continue
        if not isinstance(value, kind):
            yield name, f"expected {'an object' if kind is dict else 'a list'}, got {describe(value)}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"{describe(exc.args[0])} is missing"
    return " ".join(str(exc).split())[:200]


def _source_run(source: Store, manifest: RunManifest) -> tuple[list[Item], list[Answer], list[Judgment]]:
    """One run of ``source`` (items, answers, every verdict), each record checked."""
    run_id = manifest.run_id
    try:
        items = source.items(run_id)
        answers = list(source.answers(run_id).values())
        judgments = source.verdicts(run_id)
    except (ValueError, TypeError, KeyError) as exc:
        raise _source_problem(source, run_id, "rows", f"cannot be read: {_reason(exc)}") from None
    ids = set()
    for item in items:
        for name, message in item_problems(item):
            raise _source_problem(source, run_id, f"item {describe(item.id)}.{name}", message)
        ids.add(item.id)
    limit = answer_limit(manifest)
    for answer in answers:
        for name, message in answer_problems(answer, manifest.samples, limit):
            raise _source_problem(source, run_id, f"answer {answer.item_id}/{answer.sample}.{name}", message)
        if answer.item_id not in ids:
            raise _source_problem(
                source, run_id, "answer", f"answers item {describe(answer.item_id)}, not in the run"
            )
    for judgment in judgments:
        for name, message in judgment_problems(judgment, manifest.samples):
            raise _source_problem(
                source, run_id, f"verdict {judgment.item_id}/{judgment.sample}.{name}", message
            )
        if judgment.item_id not in ids:
            raise _source_problem(
                source, run_id, "verdict", f"grades item {describe(judgment.item_id)}, not in the run"
            )
    return items, answers, judgments


def _source_human(source: Store, manifest: RunManifest) -> tuple[list[Draw], list[HumanScore]]:
    """A run's random draws and people's scores in ``source`` (``evals.store.human``), each score checked."""
    run_id = manifest.run_id
    try:
        run_draws, scores = draws(source, run_id), human_scores(source, run_id)
    except (ValueError, TypeError, KeyError) as exc:
        raise _source_problem(source, run_id, "human scores", f"cannot be read: {_reason(exc)}") from None
    for draw in run_draws:
        for name, message in draw_problems(draw):
            raise _source_problem(source, run_id, f"draw {describe(draw.draw_id)}.{name}", message)
    draw_ids = {d.draw_id for d in run_draws}
    for score in scores:
        for name, message in score_problems(score, manifest.samples, draw_ids):
            raise _source_problem(
                source, run_id, f"human score {score.item_id}/{score.sample} by {score.rater}.{name}", message
            )
    return run_draws, scores


def _baselines(source: Store, run_ids: set[str]) -> list[tuple[str, str, str, str | None]]:
    approvals = source.baselines(history=True)
    for name, run_id, set_at, _ in approvals:
        if not is_name(name) or run_id not in run_ids or not is_time(set_at):
            raise StoreError(
                f"{source.path}: baseline {describe(name)}: an approval of run {describe(run_id)} at "
                f"{describe(set_at)} is not valid (a name, a run of the store, a time); nothing was copied"
            )
    return approvals


def copy_store(source: Store, target: Store) -> TransferReport:
    """Copy every run (items, answers, every verdict, people's scores and draws) and baseline approval of
    ``source`` into ``target``: all checked before any is written, and all written in one transaction."""
    manifests = _source_runs(source)
    where = str(source.path)
    for manifest in manifests:  # first pass: check everything, write nothing
        _held(target, manifest, f"{where}: run {manifest.run_id}")
        _source_run(source, manifest)
        _source_human(source, manifest)
    approvals = _baselines(source, {m.run_id for m in manifests})
    report = TransferReport()
    target.check_key()  # a wrong EVALS_STORE_KEY writes nothing
    with target.backend.transaction():  # second pass: everything or nothing
        for manifest in manifests:
            items, answers, judgments = _source_run(source, manifest)
            records = [*((a, None) for a in answers), *((None, j) for j in judgments)]
            new = _write_run(target, manifest, items, records, f"{where}: run {manifest.run_id}")
            bring_over(target, *_source_human(source, manifest))
            mark_imported(target, manifest.run_id, "copy", where)
            (report.added if new else report.updated).append(manifest.run_id)
        for name, run_id, set_at, note in approvals:
            if not target._execute(
                "SELECT 1 FROM baselines WHERE name = ? AND run_id = ? AND set_at = ?", (name, run_id, set_at)
            ).fetchone():
                target._execute(
                    f"INSERT INTO baselines ({','.join(BASELINE_COLS)}) VALUES (?, ?, ?, ?)",
                    (name, run_id, set_at, note),
                )
                report.baselines += 1
    _save_aggregates(target, manifests)
    return report
