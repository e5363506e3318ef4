"""Suites: load question suites and validate them, reporting every problem with its file, line and field.

A suite is a YAML, JSONL, CSV or parquet file, a folder of them (one suite), a folder saved by Hugging Face
``datasets`` (``save_to_disk``), or ``hf:NAME[:SPLIT]`` on the Hub. Reading is two steps: each format turns
its file into raw records (the item's fields and where they are; ``formats``), then one validator checks
every record against ``Item`` and across records (duplicate ids; ``validation``). Problems are collected,
never raised one at a time, so that an author fixes a file in one pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from evals.errors import EvalsError, Problem, SuiteError
from evals.outbound.redaction import CustomPattern
from evals.outbound.sensitivity import DEFAULT_LEVEL, Marking
from evals.records import Item, Sensitivity, content_hash
from evals.suites.formats import DATASET_MARKERS, HF_PREFIX, is_suite_file, read_source
from evals.suites.validation import sorted_problems, validate

__all__ = ["Suite", "find_problems", "load_suite", "suites_in"]


@dataclass(frozen=True)
class Suite:
    """A loaded suite whose every item is valid."""

    name: str
    """The YAML ``suite:`` key if given, else the folder name or file stem (the dataset for ``hf:``)."""
    path: str
    """The path (or ``hf:`` reference) as given by the user."""
    items: tuple[Item, ...]
    """In file order; for a folder, its files sorted by name."""
    hash: str
    """Content hash of the items sorted by id: equal hashes mean the same questions."""
    patterns: tuple[CustomPattern, ...] = ()
    """The suite's own identifiers to redact (``redact:`` in its YAML), besides the built-in kinds."""
    marking: Marking | None = None
    """How far the text of every item of the whole suite may travel today (kept by ``head``/``select``)."""

    def levels(self) -> Marking:
        """The suite's marking today: its own, or made from its items."""
        return self.marking or Marking.of(self.items)

    def head(self, n: int) -> Suite:
        """The first ``n`` items as a suite of their own (with the hash of those items)."""
        return _make_suite(self.name, self.path, self.items[:n], self.patterns, self.levels())

    def select(self, areas: Iterable[str] = (), tags: Iterable[str] = (), limit: int | None = None) -> Suite:
        """The items of any of ``areas`` that carry any of ``tags`` (empty: no filter), at most ``limit``.

        The result keeps the suite's name and has the hash of its own items. An area or tag that no item
        has (a typo, most likely) is an ``EvalsError`` naming those that exist, as is an empty result.
        """
        areas, tags = tuple(dict.fromkeys(areas)), tuple(dict.fromkeys(tags))
        known_areas = sorted({item.area for item in self.items})
        known_tags = sorted({tag for item in self.items for tag in item.tags})
        unknown = [a for a in areas if a not in known_areas]
        if unknown:
            raise EvalsError(
                f"{self.path}: no area {', '.join(map(repr, unknown))}; areas: {', '.join(known_areas)}"
            )
        unknown = [t for t in tags if t not in known_tags]
        if unknown:
            raise EvalsError(
                f"{self.path}: no item tagged {', '.join(map(repr, unknown))}; "
                f"tags: {', '.join(known_tags) or 'none (give items a tags: list)'}"
            )
        chosen = [
            item
            for item in self.items
            if (not areas or item.area in areas) and (not tags or set(tags) & set(item.tags))
        ]
        if not chosen:
            raise EvalsError(
                f"{self.path}: no item is in area {' or '.join(areas)} and tagged {' or '.join(tags)}; "
                "widen --area or --item-tag"
            )
        chosen = chosen[:limit] if limit is not None else chosen
        return _make_suite(self.name, self.path, tuple(chosen), self.patterns, self.levels())


def load_suite(path: str | Path, default_level: Sensitivity = DEFAULT_LEVEL) -> Suite:
    """Load and validate a suite file, folder or ``hf:`` dataset. Raises SuiteError listing EVERY problem.

    ``default_level``: the level of an item nothing marks (no level of its own, its area's or the suite's):
    the config's ``default_sensitivity`` for a command that sends the suite's text."""
    read = read_source(str(path))
    items = validate(read, default_level)
    if read.problems:
        raise SuiteError(sorted_problems(read.problems))
    return _make_suite(read.name or str(path), str(path), tuple(items), tuple(read.policy.patterns))


def find_problems(path: str | Path) -> list[Problem]:
    """Every problem in a suite (empty when it is valid); never raises for bad content."""
    read = read_source(str(path))
    validate(read)
    return sorted_problems(read.problems)


def suites_in(path: str | Path) -> list[str]:
    """The suites ``path`` holds: itself when it is one, else each suite inside it.

    A folder with no suite files of its own but subfolders (``suites/``, as ``evals init`` makes it) is a
    folder of suites, each validated and run on its own (ids need only be unique within a suite). A suite
    file beside suite folders (``suites/billing.jsonl`` next to ``suites/example/``) is a suite of its own
    too; a folder of suite files and no suite folders is one suite, its files its areas.
    """
    spec = str(path)
    folder = Path(spec)
    if spec.startswith(HF_PREFIX) or not folder.is_dir() or folder.is_symlink():
        return [spec]
    if any((folder / marker).is_file() for marker in DATASET_MARKERS):
        return [spec]
    entries = sorted(folder.iterdir())
    files = [entry for entry in entries if is_suite_file(entry)]
    inner = [e for e in entries if e.is_dir() and not e.is_symlink() and not e.name.startswith(".")]
    if files:
        suites = [e for e in inner if _is_suite_folder(e)]
        return [str(Path(spec) / e.name) for e in sorted(files + suites)] if suites else [spec]
    return [str(Path(spec) / entry.name) for entry in inner] or [spec]


def _is_suite_folder(folder: Path) -> bool:
    return any((folder / m).is_file() for m in DATASET_MARKERS) or any(map(is_suite_file, folder.iterdir()))


def _make_suite(
    name: str,
    path: str,
    items: tuple[Item, ...],
    patterns: tuple[CustomPattern, ...] = (),
    marking: Marking | None = None,
) -> Suite:
    # Sensitivity is left out: it says where text may go, not what is asked (hashes stay comparable).
    dumped = [
        item.model_dump(mode="json", exclude={"sensitivity"})
        for item in sorted(items, key=lambda item: item.id)
    ]
    return Suite(name, path, items, content_hash(dumped), patterns, marking)
