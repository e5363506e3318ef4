"""Builders of stored runs with chosen scores, for scorecard, report and gate tests."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from evals.records import Answer, Item, Judgment, RunManifest
from evals.store import Store


def make_run(
    store: Store,
    run_id: str,
    scores: Mapping[str, Sequence[int | None]],
    *,
    suite: str = "demo",
    started_at: str | None = None,
    tags: tuple[str, ...] = (),
    judge_model: str = "claude-test",
    rubric_hash: str = "r1",
    model_id: str = "qwen-1",
    answers: Mapping[str, str] | None = None,
    questions: Mapping[str, str] | None = None,
    model_config: Mapping[str, object] | None = None,
    ended_at: str | None = None,
    status: str = "finished",
    unanswered: Collection[str] = (),
    model_name: str = "local",
    judge_config: Mapping[str, object] | None = None,
) -> RunManifest:
    """Store a finished run whose item ``id`` (area = the part before ``-``) got ``scores[id]`` per sample.

    A score of None stores a judge error for that sample; items in ``unanswered`` are stored but never
    answered (a run killed early), and the run ends with ``status``.
    """
    samples = max(len(v) for v in scores.values())
    items = [
        Item(
            id=i,
            area=i.split("-")[0],
            question=(questions or {}).get(i, f"question {i}?"),
            reference=f"ref {i}",
        )
        for i in scores
    ]
    manifest = RunManifest(
        run_id=run_id, suite_name=suite, suite_path=f"suites/{suite}", suite_hash="h", model_name=model_name,
        model="qwen", judge_name="claude", judge_model=judge_model, rubric_name="correctness",
        rubric_hash=rubric_hash, samples=samples, started_at=started_at or f"2026-11-{run_id[-2:]}T00:00:00+00:00",
        config={"model": {"model": "qwen", **(model_config or {})}, "judge": {"model": judge_model, **(judge_config or {})}}, tags=tags,
        model_id=model_id,
        status="finished",
    )  # fmt: skip
    store.create_run(manifest, items)
    for item_id, values in scores.items():
        if item_id in unanswered:
            continue
        for sample, score in enumerate(values):
            text = (answers or {}).get(item_id, f"answer {item_id}")
            store.save_answer(Answer(run_id, item_id, sample, text, 10, 5, 100.0 + sample, model_id))
            error = None if score is not None else "unparseable verdict: no score"
            store.save_judgment(
                Judgment(run_id, item_id, sample, score, f"because {score}", "raw", judge_model,
                         f"{run_id}-{item_id}-{sample}", tokens_in=50, tokens_out=20, latency_ms=300.0, error=error)
            )  # fmt: skip
    store.set_status(run_id, status, ended_at or manifest.started_at)
    return store.run(run_id)
