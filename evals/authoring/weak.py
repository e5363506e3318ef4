"""Weak items for the next round of training (``evals export weak``): the items a run scored low, with the
question, the target answer, the model's answer and the judge's reasons, as JSONL for supervised
fine-tuning or preference pairs.

A training target is text the trained model learns to write: the reference (``sft``; ``chosen`` in a
preference pair). The terms of frontier APIs (Anthropic, OpenAI, Google, xAI) forbid using their output to
develop models that compete with them, so a reference a frontier model wrote (``reference_source`` in the
item's metadata, set by ``evals suite references`` and ``evals suite generate``) is refused as a target
unless the model that wrote it is open-weights by evals.yaml's word, not by the suite's: a reference's
``open_weights`` claim counts only when the model it names is configured with ``open_weights: true`` (which
the config refuses on a frontier vendor's endpoint, ``evals.perimeter.frontier_vendor``), asks for the same
model, and neither that model nor the id its server reported is of a closed family. A preference pair's
``rejected`` side is the run's own answer: it is refused when the run's model is a frontier vendor's (its
answers are its outputs too). The judge's rationale is evaluation data, kept in each record's metadata,
never a target.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from evals.authoring.references import ReferenceSource
from evals.config import Config
from evals.errors import EvalsError
from evals.perimeter import closed_model, frontier_vendor
from evals.records import Item, RunManifest
from evals.results import ResultRow

Format = Literal["sft", "preference"]
TERMS_RULE = "frontier model terms (Anthropic's, OpenAI's, Google's, xAI's) forbid training other models on their outputs"


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


def target_refusal(source: ReferenceSource, config: Config) -> str | None:
    """Why the reference ``source`` wrote may not be a training target, or None when evals.yaml grants it."""
    if not source.open_weights:
        return "not marked open_weights"
    endpoint = config.models.get(source.model_name)
    if endpoint is None:
        return f"claims open_weights, but evals.yaml has no model {source.model_name!r}"
    if not endpoint.open_weights:
        return f"claims open_weights, but evals.yaml does not mark {source.model_name!r} open_weights: true"
    if endpoint.model != source.model:
        return (
            f"claims open_weights, but {source.model_name!r} in evals.yaml asks for {endpoint.model!r}, "
            f"not {source.model!r}"
        )
    rule = frontier_vendor(endpoint.provider, endpoint.base_url, endpoint.model)
    rule = rule or closed_model(source.model) or closed_model(source.model_id)
    return None if rule is None else f"claims open_weights, but {rule}"


def closed_targets(weak: Sequence[WeakItem], config: Config) -> dict[str, str]:
    """Item id -> why its reference may not be a training target (``target_refusal``), for model-written ones."""
    refused = {}
    for w in weak:
        source = ReferenceSource.of(w.item)
        if source is not None and (reason := target_refusal(source, config)) is not None:
            refused[w.item.id] = f"by {source.model_name!r}, {reason}"
    return refused


def check_targets(weak: Sequence[WeakItem], config: Config) -> None:
    """Refuse when any target was written by a model that evals.yaml does not grant open weights."""
    closed = closed_targets(weak, config)
    if closed:
        reasons: dict[str, list[str]] = {}
        for item_id, why in sorted(closed.items()):
            reasons.setdefault(why, []).append(item_id)
        shown = "; ".join(f"{_some(ids)} {why}" for why, ids in list(reasons.items())[:3])
        more = f"; {len(reasons) - 3} more reasons" if len(reasons) > 3 else ""
        raise TrainingTargetRefused(
            f"refused: the references of {len(closed)} item(s) were written by a model not granted open_weights "
            f"in evals.yaml ({shown}{more}), and {TERMS_RULE}. Use references people wrote, or ones from an "
            "open-weights teacher (open_weights: true on its endpoint in evals.yaml); --skip-model-references "
            "leaves these items out"
        )


def _some(ids: list[str]) -> str:
    return ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def check_rejected(run: RunManifest) -> None:
    """Refuse preference pairs whose ``rejected`` side, the run's answers, a frontier vendor's model wrote."""
    answered = run.config.model
    rule = frontier_vendor(answered.provider, answered.base_url, answered.model or run.model)
    rule = rule or closed_model(run.model) or closed_model(run.model_id)
    if rule is not None:
        raise TrainingTargetRefused(
            f"refused: --format preference writes the answers of run {run.run_id} ({run.model_name}) as the "
            f"rejected side of every pair, and {rule}; {TERMS_RULE}, and a closed model's answers are its "
            "outputs too. Export --format sft, or the weak answers of an open-weights model's run"
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
