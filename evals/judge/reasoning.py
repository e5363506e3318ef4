"""Reasoning kept apart from the answer that is graded.

Reasoning models write their thoughts before the answer: inline, as ``<think>…</think>`` (Qwen3,
DeepSeek-R1, QwQ; also ``<thinking>`` and ``<reasoning>``), or in a separate API field
(``reasoning_content`` / ``reasoning`` on OpenAI-compatible servers, ``thinking`` blocks on Anthropic),
which the providers read into ``Completion.reasoning``. The judge should grade the answer, not the
thoughts, so by default (``reasoning: separate`` on the model in evals.yaml) inline blocks are cut out of
the text and stored with the API's reasoning in ``Answer.reasoning``. ``reasoning: keep`` grades the text
as the server sent it (the API's separate reasoning is still stored, never graded).

A run's answers are also capped here (``max_answer_chars`` of the model, 20,000 characters unless set)
before they are stored or graded: a server may return megabytes, and a run must neither store nor send
them. A capped answer is marked cut off, as one that hit ``max_tokens`` is, and the judge is told.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from evals.records import Completion, capped

ReasoningMode = Literal["separate", "keep"]

_TAG = r"(?:think|thinking|reasoning)"
# A whole block, closed: its content is reasoning. Non-greedy, so two blocks stay two blocks.
_BLOCK = re.compile(rf"<{_TAG}>(.*?)</{_TAG}>", re.DOTALL | re.IGNORECASE)
# An opening tag never closed: the model ran out of tokens while thinking; the rest is reasoning.
_OPEN = re.compile(rf"<{_TAG}>(.*)\Z", re.DOTALL | re.IGNORECASE)
# A closing tag with no opening one before it: chat templates that open the block in the prompt
# (DeepSeek-R1, Qwen3 with thinking on) make the model start inside it.
_CLOSE = re.compile(rf"</{_TAG}>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Split:
    """An answer's text once the reasoning is taken out."""

    answer: str
    """What is graded."""
    reasoning: str | None
    """What was taken out, and the API's own reasoning; None when there was none."""
    cut: bool = False
    """The answer was longer than the cap and was cut to it."""


def split_reasoning(text: str) -> tuple[str, str | None]:
    """``(answer, reasoning)``: ``text`` without its ``<think>``-style blocks, and those blocks' content.

    An unclosed block at the end (the model was cut off while thinking) leaves an empty answer.
    """
    thoughts: list[str] = []
    close = _CLOSE.search(text)
    opening = re.search(rf"<{_TAG}>", text, re.IGNORECASE)
    if close is not None and (opening is None or close.start() < opening.start()):
        thoughts.append(text[: close.start()])
        text = text[close.end() :]

    def take(match: re.Match[str]) -> str:
        thoughts.append(match.group(1))
        return ""

    text = _BLOCK.sub(take, text)
    text = _OPEN.sub(take, text)
    if not thoughts:
        return text, None  # untouched: whitespace of a plain answer is the model's own
    kept = [t.strip() for t in thoughts if t.strip()]
    return text.strip(), "\n\n".join(kept) or None


def separate(completion: Completion, mode: ReasoningMode = "separate", limit: int | None = None) -> Split:
    """The graded answer and the stored reasoning of a model's reply, as ``mode`` says; with a ``limit``,
    each cut to that many characters (``Split.cut`` says the answer was)."""
    api = completion.reasoning.strip() if completion.reasoning else None
    if mode == "keep":
        answer, reasoning = completion.text, api or None
    else:
        answer, inline = split_reasoning(completion.text)
        reasoning = "\n\n".join(p for p in (api, inline) if p) or None
    if limit is None:
        return Split(answer, reasoning)
    answer, cut = capped(answer, limit)
    return Split(answer, capped(reasoning, limit)[0] if reasoning is not None else None, cut)
