"""Judge rubrics: ``judges/<name>.yaml`` files, validated, and versioned by the hash of their content.

A rubric says what a judge grades (``criteria``) and what each score 1..5 means (``scores``); whether the
judge is shown the reference answer (``show_reference``). (Which score counts as a pass is the
scorecard's and the gate's setting, ``pass_score``, not the rubric's.) Its ``hash`` is the content hash of the *parsed* file, so comments and layout
do not change it, while any change of wording does: stored runs name ``rubric@hash``, and judgments made
under another version of a rubric are neither reused from the cache nor compared without a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationError,
    field_validator,
)

from evals.errors import RubricError
from evals.records import Item, content_hash
from evals.userfiles import parse_yaml

SCORES = (1, 2, 3, 4, 5)
"""The scale every rubric describes, each score with its own descriptor."""
SUFFIXES = (".yaml", ".yml")

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
    try:
        data = parse_yaml(text, path, error=RubricError)  # aliases, depth, duplicate keys limited
        tree = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise RubricError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict):
        raise RubricError(
            f"{path}: expected a mapping with keys name, description, show_reference, criteria, scores"
        )
    try:
        parsed = _RubricFile.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = [part for part in error["loc"] if part != "[key]"]
            line = _line_of(tree, loc)
            where = f"{path}:{line}" if line else str(path)
            field_name = ".".join(str(part) for part in loc) or "(file)"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = f"unknown key; expected one of {', '.join(_RubricFile.model_fields)}"
            lines.append(f"{where}: {field_name}: {message}")
        raise RubricError(f"invalid rubric {path}:\n  " + "\n  ".join(lines)) from None
    if parsed.name is not None and parsed.name != path.stem:
        line = _line_of(tree, ["name"])
        raise RubricError(
            f"{path}:{line}: name: {parsed.name!r} does not match the file name {path.name!r}; "
            "rename one so that items and evals.yaml can refer to it"
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


def load_rubric(name_or_path: str, judges_dir: Path) -> Rubric:
    """The rubric ``judges_dir/<name>.yaml``, or the file at ``name_or_path`` when it is a path."""
    path = _resolve(name_or_path, judges_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RubricError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise RubricError(f"{path}: cannot read the rubric: {exc.strerror}") from None
    return parse_rubric(text, path)


def available_rubrics(judges_dir: Path) -> list[str]:
    """Names of the rubric files in ``judges_dir``, sorted."""
    if not judges_dir.is_dir():
        return []
    return sorted({p.stem for p in judges_dir.iterdir() if p.suffix in SUFFIXES and p.is_file()})


def _resolve(name_or_path: str, judges_dir: Path) -> Path:
    looks_like_path = name_or_path.endswith(SUFFIXES) or "/" in name_or_path or "\\" in name_or_path
    if looks_like_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise RubricError(f"{path}: rubric file not found")
        return path
    for suffix in SUFFIXES:
        path = judges_dir / f"{name_or_path}{suffix}"
        if path.is_file():
            return path
    if not judges_dir.is_dir():
        raise RubricError(
            f"no rubric {name_or_path!r}: the judges folder {judges_dir} does not exist "
            "(set judges_dir in evals.yaml)"
        )
    names = available_rubrics(judges_dir)
    known = f"available: {', '.join(names)}" if names else "the folder has no .yaml rubrics"
    raise RubricError(f"no rubric {name_or_path!r} in {judges_dir} ({known})")


def _line_of(tree: yaml.Node | None, loc: list[Any]) -> int | None:
    """1-based line of the deepest part of ``loc`` found in the composed YAML (for error messages)."""
    line = None
    node = tree
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if str(k.value) == str(part)), None)
            if pair is None:
                break
            line = pair[0].start_mark.line + 1
            node = pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


class RubricBook:
    """The rubrics a judge grades with: a default and per-item overrides, each loaded once, on first use."""

    def __init__(self, judges_dir: Path, default: str):
        self.judges_dir = judges_dir
        self.default = default
        self._loaded: dict[str, Rubric] = {}

    def get(self, name: str) -> Rubric:
        """The named rubric (``RubricError`` if it is missing or malformed)."""
        if name not in self._loaded:
            self._loaded[name] = load_rubric(name, self.judges_dir)
        return self._loaded[name]

    def for_item(self, item: Item) -> Rubric:
        """The item's own rubric if it names one, else the default."""
        return self.get(item.rubric or self.default)
