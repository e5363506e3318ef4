"""The drift canary's tables: anchor sets, their anchors, every re-judging of a set, and resets.

An anchor keeps its own copy of the item and the answer (``item_json``, ``answer``): purging a run's text
(governance retention) leaves the canary able to re-judge it. With ``EVALS_STORE_KEY`` that text, and the
error messages of re-judgings, are sealed like the runs' (``evals.store.crypto``). Functions take a ``Store`` and speak the SQL
both backends accept (``?`` placeholders); the logic lives in ``evals.trust.canary`` and
``evals.scorecard.canary``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from evals.records import Item
from evals.store import Store
from evals.store.crypto import codec
from evals.store.rows import item_of, item_values


@dataclass(frozen=True, slots=True)
class AnchorSet:
    """A frozen set of answered items, one per (judge fingerprint, suite) until a reset retires it."""

    set_id: str
    judge_fingerprint: str
    judge_name: str
    suite_name: str
    rubric_hash: str
    """The rubric (set) hash of the run the anchors came from."""
    source_run: str
    """The run the anchors were drawn from."""
    created_at: str
    active: bool = True
    """False once reset: the next run (or ``--from-latest``) draws a new set."""


@dataclass(frozen=True, slots=True)
class Anchor:
    """One anchored answer: what the judge re-grades on every run, and the score it got when anchored."""

    item: Item
    answer: str
    truncated: bool
    score: float
    """The anchoring verdict (the source run's)."""
    human_score: float | None = None
    """A person's score of the same question and answer, from the labels file (``canary: {labels:}``)."""


@dataclass(frozen=True, slots=True)
class AnchorScore:
    """The judge's verdict on one anchor in one observation."""

    item_id: str
    score: float | None
    error: str | None = None
    model_id: str | None = None
    """The judge model id the API reported."""
    tokens_in: int | None = None
    tokens_out: int | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """One re-judging of an anchor set, at the end of one run."""

    set_id: str
    run_id: str
    observed_at: str
    run_started_at: str
    """Orders observations as their runs: the previous observation is the earlier run's."""
    min_shift: float
    """The ``canary.min_shift`` in effect: what "moved" meant for this observation."""
    model_ids: tuple[str, ...]
    rubric_hash: str
    error: str | None = None
    """Why the set could not be re-judged (recorded; the run is not failed)."""


@dataclass(frozen=True, slots=True)
class CanaryEvent:
    """A reset of a judge's canary for a suite: who, when and why."""

    judge_name: str
    suite_name: str
    kind: str
    """``reset``."""
    at: str
    who: str
    reason: str | None = None
    set_id: str | None = None
    """The set drawn at once (``--from-latest``), or None: the next run draws it."""


_SET_COLS = "set_id, judge_fingerprint, judge_name, suite_name, rubric_hash, source_run, created_at, active"
_OBS_COLS = "set_id, run_id, observed_at, run_started_at, min_shift, model_ids_json, rubric_hash, error"
_EVENT_COLS = "judge_name, suite_name, kind, at, who, reason, set_id"


def _set_of(row: tuple[object, ...]) -> AnchorSet:
    text = [str(v) for v in row[:7]]
    return AnchorSet(text[0], text[1], text[2], text[3], text[4], text[5], text[6], active=bool(row[7]))


def _observation_of(row: tuple[object, ...]) -> Observation:
    return Observation(
        str(row[0]), str(row[1]), str(row[2]), str(row[3]), float(row[4]),  # type: ignore[arg-type]
        tuple(json.loads(str(row[5]))), str(row[6]), None if row[7] is None else codec().open(str(row[7])),
    )  # fmt: skip


def create_set(store: Store, anchor_set: AnchorSet, anchors: list[Anchor]) -> None:
    """Store a new anchor set with its anchors, in one transaction."""
    store.check_key()
    s = anchor_set
    with store.backend.transaction():
        store._execute(
            f"INSERT INTO canary_sets ({_SET_COLS}) VALUES (?,?,?,?,?,?,?,?)",
            (s.set_id, s.judge_fingerprint, s.judge_name, s.suite_name, s.rubric_hash, s.source_run,
             s.created_at, int(s.active)),
        )  # fmt: skip
        store.backend.executemany(
            "INSERT INTO canary_anchors (set_id, item_id, position, area, item_json, answer, truncated, score, "
            "human_score) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                # The anchors' text is sealed like the runs' when the store is encrypted (EVALS_STORE_KEY).
                (s.set_id, a.item.id, pos, a.item.area, item_values("", pos, a.item)[-1], codec().seal(a.answer),
                 int(a.truncated), a.score, a.human_score)
                for pos, a in enumerate(anchors)
            ],
        )  # fmt: skip


def active_set(store: Store, judge_fingerprint: str, suite_name: str) -> AnchorSet | None:
    """The set in use for this judge and suite, or None (never anchored, or reset since)."""
    row = store._execute(
        f"SELECT {_SET_COLS} FROM canary_sets WHERE judge_fingerprint = ? AND suite_name = ? AND active = 1 "
        "ORDER BY created_at DESC, set_id LIMIT 1",
        (judge_fingerprint, suite_name),
    ).fetchone()
    return None if row is None else _set_of(tuple(row))


def anchor_set(store: Store, set_id: str) -> AnchorSet:
    """One set by id."""
    row = store._execute(f"SELECT {_SET_COLS} FROM canary_sets WHERE set_id = ?", (set_id,)).fetchone()
    return _set_of(tuple(row))


def sets(store: Store, judge_name: str | None = None, suite_name: str | None = None) -> list[AnchorSet]:
    """Every set (of a judge name, of a suite), oldest first."""
    where, args = _filters(judge_name, suite_name)
    rows = store._execute(f"SELECT {_SET_COLS} FROM canary_sets{where} ORDER BY created_at, set_id", args)
    return [_set_of(tuple(r)) for r in rows.fetchall()]


def anchors(store: Store, set_id: str) -> list[Anchor]:
    """A set's anchors, in the order they were drawn."""
    store.check_key()
    rows = store._execute(
        "SELECT item_json, answer, truncated, score, human_score FROM canary_anchors WHERE set_id = ? "
        "ORDER BY position",
        (set_id,),
    ).fetchall()
    text = codec()
    return [Anchor(item_of(r[0]), text.open(r[1]) or "", bool(r[2]), float(r[3]), r[4]) for r in rows]


def save_observation(store: Store, observation: Observation, scores: list[AnchorScore]) -> None:
    """Store one re-judging of a set and its scores (replacing an earlier one of the same run); the errors'
    text is sealed like the runs' (a judge's error body may echo the anchor)."""
    store.check_key()
    o, text = observation, codec()
    with store.backend.transaction():
        store._execute("DELETE FROM canary_scores WHERE set_id = ? AND run_id = ?", (o.set_id, o.run_id))
        store._execute(
            "DELETE FROM canary_observations WHERE set_id = ? AND run_id = ?", (o.set_id, o.run_id)
        )
        store._execute(
            f"INSERT INTO canary_observations ({_OBS_COLS}) VALUES (?,?,?,?,?,?,?,?)",
            (o.set_id, o.run_id, o.observed_at, o.run_started_at, o.min_shift, json.dumps(list(o.model_ids)),
             o.rubric_hash, text.seal(o.error)),
        )  # fmt: skip
        store.backend.executemany(
            "INSERT INTO canary_scores (set_id, run_id, item_id, score, error, model_id, tokens_in, tokens_out) "
            "VALUES (?,?,?,?,?,?,?,?)",
            [(o.set_id, o.run_id, s.item_id, s.score, text.seal(s.error), s.model_id, s.tokens_in, s.tokens_out)
             for s in scores],
        )  # fmt: skip


def observations(store: Store, set_id: str | None = None, run_id: str | None = None) -> list[Observation]:
    """Observations (of a set, of a run), in the order of their runs, then of observing."""
    store.check_key()
    clauses = [(c, v) for c, v in (("set_id", set_id), ("run_id", run_id)) if v is not None]
    where = (" WHERE " + " AND ".join(f"{c} = ?" for c, _ in clauses)) if clauses else ""
    rows = store._execute(
        f"SELECT {_OBS_COLS} FROM canary_observations{where} ORDER BY run_started_at, run_id, observed_at",
        tuple(v for _, v in clauses),
    )
    return [_observation_of(tuple(r)) for r in rows.fetchall()]


def scores(store: Store, set_id: str, run_id: str) -> list[AnchorScore]:
    """The anchor scores of one observation."""
    store.check_key()
    rows = store._execute(
        "SELECT item_id, score, error, model_id, tokens_in, tokens_out FROM canary_scores "
        "WHERE set_id = ? AND run_id = ? ORDER BY item_id",
        (set_id, run_id),
    ).fetchall()
    text = codec()
    return [AnchorScore(r[0], r[1], text.open(r[2]), *r[3:]) for r in rows]


def retire_sets(store: Store, judge_name: str, suite_name: str) -> int:
    """Mark the judge's active sets for the suite as no longer in use; how many there were."""
    active = [s for s in sets(store, judge_name, suite_name) if s.active]
    store._execute(
        "UPDATE canary_sets SET active = 0 WHERE judge_name = ? AND suite_name = ?", (judge_name, suite_name)
    )
    return len(active)


def record_event(store: Store, event: CanaryEvent) -> None:
    """Keep a reset in the canary's history."""
    e = event
    store._execute(
        f"INSERT INTO canary_events ({_EVENT_COLS}) VALUES (?,?,?,?,?,?,?)",
        (e.judge_name, e.suite_name, e.kind, e.at, e.who, e.reason, e.set_id),
    )


def events(store: Store, judge_name: str | None = None, suite_name: str | None = None) -> list[CanaryEvent]:
    """Resets (of a judge name, of a suite), oldest first."""
    where, args = _filters(judge_name, suite_name)
    rows = store._execute(f"SELECT {_EVENT_COLS} FROM canary_events{where} ORDER BY at", args)
    return [CanaryEvent(*r) for r in rows.fetchall()]


def _filters(judge_name: str | None, suite_name: str | None) -> tuple[str, tuple[str, ...]]:
    clauses = [(c, v) for c, v in (("judge_name", judge_name), ("suite_name", suite_name)) if v is not None]
    where = (" WHERE " + " AND ".join(f"{c} = ?" for c, _ in clauses)) if clauses else ""
    return where, tuple(v for _, v in clauses)
