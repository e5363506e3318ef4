"""Weak items for the next round of training (``evals export weak``): the items a run scored low, with the
question, the target answer, the model's answer and the judge's reasons, as JSONL for supervised
fine-tuning or preference pairs.

A training target is text the trained model learns to write: the reference (``sft``; ``chosen`` in a
preference pair). The terms of frontier APIs (Anthropic, OpenAI, Google) forbid using their output to
develop models that compete with them, so a reference a frontier model wrote (``reference_source`` in the
item's metadata, set by ``evals suite references`` and ``evals suite generate``) is refused as a target
unless the endpoint that wrote it was marked ``open_weights: true``. The judge's rationale is evaluation
data, kept in each record's metadata, never a target.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from evals.authoring.references import ReferenceSource
from evals.errors import EvalsError
from evals.records import Item
from evals.results import ResultRow

Format = Literal["sft", "preference"]
TERMS_RULE = (
    "frontier model terms (Anthropic's, OpenAI's, Google's) forbid training other models on their outputs"
)


class TrainingTargetRefused(EvalsError):
    """A reference written by a frontier model would become a training target."""


@dataclass(frozen=True)
class WeakItem:
    """One low-scored answer with what a trainer needs."""

    row: ResultRow
    item: Item


def weak_items(rows: Sequence[ResultRow], items: Sequence[Item], below: float) -> list[WeakItem]:
    """The scored answers under ``below`` whose item has a reference, lowest first (each sample its own)."""
    by_id = {i.id: i for i in items}
    weak = [
        WeakItem(r, by_id[r.id])
        for r in rows
        if r.score is not None and r.score < below and r.answer and r.id in by_id and by_id[r.id].reference
    ]
    return sorted(weak, key=lambda w: (w.row.score, w.row.area, w.row.id, w.row.sample))


def check_targets(weak: Sequence[WeakItem]) -> None:
    """Refuse when any target was written by a model whose endpoint is not marked ``open_weights``."""
    closed = sorted(
        {
            f"{w.item.id} ({source.model_name})"
            for w in weak
            if (source := ReferenceSource.of(w.item)) is not None and not source.open_weights
        }
    )
    if closed:
        shown = ", ".join(closed[:5]) + (f" and {len(closed) - 5} more" if len(closed) > 5 else "")
        raise TrainingTargetRefused(
            f"refused: the references of {len(closed)} item(s) were written by a model not marked "
            f"open_weights ({shown}), and {TERMS_RULE}. Use references people wrote, or ones from an "
            "open-weights teacher (open_weights: true on its endpoint in evals.yaml); --skip-model-references "
            "leaves these items out"
        )


def records(weak: Sequence[WeakItem], fmt: Format) -> Iterator[dict[str, Any]]:
    """The JSONL records: ``sft`` (messages ending with the reference) or ``preference`` (prompt,
    chosen reference, rejected answer)."""
    for w in weak:
        prompt = [m.model_dump() for m in w.item.prompt()]
        metadata = {
            "run_id": w.row.run_id, "item_id": w.row.id, "sample": w.row.sample, "area": w.row.area,
            "score": w.row.score, "judge": w.row.judge, "judge_rationale": w.row.rationale,
        }  # fmt: skip
        target = w.item.reference or ""
        if fmt == "sft":
            yield {"messages": [*prompt, {"role": "assistant", "content": target}], "metadata": metadata}
        else:
            yield {"prompt": prompt, "chosen": target, "rejected": w.row.answer, "metadata": metadata}
