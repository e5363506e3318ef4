"""What grading costs before it is asked: a run's calls estimated for ``--dry-run`` (``plan_calls``), and the
``--max-cost`` ``Budget`` that holds each verdict at the price of its real grading prompt.

The prices, the token estimate and the holding itself are ``evals.outbound.budget``'s; this module adds
what only the judge knows: the grading prompt (``build_judge_messages``) and how often a verdict may be
asked for (``ATTEMPTS``).
"""

from __future__ import annotations

from pathlib import Path

from evals.config import OFFLINE, Endpoint, JudgeEndpoint
from evals.judge.judging import ATTEMPTS, Judge, build_judge_messages
from evals.judge.rubrics import RubricBook, RubricSearch
from evals.outbound import budget
from evals.outbound.budget import CHARS_PER_TOKEN, EndpointPlan, Plan, Price, estimate_tokens, prompt_text
from evals.records import Item


def plan_calls(
    to_answer: list[Item],
    to_judge: list[tuple[Item, str, bool]],
    model_name: str,
    model: Endpoint,
    judge_name: str,
    judge: JudgeEndpoint,
    rubrics_dir: RubricSearch | Path,
    judge_repeats: int = 1,
) -> Plan:
    """The calls a run would make: one model call per item and sample in ``to_answer``, ``judge_repeats``
    judge calls for each of those, and one for each stored ``(item, answer, truncated)`` in ``to_judge``
    (one entry per verdict still wanted). Calls nothing."""
    asked = EndpointPlan("model", model_name, model.model or "", price=Price.of(model))
    for item in to_answer:
        asked.calls += 1
        asked.tokens_in += estimate_tokens(prompt_text(m.model_dump() for m in item.prompt()))
        asked.tokens_out += model.max_tokens
    offline = judge.provider == OFFLINE
    graded = EndpointPlan("judge", judge_name, judge.model or "", price=Price.of(judge), offline=offline)
    book = RubricBook(rubrics_dir, judge.rubric)
    longest = "x" * (model.max_tokens * CHARS_PER_TOKEN)  # an answer as long as the model may write
    work = [(item, longest, False) for item in to_answer for _ in range(judge_repeats)] + to_judge
    for item, answer, truncated in work:
        rubric = book.for_item(item)  # a missing rubric fails the dry run as it would fail the run
        graded.calls += 1
        if not offline:
            messages = build_judge_messages(rubric, item, answer, truncated=truncated)
            graded.tokens_in += estimate_tokens(prompt_text(messages))
            graded.tokens_out += judge.max_tokens
    return Plan([asked, graded])


class Budget(budget.Budget):
    """``evals.outbound.budget.Budget`` holding a verdict at the price of its grading prompt."""

    def hold_judgment(self, judge: Judge, item: Item, answer: str, truncated: bool) -> float | None:
        """Hold the most grading ``answer`` may cost (a verdict may be asked for twice); None when refused."""
        if self.grading_price(judge.name)[0] is None:
            return 0.0  # an offline judge costs nothing: no prompt to build
        messages = build_judge_messages(judge.rubric_for(item), item, answer, truncated=truncated)
        return self.hold_grading(judge.name, messages, ATTEMPTS)
