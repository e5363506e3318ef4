"""What an outbound call is for: the run, item and sample it serves, and the role it plays.

The runner (and every other caller of a provider: calibration, probes, generation) opens a ``calling``
block around each call; the providers read ``current()`` when they record the call (the audit trail) and
the judge adds what redaction removed. A ``ContextVar``: each asyncio task sees its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

Role = str
"""``model`` (answering), ``judge``, ``canary``, ``calibrate``, ``probe``, ``generate``, ``references``."""


@dataclass(slots=True)
class CallContext:
    """The purpose of the calls made inside one ``calling`` block."""

    run_id: str | None = None
    item_id: str | None = None
    sample: int | None = None
    role: Role = "model"
    redactions: dict[str, int] = field(default_factory=dict)
    """Identifiers replaced by placeholders in what was sent, by kind (``EMAIL_ADDRESS: 2``)."""


_CURRENT: ContextVar[CallContext | None] = ContextVar("evals_call_context", default=None)


def current() -> CallContext | None:
    """The innermost ``calling`` block's context, or None outside any."""
    return _CURRENT.get()


@contextmanager
def calling(
    run_id: str | None = None, item_id: str | None = None, sample: int | None = None, role: Role = "model"
) -> Iterator[CallContext]:
    """Mark the calls made inside the block as serving ``run_id``/``item_id``/``sample`` in ``role``."""
    context = CallContext(run_id, item_id, sample, role)
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)
