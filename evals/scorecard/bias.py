"""Bias the judge may carry, named: a judge grading answers (or against references) written by a model of
its own family.

A judge tends to prefer text that reads like its own (self-preference: Panickssery et al., 2024; Wataoka et
al., 2024), and a local model distilled from the frontier judge's outputs inherits that style: the judge
may then grade its own family's habits rather than the answer. Nothing here changes a score; the scorecard
names the pair and the evidence so a reader can weigh it (or calibrate the judge against people).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from evals.authoring.references import ReferenceSource
from evals.records import RunManifest
from evals.store import Store

FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("Claude (Anthropic)", r"claude"),
        ("GPT (OpenAI)", r"^(gpt|chatgpt|o[134](-|$)|text-davinci)"),
        ("Gemini/Gemma (Google)", r"gemini|gemma"),
        ("Llama (Meta)", r"llama"),
        ("Qwen (Alibaba)", r"qwen|qwq"),
        ("Mistral", r"mistral|mixtral|codestral|ministral|magistral"),
        ("DeepSeek", r"deepseek"),
        ("Phi (Microsoft)", r"^phi-?\d"),
        ("SmolLM (Hugging Face)", r"smollm"),
        ("Command (Cohere)", r"command-r|^command"),
        ("Granite (IBM)", r"granite"),
    )
)
"""Model families by name pattern, matched against a model name without its organisation prefix."""


def family(model: str | None) -> str | None:
    """The family of a model name (``Qwen/Qwen3.5-35B`` → Qwen), or None when unknown."""
    if not model:
        return None
    name = model.strip().lower().rsplit("/", 1)[-1]
    return next((fam for fam, pattern in FAMILIES if pattern.search(name)), None)


def _families(names: Iterable[str | None]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name in names:
        fam = family(name)
        if fam is not None and name is not None and name not in found.setdefault(fam, []):
            found[fam].append(name)
    return found


def same_family(store: Store, run: RunManifest) -> list[str]:
    """One warning per family the run's judge shares with its answering model or with the model that wrote
    its references, with the names that show it (empty: none found)."""
    judges = _families([run.judge_model, *sorted(store.judging_provenance(run.run_id).model_ids)])
    if not judges:
        return []
    models = _families([run.model, run.model_id])
    sources = {s for s in (ReferenceSource.of(i) for i in store.items(run.run_id)) if s is not None}
    writers = _families(n for s in sorted(sources, key=lambda s: s.model_name) for n in (s.model, s.model_id))
    warnings = []
    for fam, judge_names in judges.items():
        judged = ", ".join(judge_names)
        if fam in models:
            warnings.append(
                f"the judge ({judged}) and the answering model ({', '.join(models[fam])}) are both {fam}: "
                "a judge may prefer its own family's answers; calibrate it against people (evals judge calibrate) "
                "or add a judge of another family (a panel)"
            )
        if fam in writers:
            warnings.append(
                f"the judge ({judged}) and the model that wrote the references ({', '.join(writers[fam])}) "
                f"are both {fam}: answers that read like its own references may be favoured"
            )
    return warnings
