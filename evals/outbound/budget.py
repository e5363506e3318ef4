"""What a run costs: the estimate a dry run prints, and the ``--max-cost`` limit a run keeps to.

Prices come from evals.yaml (``price_in_per_mtok``, ``price_out_per_mtok`` of the model and the judge).
Before a call, its tokens are not known, so both use the same bound: prompt tokens estimated from the
prompt's length (``CHARS_PER_TOKEN`` characters a token) and completion tokens at the endpoint's
``max_tokens``, the most the server may bill for. A judge's prompt is the real grading prompt (rubric,
question, reference) with the answer, or, before the answer exists, an answer of ``max_tokens``: the judge
builds it (``evals.judge.cost``: the dry run's ``plan_calls`` and the ``Budget`` a run holds verdicts with).

During a run, ``Budget`` counts what this invocation spends from the token usage the servers report,
holds each call's bound while it is in flight (so concurrent calls cannot overshoot together), and refuses
to start a call whose bound would cross the limit; the runner then stops starting calls and the run ends
interrupted, resumable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, Self

from evals.config import OFFLINE, Endpoint, JudgeEndpoint
from evals.errors import ConfigError, EvalsError
from evals.records import Item

CHARS_PER_TOKEN = 4
"""Characters per token for estimates: about right for English with today's tokenizers."""

ESTIMATE_NOTE = (
    f"estimate, not a quote: prompt tokens ≈ characters/{CHARS_PER_TOKEN}; completion tokens counted at "
    "max_tokens (and judged answers at the model's max_tokens), so usage is an upper bound unless prompts "
    "tokenize worse than that; an unparseable verdict asked again and judgments reused from the cache "
    "are not counted"
)


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` as estimated from its length."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def prompt_text(messages: Iterable[dict[str, str]]) -> str:
    """The text of a chat request's messages, one after another: what its prompt tokens are estimated from."""
    return "\n".join(m["content"] for m in messages)


@dataclass(frozen=True)
class Price:
    """Token prices of one endpoint, in the config's currency (USD) per million tokens."""

    per_mtok_in: float
    per_mtok_out: float

    @classmethod
    def of(cls, endpoint: Endpoint) -> Price | None:
        """The endpoint's token prices (one missing counts as 0), or None when neither is configured."""
        if endpoint.price_in_per_mtok is None and endpoint.price_out_per_mtok is None:
            return None
        return cls(endpoint.price_in_per_mtok or 0.0, endpoint.price_out_per_mtok or 0.0)

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        """What ``tokens_in`` prompt and ``tokens_out`` completion tokens cost."""
        return tokens_in / 1e6 * self.per_mtok_in + tokens_out / 1e6 * self.per_mtok_out


@dataclass
class EndpointPlan:
    """The calls a run would make to one endpoint, with their estimated tokens and cost."""

    role: str
    """``model`` or ``judge``."""
    name: str
    """The endpoint's name in evals.yaml."""
    model: str
    calls: int = 0
    tokens_in: int = 0
    """Estimated prompt tokens, summed."""
    tokens_out: int = 0
    """Completion tokens at ``max_tokens``, summed (an upper bound)."""
    price: Price | None = None
    offline: bool = False
    """The offline reference judge: gradings, but no calls and no cost."""

    @property
    def cost(self) -> float | None:
        """Estimated cost, or None when the endpoint has no prices."""
        if self.offline:
            return 0.0
        return None if self.price is None else self.price.cost(self.tokens_in, self.tokens_out)


@dataclass
class Plan:
    """What a run would do, per endpoint (``evals run --dry-run``)."""

    endpoints: list[EndpointPlan] = field(default_factory=list)

    @property
    def cost(self) -> float | None:
        """The estimated total; None when an endpoint that makes calls has no prices."""
        costs = [e.cost for e in self.endpoints if e.calls or e.offline]
        return None if any(c is None for c in costs) else sum(c for c in costs if c is not None)


class BudgetExceeded(EvalsError):
    """The run stopped before a call that could have crossed ``--max-cost``; it can be resumed."""


class Budget:
    """The ``--max-cost`` limit of one invocation: real usage counted, each call's bound held in flight."""

    def __init__(
        self,
        limit: float,
        model: Price,
        judge: Price | None,
        model_max_tokens: int,
        judge_max_tokens: int,
        members: dict[str, tuple[Price | None, int]] | None = None,
    ):
        self.limit = limit
        self.members = members or {}
        """A panel's members by name: each one's price (None: offline) and ``max_tokens``."""
        self.model = model
        self.judge = judge
        """None for the offline judge, which costs nothing."""
        self.model_max_tokens = model_max_tokens
        self.judge_max_tokens = judge_max_tokens
        self.spent = 0.0
        """Cost of the calls that returned, from the usage the servers reported."""
        self.held = 0.0
        """Bounds of the calls in flight."""
        self.refused: float | None = None
        """The bound of the first call refused; once set, no new question is asked."""

    @classmethod
    def for_run(
        cls, limit: float, model_name: str, model: Endpoint, judge_name: str, judge: JudgeEndpoint
    ) -> Self:
        """The budget of a run; ``ConfigError`` when an endpoint that is paid per call has no prices."""
        model_price = Price.of(model)
        judge_price = None if judge.provider == OFFLINE else Price.of(judge)
        missing = [f"model {model_name!r}"] if model_price is None else []
        judges = list(judge.panel.endpoints().items()) if judge.panel is not None else [(judge_name, judge)]
        members = {n: (None if j.provider == OFFLINE else Price.of(j), j.max_tokens) for n, j in judges}
        for name, endpoint in judges:  # a panel: every member is priced on its own
            if endpoint.provider != OFFLINE and members[name][0] is None:
                missing.append(f"judge {name!r}")
        if missing or model_price is None:
            raise ConfigError(
                f"--max-cost needs token prices: set price_in_per_mtok and price_out_per_mtok for "
                f"{' and '.join(missing)} in evals.yaml (0 for a server you do not pay per token)"
            )
        return cls(
            limit, model_price, judge_price, model.max_tokens, judge.max_tokens,
            members if judge.panel is not None else None,
        )  # fmt: skip

    @property
    def stopped(self) -> bool:
        """True once a call was refused: the run asks no more questions and ends interrupted."""
        return self.refused is not None

    def _hold(self, bound: float, answering: bool) -> float | None:
        # Once a call was refused no new question is asked; judgments of answers already paid for still
        # run when they fit, so that what was bought is graded.
        if answering and self.refused is not None:
            return None
        if self.spent + self.held + bound > self.limit:
            self.refused = self.refused if self.refused is not None else bound
            return None
        self.held += bound
        return bound

    def hold_answer(self, item: Item) -> float | None:
        """Hold the most the model call for ``item`` may cost; None (refused) when it could cross the limit."""
        prompt = estimate_tokens(prompt_text(m.model_dump() for m in item.prompt()))
        return self._hold(self.model.cost(prompt, self.model_max_tokens), answering=True)

    def grading_price(self, judge_name: str) -> tuple[Price | None, int]:
        """The price (None: offline, free) and ``max_tokens`` of a verdict by ``judge_name``: a panel
        member's own, else the judge's."""
        return self.members.get(judge_name, (self.judge, self.judge_max_tokens))

    def hold_grading(
        self, judge_name: str, messages: Iterable[dict[str, str]], attempts: int
    ) -> float | None:
        """Hold the most ``attempts`` calls of ``messages`` to ``judge_name`` may cost; None when refused.
        (``evals.judge.cost.Budget.hold_judgment`` builds the grading prompt.)"""
        price, max_tokens = self.grading_price(judge_name)
        if price is None:
            return 0.0
        prompt = estimate_tokens(prompt_text(messages))
        return self._hold(attempts * price.cost(prompt, max_tokens), answering=False)

    def settle(
        self,
        held: float,
        side: Literal["model", "judge"],
        tokens_in: int | None,
        tokens_out: int | None,
        failed: bool,
        judge_name: str | None = None,
    ) -> None:
        """A call returned: release its hold and count what it cost (``judge_name``: which member of a
        panel was asked, priced on its own).

        Usage the server did not report is counted at the held bound; a call that failed without
        reporting usage is counted as free (the APIs do not bill failed requests).
        """
        self.held -= held
        price = self.model if side == "model" else self.judge
        if side == "judge" and judge_name in self.members:
            price = self.members[judge_name][0]
        if price is None:
            return
        if tokens_in is None and tokens_out is None:
            self.spent += 0.0 if failed else held
        else:
            self.spent += price.cost(tokens_in or 0, tokens_out or 0)

    def exceeded(self, run_id: str) -> BudgetExceeded:
        """The error that ends a run stopped by the limit, with the command that continues it."""
        return BudgetExceeded(
            f"stopped by --max-cost {self.limit:g}: this invocation spent ${self.spent:.4f} and the next call "
            f"could cost up to ${self.refused or 0:.4f}; the run is kept (interrupted). "
            f"Continue with: evals run --resume {run_id} --max-cost USD"
        )
