"""Checking the records read from any suite format: each against ``Item``, and ids across records.

Every problem is added to the ``Read`` with its file, line and field, in the words of ``formats``; an item
is kept only when nothing was found in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from evals.errors import Problem
from evals.judge.rubrics import RUBRIC_NAME_EXPECTED, is_rubric_name
from evals.outbound.sensitivity import DEFAULT_LEVEL, resolve_level
from evals.records import Item, Message, Sensitivity
from evals.suites.formats import (
    EXPECTED,
    ITEM_FIELDS,
    TEXT_FIELDS,
    UNREADABLE,
    Read,
    Record,
    describe,
    label_problem,
    problem_at,
    unknown,
)

_HINTS = {"id": " (a unique id such as 'geo-01')", "area": " (the area of the domain, e.g. 'geography')"}


def validate(read: Read, default_level: Sensitivity = DEFAULT_LEVEL) -> list[Item]:
    """The valid items of the records read; every problem found is added to ``read.problems``."""
    items: list[Item] = []
    first_of: dict[str, Record] = {}
    for record in read.records:
        # A cell already reported as unreadable is left out, and nothing more is said about its field.
        unreadable = {name for name, value in record.data.items() if value is UNREADABLE}
        data = _stringify({name: value for name, value in record.data.items() if value is not UNREADABLE})
        said: list[tuple[tuple[str | int, ...], str]] = [((k,), m) for k, m in _question_problems(data)]
        asked = bool(said)
        said += [((k,), m) for k, m in _field_problems(data)]
        try:
            item: Item | None = Item.model_validate(data)
        except ValidationError as e:
            item = None
            for error in e.errors():
                if error["loc"] or not asked:  # an item-level error already said by _question_problems
                    said.append((tuple(error["loc"]), _describe_error(error)))
        found = [
            problem_at(record, loc, message) for loc, message in said if not loc or loc[0] not in unreadable
        ]
        item_id = data.get("id")
        if isinstance(item_id, str) and item_id:
            first = first_of.setdefault(item_id, record)
            if first is not record:
                same = first.path == record.path
                where = f"{first.unit} {first.line}" if same else f"{first.path}:{first.line}"
                found.append(problem_at(record, ("id",), f"duplicate id {item_id!r} (first on {where})"))
        read.problems += found
        if item is not None and not found:
            items.append(
                item.model_copy(update={"sensitivity": resolve_level(item, read.policy, default_level)})
            )
    read.problems += read.policy.unused_areas({record.data.get("area") for record in read.records})
    return items


def _question_problems(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """What ``Item`` checks only once every field is valid, said here so it is reported with the rest."""
    question, messages = data.get("question"), data.get("messages")
    if question is None and not messages and "question" not in data:
        yield "question", "missing 'question' (or 'messages' for a conversation): every item asks something"
    elif (question is None and not messages) or (isinstance(question, str) and not question.strip()):
        yield "question", "'question' is empty: expected the text to ask"
    elif question is not None and messages:
        yield "messages", "has both 'question' and 'messages': give one"


def _field_problems(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """What ``Item`` does not check: blank ids and areas, and paths given as rubric names."""
    rubric = data.get("rubric")
    if isinstance(rubric, str) and not is_rubric_name(rubric):
        # A path here would make the judge read any file the suite points at (and show parts of it).
        yield "rubric", f"expected {RUBRIC_NAME_EXPECTED}, got {describe(rubric)}"
    for name in ("id", "area"):  # blank text would pass Item's non-empty check, and pair or group as nothing
        value = data.get(name)
        if isinstance(value, str) and value and not value.strip():
            yield name, f"'{name}' is blank (only whitespace): expected{_HINTS[name]}"
        elif isinstance(value, str) and value:
            yield from label_problem(name, value)
    tags = data.get("tags")
    for tag in tags if isinstance(tags, list | tuple) else ():
        if isinstance(tag, str) and not tag.strip():
            yield "tags", f"a tag is blank ({tag!r}): expected a word, e.g. [easy, recall]"
        elif isinstance(tag, str):
            yield from label_problem("tags", tag, "tag")


def _describe_error(error: Any) -> str:
    """A pydantic error said as what was expected and what was found."""
    kind, loc, value = error["type"], error["loc"], error.get("input")
    name = str(loc[-1]) if loc else "item"
    if kind == "missing":
        return f"missing required field '{name}'{_HINTS.get(name, '')}"
    if kind == "extra_forbidden":
        return unknown(name, tuple(Message.model_fields) if loc[0] == "messages" else ITEM_FIELDS)
    if kind == "string_too_short":
        return f"'{name}' is empty: expected a non-empty string"
    if not loc:
        return str(error["msg"]).removeprefix("Value error, ")
    if len(loc) == 1 and name in EXPECTED:
        return f"expected {EXPECTED[name]}, got {describe(value)}"
    expected = {"string_type": "a string", "literal_error": error.get("ctx", {}).get("expected")}.get(kind)
    return f"expected {expected or str(error['msg']).removeprefix('Input should be ')}, got {describe(value)}"


def _stringify(data: dict[str, Any]) -> dict[str, Any]:
    """Numbers where text is expected (an id 7, a reference 42, a tag 2024) become their digits."""
    out = dict(data)
    for name in TEXT_FIELDS:
        if _is_number(out.get(name)):
            out[name] = str(out[name])
    if isinstance(out.get("tags"), list | tuple):
        out["tags"] = [str(tag) if _is_number(tag) else tag for tag in out["tags"]]
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def sorted_problems(problems: list[Problem]) -> list[Problem]:
    """Problems without repeats (a bad default is found once per item), file by file, in line order."""
    files = {path: index for index, path in enumerate(dict.fromkeys(p.path for p in problems))}
    return sorted(dict.fromkeys(problems), key=lambda p: (files[p.path], p.line or 0))
