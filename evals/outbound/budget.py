"""The ``--max-cost`` limit: what an invocation spends, kept by the gateway at every call.

Prices come from evals.yaml (``price_in_per_mtok``, ``price_out_per_mtok`` of each endpoint). Before a
call its tokens are not known, so it holds a bound: prompt tokens estimated from the prompt's length
(``CHARS_PER_TOKEN`` characters a token) and completion tokens at the endpoint's ``max_tokens``, the most
the server may bill for. ``Budget`` counts what was spent from the usage the servers report, holds each
call's bound while it is in flight (so concurrent calls cannot overshoot together), and refuses a call
whose bound would cross the limit (``OverBudget``); the run then stops starting calls and ends
interrupted, resumable. The dry run's estimate of a whole run lives in ``evals.plan``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from evals.config import OFFLINE, Endpoint
from evals.errors import ConfigError, EvalsError

CHARS_PER_TOKEN = 4
"""Characters per token for estimates: about right for English with today's tokenizers."""


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` as estimated from its length."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def prompt_text(messages: Iterable[Mapping[str, str]]) -> str:
    """The text of chat turns, as prompt-token estimates count it."""
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


class BudgetExceeded(EvalsError):
    """The run stopped before a call that could have crossed ``--max-cost``; it can be resumed."""


class OverBudget(Exception):
    """A call not started because its bound could cross the limit (the caller stops starting calls)."""


class Budget:
    """The ``--max-cost`` limit of one invocation: real usage counted, each call's bound held in flight."""

    def __init__(self, limit: float, endpoints: Mapping[str, Endpoint]):
        self.limit = limit
        self.prices = {name: Price.of(e) for name, e in endpoints.items() if e.provider != OFFLINE}
        self.max_tokens = {name: e.max_tokens for name, e in endpoints.items()}
        self.spent = 0.0
        """Cost of the calls that returned, from the usage the servers reported."""
        self.held = 0.0
        """Bounds of the calls in flight."""
        self.refused: float | None = None
        """The bound of the first call refused; once set, no new question is asked."""

    @classmethod
    def of(cls, limit: float, endpoints: Mapping[str, tuple[str, Endpoint]]) -> Budget:
        """The budget over ``endpoints`` (name → (what it is, ``model`` or ``judge``; endpoint)); a
        ``ConfigError`` when one that is paid per call has no prices."""
        missing = [
            f"{role} {name!r}"
            for name, (role, endpoint) in endpoints.items()
            if endpoint.provider != OFFLINE and Price.of(endpoint) is None
        ]
        if missing:
            raise ConfigError(
                f"--max-cost needs token prices: set price_in_per_mtok and price_out_per_mtok for "
                f"{' and '.join(missing)} in evals.yaml (0 for a server you do not pay per token)"
            )
        return cls(limit, {name: endpoint for name, (_, endpoint) in endpoints.items()})

    @property
    def stopped(self) -> bool:
        """True once a call was refused: the run asks no more questions and ends interrupted."""
        return self.refused is not None

    def hold(
        self, name: str, messages: Iterable[Mapping[str, str]], answering: bool, rate: float = 1.0
    ) -> float:
        """Hold the most a call to endpoint ``name`` with these turns may cost; ``OverBudget`` when it
        could cross the limit. Once a call was refused no new question (``answering``) is asked; gradings
        of answers already paid for still run when they fit, so that what was bought is graded. ``rate``:
        the share of the prices the call is billed at (a batched request: the judge's ``batch_discount``)."""
        price = self.prices.get(name)
        if price is None:
            return 0.0
        bound = rate * price.cost(estimate_tokens(prompt_text(messages)), self.max_tokens.get(name, 0))
        if answering and self.refused is not None:
            raise OverBudget(name)
        if not self.take(bound):
            self.refused = self.refused if self.refused is not None else bound
            raise OverBudget(name)
        return bound

    def take(self, bound: float) -> bool:
        """Hold ``bound`` when it fits under the limit with what is spent and held; False when it does not."""
        if self.spent + self.held + bound > self.limit:
            return False
        self.held += bound
        return True

    def count(self, held: float, cost: float) -> None:
        """A call returned: release its hold, count what it cost."""
        self.held -= held
        self.spent += cost

    def settle(
        self,
        held: float,
        name: str,
        tokens_in: int | None,
        tokens_out: int | None,
        failed: bool,
        rate: float = 1.0,
    ) -> None:
        """A call to ``name`` returned: release its hold and count what it cost (at ``rate`` of the prices).

        Usage the server did not report is counted at the held bound; a call that failed without
        reporting usage is counted as free (the APIs do not bill failed requests).
        """
        price = self.prices.get(name)
        if price is None:
            self.count(held, 0.0)
        elif tokens_in is None and tokens_out is None:
            self.count(held, 0.0 if failed else held)
        else:
            self.count(held, rate * price.cost(tokens_in or 0, tokens_out or 0))

    def exceeded(self, run_id: str) -> BudgetExceeded:
        """The error that ends a run stopped by the limit, with the command that continues it."""
        return BudgetExceeded(
            f"stopped by --max-cost {self.limit:g}: this invocation spent ${self.spent:.4f} and the next call "
            f"could cost up to ${self.refused or 0:.4f}; the run is kept (interrupted). "
            f"Continue with: evals run --resume {run_id} --max-cost USD"
        )
