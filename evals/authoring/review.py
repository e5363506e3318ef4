"""People review a generated suite (``evals suite review``): each pending item accepted, edited or
rejected, the decision written to the file at once with who and when."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from evals.authoring.references import item_line, write_suite
from evals.errors import EvalsError
from evals.records import Item
from evals.suites import load_suite
from evals.suites.formats import REJECTED_SUFFIX

Decision = Literal["accepted", "edited", "rejected"]


class Review:
    """A suite file under review; every decision rewrites it (rejected items move to ``<file>.rejected.jsonl``)."""

    def __init__(self, path: Path, reviewer: str):
        self.path = path
        self.reviewer = reviewer
        self.items = list(load_suite(path).items)
        self.decided: dict[str, int] = {"accepted": 0, "edited": 0, "rejected": 0}

    def pending(self) -> list[Item]:
        """Items whose ``review`` is ``pending``."""
        return [i for i in self.items if i.metadata.get("review") == "pending"]

    def decide(
        self, item_id: str, decision: Decision, question: str | None = None, reference: str | None = None
    ) -> None:
        """Record ``decision`` for ``item_id`` (with the edited text) and write the file."""
        index = next((n for n, i in enumerate(self.items) if i.id == item_id), None)
        if index is None:
            raise EvalsError(f"{self.path}: no item {item_id!r}")
        item = self.items[index]
        metadata = {**item.metadata, "review": decision, "reviewer": self.reviewer,
                    "reviewed_at": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
        update: dict[str, object] = {"metadata": metadata}
        if decision == "edited":
            if question is not None and question != item.question:
                update["question"] = question
            if reference is not None and reference != item.reference:
                update["reference"] = (
                    reference  # its reference_source stays: edited model text is still derived from it
                )
        decided = Item.model_validate({**item.model_dump(), **update})
        if decision == "rejected":
            with self.path.with_name(self.path.name + REJECTED_SUFFIX).open("a", encoding="utf-8") as handle:
                handle.write(item_line(decided) + "\n")
            del self.items[index]
        else:
            self.items[index] = decided
        write_suite(self.path, self.items)
        self.decided[decision] += 1

    def counts(self) -> str:
        return ", ".join(f"{n} {d}" for d, n in self.decided.items())
