"""Judge rubrics: ``<name>.yaml`` files, found by name on a search path, validated, versioned by content hash.

A rubric name is looked up in the config's ``judges_dir``, then ``judges/`` beside the config, then the
rubrics shipped in ``evals/defaults/judges``; the first file found wins and shadows the others.

A rubric says what a judge grades (``criteria``) and what each score 1..5 means (``scores``); whether the
judge is shown the reference answer (``show_reference``). (Which score counts as a pass is the
scorecard's and the gate's setting, ``pass_score``, not the rubric's.) Its ``hash`` is the content hash of the *parsed* file, so comments and layout
do not change it, while any change of wording does: stored runs name ``rubric@hash``, and judgments made
under another version of a rubric are neither reused from the cache nor compared without a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationError,
    field_validator,
)

from evals.config import Config
from evals.defaults import SHIPPED_JUDGES
from evals.errors import RubricError
from evals.records import Item, content_hash
from evals.userfiles import line_of, parse_yaml, read_text, validation_errors

SCORES = (1, 2, 3, 4, 5)
"""The scale every rubric describes, each score with its own descriptor."""
SUFFIXES = (".yaml", ".yml")

RUBRIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""A rubric name: the stem of a ``.yaml`` file in a judges folder. Never a path, so a suite cannot make
the judge read (and quote into its prompt) a file outside the judges folders."""
RUBRIC_NAME_EXPECTED = (
    "a rubric name such as 'correctness' (letters, digits, '.', '_', '-'; a name, not a path or file name)"
)


def is_rubric_name(name: str) -> bool:
    """Whether ``name`` is a plain rubric name (``RUBRIC_NAME``, no ``..``, no ``.yaml``/``.yml`` suffix)."""
    return (
        RUBRIC_NAME.fullmatch(name) is not None
        and ".." not in name
        and not name.lower().endswith((".yaml", ".yml"))
    )


_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


@dataclass(frozen=True)
class Rubric:
    """A loaded, validated rubric."""

    name: str
    """The file's stem: what ``rubric:`` in evals.yaml and in suite items refers to."""
    description: str
    """One sentence: what the rubric judges."""
    criteria: tuple[str, ...]
    """What the judge weighs, in order."""
    scores: dict[int, str] = field(hash=False)
    """The descriptor of each score 1..5."""
    show_reference: bool
    """Whether the judge sees the item's reference answer."""
    hash: str
    """Content hash of the parsed rubric: its version."""
    path: str | None = None
    """The file it was read from (None when built in code)."""

    @property
    def label(self) -> str:
        """``name@hash``, as scorecards and manifests show it."""
        return f"{self.name}@{self.hash}"


class _RubricFile(BaseModel):
    """The YAML file's schema; unknown keys are errors (a misspelt key would otherwise be ignored)."""

    model_config = ConfigDict(extra="forbid")

    name: _Text | None = None
    description: _Text
    show_reference: StrictBool = True
    criteria: list[_Text] = Field(min_length=1)
    scores: dict[int, _Text]

    @field_validator("scores")
    @classmethod
    def _every_score_described(cls, scores: dict[int, str]) -> dict[int, str]:
        unknown = sorted(set(scores) - set(SCORES))
        if unknown:
            raise ValueError(f"unknown score {', '.join(map(str, unknown))}: the scale is 1..5")
        missing = [s for s in SCORES if s not in scores]
        if missing:
            raise ValueError(
                f"no descriptor for score {', '.join(map(str, missing))}: each of 1..5 needs one"
            )
        return dict(sorted(scores.items()))


def parse_rubric(text: str, path: Path) -> Rubric:
    """A rubric from the YAML text of ``path``; ``RubricError`` with file, line and field on any problem."""
    data = parse_yaml(text, path, error=RubricError)  # aliases, depth, duplicate keys limited
    if not isinstance(data, dict):
        raise RubricError(
            f"{path}: expected a mapping with keys name, description, show_reference, criteria, scores"
        )
    try:
        parsed = _RubricFile.model_validate(data)
    except ValidationError as exc:
        expected = f"unknown key; expected one of {', '.join(_RubricFile.model_fields)}"
        lines = [
            line.replace(": unknown key", f": {expected}") for line in validation_errors(path, data, exc)
        ]
        raise RubricError(f"invalid rubric {path}:\n  " + "\n  ".join(lines)) from None
    if parsed.name is not None and parsed.name != path.stem:
        raise RubricError(
            f"{path}:{line_of(data, ['name'])}: name: {parsed.name!r} does not match the file name "
            f"{path.name!r}; rename one so that items and evals.yaml can refer to it"
        )
    content = parsed.model_dump(mode="json")
    content["name"] = path.stem
    return Rubric(
        name=path.stem,
        description=parsed.description,
        criteria=tuple(parsed.criteria),
        scores=dict(parsed.scores),
        show_reference=parsed.show_reference,
        hash=content_hash(content),
        path=str(path),
    )


RubricOrigin = Literal["judges_dir", "./judges", "shipped"]
"""Where a rubric folder comes from: the config's ``judges_dir``, ``judges/`` beside the config, the package."""


@dataclass(frozen=True)
class RubricDir:
    """One folder of the rubric search path."""

    path: Path
    origin: RubricOrigin
    """Where it comes from, as ``evals rubric list`` says it: ``judges_dir``, ``./judges`` or ``shipped``."""


@dataclass(frozen=True)
class RubricFile:
    """A rubric file found on the search path."""

    name: str
    path: Path
    origin: RubricOrigin
    """The ``origin`` of its folder."""
    shadowed_by: RubricFile | None = None
    """The file of the same name found earlier on the path, which is the one used."""


@dataclass(frozen=True)
class RubricSearch:
    """Ordered folders a rubric name is looked up in; the first folder holding ``<name>.yaml`` wins."""

    dirs: tuple[RubricDir, ...]

    def files(self) -> list[RubricFile]:
        """Every rubric file on the path, in lookup order; a later file of a name already seen is shadowed."""
        found: list[RubricFile] = []
        first: dict[str, RubricFile] = {}
        for folder in self.dirs:
            if not folder.path.is_dir():
                continue
            try:
                paths = sorted(folder.path.iterdir())
            except OSError as exc:
                raise RubricError(f"{folder.path}: cannot list the rubrics: {exc.strerror or exc}") from None
            for path in paths:
                if path.suffix not in SUFFIXES or not path.is_file() or not is_rubric_name(path.stem):
                    continue
                entry = RubricFile(path.stem, path, folder.origin, first.get(path.stem))
                first.setdefault(entry.name, entry)
                found.append(entry)
        return found

    def find(self, name: str) -> Path:
        """The file the rubric ``name`` resolves to; ``RubricError`` naming the folders searched if none."""
        if not is_rubric_name(name):
            raise RubricError(
                f"rubric {name!r}: expected {RUBRIC_NAME_EXPECTED}; rubrics are found by name in "
                f"{self.describe()} (see evals rubric list)"
            )
        for folder in self.dirs:
            for suffix in SUFFIXES:
                path = folder.path / f"{name}{suffix}"
                if path.is_file():
                    return path
        names = sorted({entry.name for entry in self.files()})
        known = f"available: {', '.join(names)}" if names else "no rubrics there"
        raise RubricError(
            f"no rubric {name!r} in {self.describe()} ({known}); add judges/{name}.yaml beside evals.yaml"
        )

    def describe(self) -> str:
        """The folders, in lookup order, with where each comes from (and whether it is missing)."""
        return ", ".join(
            f"{folder.path} ({folder.origin}{'' if folder.path.is_dir() else ', missing'})"
            for folder in self.dirs
        )


def rubric_search(config: Config) -> RubricSearch:
    """The rubric search path of a config: its ``judges_dir``, ``judges/`` beside it, then the shipped rubrics.

    A ``judges_dir`` written in the config must exist: a misspelt folder would otherwise silently hand its
    names to ``./judges`` or the shipped rubrics.
    """
    judges_dir = config.path(config.judges_dir)
    if "judges_dir" in config.model_fields_set and not judges_dir.is_dir():
        raise RubricError(
            f"judges_dir {judges_dir} in the config is not a folder; fix it, or remove the key to use "
            "./judges and the shipped rubrics"
        )
    candidates = [
        RubricDir(judges_dir, "judges_dir"),
        RubricDir(config.root / "judges", "./judges"),
        RubricDir(SHIPPED_JUDGES, "shipped"),
    ]
    return _search(candidates)


def search_in(folder: Path) -> RubricSearch:
    """``folder`` first, then the shipped rubrics (for code and tests that name one folder)."""
    return _search([RubricDir(folder, "judges_dir"), RubricDir(SHIPPED_JUDGES, "shipped")])


def _search(candidates: list[RubricDir]) -> RubricSearch:
    # judges_dir defaults to "judges": then it *is* ./judges, searched once and shown under that name.
    seen: dict[Path, RubricDir] = {}
    for folder in candidates:
        key = folder.path.resolve()
        if key not in seen or folder.origin == "./judges":
            seen[key] = folder  # a replaced entry keeps its place in the order
    return RubricSearch(tuple(seen.values()))


def load_rubric(name: str, search: RubricSearch | Path) -> Rubric:
    """The rubric named ``name`` (``<name>.yaml``), from the first folder of ``search`` that holds it.

    ``search`` may be one folder, which is then searched before the shipped rubrics.
    """
    return read_rubric(_as_search(search).find(name))


def read_rubric(path: Path) -> Rubric:
    """The rubric in the file ``path`` (``RubricError`` when it cannot be read or is malformed)."""
    return parse_rubric(read_text(path, error=RubricError), path)  # regular files only, never a FIFO


def _as_search(search: RubricSearch | Path) -> RubricSearch:
    return search if isinstance(search, RubricSearch) else search_in(search)


class RubricBook:
    """The rubrics a judge grades with: a default and per-item overrides, each loaded once, on first use."""

    def __init__(self, search: RubricSearch | Path, default: str):
        self.search = _as_search(search)
        self.default = default
        self._loaded: dict[str, Rubric] = {}

    def get(self, name: str) -> Rubric:
        """The named rubric (``RubricError`` if it is missing or malformed)."""
        if name not in self._loaded:
            self._loaded[name] = load_rubric(name, self.search)
        return self._loaded[name]

    def for_item(self, item: Item) -> Rubric:
        """The item's own rubric if it names one, else the default."""
        return self.get(item.rubric or self.default)
