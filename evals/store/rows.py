"""How records become rows of the store's tables and of ``results.jsonl``, and back: one place for both
backends, and for the exports that ``evals import`` reads."""

from __future__ import annotations

import json
from typing import Any

from evals.records import Answer, Item, Judgment, RunConfig, RunManifest, flags_json, flags_of_json
from evals.results import ResultRow
from evals.store.crypto import codec

RUN_COLS = (
    "run_id", "schema_version", "suite_name", "suite_path", "suite_hash", "model_name", "model", "model_id",
    "judge_name", "judge_model", "rubric_name", "rubric_hash", "samples", "config_json", "tags_json",
    "status", "started_at", "ended_at", "lookingglass_version", "rubrics_json",
)  # fmt: skip
ITEM_COLS = ("run_id", "item_id", "position", "area", "content_hash", "item_json")
ANSWER_COLS = (
    "run_id", "item_id", "sample", "text", "tokens_in", "tokens_out", "latency_ms", "model_id", "error",
    "finish_reason", "truncated", "reasoning", "finished_at", "flags", "length",
)  # fmt: skip
JUDGMENT_COLS = (
    "run_id", "item_id", "sample", "score", "rationale", "raw", "judge", "cache_key", "cached",
    "tokens_in", "tokens_out", "latency_ms", "error", "rubric_hash", "judge_fingerprint", "model_id", "repeat",
    "batch_id",
)  # fmt: skip
BASELINE_COLS = ("name", "run_id", "set_at", "note")

NOT_ANSWERED, NOT_JUDGED = "not answered", "not judged"
"""The errors ``results.jsonl`` gives a sample that has no answer or no judgment stored."""
KEY = ("run_id", "item_id", "sample")
"""The natural key of an answer."""
JUDGMENT_KEY = ("run_id", "item_id", "sample", "repeat", "judge")
"""The natural key of a verdict: a panel of judges, each asked one or more times, may grade one answer."""


def upsert_sql(table: str, cols: tuple[str, ...], key: tuple[str, ...]) -> str:
    """An insert that replaces the row with the same key: one statement both dialects speak."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in key)
    return (
        f"INSERT INTO {table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))}) "
        f"ON CONFLICT ({','.join(key)}) DO UPDATE SET {updates}"
    )


def _flags(values: tuple[Any, ...]) -> tuple[Any, ...]:
    # Flags are stored as 0/1 integers: PostgreSQL will not put a boolean into an integer column.
    return tuple(int(v) if isinstance(v, bool) else v for v in values)


SEALED_ANSWER_COLS = frozenset({"text", "reasoning", "error"})
SEALED_JUDGMENT_COLS = frozenset({"rationale", "raw", "error"})
"""The text columns ``evals.store.crypto`` encrypts (with ``EVALS_STORE_KEY``) and a purge removes: the
error messages too (a server's error body often echoes the prompt); that there was an error stays known."""


def _sealed(cols: tuple[str, ...], values: tuple[Any, ...], sealed: frozenset[str]) -> tuple[Any, ...]:
    text = codec()
    return tuple(text.seal(v) if c in sealed else v for c, v in zip(cols, values, strict=True))


def _opened(cols: tuple[str, ...], row: tuple[Any, ...], sealed: frozenset[str]) -> dict[str, Any]:
    text = codec()
    return {c: text.open(v) if c in sealed else v for c, v in zip(cols, row, strict=True)}


def answer_values(answer: Answer) -> tuple[Any, ...]:
    """An answer as a row of ``answers`` (its text sealed when the store is encrypted, its grader-addressing
    flags as JSON text)."""
    values = {c: getattr(answer, c) for c in ANSWER_COLS} | {"flags": flags_json(answer.flags)}
    return _sealed(ANSWER_COLS, _flags(tuple(values.values())), SEALED_ANSWER_COLS)


def judgment_values(judgment: Judgment) -> tuple[Any, ...]:
    """A judgment as a row of ``judgments`` (its text sealed when the store is encrypted)."""
    values = _flags(tuple(getattr(judgment, c) for c in JUDGMENT_COLS))
    return _sealed(JUDGMENT_COLS, values, SEALED_JUDGMENT_COLS)


def config_json(config: RunConfig) -> str:
    """A run's config snapshot as ``runs.config_json`` holds it (the keys it was given, no more)."""
    return json.dumps(config.model_dump(mode="json"))


def run_values(m: RunManifest) -> tuple[Any, ...]:
    """A manifest as a row of ``runs``."""
    return (
        m.run_id, m.schema_version, m.suite_name, m.suite_path, m.suite_hash, m.model_name, m.model,
        m.model_id, m.judge_name, m.judge_model, m.rubric_name, m.rubric_hash, m.samples,
        config_json(m.config), json.dumps(list(m.tags)), m.status, m.started_at, m.ended_at,
        m.lookingglass_version, json.dumps(sorted(m.rubrics)),
    )  # fmt: skip


PURGED = "(purged)"
"""What a purged text reads as (``evals purge``): question, answer, reasoning, rationale, raw verdict."""
PURGED_HASH = "purged_content_hash"
"""Key of a purged item's ``metadata`` keeping the content hash of what it asked (``evals.store.purge``), so
pairing with a baseline survives a purge, a copy and an import."""


def item_hash(item: Item) -> str:
    """The content hash an item is stored with: a purged item's original one, else ``Item.content_hash``."""
    kept = item.metadata.get(PURGED_HASH)
    return kept if isinstance(kept, str) else item.content_hash()


def item_values(run_id: str, position: int, item: Item) -> tuple[Any, ...]:
    """An item as a row of ``items`` (its text sealed when the store is encrypted)."""
    item_json = json.dumps(
        codec().seal_item(item.model_dump(mode="json")), ensure_ascii=False, separators=(",", ":")
    )
    return (run_id, item.id, position, item.area, item_hash(item), item_json)


def item_of(item_json: str) -> Item:
    """An item from its ``item_json`` column (its text opened, or ``(encrypted)`` without the key)."""
    return Item.model_validate(codec().open_item(json.loads(item_json)))


def answer_of(row: tuple[Any, ...]) -> Answer:
    """An answer from a row of ``answers`` (``ANSWER_COLS``)."""
    values = _opened(ANSWER_COLS, row, SEALED_ANSWER_COLS)
    values["truncated"] = bool(values["truncated"])
    values["flags"] = flags_of_json(values["flags"])
    return Answer(**values)


def judgment_of(row: tuple[Any, ...]) -> Judgment:
    """A judgment from a row of ``judgments`` (``JUDGMENT_COLS``)."""
    values = _opened(JUDGMENT_COLS, row, SEALED_JUDGMENT_COLS)
    values["cached"] = bool(values["cached"])
    return Judgment(**values)


def manifest_of(row: tuple[Any, ...]) -> RunManifest:
    """A manifest from a row of ``runs`` (``RUN_COLS``)."""
    data = dict(zip(RUN_COLS, row, strict=True))
    data["config"] = RunConfig.model_validate(json.loads(data.pop("config_json")))
    data["tags"] = tuple(json.loads(data.pop("tags_json")))
    data["rubrics"] = tuple(json.loads(data.pop("rubrics_json")))
    return RunManifest(**data)


def export_manifest(manifest: RunManifest, items: list[Item]) -> str:
    """``manifest.json``: the run's manifest with its items (in suite order) under ``items``."""
    data = {**manifest.to_dict(), "items": [it.model_dump(mode="json") for it in items]}
    return json.dumps(data, ensure_ascii=False, indent=1) + "\n"


def _representative(judgments: list[Judgment]) -> Judgment | None:
    """The verdict whose details (rationale, judge, tokens) a result row shows: the first scored one by
    (repeat, judge), else the first failed one."""
    ordered = sorted(judgments, key=lambda j: (j.score is None or j.error is not None, j.repeat, j.judge))
    return ordered[0] if ordered else None


def member_scores(judgments: list[Judgment]) -> dict[str, float]:
    """Each judge's score of one item and sample: the mean of its scored repeats, by the judge's label
    (``Judgment.judge``), judges in label order; a judge with no scored verdict is left out."""
    by_judge: dict[str, list[float]] = {}
    for j in sorted(judgments, key=lambda j: (j.judge, j.repeat)):
        if j.score is not None and j.error is None:
            by_judge.setdefault(j.judge, []).append(j.score)
    return {judge: sum(scores) / len(scores) for judge, scores in by_judge.items()}


def aggregate_score(judgments: list[Judgment], method: str | None = None) -> float | None:
    """The score of one item and sample: each judge's repeats averaged first, then the ``mean`` (default)
    or ``median`` across the judges that scored it (a panel's ``aggregate``). The one place it is computed."""
    scores = sorted(member_scores(judgments).values())
    if not scores:
        return None
    if method == "median":
        middle = len(scores) // 2
        return scores[middle] if len(scores) % 2 else (scores[middle - 1] + scores[middle]) / 2
    return sum(scores) / len(scores)


def panel_aggregation(manifest: RunManifest) -> str | None:
    """How a panel run's answers are scored from its members (``mean`` or ``median``, from the config
    snapshot); None for a run with one judge."""
    panel = manifest.config.judge.panel
    return panel.aggregate if panel is not None else None


def _member(label: str) -> str:
    # A verdict's label is ``name (model), rubric ...``; the member's name is what people know it by.
    return label.partition(" (")[0]


def result_row(
    run_id: str,
    item: Item,
    sample: int,
    a: Answer | None,
    judgments: list[Judgment],
    stored_hash: str | None = None,
    aggregate: str | None = None,
) -> ResultRow:
    """The row of one item and sample (a line of ``results.jsonl``): its answer, and the aggregate of
    its verdicts; the judge's details are those of the first scored verdict. ``stored_hash`` is the item's
    hash as stored (what it asked, even once its text is purged or unreadable without the key);
    ``aggregate``: a panel run's method (``panel_aggregation``); the row then also lists each member's score."""
    j = _representative(judgments)
    score = aggregate_score(judgments, aggregate)
    panel = None
    if aggregate is not None:
        panel = {_member(label): value for label, value in member_scores(judgments).items()}
    judge_error = None if score is not None else (j.error if j else NOT_JUDGED)
    error = (a.error if a else NOT_ANSWERED) or judge_error
    return ResultRow(
        run_id=run_id,
        id=item.id,
        sample=sample,
        area=item.area,
        question=item.prompt_text(),
        reference=item.reference,
        answer=a.text if a else None,
        finish_reason=a.finish_reason if a else None,
        truncated=a.truncated if a else False,
        reasoning=a.reasoning if a else None,
        score=score if not error else None,
        rationale=j.rationale if j else None,
        error=error,
        error_kind=None if not error else ("answer" if not a or a.error else "judge"),
        judge=j.judge if j else None,
        cached=j.cached if j else None,
        answer_tokens_in=a.tokens_in if a else None,
        answer_tokens_out=a.tokens_out if a else None,
        answer_latency_ms=a.latency_ms if a else None,
        answer_finished_at=a.finished_at if a else None,
        judge_tokens_in=j.tokens_in if j else None,
        judge_tokens_out=j.tokens_out if j else None,
        judge_latency_ms=j.latency_ms if j else None,
        item_hash=stored_hash or item_hash(item),
        tags=tuple(item.tags),
        # Provenance, and what ``evals import`` needs to rebuild the answer and judgment rows exactly.
        answer_model_id=a.model_id if a else None,
        judge_model_id=j.model_id if j else None,
        rubric_hash=j.rubric_hash if j else None,
        judge_fingerprint=j.judge_fingerprint if j else None,
        cache_key=j.cache_key if j else None,
        raw=j.raw if j else None,
        answer_error=a.error if a else None,
        judge_error=j.error if j else None,
        member_scores=panel if panel is not None and not error else None,
        flags=a.flags if a else (),
        answer_length=a.length if a else None,
    )


def records_of(row: dict[str, Any]) -> tuple[Answer | None, Judgment | None]:
    """The stored answer and judgment a result row was made from (None where there was none)."""
    run_id, item_id, sample = row["run_id"], row["id"], int(row["sample"])
    error, kind = row.get("error"), row.get("error_kind")
    # Rows exported before the answer's and the judgment's errors were kept apart say it with error_kind.
    answer_error = row.get("answer_error", error if kind == "answer" else None)
    judge_error = row.get("judge_error", error if kind == "judge" else None)
    answer = None
    if not (row.get("answer") is None and answer_error in (None, NOT_ANSWERED)):
        answer = Answer(
            run_id, item_id, sample, row.get("answer"), row.get("answer_tokens_in"), row.get("answer_tokens_out"),
            row.get("answer_latency_ms"), row.get("answer_model_id"), answer_error,
            row.get("finish_reason"), bool(row.get("truncated")), row.get("reasoning"),
            row.get("answer_finished_at"),
            flags=tuple(row.get("flags") or ()), length=row.get("answer_length"),
        )  # fmt: skip
    judgment = None
    if row.get("judge") is not None and judge_error != NOT_JUDGED:
        judgment = Judgment(
            run_id, item_id, sample, row.get("score"), row.get("rationale"), row.get("raw"), row["judge"],
            row.get("cache_key") or f"imported:{run_id}:{item_id}:{sample}", bool(row.get("cached")),
            row.get("judge_tokens_in"), row.get("judge_tokens_out"), row.get("judge_latency_ms"), judge_error,
            row.get("rubric_hash"), row.get("judge_fingerprint"), row.get("judge_model_id"),
        )  # fmt: skip
    return answer, judgment
