"""Moving history between stores: ``evals store copy`` (store to store) and ``evals import`` (run exports).

Both are idempotent: a run already in the target is brought up to date, never duplicated, so a copy or
an import interrupted half-way is simply run again. Each run brought over is entered in the target's
``audit_imports`` (unless the target has its chain: it was made there), so ``evals audit verify`` lists it as
imported: its calls are on the trail of the store that made them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from evals.errors import StoreError
from evals.records import Answer, Item, Judgment, RunManifest
from evals.store.audit import mark_imported
from evals.store.core import Store
from evals.store.protocol import RunStore
from evals.store.rows import records_of


@dataclass
class TransferReport:
    """What a copy or an import did."""

    added: list[str] = field(default_factory=list)
    """Runs new to the target."""
    updated: list[str] = field(default_factory=list)
    """Runs the target had already, brought up to date."""
    baselines: int = 0
    """Baseline approvals added."""


def copy_store(source: RunStore, target: Store) -> TransferReport:
    """Copy every run (items, answers, judgments) and baseline approval of ``source`` into ``target``."""
    report = TransferReport()
    for manifest in source.runs():
        run_id = manifest.run_id
        new = target.load_run(
            manifest,
            source.items(run_id),
            list(source.answers(run_id).values()),
            source.verdicts(run_id),
        )
        mark_imported(target, run_id, "copy", str(source.path))
        (report.added if new else report.updated).append(run_id)
    for name, run_id, set_at, note in source.baselines(history=True):
        report.baselines += target.add_baseline_approval(name, run_id, set_at, note)
    return report


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


def read_export(folder: Path) -> tuple[RunManifest, list[Item], list[Answer], list[Judgment]]:
    """A run as exported in ``folder`` (``manifest.json`` and ``results.jsonl``); StoreError naming the
    file and line of anything malformed."""
    manifest_path, results_path = folder / "manifest.json", folder / "results.jsonl"
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        manifest = RunManifest.from_dict(data)
        items = [Item.model_validate(i) for i in data.get("items") or []]
    except OSError as exc:
        raise StoreError(f"{manifest_path}: cannot read it: {exc.strerror or exc}") from None
    except (ValueError, TypeError, ValidationError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise StoreError(f"{manifest_path}: not a run manifest exported by lookingglass: {reason}") from None
    if not items:
        raise StoreError(
            f"{manifest_path}: lists no items; re-export the run with this version of lookingglass"
        )
    known = {it.id for it in items}
    answers: list[Answer] = []
    judgments: list[Judgment] = []
    try:
        lines = results_path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise StoreError(f"{results_path}: cannot read it: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("expected a JSON object")
            if row.get("run_id") != manifest.run_id:
                raise ValueError(f"run_id {row.get('run_id')!r} is not the manifest's {manifest.run_id!r}")
            if row.get("id") not in known:
                raise ValueError(f"item {row.get('id')!r} is not among the manifest's items")
            answer, judgment = records_of(row)
        except (ValueError, TypeError, KeyError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise StoreError(
                f"{results_path}:{number}: not a result row exported by lookingglass: {reason}"
            ) from None
        if answer is not None:
            answers.append(answer)
        if judgment is not None:
            judgments.append(judgment)
    return manifest, items, answers, judgments


def import_runs(path: Path, target: Store) -> TransferReport:
    """Load every run exported under ``path`` into ``target``: all are read and checked before any is written."""
    runs = [(folder, *read_export(folder)) for folder in find_exports(path)]
    report = TransferReport()
    for folder, manifest, items, answers, judgments in runs:
        new = target.load_run(manifest, items, answers, judgments)
        mark_imported(target, manifest.run_id, "import", str(folder.resolve()))
        (report.added if new else report.updated).append(manifest.run_id)
    return report
