"""The scorecard of a run: per-area scores with intervals, weak areas, drift against a baseline, history.

``build_scorecard`` returns one JSON-able dict, ``scorecard.json``, from which the HTML, Markdown and
terminal renderings are all made. Answer and judge errors are counted, never averaged in as scores.
Drift pairs items by id over the items both runs share with the same content hash; items added, removed
or changed are listed, not compared.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from evals import stats
from evals.config import ScorecardSettings
from evals.errors import StoreError
from evals.records import SCHEMA_VERSION, RunManifest
from evals.store import Store

OFFLINE_JUDGE_MODEL = "offline-reference"
Rows = list[dict[str, Any]]


def resolve_baseline(store: Store, run: RunManifest, spec: str | None) -> RunManifest | None:
    """The baseline a run is compared with.

    ``spec`` is a baseline name, a run id or a tag; by default, the latest earlier run of the same suite tagged
    ``baseline``, else the previous run of that suite that asked all of it (or the same subset), else None.
    """
    earlier = [
        m for m in store.runs(run.suite_name) if (m.started_at, m.run_id) < (run.started_at, run.run_id)
    ]
    if spec is not None:
        try:
            return store.baseline(spec)  # a baseline name (evals baseline set) or a run id
        except StoreError:
            tagged = [m for m in store.runs() if spec in m.tags and m.run_id != run.run_id]
            if not tagged:
                raise StoreError(f"no run with id or tag {spec!r} to compare with") from None
            same_suite = [m for m in tagged if m.suite_name == run.suite_name]
            return (same_suite or tagged)[-1]
    tagged = [m for m in earlier if "baseline" in m.tags]
    # A quick subset run (--area, --item-tag, --limit) must not become the next full run's baseline.
    comparable = [m for m in earlier if m.selection().whole or m.selection() == run.selection()]
    candidates = tagged or comparable
    return candidates[-1] if candidates else None


def latest_run(store: Store) -> RunManifest:
    runs = store.runs()
    if not runs:
        raise StoreError(f"no runs in {store.path}; run `evals run` first")
    return runs[-1]


def scores_by_item(rows: Iterable[dict[str, Any]]) -> dict[str, list[float]]:
    """The scores of each item id (several with samples); rows with an error add none."""
    by_item: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row["score"] is not None:
            by_item[row["id"]].append(row["score"])
    return dict(by_item)


def _summary(rows: Rows, settings: ScorecardSettings) -> dict[str, Any]:
    """n, mean and its interval, pass rate and its interval, error counts, for a set of result rows."""
    by_item = scores_by_item(rows)
    mean = stats.mean_ci(by_item)
    rate = stats.pass_rate(by_item, threshold=settings.pass_score)
    return {
        "n": mean.n_items,
        "n_scores": mean.n_scores,
        "mean": mean.mean,
        "ci_low": mean.ci_low,
        "ci_high": mean.ci_high,
        "pass_rate": rate.rate,
        "pass_ci_low": rate.ci_low,
        "pass_ci_high": rate.ci_high,
        "answer_errors": sum(1 for r in rows if r["error_kind"] == "answer"),
        "judge_errors": sum(1 for r in rows if r["error_kind"] == "judge"),
        "truncated": sum(1 for r in rows if r.get("truncated")),
        "rows": len(rows),
    }


def _drift_fields(delta: stats.PairedDelta | None) -> dict[str, Any]:
    if delta is None:
        return {"n_pairs": 0, "delta": None, "delta_ci_low": None, "delta_ci_high": None, "p_value": None}
    return {
        "n_pairs": delta.n_pairs,
        "delta": delta.delta,
        "delta_ci_low": delta.ci_low,
        "delta_ci_high": delta.ci_high,
        "p_value": delta.p_value,
    }


def compare_items(rows: Rows, base_rows: Rows) -> dict[str, list[str]]:
    """Which item ids both runs share unchanged (``paired``), and which were added, removed or changed."""
    hashes = {r["id"]: r["item_hash"] for r in rows}
    base_hashes = {r["id"]: r["item_hash"] for r in base_rows}
    common = hashes.keys() & base_hashes.keys()
    return {
        "paired": sorted(i for i in common if hashes[i] == base_hashes[i]),
        "changed": sorted(i for i in common if hashes[i] != base_hashes[i]),
        "added": sorted(hashes.keys() - base_hashes.keys()),
        "removed": sorted(base_hashes.keys() - hashes.keys()),
    }


def drift(rows: Rows, base_rows: Rows, settings: ScorecardSettings) -> dict[str, Any]:
    """Paired drift of every area and overall, corrected across areas; the gate uses it too."""
    items = compare_items(rows, base_rows)
    paired = set(items["paired"])
    areas = sorted({r["area"] for r in rows})
    deltas: dict[str, stats.PairedDelta | None] = {}
    for area in areas:
        cand = scores_by_item(r for r in rows if r["area"] == area and r["id"] in paired)
        base = scores_by_item(r for r in base_rows if r["area"] == area and r["id"] in paired)
        deltas[area] = stats.paired_delta(base, cand) if base else None
    correct = stats.holm if settings.correction == "holm" else stats.benjamini_hochberg
    adjusted = dict(zip(areas, correct([d.p_value if d else None for d in deltas.values()]), strict=True))
    per_area = {}
    for area in areas:
        d = deltas[area]
        per_area[area] = {
            **_drift_fields(d),
            "p_adjusted": adjusted[area],
            "status": stats.classify(d, adjusted[area], settings.alpha, settings.min_effect),
        }
    base_scores = scores_by_item(r for r in base_rows if r["id"] in paired)
    cand_scores = scores_by_item(r for r in rows if r["id"] in paired)
    overall = stats.paired_delta(base_scores, cand_scores)
    overall_fields = {
        **_drift_fields(overall),
        "p_adjusted": overall.p_value,
        "status": stats.classify(overall, overall.p_value, settings.alpha, settings.min_effect),
        # One-sided 95 % lower bound of Δ, for the gate's non-inferiority test.
        "ni_low": stats.one_sided_delta(base_scores, cand_scores).ci_low,
    }
    return {"items": items, "areas": per_area, "overall": overall_fields}


def _rank_areas(areas: list[dict[str, Any]], settings: ScorecardSettings) -> tuple[list[str], list[str]]:
    def weak(a: dict[str, Any]) -> bool:
        low_mean = a["mean"] is not None and a["mean"] < settings.weak_mean
        low_rate = a["pass_rate"] is not None and a["pass_rate"] < settings.weak_pass_rate
        return low_mean or low_rate

    def strong(a: dict[str, Any]) -> bool:
        return (
            a["mean"] is not None
            and a["mean"] >= settings.strong_mean
            and (a["pass_rate"] or 0) >= settings.strong_pass_rate
        )

    by_mean = sorted((a for a in areas if a["mean"] is not None), key=lambda a: (a["mean"], a["area"]))
    return [a["area"] for a in by_mean if weak(a)], [a["area"] for a in reversed(by_mean) if strong(a)]


def _item_rows(rows: Rows, base_rows: Rows, paired: set[str], settings: ScorecardSettings) -> Rows:
    """Every answer of the run with its status against the baseline, for the filterable table."""
    base_means = {
        k: sum(v) / len(v) for k, v in scores_by_item(r for r in base_rows if r["id"] in paired).items()
    }
    out = []
    for r in rows:
        base = base_means.get(r["id"])
        if r["error"]:
            status = "error"
        elif base is None:
            status = "new" if r["id"] not in paired else "unchanged"
        elif r["score"] - base <= -1:
            status = "regressed"
        elif r["score"] - base >= 1:
            status = "improved"
        else:
            status = "unchanged"
        passed = None if r["score"] is None else r["score"] >= settings.pass_score
        keep = (
            "id", "sample", "area", "question", "reference", "answer", "score", "rationale", "error",
            "truncated", "reasoning",
        )  # fmt: skip
        out.append({**{k: r[k] for k in keep}, "baseline_score": base, "status": status, "passed": passed})
    return out


def _regressed_items(rows: Rows, base_rows: Rows, paired: set[str], limit: int = 20) -> Rows:
    """The items that lost the most, baseline and new answer side by side (first sample of each)."""
    first = {r["id"]: r for r in rows if r["sample"] == 0}
    base_first = {r["id"]: r for r in base_rows if r["sample"] == 0}
    worst = []
    for item_id in paired:
        new, old = first.get(item_id), base_first.get(item_id)
        if (
            new
            and old
            and new["score"] is not None
            and old["score"] is not None
            and new["score"] < old["score"]
        ):
            worst.append({
                "id": item_id, "area": new["area"], "question": new["question"], "reference": new["reference"],
                "baseline_answer": old["answer"], "answer": new["answer"],
                "baseline_score": old["score"], "score": new["score"],
                "baseline_rationale": old["rationale"], "rationale": new["rationale"],
                "delta": new["score"] - old["score"],
            })  # fmt: skip
    worst.sort(key=lambda w: (w["delta"], w["area"], w["id"]))
    return worst[:limit]


def _cost(run: RunManifest, rows: Rows) -> dict[str, Any]:
    """Tokens, latency percentiles, throughput and (when priced) money, for the model and the judge."""
    out: dict[str, Any] = {}
    for side, prefix in (("model", "answer"), ("judge", "judge")):
        fresh = rows if side == "model" else [r for r in rows if not r.get("cached")]
        tin = sum(r[f"{prefix}_tokens_in"] or 0 for r in fresh)
        tout = sum(r[f"{prefix}_tokens_out"] or 0 for r in fresh)
        lat = [r[f"{prefix}_latency_ms"] for r in fresh if r[f"{prefix}_latency_ms"]]
        config = run.config.get(side, {})
        money = None
        if config.get("price_in_per_mtok") is not None or config.get("price_out_per_mtok") is not None:
            money = tin / 1e6 * (config.get("price_in_per_mtok") or 0) + tout / 1e6 * (
                config.get("price_out_per_mtok") or 0
            )
        elif config.get("price_per_hour") is not None and run.ended_at:
            hours = (
                datetime.fromisoformat(run.ended_at) - datetime.fromisoformat(run.started_at)
            ).total_seconds()
            money = config["price_per_hour"] * hours / 3600
        out[side] = {
            "tokens_in": tin,
            "tokens_out": tout,
            "calls": len(lat),
            "latency_ms": {f"p{q}": v for q, v in stats.percentiles(lat).items()},
            "tokens_per_s": (tout / (sum(lat) / 1000)) if lat and sum(lat) > 0 else None,
            "cost": money,
        }
    return out


def history(store: Store, run: RunManifest, limit: int) -> list[dict[str, Any]]:
    """Each area's mean over the suite's last ``limit`` runs up to this one, marking model/judge/rubric changes."""
    runs = [m for m in store.runs(run.suite_name) if (m.started_at, m.run_id) <= (run.started_at, run.run_id)]
    points = []
    previous: RunManifest | None = None
    for m in runs[-limit:]:
        rows = list(store.results(m.run_id))
        areas = defaultdict(list)
        for r in rows:
            if r["score"] is not None:
                areas[r["area"]].append(r["score"])
        changes = []
        if previous is not None:
            if (previous.model_id or previous.model) != (m.model_id or m.model):
                changes.append("model")
            if previous.judge_model != m.judge_model:
                changes.append("judge")
            if previous.rubric_hash != m.rubric_hash:
                changes.append("rubric")
        scored = [r["score"] for r in rows if r["score"] is not None]
        points.append({
            "run_id": m.run_id, "started_at": m.started_at, "model": m.model_id or m.model,
            "judge_model": m.judge_model, "rubric_hash": m.rubric_hash, "changes": changes,
            "overall": sum(scored) / len(scored) if scored else None,
            "areas": {a: sum(v) / len(v) for a, v in sorted(areas.items())},
        })  # fmt: skip
        previous = m
    return points


def _manifest_dict(m: RunManifest) -> dict[str, Any]:
    data = m.to_dict()
    data["offline_judge"] = m.judge_model == OFFLINE_JUDGE_MODEL
    # The verdict protocol the judge ended up using (json_schema, json_object, text): see structured: auto.
    data["judge_output"] = m.config.get("structured") if isinstance(m.config.get("structured"), str) else None
    return data


def _selection(run: RunManifest) -> dict[str, Any] | None:
    """The subset of the suite the run asked (``--area``, ``--item-tag``, ``--limit``), or None: all of it."""
    selection = run.selection()
    return None if selection.whole else {**selection.to_dict(), "description": selection.describe()}


def build_scorecard(
    store: Store, run_id: str, baseline_id: str | None = None, settings: ScorecardSettings | None = None
) -> dict[str, Any]:
    """The whole scorecard of a run as one JSON-able dict (``scorecard.json``)."""
    settings = settings or ScorecardSettings()
    run = store.run(run_id)
    baseline = resolve_baseline(store, run, baseline_id)
    rows = list(store.results(run_id))
    base_rows = list(store.results(baseline.run_id)) if baseline else []
    areas_rows: dict[str, Rows] = defaultdict(list)
    for r in rows:
        areas_rows[r["area"]].append(r)
    drifted = drift(rows, base_rows, settings) if baseline else None
    areas = []
    for area in sorted(areas_rows):
        d = (
            drifted["areas"][area]
            if drifted
            else {**_drift_fields(None), "p_adjusted": None, "status": "new"}
        )
        areas.append({"area": area, **_summary(areas_rows[area], settings), **d})
    weak, strong = _rank_areas(areas, settings)
    for a in areas:
        a["weak"] = a["area"] in weak
    overall_drift = (
        drifted["overall"] if drifted else {**_drift_fields(None), "p_adjusted": None, "status": "new"}
    )
    overall = {**_summary(rows, settings), **overall_drift}
    paired = set(drifted["items"]["paired"]) if drifted else set()
    return {
        "schema_version": SCHEMA_VERSION,
        "run": _manifest_dict(run),
        "selection": _selection(run),
        "baseline": _manifest_dict(baseline) if baseline else None,
        "settings": settings.model_dump(),
        "overall": overall,
        "areas": areas,
        "weak_areas": weak,
        "strong_areas": strong,
        "item_changes": drifted["items"] if drifted else None,
        "regressed_items": _regressed_items(rows, base_rows, paired) if baseline else [],
        "items": _item_rows(rows, base_rows, paired, settings),
        "history": history(store, run, settings.history),
        "cost": _cost(run, rows),
    }
