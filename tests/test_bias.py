"""A judge grading its own family is named on the scorecard, with the evidence (issue 21, item 6)."""

from __future__ import annotations

import pytest
from builders import make_run

from evals.records import Item, RunManifest
from evals.render.pages import render_html, render_markdown
from evals.scorecard import build_scorecard
from evals.scorecard.bias import family, same_family
from evals.store import Store


@pytest.mark.parametrize(
    ("name", "fam"),
    [
        ("claude-sonnet-4-5", "Claude (Anthropic)"),
        ("gpt-4.1-mini", "GPT (OpenAI)"),
        ("o3-mini", "GPT (OpenAI)"),
        ("Qwen/Qwen3.5-35B-A3B", "Qwen (Alibaba)"),
        ("qwen3.5:9b", "Qwen (Alibaba)"),
        ("meta-llama/Llama-3.1-8B-Instruct", "Llama (Meta)"),
        ("smollm2-135m-instruct", "SmolLM (Hugging Face)"),
        ("offline-reference", None),
        ("phoenix-7b", None),
        (None, None),
    ],
)
def test_families_by_name(name, fam):
    assert family(name) == fam


def test_a_judge_of_the_answering_models_family_is_named_with_the_names(tmp_path):
    with Store(tmp_path) as store:
        make_run(store, "r01", {"geo-1": [4]}, judge_model="claude-sonnet-4-5", model_id="claude-3-5-haiku")
        make_run(store, "r02", {"geo-1": [4]}, judge_model="claude-sonnet-4-5", model_id="qwen3-8b")
        [warning] = same_family(store, store.run("r01"))
        assert "claude-sonnet-4-5" in warning and "claude-3-5-haiku" in warning and "Claude" in warning
        assert same_family(store, store.run("r02")) == []
        card = build_scorecard(store, "r01")
        assert card.same_family == [warning]
        assert "Judge bias possible" in render_markdown(card) and "Judge bias possible" in render_html(card)


def test_references_written_by_the_judges_family_are_named(tmp_path):
    source = {
        "model_name": "frontier",
        "model": "gpt-4.1",
        "model_id": "gpt-4.1-2025-04-14",
        "written_at": "t",
    }
    items = [
        Item(id="geo-1", area="geo", question="q?", reference="r", metadata={"reference_source": source})
    ]
    run = RunManifest(
        run_id="r01", suite_name="s", suite_path="s", suite_hash="h", model_name="local", model="qwen3-8b",
        judge_name="gpt", judge_model="gpt-4.1-mini", rubric_name="correctness", rubric_hash="r", samples=1,
        started_at="2026-11-01T00:00:00+00:00", config={}, tags=(), model_id="qwen3-8b", status="finished",
    )  # fmt: skip
    with Store(tmp_path) as store:
        store.create_run(run, items)
        [warning] = same_family(store, store.run("r01"))
    assert "wrote the references (gpt-4.1, gpt-4.1-2025-04-14)" in warning and "GPT (OpenAI)" in warning
