"""A scorecard without the text of questions, references, answers, reasoning and rationales.

``evals report --no-text`` writes such scorecards (for a store that is encrypted, or text that must not
travel in an HTML file), and ``evals purge`` rewrites a purged run's scorecards this way, so its figures
stay exactly as they were computed and only the text goes.
"""

from __future__ import annotations

from evals.scorecard.models import ItemRow, RegressedItem, Scorecard

OMITTED = "(text omitted)"
"""What ``--no-text`` scorecards show in place of each text."""


def _item(row: ItemRow, placeholder: str) -> ItemRow:
    return row.model_copy(
        update={
            "question": placeholder,
            "reference": None if row.reference is None else placeholder,
            "answer": None if row.answer is None else placeholder,
            "rationale": None if row.rationale is None else placeholder,
            "reasoning": None if row.reasoning is None else placeholder,
        }
    )


def _regressed(item: RegressedItem, placeholder: str) -> RegressedItem:
    texts = ("reference", "baseline_answer", "answer", "baseline_rationale", "rationale")
    return item.model_copy(
        update={"question": placeholder}
        | {name: None if getattr(item, name) is None else placeholder for name in texts}
    )


def without_text(card: Scorecard, placeholder: str = OMITTED) -> Scorecard:
    """The same scorecard, every question, reference, answer, reasoning and rationale replaced by
    ``placeholder`` (figures, ids, areas, scores and errors unchanged)."""
    return card.model_copy(
        update={
            "items": [_item(r, placeholder) for r in card.items],
            "regressed_items": [_regressed(r, placeholder) for r in card.regressed_items],
        }
    )
