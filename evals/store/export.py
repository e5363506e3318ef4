"""``evals export history``: the whole history as Parquet files that pandas, Polars and DuckDB read directly.

Three files in one folder, joined on ``run_id``:

- ``runs.parquet``: one row per run (the manifest, with its counts and mean);
- ``areas.parquet``: one row per run and area (items, samples scored, errors, the mean of the items'
  means and the pass rate as the scorecard counts them (from the stored aggregates), token and latency
  totals);
- ``results.parquet``: one row per item and sample of every run (``results.jsonl``'s columns).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from evals.files import atomic_path
from evals.store.protocol import RunStore

_RESULT_COLUMNS: dict[str, str] = {
    "run_id": "string", "id": "string", "sample": "int32", "area": "string", "question": "string",
    "reference": "string", "answer": "string", "finish_reason": "string", "truncated": "bool",
    "reasoning": "string", "score": "float64", "rationale": "string", "error": "string",
    "error_kind": "string", "judge": "string", "cached": "bool", "answer_tokens_in": "int64",
    "answer_tokens_out": "int64", "answer_latency_ms": "float64", "judge_tokens_in": "int64",
    "judge_tokens_out": "int64", "judge_latency_ms": "float64", "item_hash": "string",
    "tags": "list<string>", "answer_model_id": "string", "judge_model_id": "string", "rubric_hash": "string",
    "judge_fingerprint": "string", "cache_key": "string", "answer_finished_at": "float64",
}  # fmt: skip
"""The exported result columns and their Arrow types (the judge's raw reply stays in the store)."""


@dataclass(frozen=True)
class HistoryExport:
    """Where the history was written and how much of it."""

    runs: Path
    areas: Path
    results: Path
    run_count: int
    result_count: int


def _arrow_type(name: str) -> Any:
    import pyarrow as pa

    if name == "list<string>":
        return pa.list_(pa.string())
    return pa.type_for_alias(name)


def export_history(
    store: RunStore, out: Path, pass_score: int = 4, suite: str | None = None
) -> HistoryExport:
    """Write ``runs.parquet``, ``areas.parquet`` and ``results.parquet`` into ``out`` (each atomically).

    ``pass_score``: the lowest score that passes (the scorecard's ``pass_score``); ``suite``: only its runs.
    """
    import pyarrow as pa  # heavy: only this command needs it
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    manifests = store.runs(suite)
    result_schema = pa.schema([(c, _arrow_type(t)) for c, t in _RESULT_COLUMNS.items()])
    batches = []
    for m in manifests:
        rows = list(store.results(m.run_id))
        batches.append(
            pa.Table.from_pydict(
                {c: [getattr(r, c) for r in rows] for c in _RESULT_COLUMNS}, schema=result_schema
            )
        )
    results = pa.concat_tables(batches) if batches else result_schema.empty_table()
    scored = pc.is_valid(results["score"])
    results_plus = results.append_column("scored", pc.cast(scored, pa.int64())).append_column(
        "passed", pc.cast(pc.fill_null(pc.greater_equal(results["score"], pass_score), False), pa.int64())
    )
    # An area's mean is the mean of its items' means (as the scorecard and its clustered interval count).
    per_item = results_plus.group_by(["run_id", "area", "id"]).aggregate(
        [("score", "mean"), ("scored", "sum"), ("passed", "sum"), ("sample", "count"),
         ("answer_tokens_out", "sum"), ("judge_tokens_in", "sum"), ("judge_tokens_out", "sum"),
         ("answer_latency_ms", "sum")]
    )  # fmt: skip
    areas = per_item.group_by(["run_id", "area"]).aggregate(
        [("id", "count"), ("score_mean", "mean"), ("score_mean", "count"), ("scored_sum", "sum"),
         ("passed_sum", "sum"), ("sample_count", "sum"), ("answer_tokens_out_sum", "sum"),
         ("judge_tokens_in_sum", "sum"), ("judge_tokens_out_sum", "sum"), ("answer_latency_ms_sum", "sum")]
    )  # fmt: skip
    areas = areas.rename_columns(
        ["run_id", "area", "items", "mean", "items_scored", "scored", "passed", "samples", "answer_tokens_out",
         "judge_tokens_in", "judge_tokens_out", "answer_latency_ms_total"]
    )  # fmt: skip
    areas = areas.append_column("errors", pc.subtract(areas["samples"], areas["scored"]))
    # The mean and the pass rate are the scorecard's, from the runs' stored aggregates (the pass rate is
    # the mean of the items' pass fractions); null, not NaN, where nothing was scored.
    stored = {
        (a.run_id, a.area): a
        for aggregates in store.aggregates([m.run_id for m in manifests], pass_score).values()
        for a in aggregates
    }
    keys = list(zip(areas["run_id"].to_pylist(), areas["area"].to_pylist(), strict=True))
    areas = areas.set_column(
        areas.schema.get_field_index("mean"), "mean", pa.array([stored[k].mean for k in keys], pa.float64())
    )
    areas = areas.append_column("pass_rate", pa.array([stored[k].pass_rate for k in keys], pa.float64()))
    by_run = {m.run_id: m for m in manifests}
    areas = _with_run_columns(areas, by_run)
    areas = areas.sort_by([("started_at", "ascending"), ("run_id", "ascending"), ("area", "ascending")])
    runs = _runs_table(manifests, results_plus)
    paths = {}
    for name, table in (("runs", runs), ("areas", areas), ("results", results)):
        paths[name] = out / f"{name}.parquet"
        with atomic_path(paths[name]) as tmp:
            pq.write_table(table, tmp)
    return HistoryExport(paths["runs"], paths["areas"], paths["results"], len(manifests), results.num_rows)


def _with_run_columns(table: Any, by_run: dict[str, Any]) -> Any:
    """The run's suite, model and start time beside each row, so one file answers trend questions."""
    import pyarrow as pa

    ids = table["run_id"].to_pylist()
    for column in ("suite_name", "model_name", "started_at"):
        values = [getattr(by_run[i], column) for i in ids]
        if column == "started_at":
            table = table.append_column(column, _timestamps(values))
        else:
            table = table.append_column(column, pa.array(values, pa.string()))
    return table


def _timestamps(values: list[str | None]) -> Any:
    import pyarrow as pa

    parsed = [datetime.fromisoformat(v) if v else None for v in values]
    return pa.array(parsed, pa.timestamp("s", tz="UTC"))


def _runs_table(manifests: list[Any], results: Any) -> Any:
    import pyarrow as pa

    per_run = {
        r["run_id"]: r
        for r in results.group_by("run_id")
        .aggregate([("sample", "count"), ("scored", "sum"), ("passed", "sum")])
        .to_pylist()
    }
    columns: dict[str, Any] = {
        "run_id": pa.array([m.run_id for m in manifests], pa.string()),
        "suite_name": pa.array([m.suite_name for m in manifests], pa.string()),
        "suite_hash": pa.array([m.suite_hash for m in manifests], pa.string()),
        "model_name": pa.array([m.model_name for m in manifests], pa.string()),
        "model": pa.array([m.model for m in manifests], pa.string()),
        "model_id": pa.array([m.model_id for m in manifests], pa.string()),
        "judge_name": pa.array([m.judge_name for m in manifests], pa.string()),
        "judge_model": pa.array([m.judge_model for m in manifests], pa.string()),
        "rubrics": pa.array([list(m.rubrics) for m in manifests], pa.list_(pa.string())),
        "samples": pa.array([m.samples for m in manifests], pa.int32()),
        "status": pa.array([m.status for m in manifests], pa.string()),
        "started_at": _timestamps([m.started_at for m in manifests]),
        "ended_at": _timestamps([m.ended_at for m in manifests]),
        "tags": pa.array([list(m.tags) for m in manifests], pa.list_(pa.string())),
        "lookingglass_version": pa.array([m.lookingglass_version for m in manifests], pa.string()),
    }
    counts = [per_run.get(m.run_id, {}) for m in manifests]
    columns["results"] = pa.array([c.get("sample_count", 0) for c in counts], pa.int64())
    columns["scored"] = pa.array([c.get("scored_sum") or 0 for c in counts], pa.int64())
    columns["errors"] = pa.array(
        [c.get("sample_count", 0) - (c.get("scored_sum") or 0) for c in counts], pa.int64()
    )
    columns["passed"] = pa.array([c.get("passed_sum") or 0 for c in counts], pa.int64())
    return pa.table(columns)
