"""The judgment cache key: who judged (the judge's configured identity) and what (question, reference, answer).

Two judgments are interchangeable only when the same judge saw the same thing. "The same judge" is not a
model name: two servers may serve different weights under one name, and sampling settings, structured
mode, the rubric and the prompt's wording all change verdicts. So the key holds the judge's whole
configured identity (``JudgeIdentity``). The model id a server reports is recorded with each verdict but
not keyed: it is only known after the call.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from evals.config import JudgeEndpoint
from evals.judge.rubrics import Rubric
from evals.records import Item, content_hash
from evals.secrets import safe_url

IDENTITY_VERSION = 1
"""Bumped when what ``JudgeIdentity`` holds changes meaning, so that older keys stop matching."""


@dataclass(frozen=True)
class JudgeIdentity:
    """Everything about a judge that can change its verdict, as configured."""

    provider: str
    """``openai`` or ``anthropic``."""
    model: str | None
    """The model name sent to the server."""
    server: str | None
    """Where it is served: the base URL without credentials (resolved from the SDK's environment variable
    when the config leaves it out), or, for a server whose address changes every run (the bundled local
    one), the fingerprint of the model file it serves."""
    temperature: float | None
    top_p: float | None
    seed: int | None
    max_tokens: int
    stop: tuple[str, ...] | None
    extra_body: dict[str, Any]
    """Server-specific request fields (``top_k``...), which change sampling too."""
    structured: str
    """The output mode: ``json_schema`` (tool use), ``json_object`` or ``text``."""
    prompt: str
    """Hash of the judge prompt's template (its fixed wording and how answers are pasted in)."""
    version: int = IDENTITY_VERSION

    @classmethod
    def of(
        cls, endpoint: JudgeEndpoint, *, prompt: str, mode: str | None = None, fingerprint: str | None = None
    ) -> JudgeIdentity:
        """The identity of a configured judge; ``mode`` is the output mode in use (``structured: auto`` may
        step down to ``json_object`` or ``text``), ``fingerprint`` (a model file's hash) stands for its URL."""
        fingerprint = fingerprint or endpoint.fingerprint
        if fingerprint is not None:
            server: str | None = f"fingerprint:{fingerprint}"
        else:
            # base_url None: the SDK reads OPENAI_BASE_URL / ANTHROPIC_BASE_URL, else the official API.
            url = endpoint.base_url or os.environ.get(f"{endpoint.provider.upper()}_BASE_URL") or None
            server = safe_url(url.rstrip("/")) if url else None
        return cls(
            provider=endpoint.provider,
            model=endpoint.model,
            server=server,
            temperature=endpoint.temperature,
            top_p=endpoint.top_p,
            seed=endpoint.seed,
            max_tokens=endpoint.max_tokens,
            stop=tuple(endpoint.stop) if endpoint.stop is not None else None,
            extra_body=dict(endpoint.extra_body),
            structured=mode or endpoint.structured,
            prompt=prompt,
        )

    @cached_property
    def digest(self) -> str:
        """The identity's content hash (computed once: it is part of every key)."""
        return content_hash(asdict(self))


def judgment_key(
    judge: JudgeIdentity | str,
    rubric: Rubric,
    item: Item,
    answer: str,
    sent: Callable[[str], str] | None = None,
    truncated: bool = False,
    redaction: str | None = None,
) -> str:
    """What makes two judgments interchangeable: the judge, the rubric version, question, reference, answer.

    ``judge`` is a frontier judge's identity, or a string naming a judge that is fully described by its
    version (the offline reference judge). Tags, metadata, area and item id are left out on purpose: they
    do not change the verdict, so an unchanged answer to an unchanged question is judged once, whatever
    suite or run it reappears in.

    ``sent`` turns each text into what the judge is sent (marker defusing): the key follows it, so that a
    text whose markers are defused differently than when it was judged (a new look-alike caught) is judged
    again, while texts without markers, sent as written, keep their keys. ``truncated``: the judge is told the
    answer was cut off, which is not the same grading as of the same text given whole. ``redaction``: the
    redactor's version (``evals.outbound.redaction``) when the judge is sent redacted text, which it grades differently.
    """
    seen = sent or (lambda text: text)
    who: dict[str, Any] = {"judge_model": judge} if isinstance(judge, str) else {"judge": judge.digest}
    graded: dict[str, Any] = {
        **who,
        "rubric": rubric.hash,
        "question": seen(item.prompt_text()),
        "reference": None if item.reference is None else seen(item.reference),
        "answer": seen(answer),
    }
    if truncated:  # only then: the keys of whole answers stay what they were
        graded["truncated"] = True
    if redaction is not None:  # likewise: keys of judgments made without redaction are unchanged
        graded["redaction"] = redaction
    return content_hash(graded)
