"""How far an item's text may travel: sensitivity levels, as a suite declares them, and the refusal to send
``restricted`` text to an external endpoint.

A level is ``public``, ``internal`` or ``restricted``. An item's own ``sensitivity`` wins; else its area's
(``areas: {billing: {sensitivity: restricted}}`` in the suite's YAML); else the suite's (``sensitivity:``
at the top of a YAML file, for the whole suite); else the config's ``default_sensitivity`` (``internal``
unless set) for the commands that send a suite's text. Every loaded item carries its level.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

from pydantic import ValidationError

from evals.errors import ConfigError, Problem
from evals.outbound.redaction import CustomPattern
from evals.records import Item, Sensitivity
from evals.userfiles import YamlMapping

LEVELS: tuple[str, ...] = get_args(Sensitivity)
DEFAULT_LEVEL: Sensitivity = "internal"
_EXPECTED = f"expected one of {', '.join(LEVELS)}"


@dataclass(frozen=True)
class Declared:
    """A level and where it was written."""

    level: Sensitivity
    path: str
    line: int | None


@dataclass
class AreaLevels:
    """What a suite's YAML declares besides items: its level, its areas' levels, its redaction patterns."""

    suite: Declared | None = None
    areas: dict[str, Declared] = field(default_factory=dict)
    patterns: list[CustomPattern] = field(default_factory=list)

    def merge(self, other: AreaLevels) -> list[Problem]:
        """Add another file's declarations (a suite folder); two files disagreeing is a problem."""
        problems = []
        if other.suite is not None:
            if self.suite is not None and self.suite.level != other.suite.level:
                problems.append(_conflict(other.suite, self.suite, "sensitivity"))
            self.suite = self.suite or other.suite
        for area, declared in other.areas.items():
            held = self.areas.get(area)
            if held is not None and held.level != declared.level:
                problems.append(_conflict(declared, held, f"areas.{area}.sensitivity"))
            self.areas.setdefault(area, declared)
        self.patterns += other.patterns
        return problems

    def unused_areas(self, areas: Iterable[Any]) -> list[Problem]:
        """Areas given a level that no item has: most likely a typo, which would leave items unprotected."""
        present = {a for a in areas if isinstance(a, str)}
        return [
            Problem(
                d.path,
                d.line,
                f"areas.{name}",
                f"no item has area {name!r}; areas: {', '.join(sorted(present))}",
            )
            for name, d in self.areas.items()
            if name not in present
        ]


def _conflict(new: Declared, held: Declared, name: str) -> Problem:
    return Problem(
        new.path, new.line, name, f"{new.level!r} here but {held.level!r} in {held.path}:{held.line}"
    )


def resolve_level(item: Item, policy: AreaLevels, default: Sensitivity = DEFAULT_LEVEL) -> Sensitivity:
    """The item's level: its own, else its area's, else the suite's, else ``default`` (the config's
    ``default_sensitivity`` where a command knows it: text whose level nothing says; else ``internal``)."""
    if item.sensitivity is not None:
        return item.sensitivity
    if item.area in policy.areas:
        return policy.areas[item.area].level
    return policy.suite.level if policy.suite is not None else default


def read_suite_policy(path: str, doc: YamlMapping, policy: AreaLevels) -> list[Problem]:
    """Read ``sensitivity:``, ``areas:`` and ``redact:`` of a suite's YAML into ``policy``; the problems."""
    problems: list[Problem] = []
    if "sensitivity" in doc:
        line = doc.key_lines["sensitivity"]
        level = doc["sensitivity"]
        if level in LEVELS:
            policy.suite = Declared(level, path, line)
        else:
            problems.append(Problem(path, line, "sensitivity", f"{_EXPECTED}, got {level!r}"))
    areas = doc.get("areas")
    if "areas" in doc and not isinstance(areas, YamlMapping):
        problems.append(
            Problem(path, doc.key_lines["areas"], "areas", "expected a mapping of area: {sensitivity: LEVEL}")
        )
    areas = areas if isinstance(areas, YamlMapping) else YamlMapping()
    for area, spec in areas.items():
        at = areas.key_lines.get(area)
        name = f"areas.{area}"
        if not isinstance(spec, YamlMapping) or set(spec) - {"sensitivity"}:
            problems.append(
                Problem(
                    path, at, name, "expected a mapping with 'sensitivity', e.g. {sensitivity: restricted}"
                )
            )
        elif spec.get("sensitivity") not in LEVELS:
            problems.append(Problem(path, spec.key_lines.get("sensitivity", at), name + ".sensitivity",
                                    f"{_EXPECTED}, got {spec.get('sensitivity')!r}"))  # fmt: skip
        else:
            policy.areas[str(area)] = Declared(spec["sensitivity"], path, at)
    problems += _read_patterns(path, doc, policy)
    return problems


def _read_patterns(path: str, doc: YamlMapping, policy: AreaLevels) -> list[Problem]:
    if "redact" not in doc:
        return []
    patterns = doc["redact"]
    if not isinstance(patterns, list):
        return [Problem(path, doc.key_lines["redact"], "redact", "expected a list of {name, regex, context}")]
    problems = []
    for index, spec in enumerate(patterns):
        where = f"redact[{index}]"
        if not isinstance(spec, YamlMapping):
            problems.append(
                Problem(path, doc.key_lines["redact"], where, "expected a mapping with name and regex")
            )
            continue
        try:
            policy.patterns.append(CustomPattern.model_validate(dict(spec)))
        except ValidationError as exc:
            for error in exc.errors():
                key = str(error["loc"][0]) if error["loc"] else ""
                line = spec.key_lines.get(key, spec.line)
                message = str(error["msg"]).removeprefix("Value error, ")
                problems.append(Problem(path, line, f"{where}.{key}" if key else where, message))
    names = [p.name for p in policy.patterns]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(
            Problem(path, doc.key_lines["redact"], "redact", f"pattern name {name!r} is given twice")
        )
    return problems


_RANK = {level: rank for rank, level in enumerate(LEVELS)}


def stricter(*levels: Sensitivity | None) -> Sensitivity:
    """The strictest of ``levels`` (None ignored; none at all: ``internal``)."""
    given = [level for level in levels if level is not None]
    return max(given, key=_RANK.__getitem__) if given else DEFAULT_LEVEL


@dataclass(frozen=True)
class Marking:
    """A suite's marking today: each item's level, and each area's strictest, for text kept from earlier.

    Text stored with an old run (canary anchors, a rerun's answers, a resumed run's items) carries the level
    it had then; a suite may have marked it stricter since. ``level`` is the stricter of the two, checked at
    every use."""

    items: dict[str, Sensitivity] = field(default_factory=dict)
    areas: dict[str, Sensitivity] = field(default_factory=dict)

    @classmethod
    def of(cls, items: Iterable[Item]) -> Marking:
        marking = cls()
        for item in items:
            level = item.sensitivity or DEFAULT_LEVEL
            marking.items[item.id] = level
            marking.areas[item.area] = stricter(marking.areas.get(item.area), level)
        return marking

    def level(self, item: Item) -> Sensitivity:
        """The stricter of ``item``'s own level and the suite's marking of it today (the item's, else its
        area's)."""
        today = self.items.get(item.id) or self.areas.get(item.area)
        return stricter(item.sensitivity, today)

    def apply(self, item: Item) -> Item:
        """``item`` carrying ``level(item)``."""
        level = self.level(item)
        return item if level == item.sensitivity else item.model_copy(update={"sensitivity": level})


@dataclass(frozen=True)
class Destination:
    """An endpoint a run sends item text to."""

    role: str
    """``model`` or ``judge``."""
    name: str
    external: bool


def check_restricted(
    items: Sequence[Item],
    destinations: Sequence[Destination],
    flag: str | None = "--area",
    remedy: str | None = None,
) -> None:
    """Refuse (``ConfigError``) when restricted items would go to an external endpoint; before any call.

    ``flag``: the command's option that leaves areas out (None: it has none, and no such hint is given);
    ``remedy``: what a command without ``--area`` offers instead (its own options, never another's)."""
    restricted = [item for item in items if item.sensitivity == "restricted"]
    outside = [d for d in destinations if d.external]
    if not restricted or not outside:
        return
    areas = sorted({item.area for item in restricted})
    others = sorted({item.area for item in items if item.area not in areas})
    where = " and ".join(f"{d.role} {d.name!r}" for d in outside)
    count = len(restricted)
    if flag is None:
        way_out = "this command cannot leave areas out"  # (commands without --area pass their remedy)
    elif others:
        way_out = f"leave them out with {' '.join(f'{flag} {a}' for a in others)}"
    else:
        way_out = "no other area is left to run"
    if remedy is None:
        remedy = (
            f"{way_out}, or use endpoints inside the perimeter (external: false, e.g. an open-weights judge "
            "on your own server; a judge entry may name one for restricted items: restricted_judge: NAME)"
        )
    raise ConfigError(
        f"{count} restricted item{'s' if count != 1 else ''} (area{'s' if len(areas) != 1 else ''} "
        f"{', '.join(areas)}) would be sent to the external {where}: restricted text goes to no external "
        f"endpoint, redacted or not. Nothing was sent and no run was created; {remedy}"
    )
