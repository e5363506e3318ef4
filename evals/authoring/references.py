"""Reference answers from a model, for suites that have questions only (``evals suite references``).

Each missing reference is the configured model's answer to the item, marked in the item's metadata under
``reference_source`` (which model, the id its server reported, whether its weights are open, when), so a
reader of the suite, the scorecard and ``evals export weak`` know a model wrote it, not a person. The output
is a suite file (JSONL) that ``evals suite validate`` accepts; it is rewritten as answers arrive, so an
interrupted fill resumes from it without asking again. Restricted items never go to an external model.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evals.config import Endpoint
from evals.errors import ProviderError
from evals.files import write_atomic
from evals.judge.reasoning import separate
from evals.outbound.callcontext import calling
from evals.outbound.gateway import Door, Gateway, each
from evals.records import CompletionRequest, Item
from evals.suites import Suite, load_suite

REFERENCE_SOURCE = "reference_source"
"""The item metadata key naming the model that wrote a reference (absent: people wrote it)."""
SAVE_EVERY = 10
"""Answers between two rewrites of the output file (and at the end)."""


@dataclass(frozen=True)
class ReferenceSource:
    """Who wrote a reference answer: a model, recorded in the item's metadata."""

    model_name: str
    """The model's name in evals.yaml."""
    model: str | None
    """The model the config asked for."""
    model_id: str | None
    """The model id its server reported."""
    open_weights: bool
    """The endpoint is marked ``open_weights: true``: its text may be a training target."""
    written_at: str

    def to_metadata(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name, "model": self.model, "model_id": self.model_id,
            "open_weights": self.open_weights, "written_at": self.written_at,
        }  # fmt: skip

    @classmethod
    def of(cls, item: Item) -> ReferenceSource | None:
        """The model that wrote ``item``'s reference, or None when people wrote it.

        Metadata that names a writer in a shape this version did not write (``reference_source`` that is not a
        mapping, or only the ``generator`` of ``evals suite generate``) still means a model wrote the reference,
        and one not shown to be open: only a literal ``open_weights: true`` is read as the claim.
        """
        value = item.metadata.get(REFERENCE_SOURCE)
        if value is None and isinstance(item.metadata.get("generator"), dict):
            value = {**item.metadata["generator"], "open_weights": False}
        if value is None:
            return None
        if not isinstance(value, dict):
            value = {"model_name": value if isinstance(value, str) else None}
        return cls(
            model_name=_text(value.get("model_name")) or "?", model=_text(value.get("model")),
            model_id=_text(value.get("model_id")), open_weights=value.get("open_weights") is True,
            written_at=_text(value.get("written_at")) or "",
        )  # fmt: skip


def _text(value: Any) -> str | None:
    """A metadata field as text (a hand-edited number or list kept as its JSON), None when absent."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


@dataclass
class FillReport:
    """What ``fill_references`` did."""

    filled: int = 0
    """References written now."""
    kept: int = 0
    """Items that already had one (in the suite, or in the output from an earlier, interrupted fill)."""
    restricted: list[str] = field(default_factory=list)
    """Restricted items left without a reference: their text may not leave for an external model."""
    failed: dict[str, str] = field(default_factory=dict)
    """Item id -> why the model gave no answer (after retries); a new fill asks them again."""
    tokens_in: int = 0
    tokens_out: int = 0


def item_line(item: Item) -> str:
    """An item as one JSONL line of a suite file."""
    return json.dumps(
        item.model_dump(mode="json", exclude_none=True, exclude_defaults=True), ensure_ascii=False
    )


def write_suite(path: Path, items: list[Item]) -> None:
    """Write ``items`` as a JSONL suite file, in one step."""
    write_atomic(path, "".join(item_line(i) + "\n" for i in items))


def fill_references(
    suite: Suite, model_name: str, endpoint: Endpoint, out: Path, gateway: Gateway
) -> FillReport:
    """Give every item of ``suite`` without a reference the answer of ``model_name``; write the suite to ``out``.

    An ``out`` left by an interrupted fill is read first and its references kept. A model outside the
    perimeter (``Endpoint.is_external``) gets no restricted item, and the others redacted (the gateway,
    with the suite's own patterns when it was made with them).
    """
    external = endpoint.is_external()
    report = FillReport()
    done: dict[str, Item] = {}
    if out.exists():
        done = {i.id: i for i in load_suite(out).items if i.reference is not None}
    items = list(suite.items)
    todo: list[int] = []
    for n, item in enumerate(items):
        if item.reference is not None:
            report.kept += 1
        elif item.id in done and done[item.id].prompt() == item.prompt():
            items[n] = done[item.id]
            report.kept += 1
        elif external and item.sensitivity == "restricted":
            report.restricted.append(item.id)
        else:
            todo.append(n)
    if todo:
        door = gateway.door(model_name, endpoint)
        asyncio.run(_ask_all(items, todo, door, endpoint, out, report))
    write_suite(out, items)
    return report


async def _ask_all(
    items: list[Item], todo: list[int], door: Door, endpoint: Endpoint, out: Path, report: FillReport
) -> None:
    since_save = 0

    async def ask(n: int) -> None:
        nonlocal since_save
        item = items[n]
        request = CompletionRequest(
            messages=tuple(m.model_dump() for m in item.prompt()), sensitivity=item.sensitivity
        )
        try:
            with calling(None, item.id, 0, "references"):
                completion = await door.complete(request)
        except ProviderError as exc:
            report.failed[item.id] = str(exc)
            return
        report.tokens_in += completion.tokens_in or 0
        report.tokens_out += completion.tokens_out or 0
        answer = separate(
            completion, endpoint.reasoning, endpoint.answer_cap
        ).answer.strip()  # capped as a run's
        if not answer:
            report.failed[item.id] = "the model's answer was empty"
            return
        source = ReferenceSource(
            door.name, endpoint.model, completion.model_id, endpoint.open_weights,
            datetime.now(UTC).isoformat(timespec="seconds"),
        )  # fmt: skip
        metadata = {**item.metadata, REFERENCE_SOURCE: source.to_metadata()}
        items[n] = item.model_copy(update={"reference": answer, "metadata": metadata})
        report.filled += 1
        since_save += 1
        if since_save >= SAVE_EVERY:  # an interrupted fill keeps what it was given
            since_save = 0
            write_suite(out, items)

    try:
        await each(todo, ask, door.max_concurrency)
    finally:
        await door.aclose()
